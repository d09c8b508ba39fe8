/**
 * VT-d under random input: register writes and invalidation descriptors never throw and never make the
 * unit touch memory outside itself; translations agree with the page-table walker's reference map.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IOMMU_READ, IOMMU_WRITE } from '../../pgtable/types.js';
import * as R from './regs.js';
import { VtdRig } from './testing.js';

const RUNS = Number(process.env['VIOMMU_FUZZ_RUNS'] ?? 100_000);

describe('VT-d under hostile input', () => {
  it(`${RUNS} random register writes and descriptors: no exception`, () => {
    const rig = new VtdRig({ scalableMode: true, firstStage: true, nesting: true, awBits: 48 });
    const queue = rig.alloc.alloc();
    const regOffsets = [
      R.DMAR_GCMD_REG, R.DMAR_RTADDR_REG, R.DMAR_CCMD_REG, R.DMAR_FSTS_REG, R.DMAR_FECTL_REG, R.DMAR_IQT_REG, R.DMAR_IQA_REG,
      R.DMAR_ICS_REG, R.DMAR_IECTL_REG, R.IRO_OFFSET, R.IRO_OFFSET + 8, R.FRO_OFFSET + 8, R.DMAR_PQH_REG, R.DMAR_PQA_REG,
    ];
    const op = fc.oneof(
      fc.record({ kind: fc.constant('reg' as const), off: fc.oneof(fc.constantFrom(...regOffsets), fc.integer({ min: 0, max: 0xfff })), size: fc.constantFrom(4, 8), value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
      fc.record({ kind: fc.constant('desc' as const), q0: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), q1: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), slot: fc.integer({ min: 0, max: 15 }) }),
      fc.record({ kind: fc.constant('xlate' as const), sid: fc.integer({ min: 0, max: 0xffff }), iova: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), pasid: fc.option(fc.integer({ min: 0, max: 0xfffff })), write: fc.boolean() }),
    );
    fc.assert(
      fc.property(op, (o) => {
        if (o.kind === 'reg') {
          // Keep the queue and root inside memory most of the time so descriptors actually run.
          const v = o.off === R.DMAR_IQA_REG && (o.value & 1n) ? queue | (o.value & 0x807n) : o.value & ((1n << BigInt(8 * o.size)) - 1n);
          rig.unit.mmioWrite(o.off, o.size as 4 | 8, v);
          rig.unit.mmioRead(o.off, o.size as 4 | 8);
        } else if (o.kind === 'desc') {
          rig.memory.writeU64(queue + BigInt(16 * o.slot), o.q0);
          rig.memory.writeU64(queue + BigInt(16 * o.slot + 8), o.q1);
          rig.unit.mmioWrite(R.DMAR_IQT_REG, 8, BigInt(16 * ((o.slot + 1) % 16)));
        } else {
          const r = rig.unit.translate({ sid: o.sid, iova: o.iova, write: o.write, ...(o.pasid !== null ? { pasid: o.pasid } : {}) });
          if (r.ok && !r.passthrough) assert.ok(r.addr < 1n << 48n, 'a translation never leaves the host address width');
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('translate agrees with the reference map for random mapped sets (legacy, scalable second stage, first stage, nested)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 511 }), { minLength: 1, maxLength: 40 }),
        fc.array(fc.integer({ min: 0, max: 1023 }), { minLength: 1, maxLength: 40 }),
        fc.constantFrom('legacy', 'scalable-ss', 'first-stage', 'nested'),
        (pages, probes, mode) => {
          const scalable = mode !== 'legacy';
          const rig = new VtdRig({ awBits: 48, scalableMode: scalable, firstStage: scalable, nesting: scalable });
          const pt = mode === 'first-stage' || mode === 'nested' ? rig.fsTable(4) : rig.ssTable(48);
          const ref = new Map<number, bigint>();
          pages.forEach((p, i) => {
            const pa = BigInt(0x100000 + i * 0x3000);
            pt.map(BigInt(p) << 12n, pa, 0x1000n, p % 3 === 0 ? IOMMU_READ : IOMMU_READ | IOMMU_WRITE);
            ref.set(p, pa);
          });
          if (mode === 'legacy') rig.legacyContext(0x10, { aw: 2, table: pt.root });
          else {
            const dir = rig.scalableContext(0x10);
            if (mode === 'scalable-ss') rig.pasidEntry(dir, 0, { pgtt: 2, aw: 2, ss: pt.root });
            else if (mode === 'first-stage') rig.pasidEntry(dir, 0, { pgtt: 1, fs: pt.root });
            else {
              // Nested with an identity second stage over all of memory that matters.
              const ss = rig.ssTable(48);
              ss.map(0n, 0n, 0x20000000n, IOMMU_READ | IOMMU_WRITE);
              rig.pasidEntry(dir, 0, { pgtt: 3, fs: pt.root, ss: ss.root, aw: 2 });
            }
          }
          rig.enable(scalable);
          for (const p of probes) {
            for (const write of [false, true]) {
              const r = rig.unit.translate({ sid: 0x10, iova: (BigInt(p) << 12n) + 0x44n, write });
              const want = ref.get(p);
              const allowed = want !== undefined && (!write || p % 3 !== 0);
              assert.equal(r.ok, allowed, `page ${p} write ${write}`);
              if (r.ok) assert.equal(r.addr, want! + 0x44n);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
