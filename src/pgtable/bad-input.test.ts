/**
 * Bad requests are refused with a typed error and the tables' bytes unchanged.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, PgtableError, createPgtable, type PgtableErrno } from './index.js';
import { PageAllocator } from '../mem/page-allocator.js';
import { PhysMemory } from '../mem/phys-memory.js';
import { makeTable, windowBytes, type Bench } from './testing.js';

const RW = IOMMU_READ | IOMMU_WRITE;
const SZ_4K = 0x1000n;
const SZ_2M = 0x200000n;

function populated(): Bench {
  const b = makeTable('vtd-ss', { pgsizeBitmap: SZ_4K | SZ_2M, ias: 48, oas: 48 });
  b.pt.map(0x10000n, 0x80000n, 0x4000n, RW);
  b.pt.map(SZ_2M * 4n, SZ_2M, SZ_2M, RW);
  return b;
}

function refused(b: Bench, errno: PgtableErrno, code: string, fn: () => unknown): void {
  const before = windowBytes(b);
  const pages = b.allocator.pagesInUse;
  assert.throws(fn, (e: unknown) => e instanceof PgtableError && e.errno === errno && e.code === code);
  assert.deepEqual(windowBytes(b), before);
  assert.equal(b.allocator.pagesInUse, pages);
}

describe('bad map and unmap requests change nothing', () => {
  it('rejects a misaligned iova, paddr or size', () => {
    const b = populated();
    refused(b, 'EINVAL', 'PGTABLE_MISALIGNED', () => b.pt.map(0x100800n, 0n, SZ_4K, RW));
    refused(b, 'EINVAL', 'PGTABLE_MISALIGNED', () => b.pt.map(0x100000n, 0x10n, SZ_4K, RW));
    refused(b, 'EINVAL', 'PGTABLE_MISALIGNED', () => b.pt.map(0x100000n, 0n, 0x1800n, RW));
    refused(b, 'EINVAL', 'PGTABLE_MISALIGNED', () => b.pt.unmap(0x10800n, SZ_4K));
  });

  it('rejects a zero or negative size and negative addresses', () => {
    const b = populated();
    refused(b, 'EINVAL', 'PGTABLE_BAD_SIZE', () => b.pt.map(0x100000n, 0n, 0n, RW));
    refused(b, 'EINVAL', 'PGTABLE_BAD_SIZE', () => b.pt.unmap(0x10000n, 0n));
    refused(b, 'EINVAL', 'PGTABLE_BAD_SIZE', () => b.pt.unmap(0x10000n, -SZ_4K));
    refused(b, 'EINVAL', 'PGTABLE_MISALIGNED', () => b.pt.map(-SZ_4K, 0n, SZ_4K, RW));
  });

  it('rejects a prot with neither read nor write', () => {
    const b = populated();
    refused(b, 'EINVAL', 'PGTABLE_BAD_PROT', () => b.pt.map(0x100000n, 0n, SZ_4K, IOMMU_CACHE));
  });

  it('rejects a range overlapping existing leaves, even when it starts in a hole', () => {
    const b = populated();
    refused(b, 'EEXIST', 'PGTABLE_EXISTS', () => b.pt.map(0x8000n, 0n, 0x10000n, RW));
    refused(b, 'EEXIST', 'PGTABLE_EXISTS', () => b.pt.map(SZ_2M * 4n + SZ_4K, 0n, SZ_4K, RW));
    refused(b, 'EEXIST', 'PGTABLE_EXISTS', () => b.pt.map(0n, 0n, SZ_2M, RW));
  });

  it('rejects ranges that leave the input or output space or wrap', () => {
    const b = populated();
    const top = 1n << 48n;
    refused(b, 'ERANGE', 'PGTABLE_OUT_OF_RANGE', () => b.pt.map(top, 0n, SZ_4K, RW));
    refused(b, 'ERANGE', 'PGTABLE_OUT_OF_RANGE', () => b.pt.map(top - SZ_4K, 0n, 2n * SZ_4K, RW));
    refused(b, 'ERANGE', 'PGTABLE_OUT_OF_RANGE', () => b.pt.map(0x100000n, top - SZ_4K, 2n * SZ_4K, RW));
    refused(b, 'ERANGE', 'PGTABLE_OUT_OF_RANGE', () => b.pt.map((1n << 64n) - SZ_4K, 0n, 2n * SZ_4K, RW));
    refused(b, 'ERANGE', 'PGTABLE_OUT_OF_RANGE', () => b.pt.unmap(top - SZ_4K, 2n * SZ_4K));
  });

  it('rejects non-canonical first-stage addresses', () => {
    const b = makeTable('x86-fs', { pgsizeBitmap: SZ_4K, ias: 48, oas: 48 });
    refused(b, 'ERANGE', 'PGTABLE_OUT_OF_RANGE', () => b.pt.map(1n << 47n, 0n, SZ_4K, RW));
    refused(b, 'ERANGE', 'PGTABLE_OUT_OF_RANGE', () => b.pt.map((1n << 47n) - SZ_4K, 0n, 2n * SZ_4K, RW));
    assert.equal(b.pt.map(0xffff800000000000n, 0x5000n, SZ_4K, RW), SZ_4K);
    assert.equal(b.pt.iovaToPhys(0xffff800000000123n), 0x5123n);
    assert.equal(b.pt.iovaToPhys(0x0000800000000123n), undefined);
  });

  it('rejects non-bigint arguments with a typed error', () => {
    const b = populated();
    refused(b, 'EINVAL', 'PGTABLE_BAD_ARG', () => b.pt.map(0x1000 as unknown as bigint, 0n, SZ_4K, RW));
  });

  it('refuses configurations a format cannot honour', () => {
    const memory = new PhysMemory(1n << 32n);
    const allocator = new PageAllocator(memory, { base: 0x100000n, size: 0x100000n });
    const bad = (fn: () => unknown) => assert.throws(fn, (e: unknown) => e instanceof PgtableError && e.code === 'PGTABLE_BAD_CFG');
    bad(() => createPgtable('vtd-ss', { pgsizeBitmap: SZ_2M, ias: 48, oas: 48 }, memory, allocator));
    bad(() => createPgtable('vtd-ss', { pgsizeBitmap: SZ_4K, ias: 58, oas: 48 }, memory, allocator));
    bad(() => createPgtable('vtd-ss', { pgsizeBitmap: SZ_4K, ias: 48, oas: 53 }, memory, allocator));
    bad(() => createPgtable('arm-lpae-s1', { pgsizeBitmap: SZ_4K, ias: 52, oas: 48 }, memory, allocator));
    bad(() => createPgtable('arm-lpae-s1', { pgsizeBitmap: SZ_4K, ias: 48, oas: 52 }, memory, allocator));
    bad(() => createPgtable('arm-lpae-s1', { pgsizeBitmap: 1n << 16n, ias: 48, oas: 48 }, memory, allocator));
    assert.equal(allocator.pagesInUse, 0);
  });

  it('treats a table pointer corrupted to point outside memory as a typed error', () => {
    const memory = new PhysMemory(1n << 32n);
    const allocator = new PageAllocator(memory, { base: 0x100000n, size: 0x100000n });
    const pt = createPgtable('vtd-ss', { pgsizeBitmap: SZ_4K, ias: 48, oas: 48 }, memory, allocator);
    memory.writeU64(pt.root, 0xf_0000_0003n);
    assert.throws(() => pt.iovaToPhys(0n), (e: unknown) => e instanceof PgtableError && e.code === 'PGTABLE_CORRUPT');
    assert.throws(() => pt.map(0n, 0n, SZ_4K, RW), (e: unknown) => e instanceof PgtableError && e.code === 'PGTABLE_CORRUPT');
  });
});
