/**
 * The device side of a split virtqueue in guest memory (virtio 1.2, "Split Virtqueues"):
 * descriptor table (16 B entries: addr u64, len u32, flags u16, next u16), available ring (flags u16,
 * idx u16, ring[size] u16, used_event u16) and used ring (flags u16, idx u16, ring[size] {id u32, len u32},
 * avail_event u16).
 *
 * A ring the driver corrupted is a device error, never an exception escaping to the caller and never a
 * hang: `pop` reports it as a `VirtqueueFault`, and the transport then marks the device DEVICE_NEEDS_RESET
 * (what the spec allows a device to do when the driver breaks the rules) and stops serving the queue.
 * Chains are bounded by the queue size (an indirect table by its own length), so loops end.
 */
import { ViommuError } from '../errors.js';
import type { PhysMemory } from '../mem/phys-memory.js';
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from './constants.js';

export type VirtqueueFault =
  /** The driver moved avail.idx more than a queue's worth past what the device consumed. */
  | 'AVAIL_IDX'
  /** A head or next index beyond the table. */
  | 'DESC_INDEX'
  /** A chain longer than its table: a loop. */
  | 'LOOP'
  /** An indirect descriptor inside an indirect table. */
  | 'NESTED_INDIRECT'
  /** Indirect table length zero, not a multiple of 16, or larger than the queue allows. */
  | 'INDIRECT_LEN'
  /** INDIRECT together with NEXT. */
  | 'INDIRECT_WITH_NEXT'
  /** A ring, table or buffer outside guest memory. */
  | 'OUT_OF_MEMORY'
  /** A device-readable descriptor after a device-writable one. */
  | 'WRITE_BEFORE_READ'
  /** Buffer lengths of one chain add up past 2^32 - 1. */
  | 'LENGTH_OVERFLOW';

export class VirtqueueError extends ViommuError {
  constructor(
    readonly fault: VirtqueueFault,
    message: string,
    details: Record<string, unknown> = {},
  ) {
    super(`VIRTQ_${fault}`, message, details);
  }
}

/**
 * One popped chain. The object is reused by its queue: read it before the next `pop`. Buffers are kept as
 * numbers (physical addresses are below 2^52).
 */
export class VirtqChain {
  head = 0;
  /** Buffers, device-readable first. */
  count = 0;
  readableCount = 0;
  readableBytes = 0;
  writableBytes = 0;
  readonly addr: Float64Array;
  readonly len: Uint32Array;

  constructor(
    private readonly memory: PhysMemory,
    maxBuffers: number,
  ) {
    this.addr = new Float64Array(maxBuffers);
    this.len = new Uint32Array(maxBuffers);
  }

  /** Gather `len` (default `dst.length`) bytes of the device-readable part from `offset`; returns bytes copied. */
  read(offset: number, dst: Uint8Array, len = dst.length): number {
    let want = len;
    let copied = 0;
    for (let i = 0; i < this.readableCount && want > 0; i++) {
      const l = this.len[i]!;
      if (offset >= l) {
        offset -= l;
        continue;
      }
      const n = Math.min(l - offset, want);
      this.memory.readBytesN(this.addr[i]! + offset, dst, copied, n);
      copied += n;
      want -= n;
      offset = 0;
    }
    return copied;
  }

  /** Scatter `src` into the device-writable part starting at `offset`; returns bytes written. */
  write(offset: number, src: Uint8Array): number {
    let left = src.length;
    let written = 0;
    for (let i = this.readableCount; i < this.count && left > 0; i++) {
      const l = this.len[i]!;
      if (offset >= l) {
        offset -= l;
        continue;
      }
      const n = Math.min(l - offset, left);
      this.memory.writeBytesN(this.addr[i]! + offset, src, written, n);
      written += n;
      left -= n;
      offset = 0;
    }
    return written;
  }
}

export interface VirtqueueConfig {
  size: number;
  desc: bigint;
  driver: bigint;
  device: bigint;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirect: boolean;
}

export class Virtqueue {
  readonly size: number;
  private readonly desc: number;
  private readonly avail: number;
  private readonly used: number;
  private readonly eventIdx: boolean;
  private readonly indirect: boolean;
  private lastAvail = 0;
  private usedIdx = 0;
  /** used.idx when the driver was last interrupted, for EVENT_IDX. */
  private signalledUsed = 0;
  private readonly chain: VirtqChain;
  /** Requests completed, and used-ring entries written with length 0 for bad requests. */
  served = 0;

  constructor(
    private readonly memory: PhysMemory,
    cfg: VirtqueueConfig,
  ) {
    this.size = cfg.size;
    this.eventIdx = cfg.eventIdx;
    this.indirect = cfg.indirect;
    const size = cfg.size;
    const need = (addr: bigint, bytes: number, what: string): number => {
      if (addr < 0n || addr + BigInt(bytes) > memory.size) {
        throw new VirtqueueError('OUT_OF_MEMORY', `${what} at 0x${addr.toString(16)} (+${bytes}) is outside memory`, { addr });
      }
      return Number(addr);
    };
    this.desc = need(cfg.desc, 16 * size, 'descriptor table');
    this.avail = need(cfg.driver, 6 + 2 * size, 'available ring');
    this.used = need(cfg.device, 6 + 8 * size, 'used ring');
    this.chain = new VirtqChain(memory, size);
  }

