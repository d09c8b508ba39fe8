/**
 * One conformance suite, run against every format and a spread of configurations. Anything a format
 * cannot do is skipped here with the reason, never silently.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCESS_READ,
  ACCESS_WRITE,
  HwWalker,
  IOMMU_READ,
  IOMMU_WRITE,
  IotlbGather,
  PgtableError,
  WalkFault,
  type IoPgtableCfg,
  type PgtableFormatName,
  type WalkEntry,
} from './index.js';
import { makeTable, windowBytes } from './testing.js';

interface Impl {
  name: string;
  format: PgtableFormatName;
  cfg: Omit<IoPgtableCfg, 'tlb'>;
}

const SZ_4K = 1n << 12n;
const SZ_2M = 1n << 21n;
const SZ_1G = 1n << 30n;
const RW = IOMMU_READ | IOMMU_WRITE;

export const IMPLS: Impl[] = [
  { name: 'vtd-ss 39-bit', format: 'vtd-ss', cfg: { pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, ias: 39, oas: 46 } },
  { name: 'vtd-ss 48-bit', format: 'vtd-ss', cfg: { pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, ias: 48, oas: 48 } },
  { name: 'vtd-ss 57-bit', format: 'vtd-ss', cfg: { pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, ias: 57, oas: 52 } },
  { name: 'x86-fs 4-level', format: 'x86-fs', cfg: { pgsizeBitmap: SZ_4K | SZ_2M, ias: 48, oas: 46 } },
  {
    name: 'x86-fs 5-level 1G',
    format: 'x86-fs',
    cfg: { pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, ias: 57, oas: 52, quirks: { firstStage1G: true } },
  },
  { name: 'arm-lpae-s1 4K/48', format: 'arm-lpae-s1', cfg: { pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, ias: 48, oas: 48 } },
  { name: 'arm-lpae-s1 16K/47', format: 'arm-lpae-s1', cfg: { pgsizeBitmap: (1n << 14n) | (1n << 25n), ias: 47, oas: 48 } },
  { name: 'arm-lpae-s1 64K/52', format: 'arm-lpae-s1', cfg: { pgsizeBitmap: (1n << 16n) | (1n << 29n) | (1n << 42n), ias: 52, oas: 52 } },
  { name: 'arm-lpae-s2 4K/40 concat', format: 'arm-lpae-s2', cfg: { pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, ias: 40, oas: 48 } },
  { name: 'arm-lpae-s2 64K/42', format: 'arm-lpae-s2', cfg: { pgsizeBitmap: (1n << 16n) | (1n << 29n), ias: 42, oas: 48 } },
];

function pageSizes(bitmap: bigint): bigint[] {
  const out: bigint[] = [];
  for (let b = 0n; b < 64n; b++) if (bitmap & (1n << b)) out.push(1n << b);
  return out;
}

function errno(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof PgtableError) return e.errno;
    throw e;
  }
  return 'no error';
}

/** Highest input page of the space (canonical formats: the top of the upper half). */
function lastPage(canonical: boolean, ias: number, granule: bigint): bigint {
  return canonical ? (1n << 64n) - granule : (1n << BigInt(ias)) - granule;
}

