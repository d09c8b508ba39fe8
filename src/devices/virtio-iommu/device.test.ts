/**
 * virtio-iommu against the spec, driven through virtio-mmio registers and queues in guest memory. Each
 * rule's test carries a `// spec:` tag naming the rule (`npm run spec-coverage` lists them).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ALL_FEATURES, Rig } from './testing.js';
import {
  VIRTIO_IOMMU_ATTACH_F_BYPASS,
  VIRTIO_IOMMU_CONFIG,
  VIRTIO_IOMMU_FAULT_F_ADDRESS,
  VIRTIO_IOMMU_FAULT_F_WRITE,
  VIRTIO_IOMMU_FAULT_R_DOMAIN,
  VIRTIO_IOMMU_FAULT_R_MAPPING,
  VIRTIO_IOMMU_FAULT_R_UNKNOWN,
  VIRTIO_IOMMU_F_BYPASS_CONFIG,
  VIRTIO_IOMMU_F_MAP_UNMAP,
  VIRTIO_IOMMU_F_MMIO,
  VIRTIO_IOMMU_F_PROBE,
  VIRTIO_IOMMU_MAP_F_MMIO,
  VIRTIO_IOMMU_MAP_F_READ,
  VIRTIO_IOMMU_PROBE_RESV_MEM,
  VIRTIO_IOMMU_S_INVAL,
  VIRTIO_IOMMU_S_NOENT,
  VIRTIO_IOMMU_S_NOMEM,
  VIRTIO_IOMMU_S_OK,
  VIRTIO_IOMMU_S_RANGE,
  VIRTIO_IOMMU_S_UNSUPP,
} from './wire.js';
import { VIRTIO_F_VERSION_1 } from '../../virtio/constants.js';

const OK = VIRTIO_IOMMU_S_OK;
const K4 = 0x1000n;
const R = VIRTIO_IOMMU_MAP_F_READ;

describe('virtio-iommu: configuration and features', () => {
  it('presents device id 23, the config layout and QEMU-like defaults', () => {
    const rig = new Rig();
    assert.equal(Number(rig.transport.mmioRead(0x008, 4)), 23);
    const cfg = VIRTIO_IOMMU_CONFIG.parse(
      Uint8Array.from({ length: 40 }, (_, i) => Number(rig.driver.readConfig(i, 1))),
    );
    assert.equal(cfg.page_size_mask, 0xfffffffffffff000n);
    assert.equal(cfg.input_start, 0n);
    assert.equal(cfg.input_end, (1n << 64n) - 1n);
    assert.equal(cfg.domain_start, 0);
    assert.equal(cfg.domain_end, 0xffffffff);
    assert.equal(cfg.probe_size, 512);
    assert.equal(cfg.bypass, 1);
  });

  it('offers MAP_UNMAP, PROBE, MMIO and BYPASS_CONFIG but not legacy BYPASS, plus VERSION_1', () => {
    const f = new Rig().driver.deviceFeatures();
    for (const bit of [VIRTIO_IOMMU_F_MAP_UNMAP, VIRTIO_IOMMU_F_PROBE, VIRTIO_IOMMU_F_MMIO, VIRTIO_IOMMU_F_BYPASS_CONFIG, VIRTIO_F_VERSION_1]) {
      assert.ok(f & (1n << bit), `bit ${bit}`);
    }
    // spec: a device SHOULD NOT offer both BYPASS and BYPASS_CONFIG; new devices SHOULD NOT offer BYPASS.
    assert.equal(f & (1n << 3n), 0n);
  });

  it('refuses an empty page_size_mask option', () => {
    // spec: at least one bit of page_size_mask MUST be set.
    assert.throws(() => new Rig({ pageSizeMask: 0n }), /pageSizeMask/);
  });

  it('accepts a bypass write only with BYPASS_CONFIG negotiated and only 0 or 1', () => {
    // spec: the driver writes only bypass, only with BYPASS_CONFIG; other values are ignored.
    const rig = new Rig();
    rig.driver.writeConfig(36, 1, 0n);
    assert.equal(rig.device.bypass, false);
    rig.driver.writeConfig(36, 1, 7n);
    assert.equal(rig.device.bypass, false);
    rig.driver.writeConfig(0, 8, 0n);
    assert.equal(rig.driver.readConfig(0, 8), 0xfffffffffffff000n);
    const legacy = new Rig({ accept: (1n << VIRTIO_F_VERSION_1) | (1n << VIRTIO_IOMMU_F_MAP_UNMAP) });
    legacy.driver.writeConfig(36, 1, 0n);
    assert.equal(legacy.device.bypass, true);
  });
});

describe('virtio-iommu: ATTACH', () => {
  it('rejects unknown flags and nonzero reserved bytes with INVAL', () => {
    const rig = new Rig();
    // spec: ATTACH with unknown flags -> INVAL (MUST).
    assert.equal(rig.attach(1, 1, 0x2), VIRTIO_IOMMU_S_INVAL);
    // spec: ATTACH with nonzero reserved -> INVAL (MUST).
    assert.equal(rig.attach(1, 1, 0, Uint8Array.of(0, 0, 1, 0)), VIRTIO_IOMMU_S_INVAL);
    assert.equal(rig.device.domainCount, 0);
  });

  it('rejects an unknown endpoint with NOENT', () => {
    // spec: ATTACH to an endpoint that does not exist -> NOENT (MUST).
    assert.equal(new Rig().attach(1, 99), VIRTIO_IOMMU_S_NOENT);
  });

  it('rejects a domain outside domain_range with RANGE', () => {
    // spec: with DOMAIN_RANGE the driver stays inside domain_range; the device checks (RANGE).
    const rig = new Rig({ domainRange: { start: 1, end: 8 } });
    assert.equal(rig.attach(9, 1), VIRTIO_IOMMU_S_RANGE);
    assert.equal(rig.attach(8, 1), OK);
  });

  it('lets several endpoints share a domain and moves an endpoint attached elsewhere', () => {
    const rig = new Rig();
    // spec: more than one endpoint per domain is allowed (MAY).
    assert.equal(rig.attach(1, 1), OK);
    assert.equal(rig.attach(1, 2), OK);
    assert.equal(rig.map(1, 0n, K4 - 1n, 0x5000n), OK);
    // spec: ATTACH of an endpoint already attached elsewhere acts as DETACH then ATTACH (SHOULD).
    assert.equal(rig.attach(2, 1), OK);
    assert.equal(rig.device.domainOf(1), 2);
    assert.equal(rig.device.domainOf(2), 1);
    assert.equal(rig.device.translate(2, 0x10n, { read: true }).ok, true);
    assert.equal(rig.device.translate(1, 0x10n, { read: true }).ok, false);
  });

  it('rejects a BYPASS flag inconsistent with the existing domain with INVAL', () => {
    const rig = new Rig();
    assert.equal(rig.attach(1, 1, VIRTIO_IOMMU_ATTACH_F_BYPASS), OK);
    // spec: ATTACH whose BYPASS flag differs from the domain's -> INVAL (SHOULD).
    assert.equal(rig.attach(1, 2, 0), VIRTIO_IOMMU_S_INVAL);
    assert.equal(rig.device.domainOf(2), undefined);
  });

  it('gives NOMEM past the domain bound', () => {
    const rig = new Rig({ maxDomains: 2 });
    assert.equal(rig.attach(10, 1), OK);
    assert.equal(rig.attach(11, 2), OK);
    assert.equal(rig.attach(12, 3), VIRTIO_IOMMU_S_NOMEM);
    assert.equal(rig.device.domainCount, 2);
  });

  it('refuses an endpoint whose reserved regions collide with the domain mappings with UNSUPP', () => {
    const rig = new Rig({ reservedRegions: [{ subtype: 'reserved', start: 0x8000n, end: 0x8fffn, endpoints: [2] }] });
    rig.attach(1, 1);
    rig.map(1, 0x8000n, 0x8fffn, 0x1000n);
    // spec: an endpoint incompatible with the domain's other endpoints -> UNSUPP (SHOULD).
    assert.equal(rig.attach(1, 2), VIRTIO_IOMMU_S_UNSUPP);
  });
});

describe('virtio-iommu: DETACH', () => {
  it('rejects an unknown endpoint with NOENT and a mismatched domain with INVAL', () => {
    const rig = new Rig();
    // spec: DETACH of an unknown endpoint -> NOENT (MUST).
    assert.equal(rig.detach(1, 99), VIRTIO_IOMMU_S_NOENT);
    rig.attach(1, 1);
    // spec: DETACH from a domain the endpoint is not in -> INVAL (MAY).
    assert.equal(rig.detach(2, 1), VIRTIO_IOMMU_S_INVAL);
    assert.equal(rig.device.domainOf(1), 1);
  });

  it('cuts the endpoint off its mappings and frees an empty domain with its mappings', () => {
    const rig = new Rig({ bypass: false });
    rig.attach(1, 1);
    rig.map(1, 0n, K4 - 1n, 0x5000n);
    assert.equal(rig.detach(1, 1), OK);
    // spec: after DETACH the endpoint MUST NOT reach the domain's mappings.
    const r = rig.device.translate(1, 0x10n, { read: true });
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, VIRTIO_IOMMU_FAULT_R_DOMAIN);
    // spec: a domain with no endpoints ceases to exist with its mappings; the id is reusable.
    assert.equal(rig.device.domainCount, 0);
    assert.equal(rig.attach(1, 1), OK);
    assert.deepEqual(rig.device.mappings(1), []);
  });
});

describe('virtio-iommu: MAP', () => {
  it('translates PA = VA - virt_start + phys_start and enforces READ/WRITE', () => {
    const rig = new Rig();
    rig.attach(1, 1);
    assert.equal(rig.map(1, 0x10000n, 0x1ffffn, 0xabc000n, R), OK);
    const r = rig.device.translate(1, 0x12345n, { read: true });
    assert.deepEqual(r.ok && r.addr, 0xabc000n + 0x2345n);
    // spec: writes MUST NOT be allowed without WRITE.
    const w = rig.device.translate(1, 0x12345n, { write: true });
    assert.equal(w.ok, false);
    assert.equal(!w.ok && w.flags, VIRTIO_IOMMU_FAULT_F_WRITE | VIRTIO_IOMMU_FAULT_F_ADDRESS);
  });

  it('rejects unknown flags with INVAL, MMIO only when negotiated', () => {
    const rig = new Rig();
    rig.attach(1, 1);
    // spec: MAP with unknown flags -> INVAL (MUST).
    assert.equal(rig.map(1, 0n, K4 - 1n, 0n, 8), VIRTIO_IOMMU_S_INVAL);
    assert.equal(rig.map(1, 0n, K4 - 1n, 0n, R | VIRTIO_IOMMU_MAP_F_MMIO), OK);
    const noMmio = new Rig({ accept: ~(1n << VIRTIO_IOMMU_F_MMIO) & ((1n << 64n) - 1n) });
    noMmio.attach(1, 1);
    assert.equal(noMmio.map(1, 0n, K4 - 1n, 0n, R | VIRTIO_IOMMU_MAP_F_MMIO), VIRTIO_IOMMU_S_INVAL);
  });

  it('rejects an unknown domain with NOENT and a bypass domain with INVAL', () => {
    const rig = new Rig();
    // spec: MAP on an unknown domain -> NOENT (SHOULD).
    assert.equal(rig.map(5, 0n, K4 - 1n, 0n), VIRTIO_IOMMU_S_NOENT);
    rig.attach(2, 1, VIRTIO_IOMMU_ATTACH_F_BYPASS);
    // spec: MAP on a bypass domain -> INVAL (SHOULD).
    assert.equal(rig.map(2, 0n, K4 - 1n, 0n), VIRTIO_IOMMU_S_INVAL);
  });

  it('rejects misalignment to the granule and input outside input_range with RANGE', () => {
    const rig = new Rig({ inputRange: { start: 0x1000n, end: 0xffffffffn } });
    rig.attach(1, 1);
    // spec: virt_start, phys_start or virt_end + 1 not aligned to the granule -> RANGE (SHOULD).
    assert.equal(rig.map(1, 0x1800n, 0x27ffn, 0n), VIRTIO_IOMMU_S_RANGE);
    assert.equal(rig.map(1, 0x1000n, 0x1fffn, 0x800n), VIRTIO_IOMMU_S_RANGE);
    assert.equal(rig.map(1, 0x1000n, 0x1ffen, 0n), VIRTIO_IOMMU_S_RANGE);
    // spec: with INPUT_RANGE the driver maps only inside input_range (the device checks: RANGE).
    assert.equal(rig.map(1, 0n, 0xfffn, 0n), VIRTIO_IOMMU_S_RANGE);
    assert.equal(rig.map(1, 0xfffff000n, 0x100000fffn, 0n), VIRTIO_IOMMU_S_RANGE);
    assert.deepEqual(rig.device.mappings(1), []);
  });

  it('rejects an overlap with an existing mapping or a reserved region with INVAL', () => {
    const rig = new Rig({ reservedRegions: [{ subtype: 'msi', start: 0xfee00000n, end: 0xfeefffffn }] });
    rig.attach(1, 1);
    rig.map(1, 0x10000n, 0x1ffffn, 0n);
    // spec: MAP overlapping an existing mapping -> INVAL (SHOULD).
    assert.equal(rig.map(1, 0x1f000n, 0x20fffn, 0n), VIRTIO_IOMMU_S_INVAL);
    // spec: MAP overlapping a RESV_MEM region -> rejected (SHOULD).
    assert.equal(rig.map(1, 0xfee00000n, 0xfee00fffn, 0n), VIRTIO_IOMMU_S_INVAL);
    assert.equal(rig.device.mappings(1).length, 1);
  });

  it('gives NOMEM past the per-domain mapping bound', () => {
    const rig = new Rig({ maxMappingsPerDomain: 2 });
    rig.attach(1, 1);
    assert.equal(rig.map(1, 0n, K4 - 1n, 0n), OK);
    assert.equal(rig.map(1, K4, 2n * K4 - 1n, 0n), OK);
    assert.equal(rig.map(1, 2n * K4, 3n * K4 - 1n, 0n), VIRTIO_IOMMU_S_NOMEM);
  });
});

describe('virtio-iommu: UNMAP', () => {
  it('rejects an unknown domain with NOENT, a bypass domain and nonzero reserved with INVAL', () => {
    const rig = new Rig();
    // spec: UNMAP on an unknown domain -> NOENT (SHOULD).
    assert.equal(rig.unmap(7, 0n, K4 - 1n), VIRTIO_IOMMU_S_NOENT);
    rig.attach(2, 1, VIRTIO_IOMMU_ATTACH_F_BYPASS);
    // spec: UNMAP on a bypass domain -> INVAL (SHOULD).
    assert.equal(rig.unmap(2, 0n, K4 - 1n), VIRTIO_IOMMU_S_INVAL);
    rig.attach(3, 2);
    // spec: UNMAP with nonzero reserved MAY be rejected (INVAL).
    assert.equal(rig.unmap(3, 0n, K4 - 1n, Uint8Array.of(1, 0, 0, 0)), VIRTIO_IOMMU_S_INVAL);
  });

  // The spec's numbered UNMAP example, in units of one byte (page_size_mask = 1) as QEMU's qtest does,
  // and in units of one 4 KiB page.
  for (const [name, unit, mask] of [
    ['bytes', 1n, 1n],
    ['4 KiB pages', K4, 0xfffffffffffff000n],
  ] as const) {
    it(`follows the spec's example sequence (${name})`, () => {
      const rig = new Rig({ pageSizeMask: mask });
      rig.attach(1, 1);
      const map = (a: bigint, b: bigint) => rig.map(1, a * unit, (b + 1n) * unit - 1n, 0x100000n);
      const unmap = (a: bigint, b: bigint) => rig.unmap(1, a * unit, (b + 1n) * unit - 1n);
      const live = () => rig.device.mappings(1).map((m) => [m.start / unit, (m.end + 1n) / unit - 1n]);
      // spec: (1) map(0, 9); unmap(0, 4) would split it -> RANGE, nothing removed (SHOULD).
      assert.equal(map(0n, 9n), OK);
      assert.equal(unmap(0n, 4n), VIRTIO_IOMMU_S_RANGE);
      assert.deepEqual(live(), [[0n, 9n]]);
      assert.equal(unmap(0n, 9n), OK);
      // spec: (2) map(0, 4); map(5, 9); unmap(0, 9) removes both.
      map(0n, 4n);
      map(5n, 9n);
      assert.equal(unmap(0n, 9n), OK);
      assert.deepEqual(live(), []);
      // spec: (3) map(0, 9); unmap(0, 14) removes it (the range may extend past mappings).
      map(0n, 9n);
      assert.equal(unmap(0n, 14n), OK);
      assert.deepEqual(live(), []);
      // spec: (4) map(0, 4); map(10, 14); unmap(0, 14) removes both, the hole is fine.
      map(0n, 4n);
      map(10n, 14n);
      assert.equal(unmap(0n, 14n), OK);
      assert.deepEqual(live(), []);
      // spec: (5) unmapping an empty range succeeds.
      assert.equal(unmap(0n, 14n), OK);
    });
  }
});

describe('virtio-iommu: PROBE', () => {
  const regions = [
    { subtype: 'msi' as const, start: 0xfee00000n, end: 0xfeefffffn },
    { subtype: 'reserved' as const, start: 0x8000000n, end: 0x80fffffn, endpoints: [2] },
  ];

  it('reports RESV_MEM properties and zero-fills the rest', () => {
    const rig = new Rig({ reservedRegions: regions });
    const p = rig.probe(2);
    assert.equal(p.status, OK);
    const first = VIRTIO_IOMMU_PROBE_RESV_MEM.parse(p.properties);
    assert.deepEqual([first.type, first.length, first.subtype, first.start, first.end], [1, 20, 1, 0xfee00000n, 0xfeefffffn]);
    const second = VIRTIO_IOMMU_PROBE_RESV_MEM.parse(p.properties, 24);
    assert.deepEqual([second.subtype, second.start, second.end], [0, 0x8000000n, 0x80fffffn]);
    // spec: unused bytes of the properties area are zero.
    assert.ok(p.properties.subarray(48).every((b) => b === 0));
  });

  it('rejects an unknown endpoint with NOENT and a short properties area with INVAL', () => {
    const rig = new Rig({ reservedRegions: regions });
    // spec: PROBE of an unknown endpoint -> NOENT (SHOULD).
    assert.equal(rig.probe(42).status, VIRTIO_IOMMU_S_NOENT);
    // spec: a properties area smaller than probe_size -> INVAL, nothing written (SHOULD).
    const p = rig.probe(2, 100);
    assert.equal(p.status, VIRTIO_IOMMU_S_INVAL);
    assert.ok(p.properties.every((b) => b === 0));
  });
});

describe('virtio-iommu: requests the device cannot parse', () => {
  it('returns an unknown request type unwritten, with used length 0', () => {
    const rig = new Rig();
    // spec: unknown request type -> buffer not written, used length 0 (SHOULD).
    const r = rig.raw(Uint8Array.of(0x42, 0, 0, 0, 1, 2, 3, 4), 4);
    assert.equal(r.used, 0);
    assert.equal(rig.device.stats.unwritten, 1);
  });

  it('answers UNSUPP for an unknown type in the qemu-7.2 profile', () => {
    const rig = new Rig({ profile: 'qemu-7.2' });
    const r = rig.raw(Uint8Array.of(0x42, 0, 0, 0), 4);
    assert.deepEqual([r.used, r.data[0]], [4, VIRTIO_IOMMU_S_UNSUPP]);
  });

  it('answers INVAL for a request shorter than its type needs, and returns one without a tail unwritten', () => {
    const rig = new Rig();
    assert.equal(rig.raw(Uint8Array.of(3, 0, 0, 0, 1, 0, 0, 0), 4).data[0], VIRTIO_IOMMU_S_INVAL);
    assert.equal(rig.raw(Uint8Array.of(3, 0, 0, 0), 2).used, 0);
  });
});

describe('virtio-iommu: translation, bypass and faults', () => {
  it('passes unattached endpoints through while config.bypass is 1, and faults them with DOMAIN when 0', () => {
    const rig = new Rig();
    // spec: bypass applies to unattached endpoints when config.bypass = 1.
    assert.deepEqual(rig.device.translate(1, 0x1234n, { read: true }).ok, true);
    rig.driver.writeConfig(36, 1, 0n);
    const r = rig.device.translate(1, 0x1234n, { read: true });
    // spec: unattached endpoints not in bypass SHOULD NOT reach memory.
    assert.equal(!r.ok && r.reason, VIRTIO_IOMMU_FAULT_R_DOMAIN);
  });

  it('legacy BYPASS: negotiated, unattached endpoints bypass; not negotiated, they fault', () => {
    const legacyFeatures = { legacyBypass: true, bypassConfig: false };
    const on = new Rig({ bypass: false, features: legacyFeatures });
    assert.ok(on.driver.deviceFeatures() & (1n << 3n));
    assert.equal(on.device.translate(1, 0x1234n, { read: true }).ok, true);
    const off = new Rig({ bypass: false, features: legacyFeatures, accept: ALL_FEATURES & ~(1n << 3n) });
    const r = off.device.translate(1, 0x1234n, { read: true });
    assert.equal(!r.ok && r.reason, VIRTIO_IOMMU_FAULT_R_DOMAIN);
  });

  it('faults unknown endpoints with UNKNOWN when not bypassing', () => {
    const rig = new Rig({ bypass: false });
    const r = rig.device.translate(77, 0x10n, { read: true });
    assert.equal(!r.ok && r.reason, VIRTIO_IOMMU_FAULT_R_UNKNOWN);
  });

  it('lets MSI regions through and faults RESERVED regions', () => {
    const rig = new Rig({
      reservedRegions: [
        { subtype: 'msi', start: 0xfee00000n, end: 0xfeefffffn },
        { subtype: 'reserved', start: 0x8000n, end: 0x8fffn },
      ],
    });
    rig.attach(1, 1);
    const msi = rig.device.translate(1, 0xfee00010n, { write: true });
    assert.deepEqual(msi.ok && msi.addr, 0xfee00010n);
    const rsv = rig.device.translate(1, 0x8004n, { read: true });
    assert.equal(!rsv.ok && rsv.reason, VIRTIO_IOMMU_FAULT_R_MAPPING);
  });

  it('identity-maps a bypass domain', () => {
    const rig = new Rig({ bypass: false });
    rig.attach(1, 1, VIRTIO_IOMMU_ATTACH_F_BYPASS);
    const r = rig.device.translate(1, 0xdead000n, { write: true });
    assert.deepEqual(r.ok && r.addr, 0xdead000n);
  });

  it('delivers 24-byte fault records on the event queue, and counts faults without buffers as dropped', () => {
    const rig = new Rig({ bypass: false });
    rig.attach(1, 1);
    rig.device.translate(1, 0x5000n, { read: true });
    assert.equal(rig.device.stats.faultsDropped, 1);
    rig.postEventBuffers(2);
    const before = rig.interrupts;
    rig.device.translate(1, 0x6008n, { write: true });
    const faults = rig.takeFaults();
    assert.equal(faults.length, 1);
    assert.deepEqual(
      [faults[0]!.reason, faults[0]!.flags, faults[0]!.endpoint, faults[0]!.address],
      [VIRTIO_IOMMU_FAULT_R_MAPPING, VIRTIO_IOMMU_FAULT_F_ADDRESS, 1, 0x6008n],
    );
    assert.ok(rig.interrupts > before);
  });
});

describe('virtio-iommu: reset', () => {
  it('device reset detaches everything but keeps the bypass setting; system reset restores it', () => {
    const rig = new Rig();
    rig.attach(1, 1);
    rig.map(1, 0n, K4 - 1n, 0n);
    rig.driver.writeConfig(36, 1, 0n);
    rig.transport.mmioWrite(0x070, 4, 0n);
    // spec: device reset detaches every endpoint; bypass is not changed by device reset.
    assert.equal(rig.device.domainCount, 0);
    assert.equal(rig.device.domainOf(1), undefined);
    assert.equal(rig.device.bypass, false);
    // spec: bypass is restored by system reset.
    rig.device.systemReset();
    assert.equal(rig.device.bypass, true);
  });
});

describe('virtio-iommu: the qemu-7.2 profile', () => {
  it('skips alignment and range checks', () => {
    const rig = new Rig({ profile: 'qemu-7.2', inputRange: { start: 0n, end: 0xffffn } });
    rig.attach(1, 1);
    assert.equal(rig.map(1, 0x1800n, 0x27ffn, 0x10n), OK);
    assert.equal(rig.map(1, 0x100000n, 0x100fffn, 0n), OK);
  });

  it('removes contained mappings below one it cannot split, then answers RANGE', () => {
    const rig = new Rig({ profile: 'qemu-7.2' });
    rig.attach(1, 1);
    rig.map(1, 0n, 0xfffn, 0n);
    rig.map(1, 0x2000n, 0x3fffn, 0n);
    assert.equal(rig.unmap(1, 0n, 0x2fffn), VIRTIO_IOMMU_S_RANGE);
    assert.deepEqual(rig.device.mappings(1).map((m) => m.start), [0x2000n]);
  });
});