  /** Chains the driver made available and the device has not taken yet (throws AVAIL_IDX if impossible). */
  pending(): number {
    const availIdx = this.memory.readU16n(this.avail + 2);
    const n = (availIdx - this.lastAvail) & 0xffff;
    if (n > this.size) {
      throw new VirtqueueError('AVAIL_IDX', `avail.idx ${availIdx} is ${n} ahead of ${this.lastAvail}, queue size ${this.size}`, {
        availIdx,
        lastAvail: this.lastAvail,
      });
    }
    return n;
  }

  /** The next available chain, or null. The returned object is reused by the next call. */
  pop(): VirtqChain | null {
    if (this.pending() === 0) return null;
    const head = this.memory.readU16n(this.avail + 4 + 2 * (this.lastAvail % this.size));
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (this.eventIdx) this.memory.writeU16n(this.used + 4 + 8 * this.size, this.lastAvail);
    this.walkChain(head);
    return this.chain;
  }

  /** Return chain `head` to the driver with `len` bytes written. */
  push(head: number, len: number): void {
    const slot = this.used + 4 + 8 * (this.usedIdx % this.size);
    this.memory.writeU32n(slot, head);
    this.memory.writeU32n(slot + 4, len);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    // The entry must be visible before the index that publishes it (single-threaded here; order kept).
    this.memory.writeU16n(this.used + 2, this.usedIdx);
    this.served++;
  }

  /** Whether the driver wants an interrupt for what was pushed since the last one. */
  shouldInterrupt(): boolean {
    const old = this.signalledUsed;
    const now = this.usedIdx;
    if (old === now) return false;
    this.signalledUsed = now;
    if (this.eventIdx) {
      // spec: interrupt when used_event lies in (old, now], modulo 2^16.
      const usedEvent = this.memory.readU16n(this.avail + 4 + 2 * this.size);
      return ((now - usedEvent - 1) & 0xffff) < ((now - old) & 0xffff);
    }
    return (this.memory.readU16n(this.avail) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  private walkChain(head: number): void {
    const c = this.chain;
    const mem = this.memory;
    c.head = head;
    c.count = 0;
    c.readableCount = 0;
    c.readableBytes = 0;
    c.writableBytes = 0;
    if (head >= this.size) throw new VirtqueueError('DESC_INDEX', `head ${head} >= queue size ${this.size}`, { head });
    let table = this.desc;
    let tableSize = this.size;
    let index = head;
    let inIndirect = false;
    let seen = 0;
    let sawWritable = false;
    for (;;) {
      if (++seen > tableSize) throw new VirtqueueError('LOOP', `chain from head ${head} is longer than its table (${tableSize})`, { head });
      const d = table + 16 * index;
      // addr as two halves: no bigint per descriptor (an address above 2^53 rounds, then fails the range check).
      const addr = mem.readU32n(d + 4) * 2 ** 32 + mem.readU32n(d);
      const len = mem.readU32n(d + 8);
      const flags = mem.readU16n(d + 12);
      const next = mem.readU16n(d + 14);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (!this.indirect || inIndirect) {
          throw new VirtqueueError('NESTED_INDIRECT', `indirect descriptor ${inIndirect ? 'inside an indirect table' : 'without VIRTIO_F_INDIRECT_DESC'}`, { head });
        }
        if (flags & VIRTQ_DESC_F_NEXT) throw new VirtqueueError('INDIRECT_WITH_NEXT', 'indirect descriptor with NEXT set', { head });
        if (len === 0 || len % 16 !== 0 || len / 16 > this.size) {
          throw new VirtqueueError('INDIRECT_LEN', `indirect table length ${len}`, { head, len });
        }
        if (!mem.containsRange(addr, len)) throw new VirtqueueError('OUT_OF_MEMORY', 'indirect table outside memory', { head, addr });
        table = addr;
        tableSize = len / 16;
        index = 0;
        seen = 0;
        inIndirect = true;
        continue;
      }
      if (!mem.containsRange(addr, len)) throw new VirtqueueError('OUT_OF_MEMORY', `buffer 0x${addr.toString(16)}+${len} outside memory`, { head, addr, len });
      const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      if (writable) {
        sawWritable = true;
        c.writableBytes += len;
      } else {
        // spec: all device-readable descriptors come before the device-writable ones.
        if (sawWritable) throw new VirtqueueError('WRITE_BEFORE_READ', 'device-readable descriptor after a device-writable one', { head });
        c.readableCount++;
        c.readableBytes += len;
      }
      if (c.readableBytes + c.writableBytes > 0xffffffff) throw new VirtqueueError('LENGTH_OVERFLOW', 'chain longer than 4 GiB', { head });
      if (c.count >= c.addr.length) throw new VirtqueueError('LOOP', `chain from head ${head} has more buffers than the queue size`, { head });
      c.addr[c.count] = addr;
      c.len[c.count] = len;
      c.count++;
      if (!(flags & VIRTQ_DESC_F_NEXT)) return;
      if (next >= tableSize) throw new VirtqueueError('DESC_INDEX', `next ${next} >= table size ${tableSize}`, { head, next });
      index = next;
    }
  }
}
