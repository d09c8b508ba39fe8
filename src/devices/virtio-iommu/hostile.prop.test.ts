/**
 * Hostile input: random request bytes, truncated requests, wrong buffer directions, looping and
 * out-of-memory chains, random register writes. Nothing escapes the transport as an exception, and a request
 * that fails changes nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Rig } from './testing.js';
import { VIRTIO_IOMMU_S_OK } from './wire.js';
import { VIRTIO_CONFIG_S_NEEDS_RESET, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../virtio/constants.js';

/** Requests in CI: 100k random requests; set VIOMMU_FUZZ_RUNS to change. */
const RUNS = Number(process.env['VIOMMU_FUZZ_RUNS'] ?? 100_000);

function seeded(): Rig {
  const rig = new Rig({ endpoints: [1, 2, 3], reservedRegions: [{ subtype: 'msi', start: 0xfee00000n, end: 0xfeefffffn }] });
  rig.attach(1, 1);
  rig.attach(2, 2);
  rig.map(1, 0x10000n, 0x1ffffn, 0x80000n);
  rig.map(1, 0x40000n, 0x40fffn, 0x90000n, 1);
  rig.map(2, 0x0n, 0xfffn, 0x0n);
  return rig;
}

describe('virtio-iommu under hostile input', () => {
  it(`${RUNS} random requests: no exception, and failures change nothing`, () => {
    const rig = seeded();
    // Bias the type byte toward real types so the decoders see their own sizes.
    const request = fc.tuple(
      fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 255 })),
      fc.uint8Array({ minLength: 0, maxLength: 80 }),
      fc.oneof(fc.constant(4), fc.constant(516), fc.integer({ min: 0, max: 700 })),
    );
    fc.assert(
      fc.property(request, ([type, body, inLen]) => {
        const out = Uint8Array.of(type, ...body);
        const before = rig.device.snapshot();
        const r = rig.raw(out, inLen);
        const ok = r.used > 0 && r.used >= 4 && r.data[r.used - 4] === VIRTIO_IOMMU_S_OK;
        if (!ok) assert.deepEqual(rig.device.snapshot(), before);
        assert.equal(rig.driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
      }),
      { numRuns: RUNS },
    );
  });

  it('corrupted descriptor chains set DEVICE_NEEDS_RESET (never throw), and reset recovers', () => {
    const descriptor = fc.record({
      addr: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0x1000000n, max: 0x1ffffffn })),
      len: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 64 })),
      flags: fc.constantFrom(0, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_INDIRECT, 0xffff),
      next: fc.integer({ min: 0, max: 0xffff }),
    });
    fc.assert(
      fc.property(fc.array(descriptor, { minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 0xffff }), (descs, availIdx) => {
        const rig = seeded();
        const q = rig.driver.queues[0]!;
        descs.forEach((d, i) => {
          const at = BigInt(q.desc + 16 * i);
          rig.memory.writeU64(at, d.addr);
          rig.memory.writeU32(at + 8n, d.len);
          rig.memory.writeU16(at + 12n, d.flags);
          rig.memory.writeU16(at + 14n, d.next);
        });
        rig.memory.writeU16(BigInt(q.avail + 4), 0);
        rig.memory.writeU16(BigInt(q.avail + 2), availIdx);
        const before = rig.device.snapshot();
        rig.driver.kick(0);
        const broken = (rig.driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0;
        if (broken) assert.deepEqual(rig.device.snapshot(), before);
        // Reset and re-initialise: the device serves requests again.
        rig.driver.init((1n << 64n) - 1n, [64, 64]);
        assert.equal(rig.attach(3, 3), VIRTIO_IOMMU_S_OK);
      }),
      { numRuns: 2000 },
    );
  });

  it('random register writes never throw', () => {
    const rig = seeded();
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 0x1ff }), fc.constantFrom(1, 2, 4, 8), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })), { maxLength: 20 }),
        (writes) => {
          for (const [off, size, value] of writes) {
            rig.transport.mmioWrite(off, size as 1 | 2 | 4 | 8, value & ((1n << BigInt(8 * size)) - 1n));
            rig.transport.mmioRead(off, size as 1 | 2 | 4 | 8);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
