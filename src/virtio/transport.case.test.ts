/**
 * One suite for both transports (virtio-mmio v2 and modern virtio-pci), with the same device behind each;
 * transport-specific checks follow.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PhysMemory } from '../mem/phys-memory.js';
import { VirtioIommu } from '../devices/virtio-iommu/device.js';
import { VIRTIO_IOMMU_REQ_ATTACH } from '../devices/virtio-iommu/wire.js';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_VERSION_1,
} from './constants.js';
import type { VirtioCore } from './core.js';
import { VirtioDriver, VirtioMmioDriver, VirtioPciDriver } from './driver.js';
import { VirtioMmioTransport } from './mmio.js';
import { BAR0_MSIX_TABLE, BAR0_SIZE, VIRTIO_MSI_NO_VECTOR, VirtioPciTransport } from './pci.js';

interface Setup {
  memory: PhysMemory;
  device: VirtioIommu;
  core: VirtioCore;
  driver: VirtioDriver;
  irqs: { level: number; msi: { address: bigint; data: number }[] };
}

const TRANSPORTS: Record<string, () => Setup> = {
  'virtio-mmio': () => {
    const memory = new PhysMemory(1n << 32n);
    const device = new VirtioIommu({ endpoints: [1] });
    const irqs = { level: 0, msi: [] as { address: bigint; data: number }[] };
    const t = new VirtioMmioTransport(device, { memory, onInterrupt: (l) => void (l && irqs.level++) });
    return { memory, device, core: t.core, driver: new VirtioMmioDriver(t, memory, { base: 0x100000n, size: 0x100000n }), irqs };
  },
  'virtio-pci': () => {
    const memory = new PhysMemory(1n << 32n);
    const device = new VirtioIommu({ endpoints: [1] });
    const irqs = { level: 0, msi: [] as { address: bigint; data: number }[] };
    const t = new VirtioPciTransport(device, {
      memory,
      onInterrupt: (l) => void (l && irqs.level++),
      onMsi: (address, data) => void irqs.msi.push({ address, data }),
    });
    return { memory, device, core: t.core, driver: new VirtioPciDriver(t, memory, { base: 0x100000n, size: 0x100000n }), irqs };
  },
};

const ALL = (1n << 64n) - 1n;
const attach = VIRTIO_IOMMU_REQ_ATTACH.serialize({ type: 1, domain: 1, endpoint: 1 });

for (const [name, make] of Object.entries(TRANSPORTS)) {
  describe(`transport conformance: ${name}`, () => {
    it('runs the initialization sequence, serves a request and interrupts', () => {
      const s = make();
      const negotiated = s.driver.init(ALL, [16, 16]);
      assert.equal(negotiated, s.device.deviceFeatures);
      assert.equal(s.driver.status(), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
      const r = s.driver.request(0, attach, 4);
      assert.deepEqual([r.used, r.data[0]], [4, 0]);
      assert.equal(s.irqs.level, 1);
      assert.ok(s.driver.ackInterrupts() & 1);
    });

    // spec: the device refuses FEATURES_OK for features it did not offer, and modern devices need VERSION_1.
    it('refuses FEATURES_OK for unoffered features or without VERSION_1', () => {
      const s = make();
      assert.throws(() => s.driver.init(ALL & ~(1n << VIRTIO_F_VERSION_1), [16, 16]), /refused/);
      const t = s.driver.transport;
      t.writeStatus(0);
      t.writeStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
      t.writeDriverFeatures(s.device.deviceFeatures | (1n << 50n));
      t.writeStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
      assert.equal(t.readStatus() & VIRTIO_CONFIG_S_FEATURES_OK, 0);
    });

    it('reads the device configuration through the transport', () => {
      const s = make();
      s.driver.init(ALL, [16, 16]);
      assert.equal(s.driver.readConfig(0, 8), 0xfffffffffffff000n);
      assert.equal(s.driver.readConfig(32, 4), 512n);
    });

    it('resets: status 0 drops queues and negotiated features, and the device forgets its domains', () => {
      const s = make();
      s.driver.init(ALL, [16, 16]);
      s.driver.request(0, attach, 4);
      assert.equal(s.device.domainCount, 1);
      s.driver.transport.writeStatus(0);
      assert.equal(s.driver.status(), 0);
      assert.equal(s.core.negotiated, 0n);
      assert.equal(s.core.queue(0), undefined);
      assert.equal(s.device.domainCount, 0);
    });

    // spec: a device that finds the driver broke the ring rules sets DEVICE_NEEDS_RESET.
    it('sets DEVICE_NEEDS_RESET on a corrupted ring and serves again after reset', () => {
      const s = make();
      s.driver.init(ALL, [16, 16]);
      const q = s.driver.queues[0]!;
      s.memory.writeU16(BigInt(q.avail + 2), 40); // avail.idx jumps past the queue size
      s.driver.kick(0);
      assert.ok(s.driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET);
      assert.equal(s.core.lastError?.code, 'VIRTQ_AVAIL_IDX');
      s.driver.init(ALL, [16, 16]);
      assert.equal(s.driver.request(0, attach, 4).data[0], 0);
    });
  });
}

describe('virtio-pci specifics', () => {
  function pci() {
    const memory = new PhysMemory(1n << 32n);
    const device = new VirtioIommu({ endpoints: [1] });
    const msi: { address: bigint; data: number }[] = [];
    const t = new VirtioPciTransport(device, { memory, onMsi: (address, data) => void msi.push({ address, data }) });
    return { memory, device, t, msi };
  }

  it('identifies as a modern virtio device 0x1057 with a capability list', () => {
    const { t } = pci();
    assert.equal(t.pciConfigRead(0x00, 2), 0x1af4);
    assert.equal(t.pciConfigRead(0x02, 2), 0x1040 + 23);
    assert.ok(t.pciConfigRead(0x08, 1) >= 1);
    const types: number[] = [];
    for (let cap = t.pciConfigRead(0x34, 1); cap !== 0; cap = t.pciConfigRead(cap + 1, 1)) {
      types.push(t.pciConfigRead(cap, 1) === 0x09 ? t.pciConfigRead(cap + 3, 1) : 0x100 | t.pciConfigRead(cap, 1));
    }
    // common, notify, ISR, device, PCI configuration access, then MSI-X.
    assert.deepEqual(types, [1, 2, 3, 4, 5, 0x111]);
  });

  it('sizes and places BAR0 like a PCI BAR', () => {
    const { t } = pci();
    t.pciConfigWrite(0x10, 4, 0xffffffff);
    t.pciConfigWrite(0x14, 4, 0xffffffff);
    assert.equal(t.pciConfigRead(0x10, 4), (~(BAR0_SIZE - 1) & 0xfffffff0 | 0xc) >>> 0);
    t.pciConfigWrite(0x10, 4, 0xfe000000);
    t.pciConfigWrite(0x14, 4, 0x1);
    assert.equal(t.bar0, 0x1fe000000n);
  });

  it('reaches the BAR through the PCI configuration access capability', () => {
    const { t } = pci();
    const cap = 0x84;
    t.pciConfigWrite(cap + 4, 1, 0);
    t.pciConfigWrite(cap + 8, 4, 0x2000 + 32); // device config: probe_size
    t.pciConfigWrite(cap + 12, 4, 4);
    assert.equal(t.pciConfigRead(cap + 16, 4), 512);
  });

  // spec: a vector the device cannot map reads back as NO_VECTOR.
  it('delivers MSI-X messages to the vectors the driver chose, NO_VECTOR for impossible ones', () => {
    const { memory, t, msi } = pci();
    const driver = new VirtioPciDriver(t, memory, { base: 0x100000n, size: 0x100000n });
    driver.init(ALL, [16, 16]);
    t.mmioWrite(22, 2, 0n); // queue_select 0
    t.mmioWrite(26, 2, 40n);
    assert.equal(Number(t.mmioRead(26, 2)), VIRTIO_MSI_NO_VECTOR);
    t.mmioWrite(26, 2, 1n);
    // Vector 1: address 0xfee01000, data 0x4041, unmasked; MSI-X enabled in the capability.
    t.mmioWrite(BAR0_MSIX_TABLE + 16, 4, 0xfee01000n);
    t.mmioWrite(BAR0_MSIX_TABLE + 24, 4, 0x4041n);
    t.mmioWrite(BAR0_MSIX_TABLE + 28, 4, 0n);
    t.pciConfigWrite(0x98 + 2, 2, 0x8000 | t.pciConfigRead(0x98 + 2, 2));
    driver.request(0, attach, 4);
    assert.deepEqual(msi, [{ address: 0xfee01000n, data: 0x4041 }]);
  });
});
