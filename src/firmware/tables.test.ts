/**
 * Firmware tables built from machine descriptions: golden bytes where a real system gave them, and every
 * table read back the way an OS reads it must name, for every device, the IOMMU and ID the description says.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildDeviceTree, parseDtb, toDtb } from './devicetree.js';
import { buildDmar, parseDmar, serializeDmar } from './dmar.js';
import { buildIort, parseIort, serializeIort } from './iort.js';
import { resolveMachine, type MachineDescription } from './machine.js';
import { resolveDeviceTree, resolveDmar, resolveIort, resolveViot, type Resolved } from './resolve.js';
import { FIXTURE_MACHINES, fixtureMachine } from './testing.js';
import { buildViot, parseViot, serializeViot } from './viot.js';
import { acpiSum } from './acpi.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const hex = (s: string): Uint8Array => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((b) => parseInt(b, 16)));

/** The description's answer, limited to IOMMUs this kind of table can describe. */
function expected(m: MachineDescription, types: string[]): Resolved {
  const kinds = new Map(m.iommus.map((io) => [io.name, io.type as string]));
  return new Map([...resolveMachine(m)].map(([d, r]) => [d, r && types.includes(kinds.get(r.iommu)!) ? r : null]));
}

describe('VIOT', () => {
  it("matches QEMU's q35 VIOT byte for byte (virtio-iommu-pci at 00:03.0, all of bus 0)", () => {
    const t = buildViot(fixtureMachine('q35-virtio-iommu'))!;
    // node_count 2, node_offset 0x30; type-3 node for 00:03.0; type-1 node for BDF 00:00.0-00:1f.7 -> node @0x30.
    assert.deepEqual(
      t.subarray(36),
      hex('0200 3000 0000000000000000  0300 1000 0000 1800 0000000000000000  0100 1800 00000000 0000 0000 0000 ff00 3000 000000000000'),
    );
    assert.equal(t.length, 0x58);
    assert.equal(acpiSum(t), 0);
  });
});

describe('DMAR', () => {
  it('encodes host address width - 1, DRHDs with scopes (INCLUDE_PCI_ALL last), RMRR and ATSR', () => {
    const d = parseDmar(buildDmar(fixtureMachine('q35-vtd'))!);
    assert.equal(d.header.revision, 1);
    assert.equal(d.header.oem_table_id, 'VIOMMUQ3');
    assert.equal(d.hostAddressWidth, 39);
    assert.deepEqual(
      d.structs.map((s) => s.type),
      [0, 0, 1, 2],
    );
    const [gfx, all, rmrr, atsr] = d.structs;
    assert.ok(gfx && 'scopes' in gfx && gfx.type === 0);
    assert.deepEqual(gfx.scopes, [{ type: 1, enumerationId: 0, startBus: 0, path: [{ device: 2, function: 0 }] }]);
    assert.ok(all && all.type === 0 && 'flags' in all && all.flags === 1);
    assert.ok(rmrr && rmrr.type === 1 && 'base' in rmrr && rmrr.base === 0x7d000000n && rmrr.limit === 0x7f7fffffn);
    assert.ok(atsr && atsr.type === 2 && 'flags' in atsr && atsr.flags === 1);
  });
});

describe('IORT', () => {
  it('maps root-complex RIDs to the SMMU or the ITS and platform masters through single mappings', () => {
    const t = parseIort(buildIort(fixtureMachine('arm-smmuv3'))!);
    assert.deepEqual(
      t.nodes.map((n) => n.type),
      [0, 4, 2, 1, 1],
    );
    const rc = t.nodes[2]!;
    assert.deepEqual(
      rc.mappings.map((m) => [m.inputBase, m.idCount, m.outputBase, m.outputReference]),
      [
        [0, 0x7fff, 0, t.nodes[1]!.offset],
        [0x8000, 0x7fff, 0x8000, t.nodes[0]!.offset],
      ],
    );
  });
});

describe('device tree', () => {
  it('round-trips the blob exactly', () => {
    for (const name of FIXTURE_MACHINES) {
      const blob = toDtb(buildDeviceTree(fixtureMachine(name)));
      assert.deepEqual(toDtb(parseDtb(blob)), blob, name);
    }
  });
});

describe('resolvers read the tables as an OS does and agree with the description for every device', () => {
  for (const name of FIXTURE_MACHINES) {
    it(name, () => {
      const m = fixtureMachine(name);
      const viot = buildViot(m);
      const dmar = buildDmar(m);
      const iort = buildIort(m);
      if (viot) assert.deepEqual(resolveViot(parseViot(viot), m), expected(m, ['virtio-iommu-pci', 'virtio-iommu-mmio']));
      if (dmar) assert.deepEqual(resolveDmar(parseDmar(dmar), m), expected(m, ['vtd']));
      if (iort) assert.deepEqual(resolveIort(parseIort(iort), m), expected(m, ['smmuv3']));
      const dt = resolveDeviceTree(parseDtb(toDtb(buildDeviceTree(m))), m);
      assert.deepEqual(dt, expected(m, ['virtio-iommu-pci', 'virtio-iommu-mmio', 'smmuv3']));
      assert.ok(viot || dmar || iort);
    });
  }
});

describe('ACPI tables round-trip exactly: bytes -> parse -> serialize -> the same bytes', () => {
  for (const name of FIXTURE_MACHINES) {
    it(name, () => {
      const m = fixtureMachine(name);
      const viot = buildViot(m);
      const dmar = buildDmar(m);
      const iort = buildIort(m);
      if (viot) assert.deepEqual(serializeViot(parseViot(viot)), viot);
      if (dmar) assert.deepEqual(serializeDmar(parseDmar(dmar)), dmar);
      if (iort) assert.deepEqual(serializeIort(parseIort(iort)), iort);
    });
  }
});

describe('real tables from QEMU 7.2 guests (fixtures/acpi)', () => {
  const real = (name: string): Uint8Array => new Uint8Array(readFileSync(fileURLToPath(new URL(`../../../fixtures/acpi/${name}`, import.meta.url))));

  it("our VIOT for QEMU's machine is QEMU's VIOT, byte for byte; it parses, resolves and round-trips", () => {
    const bytes = real('qemu-7.2-q35-virtio-iommu.viot');
    const m = fixtureMachine('q35-virtio-iommu');
    assert.deepEqual(buildViot(m), bytes);
    const v = parseViot(bytes);
    assert.deepEqual(serializeViot(v), bytes);
    assert.deepEqual(resolveViot(v, m), expected(m, ['virtio-iommu-pci']));
  });

  it("our DMAR for QEMU's machine is QEMU's DMAR, byte for byte (IOAPIC scope included); it parses, resolves and round-trips", () => {
    const bytes = real('qemu-7.2-q35-intel-iommu.dmar');
    const m = fixtureMachine('q35-intel-iommu-qemu');
    assert.deepEqual(buildDmar(m), bytes);
    const d = parseDmar(bytes);
    assert.equal(d.hostAddressWidth, 39);
    const drhd = d.structs[0]!;
    assert.ok('scopes' in drhd);
    assert.deepEqual(drhd.scopes[0], { type: 3, enumerationId: 0, startBus: 0xff, path: [{ device: 0, function: 0 }] });
    assert.deepEqual(serializeDmar(d), bytes);
    assert.deepEqual(resolveDmar(d, m), expected(m, ['vtd']));
  });
});
