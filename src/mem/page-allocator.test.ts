import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AllocatorError, PageAllocator, PhysMemory } from './index.js';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof AllocatorError) return e.code;
    throw e;
  }
  return 'no error';
}

describe('PageAllocator', () => {
  it('hands out zeroed pages, reuses freed ones, and counts pages in use', () => {
    const m = new PhysMemory(1n << 24n);
    const a = new PageAllocator(m, { base: 0x100000n, size: 0x4000n });
    const p = a.alloc();
    assert.equal(p, 0x100000n);
    m.writeU64(p + 8n, 0xdeadn);
    assert.equal(a.pagesInUse, 1);
    a.free(p);
    assert.equal(a.pagesInUse, 0);
    const again = a.alloc();
    assert.equal(again, p);
    assert.equal(m.readU64(p + 8n), 0n);
    assert.equal(a.peakPagesInUse, 1);
  });

  it('is bounded by its window and says so with a typed error', () => {
    const m = new PhysMemory(1n << 24n);
    const a = new PageAllocator(m, { base: 0n, size: 0x2000n });
    a.alloc();
    a.alloc();
    assert.equal(a.available, 0);
    assert.equal(code(() => a.alloc()), 'ALLOC_EXHAUSTED');
  });

  it('allocates aligned contiguous runs in 16K and 64K granules', () => {
    const m = new PhysMemory(1n << 28n);
    const a = new PageAllocator(m, { base: 0x10000n, size: 0x200000n, granule: 65536 });
    assert.equal(a.alloc(), 0x10000n);
    const run = a.alloc(4);
    assert.equal(run % 0x40000n, 0n);
    assert.equal(a.pagesInUse, 5);
    a.free(run, 4);
    assert.equal(a.pagesInUse, 1);
    const b = new PageAllocator(m, { base: 0x1000000n, size: 0x10000n, granule: 16384 });
    assert.equal(b.capacity, 4);
  });

  it('refuses double frees, foreign pages and bad windows', () => {
    const m = new PhysMemory(1n << 24n);
    const a = new PageAllocator(m, { base: 0x100000n, size: 0x4000n });
    const p = a.alloc();
    a.free(p);
    assert.equal(code(() => a.free(p)), 'ALLOC_DOUBLE_FREE');
    assert.equal(code(() => a.free(0x200000n)), 'ALLOC_FOREIGN');
    assert.equal(code(() => a.free(p + 8n)), 'ALLOC_FOREIGN');
    assert.equal(code(() => new PageAllocator(m, { base: 0x800n, size: 0x1000n })), 'ALLOC_BAD_WINDOW');
    assert.equal(code(() => new PageAllocator(m, { base: 0xfff000n, size: 0x2000n })), 'ALLOC_BAD_WINDOW');
    assert.equal(code(() => a.alloc(3)), 'ALLOC_BAD_COUNT');
  });
});
