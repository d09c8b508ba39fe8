/**
 * The radix-tree engine behind every format: map, unmap, iovaToPhys, walk and dirty tracking written once
 * against `PteFormat`, with the tables as real bytes in PhysMemory.
 *
 * Semantics (each is relied on by tests and by the layers above):
 * - Every request is validated completely before anything changes: bad size, alignment or prot (EINVAL),
 *   an address outside ias/oas or non-canonical (ERANGE), a leaf already covering any part of the range
 *   (EEXIST), or not enough free table pages for the whole request (ENOMEM).
 * - map uses the largest page sizes in the bitmap that the alignment of iova and paddr and the remaining
 *   length allow. An empty table (tables are kept after unmap) where a block goes is replaced, with a
 *   walk flush for its range.
 * - unmap removes every leaf inside the range, skips holes and returns the bytes removed. A block that
 *   crosses either end of the range is refused (EBLOCK), as Linux >= 6.13 refuses to split blocks. Tables
 *   whose whole span lies inside the range are freed with one tlbFlushWalk; tables left empty by a partial
 *   unmap stay, as in io-pgtable-arm. Each removed leaf outside a freed table goes to tlbAddPage.
 * - map needs no invalidation (non-present entries are not cached by the formats modelled here) unless it
 *   replaced an empty table.
 *
 * Inside, input addresses are `number`s that are multiples of the granule (exact up to 2^64 since they are
 * multiples of 2^12), canonical upper-half x86 addresses folded below 2^ias; physical addresses are exact
 * `number`s below 2^52.
 */
import { hex } from '../errors.js';
import { CHUNK_MASK, type PhysMemory } from '../mem/phys-memory.js';
import type { PageAllocator } from '../mem/page-allocator.js';
import { levelShift, type PteFormat, type PteOut } from './format.js';
import {
  IOMMU_READ,
  IOMMU_WRITE,
  IotlbGather,
  PgtableError,
  gatherOnlyFlushOps,
  type FlushOps,
  type IoPgtable,
  type PgtableQuirks,
  type WalkControl,
  type WalkEntry,
} from './types.js';

const TWO64 = 1n << 64n;
const TWO64_NUM = 2 ** 64;
const MAX_EXACT_BIG = 1n << 53n;

function badArg(op: string): PgtableError {
  return new PgtableError('EINVAL', 'PGTABLE_BAD_ARG', `${op}: addresses and sizes are bigints`);
}

type Visitor = (level: number, table: number, index: number, lo: number, hi: number, iova: number, leaf: boolean) => WalkControl;

export class RadixPgtable implements IoPgtable {
  readonly format: IoPgtable['format'];
  readonly cfg: IoPgtable['cfg'];
  readonly root: bigint;
  readonly levels: number;

  private readonly rootPa: number;
  private readonly rootPages: number;
  private readonly granule: number;
  private readonly granuleBig: bigint;
  private readonly granuleMask: number;
  private readonly granuleBigMask: bigint;
  private readonly tableBytes: number;
  /** Bytes one entry at each level covers, by level (index 0 unused). */
  private readonly span: number[] = [0];
  private readonly spanBig: bigint[] = [0n];
  private readonly invSpan: number[] = [0];
  private readonly idxMask: number[] = [0];
  /** Levels whose page size is in the bitmap, largest first. */
  private readonly leafLevels: number[] = [];
  private readonly iasLimit: bigint;
  private readonly iasLimitNum: number;
  private readonly oasLimitNum: number;
  private readonly canonicalHalf: bigint;
  private readonly canonicalHalfNum: number;
  private readonly tlb: FlushOps;
  private readonly out: PteOut = { lo: 0, hi: 0 };
  private freed = false;

