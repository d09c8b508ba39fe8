import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FirmwareError } from './errors.js';
import { parseMachine, resolveMachine } from './machine.js';
import { fixtureMachine } from './testing.js';

function bad(json: unknown, path: RegExp): void {
  assert.throws(() => parseMachine(json), (e: unknown) => e instanceof FirmwareError && e.code === 'MACHINE_INVALID' && path.test(e.message));
}

const base = {
  segments: [{ segment: 0 }],
  pciDevices: [{ name: 'nic', bdf: '00:04.0' }],
  iommus: [{ name: 'v', type: 'virtio-iommu-pci', bdf: '00:03.0', pci: [{ segment: 0, idBase: 0 }] }],
};

describe('machine description', () => {
  it("expresses the seed's worked example: two IOMMUs, PCI domains at 0x0 and 0x10000, platform 0x0-0x1fff, PCI at 0x2000", () => {
    const r = resolveMachine(fixtureMachine('seed-004'));
    assert.deepEqual(r.get('net0'), { iommu: 'viommu1', id: 0x0008 });
    assert.deepEqual(r.get('gpu0'), { iommu: 'viommu1', id: 0x1ffff }, 'last RID of segment 1 is the last ID of the second range');
    assert.deepEqual(r.get('net1'), { iommu: 'viommu1', id: 0x10008 });
    assert.deepEqual(r.get('gpio0'), { iommu: 'viommu2', id: 0x1fff });
    assert.deepEqual(r.get('nvme0'), { iommu: 'viommu2', id: 0x2000 + 0x10 });
    assert.deepEqual(r.get('nvme1'), { iommu: 'viommu2', id: 0x2000 + 0x8001 });
  });

  it('gives VT-d devices their requester ID, explicit scopes before INCLUDE_PCI_ALL', () => {
    const r = resolveMachine(fixtureMachine('q35-vtd'));
    assert.deepEqual(r.get('igd'), { iommu: 'dmar-gfx', id: 0x10 });
    assert.deepEqual(r.get('nic'), { iommu: 'dmar0', id: 0x20 });
  });

  it('leaves devices no IOMMU claims untranslated', () => {
    assert.equal(resolveMachine(fixtureMachine('arm-smmuv3')).get('ssd'), null);
  });

  it('names the bad field in every error', () => {
    bad(42, /^\$: must be an object/);
    bad({ ...base, segments: [{ segment: 0x10000 }] }, /\$\.segments\[0\]\.segment/);
    bad({ ...base, pciDevices: [{ name: 'nic', bdf: '00:44.0' }] }, /\$\.pciDevices\[0\]\.bdf/);
    bad({ ...base, pciDevices: [{ name: 'nic', bdf: '0001:00:04.0' }] }, /\$\.pciDevices\[0\]\.bdf: segment 1 is not described/);
    bad({ ...base, iommus: [{ name: 'v', type: 'amd-vi' }] }, /\$\.iommus\[0\]\.type/);
    bad({ ...base, iommus: [{ name: 'nic', type: 'virtio-iommu-mmio', base: 0x1000 }] }, /\$\.iommus\[0\]\.name: name "nic" is used twice/);
    bad({ ...base, iommus: [{ name: 'v', type: 'virtio-iommu-mmio', base: '0xzz' }] }, /\$\.iommus\[0\]\.base/);
    bad({ ...base, iommus: [{ name: 'v', type: 'vtd', base: 0, segment: 0, devices: ['ghost'] }] }, /\$\.iommus\[0\]\.devices\[0\]: no PCI device or bridge named "ghost"/);
  });

  it('resolves VT-d scopes through bridges: an endpoint two bridges down, and a sub-hierarchy', () => {
    const r = resolveMachine(fixtureMachine('vtd-bridges'));
    assert.deepEqual(r.get('ssd'), { iommu: 'dmar-ssd', id: 0x200 });
    assert.deepEqual(r.get('fpga'), { iommu: 'dmar-accel', id: 0x400 }, 'below the named root port, through a second bridge');
    assert.deepEqual(r.get('nic'), { iommu: 'dmar0', id: 0x101 }, 'caught by INCLUDE_PCI_ALL');
  });

  it('refuses bridges whose bus ranges are impossible', () => {
    bad({ ...base, bridges: [{ name: 'rp', bdf: '00:1c.0', secondaryBus: 0 }] }, /\$\.bridges\[0\]\.secondaryBus: must be above/);
    bad(
      { ...base, bridges: [{ name: 'a', bdf: '00:1c.0', secondaryBus: 1, subordinateBus: 4 }, { name: 'b', bdf: '00:1d.0', secondaryBus: 3, subordinateBus: 6 }] },
      /partly overlap bridge "b"/,
    );
  });

  it('refuses Device IDs that overlap within one IOMMU', () => {
    bad(
      {
        ...base,
        segments: [{ segment: 0 }, { segment: 1 }],
        iommus: [{ name: 'v', type: 'virtio-iommu-mmio', base: 0x1000, pci: [{ segment: 0, idBase: 0 }, { segment: 1, idBase: 0xff00 }] }],
      },
      /\$\.iommus\[0\]\.pci\[1\]: Device IDs overlap \$\.iommus\[0\]\.pci\[0\]/,
    );
    bad(
      {
        ...base,
        platformDevices: [{ name: 'u', base: 0x9000000 }],
        iommus: [{ name: 'v', type: 'virtio-iommu-mmio', base: 0x1000, pci: [{ segment: 0, idBase: 0 }], platform: [{ device: 'u', id: 0x42 }] }],
      },
      /Device IDs overlap/,
    );
  });

  it('refuses a device behind two IOMMUs', () => {
    bad(
      {
        ...base,
        iommus: [
          { name: 'a', type: 'virtio-iommu-mmio', base: 0x1000, pci: [{ segment: 0, idBase: 0 }] },
          { name: 'b', type: 'virtio-iommu-mmio', base: 0x2000, pci: [{ segment: 0, busStart: 0, busEnd: 0, idBase: 0 }] },
        ],
      },
      /device "nic" is behind more than one IOMMU/,
    );
  });
});
