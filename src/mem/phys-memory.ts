/**
 * Sparse little-endian physical memory.
 *
 * Memory is cut into 64 KiB chunks that exist only once written; untouched memory reads as zero and costs
 * nothing, so a 64 GiB machine is as cheap as a 64 KiB one until it is used. Chunks are found through a
 * two-level directory (4 GiB regions, then chunks), which keeps the hot path to two array loads and no
 * hashing.
 *
 * Two faces:
 * - the interface (`read`, `write`, `readU8`..`readU64`, `writeU8`..`writeU64`, `fill`, `copy`) takes bigint
 *   addresses, checks every access against the size and refuses values that do not fit;
 * - the hot path (`chunkAt`, `writableChunkAt`) takes a physical address as an exact `number` and hands back
 *   the chunk's DataView, for page walkers and queues that read many entries. Callers check the range
 *   first (`containsRange`). It sees RAM only: MMIO holes read as zero there.
 *
 * MMIO holes: `claimMmio` hands a range to a device; interface accesses inside it go to the handler instead
 * of RAM. An access that straddles RAM and a hole is an error.
 */
import { hex } from '../errors.js';
import { MemoryError } from './errors.js';

export const CHUNK_SHIFT = 16;
export const CHUNK_SIZE = 1 << CHUNK_SHIFT;
export const CHUNK_MASK = CHUNK_SIZE - 1;
const REGION_BYTES = 2 ** 32;
/** Copies up to this size go byte by byte instead of through a fresh typed-array view. */
const SMALL_COPY = 64;
const CHUNKS_PER_REGION = REGION_BYTES / CHUNK_SIZE;

/** Physical addresses in every format we model are at most 52 bits, so memory is too. */
export const MAX_PHYS_MEMORY = 2n ** 52n;

/** A device's handler for a claimed MMIO range; offsets are relative to the range's base. */
export interface MmioHandler {
  read(offset: bigint, size: 1 | 2 | 4 | 8): bigint;
  write(offset: bigint, size: 1 | 2 | 4 | 8, value: bigint): void;
}

interface MmioRange {
  base: number;
  end: number; // exclusive
  name: string;
  handler: MmioHandler;
}

/** Shared chunk for untouched memory. Never written: writes go through `writableChunkAt`. */
const ZERO_CHUNK = new DataView(new ArrayBuffer(CHUNK_SIZE));
/** Shared directory of an untouched 4 GiB region. */
const EMPTY_REGION: DataView[] = new Array<DataView>(CHUNKS_PER_REGION).fill(ZERO_CHUNK);

export class PhysMemory {
  readonly size: bigint;
  /** `size` as a number (exact: size <= 2^52). */
  readonly sizeNum: number;
  /** `size` split at bit 32, for range checks on split addresses. */
  private readonly sizeHi: number;
  private readonly sizeLo: number;
  private readonly regions: DataView[][];
  private chunkCount = 0;
  private readonly mmio: MmioRange[] = [];

  constructor(sizeBytes: number | bigint) {
    const size = BigInt(sizeBytes);
    if (size <= 0n || size > MAX_PHYS_MEMORY) {
      throw new MemoryError('MEM_BAD_SIZE', `memory size ${hex(size)} must be in (0, 2^52]`, { size });
    }
    this.size = size;
    this.sizeNum = Number(size);
    this.sizeHi = Math.floor(this.sizeNum / REGION_BYTES);
    this.sizeLo = this.sizeNum % REGION_BYTES;
    const regionCount = Math.ceil(this.sizeNum / REGION_BYTES);
    this.regions = new Array<DataView[]>(regionCount).fill(EMPTY_REGION);
  }

  /** Bytes of host memory backing what has been written so far. */
  get residentBytes(): number {
    return this.chunkCount * CHUNK_SIZE;
  }

  // ---- hot path (numbers) -------------------------------------------------------------------------

  /** True if [pa, pa + len) lies inside memory. */
  containsRange(pa: number, len: number): boolean {
    return pa >= 0 && pa + len <= this.sizeNum;
  }

  /** The chunk holding `pa` for reading (a shared zero chunk if untouched). Offset within it: pa & CHUNK_MASK. */
  chunkAt(pa: number): DataView {
    return this.regions[(pa / REGION_BYTES) >>> 0]![pa >>> CHUNK_SHIFT]!;
  }