  /**
   * With an allocator: a table this object owns (its root is allocated here). Without one: a read-only view
   * of a table someone else built at `existingRoot` (walks and lookups only; map, unmap and free refuse).
   */
  constructor(
    private readonly fmt: PteFormat,
    private readonly mem: PhysMemory,
    private readonly allocator: PageAllocator | undefined,
    tlb: FlushOps | undefined,
    existingRoot?: number,
  ) {
    this.format = fmt.name;
    this.levels = fmt.levels;
    this.granule = 2 ** fmt.granuleShift;
    this.granuleBig = BigInt(this.granule);
    this.granuleMask = this.granule - 1;
    this.granuleBigMask = this.granuleBig - 1n;
    this.tableBytes = this.granule;
    if (allocator !== undefined && allocator.granule !== this.granule) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_CFG', `${fmt.name}: allocator granule ${allocator.granule} != table granule ${this.granule}`);
    }
    for (let level = 1; level <= fmt.levels; level++) {
      const shift = levelShift(fmt, level);
      this.span.push(2 ** shift);
      this.spanBig.push(1n << BigInt(shift));
      this.invSpan.push(2 ** -shift);
      this.idxMask.push(level === fmt.levels ? 2 ** fmt.topIndexBits - 1 : 2 ** fmt.bitsPerLevel - 1);
    }
    for (let level = fmt.levels; level >= 1; level--) {
      if ((fmt.pgsizeBitmap & this.spanBig[level]!) !== 0n) this.leafLevels.push(level);
    }
    this.iasLimit = 1n << BigInt(fmt.ias);
    this.iasLimitNum = 2 ** fmt.ias;
    this.oasLimitNum = 2 ** fmt.oas;
    this.canonicalHalf = 1n << BigInt(fmt.ias - 1);
    this.canonicalHalfNum = 2 ** (fmt.ias - 1);
    this.tlb = tlb ?? gatherOnlyFlushOps;
    const quirks: PgtableQuirks = fmt.quirks;
    this.cfg = {
      pgsizeBitmap: fmt.pgsizeBitmap,
      ias: fmt.ias,
      oas: fmt.oas,
      granule: this.granule as 4096 | 16384 | 65536,
      quirks,
    };
    this.rootPages = Math.max(1, (2 ** fmt.topIndexBits * 8) / this.granule);
    if (allocator === undefined && existingRoot === undefined) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_CFG', `${fmt.name}: a view needs the root of an existing table`);
    }
    this.rootPa = allocator !== undefined ? allocator.allocNum(this.rootPages) : existingRoot!;
    this.root = BigInt(this.rootPa);
  }

  /** The format this table encodes (for hardware walkers sharing it). */
  get pteFormat(): PteFormat {
    return this.fmt;
  }

  /** Table pages this table holds, root included. */
  get tablePages(): number {
    let n = this.rootPages;
    this.traverse(this.rootPa, this.fmt.levels, 0, this.spaceEnd(), (_l, _t, _i, _lo, _hi, _iova, leaf) => {
      if (!leaf) n++;
    });
    return n;
  }

  // ---- map ------------------------------------------------------------------------------------------

  map(iova: bigint, paddr: bigint, size: bigint, prot: number): bigint {
    this.checkLive();
    this.owner();
    const len = this.sizeNumber('map', size);
    const pa = this.alignedNumber('map', 'paddr', paddr);
    const start = this.fold('map', iova, len);
    if (!(prot & (IOMMU_READ | IOMMU_WRITE))) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_PROT', `map: prot ${hex(prot)} grants neither read nor write`, { prot });
    }
    if (pa + len > this.oasLimitNum) {
      throw new PgtableError('ERANGE', 'PGTABLE_OUT_OF_RANGE', `map: output ${hex(paddr)}+${hex(size)} is beyond ${this.fmt.oas} bits`, {
        paddr,
        size,
      });
    }
    const first = this.pickLevel(start, pa, len);
    if (this.span[first] === len) {
      // One leaf: the descent itself validates before it changes anything.
      this.installLeaf(start, pa, first, prot, true);
      return size;
    }
    const needed = this.planMap(start, pa, len);
    if (needed > this.owner().available) {
      throw new PgtableError('ENOMEM', 'PGTABLE_NO_TABLE_PAGES', `map: needs ${needed} table pages, ${this.owner().available} free`, {
        needed,
        available: this.owner().available,
      });
    }
    for (let off = 0; off < len; ) {
      const level = this.pickLevel(start + off, pa + off, len - off);
      this.installLeaf(start + off, pa + off, level, prot, false);
      off += this.span[level]!;
    }
    return size;
  }

  /** Level of the largest page the alignment of iova and pa and the remaining length allow. */
  private pickLevel(iova: number, pa: number, remaining: number): number {
    for (const level of this.leafLevels) {
      const s = this.span[level]!;
      if (s <= remaining && iova % s === 0 && pa % s === 0) return level;
    }
    throw new Error('unreachable: the granule is always in the bitmap');
  }

  /** Read-only pass: refuse overlaps, count the table pages the map will create. */
  private planMap(start: number, pa: number, len: number): number {
    let needed = 0;
    const single = len === this.granule;
    const planned = single ? undefined : new Set<number>();
    for (let off = 0; off < len; ) {
      const iova = start + off;
      const target = this.pickLevel(iova, pa + off, len - off);
      let table = this.rootPa;
      for (let level = this.fmt.levels; level >= target; level--) {
        const ea = table + this.index(iova, level) * 8;
        const c = this.mem.chunkAt(ea);
        const o = ea & CHUNK_MASK;
        const lo = c.getUint32(o, true);
        const hi = c.getUint32(o + 4, true);
        if (!this.fmt.isPresent(lo, hi)) {
          for (let k = level - 1; k >= target; k--) {
            const key = Math.floor(iova / this.span[k + 1]!) * 8 + k;
            if (planned === undefined) needed++;
            else if (!planned.has(key)) {
              planned.add(key);
              needed++;
            }
          }
          break;
        }
        if (this.fmt.isLeaf(lo, hi, level) || (level === target && this.subtreeHasLeaf(this.child(lo, hi), level - 1))) {
          throw this.exists(iova);
        }
        table = this.child(lo, hi);
      }
      off += this.span[target]!;
    }
    return needed;
  }

  /**
   * Put one leaf at `target`, creating tables on the way. With `check`, first refuse (EEXIST / ENOMEM) what
   * planMap would have refused: every conflict lies in structure that exists before any table is created,
   * and a missing entry means nothing below it can conflict.
   */
  private installLeaf(iova: number, pa: number, target: number, prot: number, check: boolean): void {
    let table = this.rootPa;
    const out = this.out;
    for (let level = this.fmt.levels; level > target; level--) {
      const ea = table + this.index(iova, level) * 8;
      const c = this.mem.chunkAt(ea);
      const o = ea & CHUNK_MASK;
      const lo = c.getUint32(o, true);
      const hi = c.getUint32(o + 4, true);
      if (this.fmt.isPresent(lo, hi)) {
        if (check && this.fmt.isLeaf(lo, hi, level)) throw this.exists(iova);
        table = this.child(lo, hi);
        continue;
      }
      if (check && level - target > this.owner().available) {
        throw new PgtableError('ENOMEM', 'PGTABLE_NO_TABLE_PAGES', `map: needs ${level - target} table pages, ${this.owner().available} free`, {
          needed: level - target,
          available: this.owner().available,
        });
      }
      const fresh = this.owner().allocNum();
      this.fmt.encodeTable(fresh, out);
      this.writeEntry(ea, out.lo, out.hi);
      table = fresh;
    }
    const ea = table + this.index(iova, target) * 8;
    const c = this.mem.chunkAt(ea);
    const o = ea & CHUNK_MASK;
    const lo = c.getUint32(o, true);
    const hi = c.getUint32(o + 4, true);
    if (this.fmt.isPresent(lo, hi)) {
      if (check && (this.fmt.isLeaf(lo, hi, target) || this.subtreeHasLeaf(this.child(lo, hi), target - 1))) {
        throw this.exists(iova);
      }
      // An empty table gives way to the block: break, flush, free.
      this.writeEntry(ea, 0, 0);
      this.tlb.tlbFlushWalk(this.unfold(iova), this.spanBig[target]!, this.granuleBig);
      this.freeSubtree(this.child(lo, hi), target - 1);
    }
    this.fmt.encodeLeaf(pa, prot, target, out);
    this.writeEntry(ea, out.lo, out.hi);
  }

  private exists(iova: number): PgtableError {
    return new PgtableError('EEXIST', 'PGTABLE_EXISTS', `map: ${hex(this.unfold(iova))} is already mapped`, {
      iova: this.unfold(iova),
    });
  }

  // ---- unmap ----------------------------------------------------------------------------------------

  unmap(iova: bigint, size: bigint, gather: IotlbGather = new IotlbGather()): bigint {
    this.checkLive();
    this.owner();
    const len = this.sizeNumber('unmap', size);
    const start = this.fold('unmap', iova, len);
    const end = start + len;
    if (len === this.granule) {
      // One granule: the leaf found is either exactly it, a hole, or a block this would cut.
      const level = this.descend(start);
      if (level === 0) return 0n;
      if (level !== 1) throw this.cutsBlock(iova, size, start, level);
      this.writeEntry(this.leafAddr, 0, 0);
      this.tlb.tlbAddPage(gather, iova, size);
      return size;
    }
    // spec (Linux >= 6.13 io-pgtable): never split a block; refuse before touching anything.
    let level = this.descend(start);
    if (level !== 0 && start % this.span[level]! !== 0) throw this.cutsBlock(iova, size, start, level);
    level = this.descend(end - this.granule);
    if (level !== 0 && end % this.span[level]! !== 0) throw this.cutsBlock(iova, size, end - this.granule, level);
    const total = this.clearRange(this.rootPa, this.fmt.levels, start, end, gather);
    return total === len ? size : BigInt(total);
  }

  private cutsBlock(iova: bigint, size: bigint, at: number, level: number): PgtableError {
    const s = this.span[level]!;
    const block = this.unfold(at - (at % s));
    return new PgtableError('EBLOCK', 'PGTABLE_PARTIAL_BLOCK', `unmap: ${hex(iova)}+${hex(size)} cuts a ${hex(s)}-byte block at ${hex(block)}`, {
      iova,
      size,
      block,
      blockSize: s,
    });
  }

  private clearRange(table: number, level: number, start: number, end: number, gather: IotlbGather): number {
    const span = this.span[level]!;
    let total = 0;
    let index = this.index(start, level);
    for (let e = start - (start % span); e < end; e += span, index++) {
      const ea = table + index * 8;
      const c = this.mem.chunkAt(ea);
      const o = ea & CHUNK_MASK;
      const lo = c.getUint32(o, true);
      const hi = c.getUint32(o + 4, true);
      if (!this.fmt.isPresent(lo, hi)) continue;
      if (this.fmt.isLeaf(lo, hi, level)) {
        this.writeEntry(ea, 0, 0);
        total += span;
        this.tlb.tlbAddPage(gather, this.unfold(e), this.spanBig[level]!);
      } else if (e >= start && e + span <= end) {
        this.writeEntry(ea, 0, 0);
        this.tlb.tlbFlushWalk(this.unfold(e), this.spanBig[level]!, this.granuleBig);
        total += this.freeSubtree(this.child(lo, hi), level - 1);
      } else {
        total += this.clearRange(this.child(lo, hi), level - 1, Math.max(start, e), Math.min(end, e + span), gather);
      }
    }
    return total;
  }

  // ---- lookups --------------------------------------------------------------------------------------

  iovaToPhys(iova: bigint): bigint | undefined {
    this.checkLive();
    if (typeof iova !== 'bigint' || iova < 0n || iova >= TWO64) return undefined;
    // Below 2^53 the address is an exact number and no bigint arithmetic is needed.
    const exact = iova < MAX_EXACT_BIG;
    const offset = exact ? Number(iova) & this.granuleMask : Number(iova & this.granuleBigMask);
    // Same half and same side of every limit as its page: the limits are multiples of the granule.
    const page = exact ? iova : iova - BigInt(offset);
    const pageNum = exact ? Number(iova) - offset : Number(page);
    if (!this.inSpaceNum(page, pageNum, this.granule)) return undefined;
    const at = this.fmt.canonical && page >= this.canonicalHalf ? pageNum - (TWO64_NUM - this.iasLimitNum) : pageNum;
    const level = this.descend(at);
    if (level === 0) return undefined;
    return BigInt(this.fmt.addrOf(this.leafLo, this.leafHi) + (at % this.span[level]!) + offset);
  }

  private leafLo = 0;
  private leafHi = 0;
  private leafAddr = 0;

  /** Follow `iova` to its leaf: the leaf's level (entry in leafLo/leafHi), or 0 if none. */
  private descend(iova: number): number {
    let table = this.rootPa;
    for (let level = this.fmt.levels; level >= 1; level--) {
      const ea = table + this.index(iova, level) * 8;
      const c = this.mem.chunkAt(ea);
      const o = ea & CHUNK_MASK;
      const lo = c.getUint32(o, true);
      const hi = c.getUint32(o + 4, true);
      if (!this.fmt.isPresent(lo, hi)) return 0;
      if (this.fmt.isLeaf(lo, hi, level)) {
        this.leafLo = lo;
        this.leafHi = hi;
        this.leafAddr = ea;
        return level;
      }
      table = this.child(lo, hi);
    }
    return 0;
  }

  walk(iova: bigint, visit: (e: WalkEntry) => WalkControl, size: bigint = this.granuleBig): void {
    this.checkLive();
    if (typeof iova !== 'bigint' || typeof size !== 'bigint' || iova < 0n || size <= 0n) throw badArg('walk');
    const first = iova & ~this.granuleBigMask;
    const len = this.sizeNumber('walk', ((iova + size + this.granuleBigMask) & ~this.granuleBigMask) - first);
    const start = this.fold('walk', first, len);
    this.traverse(this.rootPa, this.fmt.levels, start, start + len, (level, table, index, lo, hi, at, leaf) =>
      visit({
        level,
        iova: this.unfold(at),
        size: this.spanBig[level]!,
        tableAddr: BigInt(table),
        index,
        pte: (BigInt(hi) << 32n) | BigInt(lo),
        kind: leaf ? 'leaf' : 'table',
        addr: BigInt(this.fmt.addrOf(lo, hi)),
        prot: leaf ? this.fmt.leafProt(lo, hi, level) : 0,
      }),
    );
  }

  readAndClearDirty(
    iova: bigint,
    size: bigint,
    onDirty: (iova: bigint, size: bigint) => void,
    noClear = false,
    gather: IotlbGather = new IotlbGather(),
  ): void {
    this.checkLive();
    if (!this.fmt.tracksDirty) {
      throw new PgtableError('EINVAL', 'PGTABLE_NO_DIRTY', `${this.fmt.name}: this configuration has no dirty state`);
    }
    const len = this.sizeNumber('readAndClearDirty', size);
    const start = this.fold('readAndClearDirty', iova, len);
    const out = this.out;
    this.traverse(this.rootPa, this.fmt.levels, start, start + len, (level, table, index, lo, hi, at, leaf) => {
      if (!leaf || !this.fmt.isDirty(lo, hi)) return;
      onDirty(this.unfold(at), this.spanBig[level]!);
      if (noClear) return;
      this.fmt.cleanDirty(lo, hi, out);
      this.writeEntry(table + index * 8, out.lo, out.hi);
      this.tlb.tlbAddPage(gather, this.unfold(at), this.spanBig[level]!);
    });
  }

  free(): void {
    if (this.freed) return;
    this.owner();
    for (let i = 0; i <= this.idxMask[this.fmt.levels]!; i++) {
      const ea = this.rootPa + i * 8;
      const c = this.mem.chunkAt(ea);
      const o = ea & CHUNK_MASK;
      const lo = c.getUint32(o, true);
      const hi = c.getUint32(o + 4, true);
      if (this.fmt.isPresent(lo, hi) && !this.fmt.isLeaf(lo, hi, this.fmt.levels)) {
        this.freeSubtree(this.child(lo, hi), this.fmt.levels - 1);
      }
    }
    this.owner().freeNum(this.rootPa, this.rootPages);
    this.freed = true;
    this.tlb.tlbFlushAll();
  }

  // ---- internals ------------------------------------------------------------------------------------

  private index(iova: number, level: number): number {
    return ((iova * this.invSpan[level]!) >>> 0) & this.idxMask[level]!;
  }

  /** The next-level table an entry points to; a pointer outside memory means the tables were corrupted. */
  private child(lo: number, hi: number): number {
    const pa = this.fmt.addrOf(lo, hi);
    if (!this.mem.containsRange(pa, this.tableBytes)) {
      throw new PgtableError('EINVAL', 'PGTABLE_CORRUPT', `${this.fmt.name}: table pointer ${hex(pa)} is outside memory`, { pa });
    }
    return pa;
  }

  private writeEntry(ea: number, lo: number, hi: number): void {
    const c = this.mem.writableChunkAt(ea);
    const o = ea & CHUNK_MASK;
    c.setUint32(o, lo, true);
    c.setUint32(o + 4, hi, true);
  }

  private traverse(table: number, level: number, start: number, end: number, cb: Visitor): boolean {
    const span = this.span[level]!;
    let index = this.index(start, level);
    for (let e = start - (start % span); e < end; e += span, index++) {
      const ea = table + index * 8;
      const c = this.mem.chunkAt(ea);
      const o = ea & CHUNK_MASK;
      const lo = c.getUint32(o, true);
      const hi = c.getUint32(o + 4, true);
      if (!this.fmt.isPresent(lo, hi)) continue;
      const leaf = this.fmt.isLeaf(lo, hi, level);
      const r = cb(level, table, index, lo, hi, e, leaf);
      if (r === 'stop') return true;
      if (!leaf && r !== 'skip') {
        if (this.traverse(this.child(lo, hi), level - 1, Math.max(start, e), Math.min(end, e + span), cb)) return true;
      }
    }
    return false;
  }

  private subtreeHasLeaf(table: number, level: number): boolean {
    const entries = 2 ** this.fmt.bitsPerLevel;
    for (let i = 0; i < entries; i++) {
      const ea = table + i * 8;
      const c = this.mem.chunkAt(ea);
      const o = ea & CHUNK_MASK;
      const lo = c.getUint32(o, true);
      const hi = c.getUint32(o + 4, true);
      if (!this.fmt.isPresent(lo, hi)) continue;
      if (this.fmt.isLeaf(lo, hi, level) || this.subtreeHasLeaf(this.child(lo, hi), level - 1)) return true;
    }
    return false;
  }

  /** Free a table and everything below it; returns the bytes its leaves mapped. */
  private freeSubtree(table: number, level: number): number {
    let bytes = 0;
    const entries = 2 ** this.fmt.bitsPerLevel;
    for (let i = 0; i < entries; i++) {
      const ea = table + i * 8;
      const c = this.mem.chunkAt(ea);
      const o = ea & CHUNK_MASK;
      const lo = c.getUint32(o, true);
      const hi = c.getUint32(o + 4, true);
      if (!this.fmt.isPresent(lo, hi)) continue;
      if (this.fmt.isLeaf(lo, hi, level)) bytes += this.span[level]!;
      else bytes += this.freeSubtree(this.child(lo, hi), level - 1);
    }
    this.owner().freeNum(table);
    return bytes;
  }

  private checkLive(): void {
    if (this.freed) throw new PgtableError('EINVAL', 'PGTABLE_FREED', `${this.fmt.name}: the table was freed`);
  }

  /** The allocator, for operations that change the table; a read-only view refuses them. */
  private owner(): PageAllocator {
    if (this.allocator === undefined) throw new PgtableError('EINVAL', 'PGTABLE_READ_ONLY', `${this.fmt.name}: this is a read-only view of a table`);
    return this.allocator;
  }

  /** A positive, granule-aligned size as an exact number. */
  private sizeNumber(op: string, size: bigint): number {
    if (typeof size !== 'bigint') throw badArg(op);
    if (size <= 0n) throw new PgtableError('EINVAL', 'PGTABLE_BAD_SIZE', `${op}: size ${hex(size)} must be positive`, { size });
    return this.alignedNumber(op, 'size', size);
  }

  /**
   * A non-negative granule-aligned bigint as a number. Exact: multiples of 2^12 below 2^65 are doubles
   * exactly, and anything larger fails the range checks that follow.
   */
  private alignedNumber(op: string, what: string, v: bigint): number {
    if (typeof v !== 'bigint') throw badArg(op);
    const n = Number(v);
    const misaligned = v < 0n || (v < MAX_EXACT_BIG ? (n & this.granuleMask) !== 0 : (v & this.granuleBigMask) !== 0n);
    if (misaligned) {
      throw new PgtableError('EINVAL', 'PGTABLE_MISALIGNED', `${op}: ${what} ${hex(v)} is not aligned to ${hex(this.granule)}`, {
        [what]: v,
      });
    }
    return n;
  }

  private spaceEnd(): number {
    return this.iasLimitNum;
  }

  /** [iova, iova + len) lies in the input space (lower or upper canonical half for x86); `num` is Number(iova). */
  private inSpaceNum(iova: bigint, num: number, len: number): boolean {
    if (!this.fmt.canonical) return iova < this.iasLimit && num + len <= this.iasLimitNum;
    if (iova < this.canonicalHalf) return num + len <= this.canonicalHalfNum;
    return iova >= TWO64 - this.canonicalHalf && iova < TWO64 && num + len <= TWO64_NUM;
  }

  /** The range's start as an internal number; ERANGE if it leaves the input space or is non-canonical. */
  private fold(op: string, iova: bigint, len: number): number {
    const start = this.alignedNumber(op, 'iova', iova);
    if (!this.inSpaceNum(iova, start, len)) {
      throw new PgtableError('ERANGE', 'PGTABLE_OUT_OF_RANGE', `${op}: ${hex(iova)}+${hex(len)} is outside the ${this.fmt.ias}-bit input space${this.fmt.canonical ? ' or not canonical' : ''}`, {
        iova,
        size: len,
      });
    }
    return this.fmt.canonical && iova >= this.canonicalHalf ? start - (TWO64_NUM - this.iasLimitNum) : start;
  }

  private unfold(iova: number): bigint {
    const v = BigInt(iova);
    return this.fmt.canonical && v >= this.canonicalHalf ? v + (TWO64 - this.iasLimit) : v;
  }
}
