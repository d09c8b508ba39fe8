/**
 * Properties: random map/unmap sequences against a simple reference model, and exact round trips of
 * addresses near the top of 48-, 52- and 57-bit spaces.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ACCESS_READ, HwWalker, IOMMU_READ, IOMMU_WRITE, PgtableError, type IoPgtableCfg, type PgtableFormatName } from './index.js';
import { makeTable, windowBytes } from './testing.js';

interface Leaf {
  iova: bigint;
  pa: bigint;
  size: bigint;
}

/**
 * The reference: a list of leaves chosen by the documented rule (largest page size in the bitmap that the
 * alignment of iova and pa and the remaining length allow).
 */
class Reference {
  readonly leaves = new Map<bigint, Leaf>();
  constructor(private readonly sizes: bigint[]) {}

  private covering(iova: bigint): Leaf | undefined {
    for (const s of this.sizes) {
      const leaf = this.leaves.get(iova - (iova % s));
      if (leaf && leaf.size === s) return leaf;
    }
    return undefined;
  }

  map(iova: bigint, pa: bigint, size: bigint): string {
    for (let at = iova; at < iova + size; at += this.sizes[0]!) if (this.covering(at)) return 'EEXIST';
    for (let off = 0n; off < size; ) {
      const s = [...this.sizes].reverse().find((c) => c <= size - off && (iova + off) % c === 0n && (pa + off) % c === 0n)!;
      this.leaves.set(iova + off, { iova: iova + off, pa: pa + off, size: s });
      off += s;
    }
    return 'ok';
  }

  unmap(iova: bigint, size: bigint): bigint | string {
    for (const at of [iova, iova + size - this.sizes[0]!]) {
      const leaf = this.covering(at);
      if (leaf && (leaf.iova < iova || leaf.iova + leaf.size > iova + size)) return 'EBLOCK';
    }
    let total = 0n;
    for (const [k, leaf] of this.leaves) {
      if (leaf.iova >= iova && leaf.iova + leaf.size <= iova + size) {
        this.leaves.delete(k);
        total += leaf.size;
      }
    }
    return total;
  }

  translate(iova: bigint): bigint | undefined {
    const leaf = this.covering(iova);
    return leaf ? leaf.pa + (iova - leaf.iova) : undefined;
  }
}

const MODELS: { name: string; format: PgtableFormatName; cfg: Omit<IoPgtableCfg, 'tlb'>; sizes: bigint[] }[] = [
  { name: 'vtd-ss 4K|2M', format: 'vtd-ss', cfg: { pgsizeBitmap: (1n << 12n) | (1n << 21n), ias: 39, oas: 48 }, sizes: [1n << 12n, 1n << 21n] },
  { name: 'x86-fs 4K|2M', format: 'x86-fs', cfg: { pgsizeBitmap: (1n << 12n) | (1n << 21n), ias: 48, oas: 48 }, sizes: [1n << 12n, 1n << 21n] },
  { name: 'arm-lpae-s1 16K|32M', format: 'arm-lpae-s1', cfg: { pgsizeBitmap: (1n << 14n) | (1n << 25n), ias: 36, oas: 40 }, sizes: [1n << 14n, 1n << 25n] },
  { name: 'arm-lpae-s2 4K|2M concat', format: 'arm-lpae-s2', cfg: { pgsizeBitmap: (1n << 12n) | (1n << 21n), ias: 40, oas: 40 }, sizes: [1n << 12n, 1n << 21n] },
];

type Op = { kind: 'map'; page: number; pages: number; paPage: number } | { kind: 'unmap'; page: number; pages: number };