  /**
   * The hottest form, for walkers that keep addresses split in two 32-bit halves so that no float arithmetic
   * happens per access: `hi` = address bits 51:32, `lo` = bits 31:0 (int32 or uint32). Offset within the
   * chunk: lo & CHUNK_MASK.
   */
  chunkHL(hi: number, lo: number): DataView {
    return this.regions[hi]![lo >>> CHUNK_SHIFT]!;
  }

  /** `writableChunkAt` for a split address. */
  writableChunkHL(hi: number, lo: number): DataView {
    const chunk = this.regions[hi]![lo >>> CHUNK_SHIFT]!;
    return chunk !== ZERO_CHUNK ? chunk : this.writableChunkAt(hi * REGION_BYTES + (lo >>> 0));
  }

  /** True if [hi:lo, hi:lo + len) lies inside memory (len small, the range not crossing bit 32). */
  containsHL(hi: number, lo: number, len: number): boolean {
    return hi < this.sizeHi || (hi === this.sizeHi && (lo >>> 0) + len <= this.sizeLo);
  }

  /** The chunk holding `pa` for writing, allocating it on first touch. */
  writableChunkAt(pa: number): DataView {
    const ri = (pa / REGION_BYTES) >>> 0;
    let region = this.regions[ri]!;
    const ci = pa >>> CHUNK_SHIFT;
    const chunk = region[ci]!;
    if (chunk !== ZERO_CHUNK) return chunk;
    if (region === EMPTY_REGION) {
      region = EMPTY_REGION.slice();
      this.regions[ri] = region;
    }
    const fresh = new DataView(new ArrayBuffer(CHUNK_SIZE));
    region[ci] = fresh;
    this.chunkCount++;
    return fresh;
  }

