/**
 * The matrix Linux's io-pgtable-arm selftest sweeps (page-size sets x input sizes, stage 1 and stage 2,
 * oas 48), and VT-d second-stage at each of its widths; every configuration also maps its last page.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IOMMU_NOEXEC, IOMMU_READ, IOMMU_WRITE, PgtableError, type PgtableFormatName } from './index.js';
import { makeTable } from './testing.js';

const SZ_1G = 1n << 30n;
const RWX = IOMMU_READ | IOMMU_WRITE;

const PAGE_SETS: [string, bigint][] = [
  ['4K|2M|1G', (1n << 12n) | (1n << 21n) | (1n << 30n)],
  ['16K|32M', (1n << 14n) | (1n << 25n)],
  ['64K|512M', (1n << 16n) | (1n << 29n)],
];
const IAS = [32, 36, 40, 42, 44, 48];

function sizesOf(bitmap: bigint): bigint[] {
  const out: bigint[] = [];
  for (let b = 0n; b < 64n; b++) if (bitmap & (1n << b)) out.push(1n << b);
  return out;
}

function expectErrno(fn: () => unknown, errno: string): void {
  assert.throws(fn, (e: unknown) => e instanceof PgtableError && e.errno === errno);
}

/** The kernel selftest's sequence for one configuration. */
function sweep(format: PgtableFormatName, bitmap: bigint, ias: number, oas: number): void {
  const { pt, allocator } = makeTable(format, { pgsizeBitmap: bitmap, ias, oas });
  // Empty page tables shouldn't provide any translations.
  assert.equal(pt.iovaToPhys(42n), undefined);
  assert.equal(pt.iovaToPhys(SZ_1G + 42n), undefined);
  assert.equal(pt.iovaToPhys(2n * SZ_1G + 42n), undefined);

  const sizes = sizesOf(pt.cfg.pgsizeBitmap);
  // Distinct mappings of each granule, j GiB apart, identity-mapped.
  let iova = 0n;
  for (const size of sizes) {
    if (iova + size > 1n << BigInt(ias)) break;
    assert.equal(pt.map(iova, iova, size, RWX | IOMMU_NOEXEC), size);
    // Overlapping mappings must fail.
    expectErrno(() => pt.map(iova, iova + size, size, IOMMU_READ | IOMMU_NOEXEC), 'EEXIST');
    assert.equal(pt.iovaToPhys(iova + 42n), iova + 42n);
    iova += SZ_1G;
  }
  // Unmap each size, check the translation is gone, remap write-only.
  iova = 0n;
  for (const size of sizes) {
    if (iova + size > 1n << BigInt(ias)) break;
    assert.equal(pt.unmap(iova, size), size);
    assert.equal(pt.iovaToPhys(iova + 42n), undefined);
    assert.equal(pt.map(iova, iova, size, IOMMU_WRITE), size);
    assert.equal(pt.iovaToPhys(iova + 42n), iova + 42n);
    iova += SZ_1G;
  }
  // The last page of the input space.
  const gran = sizes[0]!;
  const last = (1n << BigInt(ias)) - gran;
  const lastPa = last & ((1n << BigInt(oas)) - 1n);
  pt.map(last, lastPa, gran, RWX);
  assert.equal(pt.iovaToPhys(last + gran - 1n), lastPa + gran - 1n);
  expectErrno(() => pt.map(last + gran, 0n, gran, RWX), 'ERANGE');
  pt.free();
  assert.equal(allocator.pagesInUse, 0);
}

for (const stage of ['arm-lpae-s1', 'arm-lpae-s2'] as const) {
  describe(`io-pgtable-arm selftest matrix: ${stage}`, () => {
    for (const [setName, bitmap] of PAGE_SETS) {
      for (const ias of IAS) {
        it(`${setName}, ias ${ias}, oas 48`, () => sweep(stage, bitmap, ias, 48));
      }
    }
  });
}

describe('VT-d second-stage at 39, 48 and 57 bits', () => {
  for (const ias of [39, 48, 57]) {
    it(`${ias}-bit, 4K|2M|1G`, () => sweep('vtd-ss', (1n << 12n) | (1n << 21n) | (1n << 30n), ias, 52));
  }
});

describe('geometry each format derives from its config', () => {
  it('Arm stage 2 concatenates root tables when level 0 would have at most 16 entries', () => {
    const s2at40 = makeTable('arm-lpae-s2', { pgsizeBitmap: 1n << 12n, ias: 40, oas: 48 });
    assert.equal(s2at40.pt.levels, 3);
    assert.equal(s2at40.pt.pteFormat.topIndexBits, 10);
    assert.equal(s2at40.allocator.pagesInUse, 2);
    const s2at44 = makeTable('arm-lpae-s2', { pgsizeBitmap: 1n << 12n, ias: 44, oas: 48 });
    assert.equal(s2at44.pt.levels, 4);
    assert.equal(s2at44.pt.pteFormat.topIndexBits, 5);
    const s1at40 = makeTable('arm-lpae-s1', { pgsizeBitmap: 1n << 12n, ias: 40, oas: 48 });
    assert.equal(s1at40.pt.levels, 4);
    assert.equal(s1at40.pt.pteFormat.topIndexBits, 1);
  });

  it('Arm narrows the bitmap to the granule and keeps 4T blocks only for 52-bit output', () => {
    const all = (1n << 12n) | (1n << 16n) | (1n << 21n) | (1n << 29n) | (1n << 30n) | (1n << 42n);
    assert.equal(makeTable('arm-lpae-s1', { pgsizeBitmap: all, ias: 48, oas: 48, granule: 65536 }).pt.cfg.pgsizeBitmap, (1n << 16n) | (1n << 29n));
    assert.equal(
      makeTable('arm-lpae-s1', { pgsizeBitmap: all, ias: 52, oas: 52, granule: 65536 }).pt.cfg.pgsizeBitmap,
      (1n << 16n) | (1n << 29n) | (1n << 42n),
    );
  });

  it('VT-d picks 3, 4 or 5 levels by width; x86 first-stage widens to its canonical width', () => {
    assert.equal(makeTable('vtd-ss', { pgsizeBitmap: 1n << 12n, ias: 39, oas: 48 }).pt.levels, 3);
    assert.equal(makeTable('vtd-ss', { pgsizeBitmap: 1n << 12n, ias: 40, oas: 48 }).pt.levels, 4);
    assert.equal(makeTable('vtd-ss', { pgsizeBitmap: 1n << 12n, ias: 57, oas: 48 }).pt.levels, 5);
    const fs = makeTable('x86-fs', { pgsizeBitmap: (1n << 12n) | (1n << 30n), ias: 39, oas: 48 }).pt;
    assert.equal(fs.levels, 4);
    assert.equal(fs.cfg.ias, 48);
    assert.equal(fs.cfg.pgsizeBitmap, 1n << 12n, '1G pages need the firstStage1G quirk');
  });
});