describe('pgtable properties', () => {
  for (const model of MODELS) {
    it(`${model.name}: random map/unmap sequences agree with the reference`, () => {
      const gran = model.sizes[0]!;
      const block = model.sizes[1]!;
      const perBlock = Number(block / gran);
      // Pages in a window of 8 blocks; lengths up to 2 blocks; pa either block-aligned or not.
      const op: fc.Arbitrary<Op> = fc.oneof(
        fc.record({
          kind: fc.constant('map' as const),
          page: fc.oneof(fc.integer({ min: 0, max: 8 * perBlock - 1 }), fc.integer({ min: 0, max: 7 }).map((b) => b * perBlock)),
          pages: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constantFrom(perBlock, perBlock + 1, 2 * perBlock)),
          paPage: fc.oneof(fc.integer({ min: 0, max: 1 << 16 }), fc.integer({ min: 0, max: 64 }).map((b) => b * perBlock)),
        }),
        fc.record({
          kind: fc.constant('unmap' as const),
          page: fc.oneof(fc.integer({ min: 0, max: 8 * perBlock - 1 }), fc.integer({ min: 0, max: 7 }).map((b) => b * perBlock)),
          pages: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constantFrom(perBlock, 2 * perBlock, 8 * perBlock)),
        }),
      );
      fc.assert(
        fc.property(fc.array(op, { maxLength: 25 }), fc.array(fc.integer({ min: 0, max: 8 * perBlock - 1 }), { minLength: 16, maxLength: 16 }), (ops, probes) => {
          const bench = makeTable(model.format, model.cfg);
          const { pt } = bench;
          const ref = new Reference(model.sizes);
          for (const o of ops) {
            const iova = BigInt(o.page) * gran;
            const size = BigInt(o.pages) * gran;
            const before = windowBytes(bench);
            let got: string | bigint;
            try {
              got = o.kind === 'map' ? (pt.map(iova, BigInt(o.paPage) * gran, size, IOMMU_READ | IOMMU_WRITE), 'ok') : pt.unmap(iova, size);
            } catch (e) {
              if (!(e instanceof PgtableError)) throw e;
              got = e.errno;
              assert.deepEqual(windowBytes(bench), before, `${o.kind} refused with ${e.errno} but changed memory`);
            }
            const want = o.kind === 'map' ? ref.map(iova, BigInt(o.paPage) * gran, size) : ref.unmap(iova, size);
            assert.equal(got, want, `${o.kind} ${iova.toString(16)}+${size.toString(16)}`);
            for (let p = o.page; p < o.page + o.pages; p++) {
              const at = BigInt(p) * gran + 0x18n;
              assert.equal(pt.iovaToPhys(at), ref.translate(at));
            }
            for (const p of probes) {
              const at = BigInt(p) * gran + 0x7n;
              assert.equal(pt.iovaToPhys(at), ref.translate(at));
            }
          }
          const leaves: Leaf[] = [];
          pt.walk(0n, (e) => void (e.kind === 'leaf' && leaves.push({ iova: e.iova, pa: e.addr, size: e.size })), 8n * block + 2n * block);
          assert.deepEqual(leaves, [...ref.leaves.values()].sort((a, b) => (a.iova < b.iova ? -1 : 1)));
        }),
        { numRuns: 60 },
      );
    });
  }

  it('addresses near 2^48, 2^52 and 2^57 round-trip exactly through map, iovaToPhys and the hardware walker', () => {
    const cases: { format: PgtableFormatName; cfg: Omit<IoPgtableCfg, 'tlb'>; iovaNear: bigint; canonicalHigh?: boolean }[] = [
      { format: 'vtd-ss', cfg: { pgsizeBitmap: 1n << 12n, ias: 57, oas: 52 }, iovaNear: 1n << 48n },
      { format: 'vtd-ss', cfg: { pgsizeBitmap: 1n << 12n, ias: 57, oas: 52 }, iovaNear: 1n << 52n },
      { format: 'vtd-ss', cfg: { pgsizeBitmap: 1n << 12n, ias: 57, oas: 52 }, iovaNear: 1n << 57n },
      { format: 'x86-fs', cfg: { pgsizeBitmap: 1n << 12n, ias: 57, oas: 52 }, iovaNear: 1n << 56n },
      { format: 'x86-fs', cfg: { pgsizeBitmap: 1n << 12n, ias: 57, oas: 52 }, iovaNear: 1n << 64n, canonicalHigh: true },
      { format: 'arm-lpae-s1', cfg: { pgsizeBitmap: 1n << 16n, ias: 52, oas: 52 }, iovaNear: 1n << 52n },
    ];
    for (const c of cases) {
      const { pt, memory } = makeTable(c.format, c.cfg);
      const g = BigInt(pt.cfg.granule);
      const walker = new HwWalker(pt.pteFormat, memory);
      fc.assert(
        fc.property(fc.bigInt({ min: 1n, max: 4096n }), fc.bigInt({ min: 1n, max: 4096n }), fc.bigInt({ min: 0n, max: g - 1n }), (iovaBack, paBack, off) => {
          const iova = c.iovaNear - iovaBack * g;
          if (!c.canonicalHigh && iova + g > 1n << BigInt(pt.cfg.ias)) return;
          const pa = (1n << 52n) - paBack * g;
          pt.map(iova, pa, g, IOMMU_READ);
          assert.equal(pt.iovaToPhys(iova + off), pa + off);
          const r = walker.walk(pt.root, iova + off, ACCESS_READ);
          assert.equal(r.ok, true);
          assert.equal(BigInt(r.pa), pa + off);
          assert.equal(pt.unmap(iova, g), g);
          assert.equal(pt.iovaToPhys(iova + off), undefined);
        }),
        { numRuns: 200 },
      );
    }
  });
});