  /**
   * Number-addressed accessors for device models (queues, tables) after they checked the range with
   * `containsRange`. RAM only; accesses may cross chunks.
   */
  readU16n(pa: number): number {
    const o = pa & CHUNK_MASK;
    if (o <= CHUNK_SIZE - 2) return this.chunkAt(pa).getUint16(o, true);
    return this.readU8n(pa) | (this.readU8n(pa + 1) << 8);
  }
  readU32n(pa: number): number {
    const o = pa & CHUNK_MASK;
    if (o <= CHUNK_SIZE - 4) return this.chunkAt(pa).getUint32(o, true);
    return (this.readU16n(pa) | (this.readU16n(pa + 2) << 16)) >>> 0;
  }
  readU64n(pa: number): bigint {
    const o = pa & CHUNK_MASK;
    if (o <= CHUNK_SIZE - 8) return this.chunkAt(pa).getBigUint64(o, true);
    return (BigInt(this.readU32n(pa + 4)) << 32n) | BigInt(this.readU32n(pa));
  }
  writeU16n(pa: number, v: number): void {
    const o = pa & CHUNK_MASK;
    if (o <= CHUNK_SIZE - 2) this.writableChunkAt(pa).setUint16(o, v, true);
    else this.writeBytesN(pa, Uint8Array.of(v & 0xff, (v >>> 8) & 0xff));
  }
  writeU32n(pa: number, v: number): void {
    const o = pa & CHUNK_MASK;
    if (o <= CHUNK_SIZE - 4) this.writableChunkAt(pa).setUint32(o, v, true);
    else this.writeBytesN(pa, Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff));
  }
  private readU8n(pa: number): number {
    return this.chunkAt(pa).getUint8(pa & CHUNK_MASK);
  }

  /** Copy `len` bytes at `pa` into `dst` at `dstOffset`. */
  readBytesN(pa: number, dst: Uint8Array, dstOffset = 0, len = dst.length - dstOffset): void {
    const o = pa & CHUNK_MASK;
    if (len <= SMALL_COPY && o + len <= CHUNK_SIZE) {
      // Requests and ring entries are small: a byte loop beats creating a view per copy.
      const c = this.chunkAt(pa);
      for (let i = 0; i < len; i++) dst[dstOffset + i] = c.getUint8(o + i);
      return;
    }
    let done = 0;
    while (done < len) {
      const at = pa + done;
      const off = at & CHUNK_MASK;
      const n = Math.min(len - done, CHUNK_SIZE - off);
      const chunk = this.chunkAt(at);
      if (chunk === ZERO_CHUNK) dst.fill(0, dstOffset + done, dstOffset + done + n);
      else dst.set(new Uint8Array(chunk.buffer, off, n), dstOffset + done);
      done += n;
    }
  }

  /** Copy `src` (or `len` bytes of it from `srcOffset`) to `pa`. */
  writeBytesN(pa: number, src: Uint8Array, srcOffset = 0, len = src.length - srcOffset): void {
    const o = pa & CHUNK_MASK;
    if (len <= SMALL_COPY && o + len <= CHUNK_SIZE) {
      const c = this.writableChunkAt(pa);
      for (let i = 0; i < len; i++) c.setUint8(o + i, src[srcOffset + i]!);
      return;
    }
    let done = 0;
    while (done < len) {
      const at = pa + done;
      const off = at & CHUNK_MASK;
      const n = Math.min(len - done, CHUNK_SIZE - off);
      new Uint8Array(this.writableChunkAt(at).buffer, off, n).set(src.subarray(srcOffset + done, srcOffset + done + n));
      done += n;
    }
  }

  // ---- interface (bigint) -------------------------------------------------------------------------

  read(addr: bigint, len: number): Uint8Array {
    const pa = this.check(addr, len);
    const out = new Uint8Array(len);
    if (this.mmio.length !== 0 && this.mmioAt(pa, len)) {
      const v = this.mmioRead(pa, mmioSize(pa, len));
      for (let i = 0; i < len; i++) out[i] = Number((v >> BigInt(8 * i)) & 0xffn);
      return out;
    }
    this.readBytesN(pa, out);
    return out;
  }

  write(addr: bigint, data: Uint8Array): void {
    const len = data.length;
    const pa = this.check(addr, len);
    if (this.mmio.length !== 0 && this.mmioAt(pa, len)) {
      let v = 0n;
      for (let i = len - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[i]!);
      this.mmioWrite(pa, mmioSize(pa, len), v);
      return;
    }
    this.writeBytesN(pa, data);
  }

  readU8(addr: bigint): number {
    return Number(this.readUint(addr, 1));
  }
  readU16(addr: bigint): number {
    return Number(this.readUint(addr, 2));
  }
  readU32(addr: bigint): number {
    return Number(this.readUint(addr, 4));
  }
  readU64(addr: bigint): bigint {
    return this.readUint(addr, 8);
  }
  writeU8(addr: bigint, value: number): void {
    this.writeUint(addr, 1, checkedUint(value, 8));
  }
  writeU16(addr: bigint, value: number): void {
    this.writeUint(addr, 2, checkedUint(value, 16));
  }
  writeU32(addr: bigint, value: number): void {
    this.writeUint(addr, 4, checkedUint(value, 32));
  }
  writeU64(addr: bigint, value: bigint): void {
    if (typeof value !== 'bigint' || value < 0n || value >= 1n << 64n) {
      throw new MemoryError('MEM_VALUE_RANGE', `value ${String(value)} is not a u64`, { value });
    }
    this.writeUint(addr, 8, value);
  }

  /** Set `len` bytes at `addr` to `byte`. Filling untouched memory with zero allocates nothing. */
  fill(addr: bigint, len: number | bigint, byte = 0): void {
    const n = Number(len);
    const pa = this.check(addr, n);
    checkedUint(byte, 8);
    this.refuseMmio(pa, n);
    this.fillN(pa, n, byte);
  }

  /** `fill` for a range the caller checked. */
  fillN(pa: number, n: number, byte: number): void {
    const o = pa & CHUNK_MASK;
    if (n <= SMALL_COPY && o + n <= CHUNK_SIZE) {
      const c = byte === 0 ? this.chunkAt(pa) : this.writableChunkAt(pa);
      if (c === ZERO_CHUNK) return;
      for (let i = 0; i < n; i++) c.setUint8(o + i, byte);
      return;
    }
    let done = 0;
    while (done < n) {
      const at = pa + done;
      const off = at & CHUNK_MASK;
      const step = Math.min(n - done, CHUNK_SIZE - off);
      if (byte !== 0 || this.chunkAt(at) !== ZERO_CHUNK) {
        new Uint8Array(this.writableChunkAt(at).buffer, off, step).fill(byte);
      }
      done += step;
    }
  }

  /** Copy `len` bytes from `src` to `dst` (overlap-safe). */
  copy(dst: bigint, src: bigint, len: number): void {
    this.write(dst, this.read(src, len));
  }

  /**
   * Give [base, base + size) to a device. Interface accesses inside go to `handler`; the range must not
   * overlap another claim.
   */
  claimMmio(base: bigint, size: bigint, name: string, handler: MmioHandler): void {
    const pa = this.check(base, Number(size));
    const end = pa + Number(size);
    for (const r of this.mmio) {
      if (pa < r.end && r.base < end) {
        throw new MemoryError('MEM_MMIO_OVERLAP', `MMIO range ${name} at ${hex(base)} overlaps ${r.name}`, {
          base,
          size,
          other: r.name,
        });
      }
    }
    this.mmio.push({ base: pa, end, name, handler });
    this.mmio.sort((a, b) => a.base - b.base);
  }

  // ---- internals ----------------------------------------------------------------------------------

  /** Validate [addr, addr + len) and return addr as a number. */
  private check(addr: bigint, len: number): number {
    if (typeof addr !== 'bigint') {
      throw new MemoryError('MEM_BAD_ADDRESS', `address must be a bigint, got ${typeof addr}`, { addr });
    }
    if (!Number.isSafeInteger(len) || len < 0) {
      throw new MemoryError('MEM_BAD_LENGTH', `length ${len} is not a non-negative integer`, { addr, len });
    }
    if (addr < 0n || addr + BigInt(len) > this.size) {
      throw new MemoryError(
        'MEM_OUT_OF_RANGE',
        `access ${hex(addr)}+${hex(len)} is outside memory of size ${hex(this.size)}`,
        { addr, len, size: this.size },
      );
    }
    return Number(addr);
  }

  private readUint(addr: bigint, size: 1 | 2 | 4 | 8): bigint {
    const pa = this.check(addr, size);
    if (this.mmio.length !== 0 && this.mmioAt(pa, size)) return this.mmioRead(pa, size);
    const off = pa & CHUNK_MASK;
    if (off + size <= CHUNK_SIZE) {
      const c = this.chunkAt(pa);
      switch (size) {
        case 1:
          return BigInt(c.getUint8(off));
        case 2:
          return BigInt(c.getUint16(off, true));
        case 4:
          return BigInt(c.getUint32(off, true));
        case 8:
          return c.getBigUint64(off, true);
      }
    }
    const bytes = this.read(addr, size);
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
    return v;
  }

  private writeUint(addr: bigint, size: 1 | 2 | 4 | 8, value: bigint): void {
    const pa = this.check(addr, size);
    if (this.mmio.length !== 0 && this.mmioAt(pa, size)) {
      this.mmioWrite(pa, size, value);
      return;
    }
    const off = pa & CHUNK_MASK;
    if (off + size <= CHUNK_SIZE) {
      const c = this.writableChunkAt(pa);
      switch (size) {
        case 1:
          c.setUint8(off, Number(value));
          return;
        case 2:
          c.setUint16(off, Number(value), true);
          return;
        case 4:
          c.setUint32(off, Number(value), true);
          return;
        case 8:
          c.setBigUint64(off, value, true);
          return;
      }
    }
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = Number((value >> BigInt(8 * i)) & 0xffn);
    this.write(addr, bytes);
  }

  /** The claim containing all of [pa, pa + len), undefined if none touches it; straddling is an error. */
  private mmioAt(pa: number, len: number): MmioRange | undefined {
    for (const r of this.mmio) {
      if (pa < r.end && r.base < pa + len) {
        if (pa < r.base || pa + len > r.end) {
          throw new MemoryError('MEM_MMIO_STRADDLE', `access ${hex(pa)}+${len} straddles MMIO range ${r.name}`, {
            addr: pa,
            len,
          });
        }
        return r;
      }
    }
    return undefined;
  }

  private refuseMmio(pa: number, len: number): void {
    if (this.mmio.length !== 0 && this.mmioAt(pa, len)) {
      throw new MemoryError('MEM_MMIO_ACCESS', `bulk access at ${hex(pa)} hits an MMIO range`, { addr: pa, len });
    }
  }

  private mmioRead(pa: number, size: 1 | 2 | 4 | 8): bigint {
    const r = this.mmioAt(pa, size)!;
    return r.handler.read(BigInt(pa - r.base), size);
  }

  private mmioWrite(pa: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    const r = this.mmioAt(pa, size)!;
    r.handler.write(BigInt(pa - r.base), size, value);
  }
}

function checkedUint(value: number, bits: 8 | 16 | 32): bigint {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new MemoryError('MEM_VALUE_RANGE', `value ${value} is not a u${bits}`, { value });
  }
  return BigInt(value);
}

function mmioSize(pa: number, len: number): 1 | 2 | 4 | 8 {
  if (len === 1 || len === 2 || len === 4 || len === 8) return len;
  throw new MemoryError('MEM_MMIO_SIZE', `MMIO access at ${hex(pa)} must be 1, 2, 4 or 8 bytes, not ${len}`, {
    addr: pa,
    len,
  });
}
