/**
 * Helpers for tests of page-table users: a memory + allocator pair and flush ops that record every call
 * so tests can assert exactly which invalidations happened.
 */
import { PageAllocator, type Granule } from '../mem/page-allocator.js';
import { PhysMemory } from '../mem/phys-memory.js';
import { createPgtable } from './index.js';
import type { FlushOps, IoPgtableCfg, IotlbGather, PgtableFormatName } from './types.js';
import type { RadixPgtable } from './radix.js';

export type FlushCall =
  | { op: 'all' }
  | { op: 'walk'; iova: bigint; size: bigint; granule: bigint }
  | { op: 'page'; iova: bigint; granule: bigint };

export class RecordingFlushOps implements FlushOps {
  readonly calls: FlushCall[] = [];
  tlbFlushAll(): void {
    this.calls.push({ op: 'all' });
  }
  tlbFlushWalk(iova: bigint, size: bigint, granule: bigint): void {
    this.calls.push({ op: 'walk', iova, size, granule });
  }
  tlbAddPage(gather: IotlbGather, iova: bigint, granule: bigint): void {
    this.calls.push({ op: 'page', iova, granule });
    gather.add(iova, granule);
  }
  take(): FlushCall[] {
    return this.calls.splice(0);
  }
}

/** Table pages come from this window; tests compare its bytes to prove nothing changed. */
export const TABLE_WINDOW_BASE = 0x1000000n;
export const TABLE_WINDOW_SIZE = 0x1000000n;

export interface Bench {
  memory: PhysMemory;
  allocator: PageAllocator;
  flush: RecordingFlushOps;
  pt: RadixPgtable;
}

export function makeTable(
  format: PgtableFormatName,
  cfg: Omit<IoPgtableCfg, 'tlb'>,
  opts: { memorySize?: bigint; windowSize?: bigint } = {},
): Bench {
  const memory = new PhysMemory(opts.memorySize ?? 1n << 52n);
  const granule = (cfg.granule ?? Number(cfg.pgsizeBitmap & -cfg.pgsizeBitmap)) as Granule;
  const allocator = new PageAllocator(memory, {
    base: TABLE_WINDOW_BASE,
    size: opts.windowSize ?? TABLE_WINDOW_SIZE,
    granule,
  });
  const flush = new RecordingFlushOps();
  const pt = createPgtable(format, { ...cfg, tlb: flush }, memory, allocator);
  return { memory, allocator, flush, pt };
}

/** Bytes of the table window, to compare before and after a refused request. */
export function windowBytes(b: Bench): Uint8Array {
  return b.memory.read(b.allocator.base, b.allocator.capacity * b.allocator.granule);
}
