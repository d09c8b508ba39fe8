/**
 * Random request sequences against a plain reference model of the spec's semantics: every status and the
 * final domains, endpoints and mappings must agree.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Rig } from './testing.js';
import {
  VIRTIO_IOMMU_S_INVAL,
  VIRTIO_IOMMU_S_NOENT,
  VIRTIO_IOMMU_S_OK,
  VIRTIO_IOMMU_S_RANGE,
} from './wire.js';

interface RefMapping {
  start: bigint;
  end: bigint;
  phys: bigint;
  flags: number;
}

/** The spec's rules, written as plainly as possible. */
class Reference {
  domains = new Map<number, { bypass: boolean; endpoints: Set<number>; mappings: RefMapping[] }>();
  ep = new Map<number, number | undefined>([
    [1, undefined],
    [2, undefined],
    [3, undefined],
  ]);

  private drop(e: number): void {
    const d = this.ep.get(e);
    if (d === undefined) return;
    const dom = this.domains.get(d)!;
    dom.endpoints.delete(e);
    this.ep.set(e, undefined);
    if (dom.endpoints.size === 0) this.domains.delete(d);
  }

  attach(domain: number, e: number, bypass: boolean): number {
    if (!this.ep.has(e)) return VIRTIO_IOMMU_S_NOENT;
    const existing = this.domains.get(domain);
    if (existing && existing.bypass !== bypass) return VIRTIO_IOMMU_S_INVAL;
    if (this.ep.get(e) === domain) return VIRTIO_IOMMU_S_OK;
    this.drop(e);
    const d = this.domains.get(domain) ?? { bypass, endpoints: new Set<number>(), mappings: [] };
    this.domains.set(domain, d);
    d.endpoints.add(e);
    this.ep.set(e, domain);
    return VIRTIO_IOMMU_S_OK;
  }

  detach(domain: number, e: number): number {
    if (!this.ep.has(e)) return VIRTIO_IOMMU_S_NOENT;
    if (this.ep.get(e) !== domain) return VIRTIO_IOMMU_S_INVAL;
    this.drop(e);
    return VIRTIO_IOMMU_S_OK;
  }

  map(domain: number, start: bigint, end: bigint, phys: bigint, flags: number): number {
    const d = this.domains.get(domain);
    if (!d) return VIRTIO_IOMMU_S_NOENT;
    if (d.bypass) return VIRTIO_IOMMU_S_INVAL;
    if (end < start) return VIRTIO_IOMMU_S_INVAL;
    if (start % 0x1000n !== 0n || phys % 0x1000n !== 0n || (end + 1n) % 0x1000n !== 0n) return VIRTIO_IOMMU_S_RANGE;
    if (phys + (end - start) >= 1n << 64n) return VIRTIO_IOMMU_S_RANGE;
    if (d.mappings.some((m) => m.start <= end && start <= m.end)) return VIRTIO_IOMMU_S_INVAL;
    d.mappings.push({ start, end, phys, flags });
    return VIRTIO_IOMMU_S_OK;
  }

  unmap(domain: number, start: bigint, end: bigint): number {
    const d = this.domains.get(domain);
    if (!d) return VIRTIO_IOMMU_S_NOENT;
    if (d.bypass || end < start) return VIRTIO_IOMMU_S_INVAL;
    const touched = d.mappings.filter((m) => m.start <= end && start <= m.end);
    if (touched.some((m) => m.start < start || m.end > end)) return VIRTIO_IOMMU_S_RANGE;
    d.mappings = d.mappings.filter((m) => !touched.includes(m));
    return VIRTIO_IOMMU_S_OK;
  }

  snapshot() {
    return [...this.domains.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([id, d]) => ({
        id,
        bypass: d.bypass,
        endpoints: [...d.endpoints].sort((a, b) => a - b),
        mappings: [...d.mappings].sort((a, b) => (a.start < b.start ? -1 : 1)),
      }));
  }
}

const page = fc.integer({ min: 0, max: 15 }).map((p) => BigInt(p) * 0x1000n);
const op = fc.oneof(
  fc.record({ t: fc.constant('attach' as const), domain: fc.integer({ min: 0, max: 3 }), ep: fc.integer({ min: 1, max: 4 }), bypass: fc.boolean() }),
  fc.record({ t: fc.constant('detach' as const), domain: fc.integer({ min: 0, max: 3 }), ep: fc.integer({ min: 1, max: 4 }) }),
  fc.record({
    t: fc.constant('map' as const),
    domain: fc.integer({ min: 0, max: 3 }),
    start: fc.oneof(page, page.map((p) => p + 0x800n)),
    pages: fc.integer({ min: 0, max: 4 }),
    phys: page,
    flags: fc.integer({ min: 1, max: 3 }),
  }),
  fc.record({ t: fc.constant('unmap' as const), domain: fc.integer({ min: 0, max: 3 }), start: page, pages: fc.integer({ min: 0, max: 8 }) }),
);

describe('virtio-iommu against a reference model', () => {
  it('statuses and final state agree for random request sequences', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const rig = new Rig({ endpoints: [1, 2, 3] });
        const ref = new Reference();
        for (const o of ops) {
          let got: number;
          let want: number;
          switch (o.t) {
            case 'attach':
              got = rig.attach(o.domain, o.ep, o.bypass ? 1 : 0);
              want = ref.attach(o.domain, o.ep, o.bypass);
              break;
            case 'detach':
              got = rig.detach(o.domain, o.ep);
              want = ref.detach(o.domain, o.ep);
              break;
            case 'map': {
              const end = BigInt.asUintN(64, o.start + BigInt(o.pages) * 0x1000n - 1n);
              got = rig.map(o.domain, o.start, end, o.phys, o.flags);
              want = ref.map(o.domain, o.start, end, o.phys, o.flags);
              break;
            }
            case 'unmap': {
              const end = BigInt.asUintN(64, o.start + BigInt(o.pages) * 0x1000n - 1n);
              got = rig.unmap(o.domain, o.start, end);
              want = ref.unmap(o.domain, o.start, end);
              break;
            }
          }
          assert.equal(got, want, JSON.stringify(o, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)));
        }
        assert.deepEqual(rig.device.snapshot(), ref.snapshot());
      }),
      { numRuns: 400 },
    );
  });
});