for (const impl of IMPLS) {
  describe(`pgtable conformance: ${impl.name}`, () => {
    it('an empty table translates nothing', () => {
      const { pt } = makeTable(impl.format, impl.cfg);
      const g = BigInt(pt.cfg.granule);
      assert.equal(pt.iovaToPhys(0n), undefined);
      assert.equal(pt.iovaToPhys(lastPage(pt.pteFormat.canonical, pt.cfg.ias, g)), undefined);
    });

    it('maps every supported page size, refuses a remap, unmaps it, and remaps write-only', () => {
      const { pt } = makeTable(impl.format, impl.cfg);
      let j = 0n;
      for (const size of pageSizes(pt.cfg.pgsizeBitmap)) {
        // Spread sizes out as the kernel selftest does (j * 1 GiB), aligned up to the size.
        const iova = ((j * SZ_1G + size - 1n) / size) * size;
        const pa = size * 3n;
        assert.equal(pt.map(iova, pa, size, RW), size);
        assert.equal(pt.iovaToPhys(iova + 42n), pa + 42n);
        assert.equal(errno(() => pt.map(iova, pa, size, RW)), 'EEXIST');
        assert.equal(pt.unmap(iova, size), size);
        assert.equal(pt.iovaToPhys(iova + 42n), undefined);
        assert.equal(pt.map(iova, pa, size, IOMMU_WRITE), size);
        assert.equal(pt.iovaToPhys(iova + 42n), pa + 42n);
        j += size > SZ_1G ? size / SZ_1G + 1n : 1n;
      }
    });

    it('uses the largest page the alignment allows and smaller ones where it does not', () => {
      const { pt } = makeTable(impl.format, impl.cfg);
      const sizes = pageSizes(pt.cfg.pgsizeBitmap);
      const gran = sizes[0]!;
      const block = sizes[1]!;
      pt.map(block, block * 4n, block + gran, RW);
      const leaves: bigint[] = [];
      pt.walk(block, (e) => void (e.kind === 'leaf' && leaves.push(e.size)), block + gran);
      assert.deepEqual(leaves, [block, gran]);
      // Output misaligned to the block: only granule pages.
      pt.map(block * 8n, block * 4n + gran * 2n + block * 4n, block, RW);
      const small: bigint[] = [];
      pt.walk(block * 8n, (e) => void (e.kind === 'leaf' && small.push(e.size)), block);
      assert.equal(small.length, Number(block / gran));
    });

    it('maps and translates the last page of the input space', () => {
      const { pt } = makeTable(impl.format, impl.cfg);
      const g = BigInt(pt.cfg.granule);
      const last = lastPage(pt.pteFormat.canonical, pt.cfg.ias, g);
      const pa = (1n << BigInt(pt.cfg.oas)) - g;
      pt.map(last, pa, g, RW);
      assert.equal(pt.iovaToPhys(last + g - 1n), pa + g - 1n);
      assert.equal(pt.unmap(last, g), g);
    });

    it('refuses input beyond ias and output beyond oas with nothing changed', () => {
      const b = makeTable(impl.format, impl.cfg);
      const { pt } = b;
      const g = BigInt(pt.cfg.granule);
      const before = windowBytes(b);
      const beyond = pt.pteFormat.canonical ? 1n << BigInt(pt.cfg.ias - 1) : 1n << BigInt(pt.cfg.ias);
      assert.equal(errno(() => pt.map(beyond, 0n, g, RW)), 'ERANGE');
      assert.equal(errno(() => pt.map(beyond - g, 0n, 2n * g, RW)), 'ERANGE');
      assert.equal(errno(() => pt.map(0n, 1n << BigInt(pt.cfg.oas), g, RW)), 'ERANGE');
      assert.equal(errno(() => pt.unmap(beyond, g)), 'ERANGE');
      assert.deepEqual(windowBytes(b), before);
    });

    it('calls exactly the flush ops each operation needs', () => {
      const { pt, flush } = makeTable(impl.format, impl.cfg);
      const [gran, block] = pageSizes(pt.cfg.pgsizeBitmap) as [bigint, bigint];
      pt.map(0n, 0n, gran, RW);
      assert.deepEqual(flush.take(), [], 'mapping into empty entries needs no invalidation');
      const gather = new IotlbGather();
      pt.unmap(0n, gran, gather);
      assert.deepEqual(flush.take(), [{ op: 'page', iova: 0n, granule: gran }]);
      assert.equal(gather.start, 0n);
      assert.equal(gather.end, gran);
      // The table that held that page is empty now; a block over it replaces it with one walk flush.
      pt.map(0n, 0n, block, RW);
      assert.deepEqual(flush.take(), [{ op: 'walk', iova: 0n, size: block, granule: gran }]);
      pt.unmap(0n, block);
      assert.deepEqual(flush.take(), [{ op: 'page', iova: 0n, granule: block }]);
      // Unmapping a block-sized range held by small pages frees their table with one walk flush.
      pt.map(block, block, 2n * gran, RW);
      flush.take();
      assert.equal(pt.unmap(block, block), 2n * gran);
      assert.deepEqual(flush.take(), [{ op: 'walk', iova: block, size: block, granule: gran }]);
    });

    it('refuses to unmap part of a block, changing nothing', () => {
      const b = makeTable(impl.format, impl.cfg);
      const { pt } = b;
      const [gran, block] = pageSizes(pt.cfg.pgsizeBitmap) as [bigint, bigint];
      pt.map(block, 0n, block, RW);
      const before = windowBytes(b);
      assert.equal(errno(() => pt.unmap(block, gran)), 'EBLOCK');
      assert.equal(errno(() => pt.unmap(block + block - gran, 2n * gran)), 'EBLOCK');
      assert.deepEqual(windowBytes(b), before);
      assert.equal(pt.iovaToPhys(block), 0n);
    });

    it('skips holes and reports only the bytes it unmapped', () => {
      const { pt } = makeTable(impl.format, impl.cfg);
      const g = BigInt(pt.cfg.granule);
      pt.map(0n, 0n, g, RW);
      pt.map(4n * g, 0n, g, RW);
      assert.equal(pt.unmap(0n, 8n * g), 2n * g);
      assert.equal(pt.unmap(0n, 8n * g), 0n);
    });

    it('walks tables before leaves, in address order', () => {
      const { pt } = makeTable(impl.format, impl.cfg);
      const g = BigInt(pt.cfg.granule);
      pt.map(g, 0x10n * g, 2n * g, IOMMU_READ);
      const seen: WalkEntry[] = [];
      pt.walk(0n, (e) => void seen.push(e), 4n * g);
      assert.equal(seen.length, pt.levels - 1 + 2);
      assert.deepEqual(
        seen.map((e) => e.level),
        [...Array.from({ length: pt.levels - 1 }, (_, i) => pt.levels - i), 1, 1],
      );
      const leaves = seen.filter((e) => e.kind === 'leaf');
      assert.deepEqual(leaves.map((e) => [e.iova, e.addr]), [
        [g, 0x10n * g],
        [2n * g, 0x11n * g],
      ]);
      assert.ok(leaves.every((e) => (e.prot & IOMMU_READ) !== 0 && (e.prot & IOMMU_WRITE) === 0));
    });

    it('refuses a map it cannot finish for lack of table pages, changing nothing', () => {
      const cfg = impl.cfg;
      const gran = BigInt(cfg.granule ?? Number(cfg.pgsizeBitmap & -cfg.pgsizeBitmap));
      const b = makeTable(impl.format, cfg, { windowSize: gran * 20n });
      const { pt, allocator } = b;
      // Pages 1/128th of the space apart each need a fresh chain of tables below the root.
      const stride = 1n << BigInt(pt.cfg.ias - 7);
      const before = windowBytes(b);
      const inUse = allocator.pagesInUse;
      let refused = '';
      for (let i = 0n; i < 64n && refused === ''; i++) {
        const snapshot = windowBytes(b);
        const used = allocator.pagesInUse;
        try {
          pt.map(i * stride, 0n, gran, RW);
        } catch (e) {
          if (!(e instanceof PgtableError)) throw e;
          refused = e.errno;
          assert.deepEqual(windowBytes(b), snapshot);
          assert.equal(allocator.pagesInUse, used);
        }
      }
      assert.equal(refused, 'ENOMEM');
      assert.notDeepEqual(windowBytes(b), before);
      assert.ok(allocator.pagesInUse > inUse);
    });

    it('returns every table page on free', () => {
      const { pt, allocator } = makeTable(impl.format, impl.cfg);
      const g = BigInt(pt.cfg.granule);
      pt.map(0n, 0n, 4n * g, RW);
      pt.map(1n << BigInt(pt.cfg.ias - 2), 0n, g, RW);
      assert.ok(allocator.pagesInUse > 1);
      pt.free();
      assert.equal(allocator.pagesInUse, 0);
      assert.equal(errno(() => pt.map(0n, 0n, g, RW)), 'EINVAL');
    });

    it('the hardware walker reads the same tables: same output, read-only pages refuse writes', () => {
      const { pt, memory } = makeTable(impl.format, impl.cfg);
      const g = BigInt(pt.cfg.granule);
      pt.map(5n * g, 9n * g, g, IOMMU_READ);
      const walker = new HwWalker(pt.pteFormat, memory);
      const r = walker.walk(pt.root, 5n * g + 7n, ACCESS_READ);
      assert.equal(r.fault, WalkFault.NONE);
      assert.equal(BigInt(r.pa), 9n * g + 7n);
      assert.equal(r.pageSize, Number(g));
      assert.equal(walker.walk(pt.root, 5n * g, ACCESS_WRITE).fault, WalkFault.NO_WRITE);
      assert.equal(walker.walk(pt.root, 6n * g, ACCESS_READ).fault, WalkFault.NOT_PRESENT);
    });

    const dirtyReason = 'this configuration keeps no dirty state (VT-d needs SSADE, x86 presets D, Arm needs DBM)';
    it('reports and clears dirty leaves', { skip: impl.format === 'arm-lpae-s2' ? dirtyReason : false }, () => {
      const quirks =
        impl.format === 'vtd-ss'
          ? { secondStageAD: true }
          : impl.format === 'x86-fs'
            ? { ...impl.cfg.quirks, presetAccessDirty: false }
            : { armHttuDbm: true };
      const { pt, memory } = makeTable(impl.format, { ...impl.cfg, quirks });
      const g = BigInt(pt.cfg.granule);
      pt.map(0n, 0n, 4n * g, RW);
      const walker = new HwWalker(pt.pteFormat, memory, { updateAccessDirty: true });
      const dirty: bigint[] = [];
      const collect = (iova: bigint): void => void dirty.push(iova);
      if (impl.format === 'arm-lpae-s1') {
        // Linux's DBM quirk creates writable leaves writable-dirty; clear them first.
        pt.readAndClearDirty(0n, 4n * g, () => {});
      }
      assert.equal(walker.walk(pt.root, 2n * g, ACCESS_WRITE).fault, WalkFault.NONE);
      assert.equal(walker.walk(pt.root, 3n * g, ACCESS_READ).fault, WalkFault.NONE);
      pt.readAndClearDirty(0n, 4n * g, collect, true);
      assert.deepEqual(dirty, [2n * g]);
      pt.readAndClearDirty(0n, 4n * g, collect);
      pt.readAndClearDirty(0n, 4n * g, collect);
      assert.deepEqual(dirty, [2n * g, 2n * g]);
    });
  });
}
