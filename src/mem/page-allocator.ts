/**
 * Allocator of page-table pages inside a window of physical memory.
 *
 * Pages come zeroed, in one granule (4, 16 or 64 KiB), singly or as a naturally aligned power-of-two run
 * (Arm stage-2 concatenated tables need up to 16 contiguous pages). Freed pages are reused first. The window
 * is the bound: when it is used up, `alloc` throws `ALLOC_EXHAUSTED` and callers that must not fail
 * half-way ask `available` first.
 */
import { hex } from '../errors.js';
import { AllocatorError } from './errors.js';
import type { PhysMemory } from './phys-memory.js';

export type Granule = 4096 | 16384 | 65536;

export interface PageAllocatorOptions {
  /** Window start, aligned to the granule. */
  base: bigint;
  /** Window size in bytes, a multiple of the granule. */
  size: bigint;
  granule?: Granule;
}

const FREE = 0;
const USED = 1;

export class PageAllocator {
  readonly granule: Granule;
  readonly base: bigint;
  /** Pages in the window: the allocator's bound. */
  readonly capacity: number;
  private readonly baseNum: number;
  private readonly state: Uint8Array;
  private readonly freeList: number[] = [];
  private bump = 0;
  private inUse = 0;
  private peak = 0;

  constructor(
    private readonly memory: PhysMemory,
    opts: PageAllocatorOptions,
  ) {
    this.granule = opts.granule ?? 4096;
    const g = BigInt(this.granule);
    if (![4096, 16384, 65536].includes(this.granule)) {
      throw new AllocatorError('ALLOC_BAD_GRANULE', `granule ${this.granule} is not 4K, 16K or 64K`);
    }
    if (opts.base < 0n || opts.base % g !== 0n || opts.size <= 0n || opts.size % g !== 0n) {
      throw new AllocatorError('ALLOC_BAD_WINDOW', `window ${hex(opts.base)}+${hex(opts.size)} is not granule-aligned`, {
        base: opts.base,
        size: opts.size,
      });
    }
    if (opts.base + opts.size > memory.size) {
      throw new AllocatorError('ALLOC_BAD_WINDOW', `window ${hex(opts.base)}+${hex(opts.size)} exceeds memory`, {
        base: opts.base,
        size: opts.size,
      });
    }
    this.base = opts.base;
    this.baseNum = Number(opts.base);
    this.capacity = Number(opts.size / g);
    this.state = new Uint8Array(this.capacity);
  }

  get pagesInUse(): number {
    return this.inUse;
  }
  get peakPagesInUse(): number {
    return this.peak;
  }
  /** Single pages that can still be allocated. */
  get available(): number {
    return this.capacity - this.inUse;
  }

  /** Allocate `count` (a power of two) zeroed contiguous pages aligned to count * granule. */
  alloc(count = 1): bigint {
    return BigInt(this.allocNum(count));
  }

  /** `alloc` returning the address as a number (exact: memory is at most 2^52 bytes). */
  allocNum(count = 1): number {
    if (!Number.isInteger(count) || count < 1 || (count & (count - 1)) !== 0) {
      throw new AllocatorError('ALLOC_BAD_COUNT', `page count ${count} is not a power of two`, { count });
    }
    const index = count === 1 ? this.takeSingle() : this.takeRun(count);
    if (index < 0) {
      throw new AllocatorError('ALLOC_EXHAUSTED', `no room for ${count} page(s) of ${this.granule} bytes`, {
        count,
        capacity: this.capacity,
        inUse: this.inUse,
      });
    }
    for (let i = 0; i < count; i++) this.state[index + i] = USED;
    this.inUse += count;
    if (this.inUse > this.peak) this.peak = this.inUse;
    const pa = this.baseNum + index * this.granule;
    this.memory.fill(BigInt(pa), count * this.granule, 0);
    return pa;
  }

  free(addr: bigint, count = 1): void {
    this.freeNum(Number(addr), count);
  }

  freeNum(pa: number, count = 1): void {
    const rel = pa - this.baseNum;
    const index = rel / this.granule;
    if (!Number.isInteger(index) || index < 0 || index + count > this.capacity) {
      throw new AllocatorError('ALLOC_FOREIGN', `page ${hex(pa)} is not from this allocator`, { addr: pa });
    }
    for (let i = 0; i < count; i++) {
      if (this.state[index + i] !== USED) {
        throw new AllocatorError('ALLOC_DOUBLE_FREE', `page ${hex(pa + i * this.granule)} is not allocated`, {
          addr: pa + i * this.granule,
        });
      }
    }
    for (let i = 0; i < count; i++) {
      this.state[index + i] = FREE;
      this.freeList.push(index + i);
    }
    this.inUse -= count;
  }

  private takeSingle(): number {
    const reused = this.freeList.pop();
    if (reused !== undefined) return reused;
    if (this.bump < this.capacity) return this.bump++;
    return -1;
  }

  /** A fresh aligned run from the bump region; pages skipped for alignment go to the free list. */
  private takeRun(count: number): number {
    const baseIndex = this.baseNum / this.granule;
    let start = this.bump;
    while ((baseIndex + start) % count !== 0) start++;
    if (start + count > this.capacity) return -1;
    for (let i = this.bump; i < start; i++) this.freeList.push(i);
    this.bump = start + count;
    return start;
  }
}
