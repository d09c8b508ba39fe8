/**
 * Read firmware as an OS does and answer, for each device of a machine, which IOMMU translates it and
 * under which ID. Devices are found the way firmware names them — PCI functions by segment and requester
 * ID, platform devices by their MMIO base (VIOT, device tree) or ACPI path (IORT named components) — and
 * IOMMUs by their register base or BDF; the answer uses the machine's names so it can be compared with
 * `resolveMachine`.
 *
 * Rules followed: VIOT as Linux's drivers/acpi/viot.c (endpoint = endpoint_start + ((segment -
 * segment_start) << 16) + bdf - bdf_start); DMAR scopes before INCLUDE_PCI_ALL; IORT root-complex and
 * named-component ID mappings (single mappings give their output base); device-tree `iommu-map` (with
 * `iommu-map-mask`) and `iommus`.
 */
import { cellsOf, stringOf, type DtNode } from './devicetree.js';
import type { Dmar } from './dmar.js';
import type { Iort } from './iort.js';
import { namedComponentPath } from './iort.js';
import { parseBdf, rid, type MachineDescription, type Resolution } from './machine.js';
import type { Viot } from './viot.js';

export type Resolved = Map<string, Resolution | null>;

function iommuByBase(m: MachineDescription, base: bigint): string | undefined {
  return m.iommus.find((io) => 'base' in io && io.base === base)?.name;
}

function iommuByBdf(m: MachineDescription, segment: number, bdf: number): string | undefined {
  return m.iommus.find((io) => {
    if (io.type !== 'virtio-iommu-pci') return false;
    const b = parseBdf(io.bdf, io.name);
    return b.segment === segment && rid(b.bus, b.device, b.function) === bdf;
  })?.name;
}

export function resolveViot(v: Viot, m: MachineDescription): Resolved {
  const iommuAt = new Map<number, string | undefined>();
  for (const n of v.nodes) {
    if ('unknown' in n) continue;
    if (n.type === 3) iommuAt.set(n.offset, iommuByBdf(m, n.segment, n.bdf));
    if (n.type === 4) iommuAt.set(n.offset, iommuByBase(m, n.baseAddress));
  }
  const out: Resolved = new Map();
  for (const d of m.pciDevices) {
    const r = rid(d.bus, d.device, d.function);
    let found: Resolution | null = null;
    for (const n of v.nodes) {
      if ('unknown' in n || n.type !== 1) continue;
      if (d.segment < n.segmentStart || d.segment > n.segmentEnd || r < n.bdfStart || r > n.bdfEnd) continue;
      const iommu = iommuAt.get(n.outputNode);
      if (iommu !== undefined) found = { iommu, id: (((d.segment - n.segmentStart) << 16) + r - n.bdfStart + n.endpointStart) >>> 0 };
      break;
    }
    out.set(d.name, found);
  }
  for (const d of m.platformDevices) {
    let found: Resolution | null = null;
    for (const n of v.nodes) {
      if ('unknown' in n || n.type !== 2 || n.baseAddress !== d.base) continue;
      const iommu = iommuAt.get(n.outputNode);
      if (iommu !== undefined) found = { iommu, id: n.endpointId };
      break;
    }
    out.set(d.name, found);
  }
  return out;
}

export function resolveDmar(t: Dmar, m: MachineDescription): Resolved {
  const out: Resolved = new Map();
  for (const d of m.pciDevices) {
    const r = rid(d.bus, d.device, d.function);
    let found: Resolution | null = null;
    let catchAll: string | undefined;
    for (const s of t.structs) {
      if ('unknown' in s || s.type !== 0 || s.segment !== d.segment) continue;
      const name = iommuByBase(m, s.registerBase);
      if (name === undefined) continue;
      if (s.flags & 1) catchAll ??= name;
      // Follow each scope's path from its start bus through the bridges (their secondary buses, as an OS
      // reads them from the bridges' configuration space) to the function it names.
      for (const sc of s.scopes) {
        if (sc.type !== 1 && sc.type !== 2) continue;
        let bus = sc.startBus;
        let target: { bus: number; device: number; function: number } | undefined;
        for (const [k, hop] of sc.path.entries()) {
          if (k === sc.path.length - 1) target = { bus, device: hop.device, function: hop.function };
          else {
            const br = m.bridges.find((b) => b.segment === d.segment && b.bus === bus && b.device === hop.device && b.function === hop.function);
            if (!br) break;
            bus = br.secondaryBus;
          }
        }
        if (!target) continue;
        if (sc.type === 1 && target.bus === d.bus && target.device === d.device && target.function === d.function) found = { iommu: name, id: r };
        if (sc.type === 2) {
          const br = m.bridges.find((b) => b.segment === d.segment && b.bus === target!.bus && b.device === target!.device && b.function === target!.function);
          if (br && d.bus >= br.secondaryBus && d.bus <= br.subordinateBus) found = { iommu: name, id: r };
        }
      }
    }
    if (found === null && catchAll !== undefined) found = { iommu: catchAll, id: r };
    out.set(d.name, found);
  }
  for (const d of m.platformDevices) out.set(d.name, null);
  return out;
}

export function resolveIort(t: Iort, m: MachineDescription): Resolved {
  const byOffset = new Map(t.nodes.map((n) => [n.offset, n]));
  const through = (mappings: Iort['nodes'][number]['mappings'], input: number): Resolution | null => {
    for (const map of mappings) {
      const single = (map.flags & 1) !== 0;
      if (!single && (input < map.inputBase || input - map.inputBase > map.idCount)) continue;
      const target = byOffset.get(map.outputReference);
      if (!target || !('base' in target)) return null;
      const name = iommuByBase(m, target.base);
      return name === undefined ? null : { iommu: name, id: single ? map.outputBase : (map.outputBase + (input - map.inputBase)) >>> 0 };
    }
    return null;
  };
  const out: Resolved = new Map();
  for (const d of m.pciDevices) {
    const rc = t.nodes.find((n) => 'segment' in n && n.segment === d.segment);
    out.set(d.name, rc ? through(rc.mappings, rid(d.bus, d.device, d.function)) : null);
  }
  for (const d of m.platformDevices) {
    const nc = t.nodes.find((n) => 'name' in n && n.name === namedComponentPath(d.name));
    out.set(d.name, nc ? through(nc.mappings, 0) : null);
  }
  return out;
}

export function resolveDeviceTree(root: DtNode, m: MachineDescription): Resolved {
  // phandle -> the IOMMU it names (by register base, or for virtio-pci by the BDF in `reg`).
  const iommus = new Map<number, string | undefined>();
  const addrOf = (n: DtNode): bigint | undefined => {
    const reg = cellsOf(n, 'reg');
    return reg && reg.length >= 2 ? (BigInt(reg[0]!) << 32n) | BigInt(reg[1]!) : undefined;
  };
  const walk = (n: DtNode, parent: DtNode | undefined): void => {
    const ph = cellsOf(n, 'phandle')?.[0];
    if (ph !== undefined && cellsOf(n, '#iommu-cells') !== undefined) {
      if (stringOf(n, 'compatible') === 'virtio,pci-iommu' && parent) {
        const seg = cellsOf(parent, 'linux,pci-domain')?.[0] ?? 0;
        const hi = cellsOf(n, 'reg')?.[0] ?? 0;
        iommus.set(ph, iommuByBdf(m, seg, (hi >>> 8) & 0xffff));
      } else {
        const base = addrOf(n);
        iommus.set(ph, base === undefined ? undefined : iommuByBase(m, base));
      }
    }
    n.children.forEach((c) => walk(c, n));
  };
  walk(root, undefined);
  const out: Resolved = new Map();
  const bridges = root.children.filter((n) => stringOf(n, 'device_type') === 'pci');
  for (const d of m.pciDevices) {
    const br = bridges.find((b) => (cellsOf(b, 'linux,pci-domain')?.[0] ?? 0) === d.segment);
    let found: Resolution | null = null;
    const map = br ? cellsOf(br, 'iommu-map') : undefined;
    if (br && map) {
      const mask = cellsOf(br, 'iommu-map-mask')?.[0] ?? 0xffffffff;
      const r = (rid(d.bus, d.device, d.function) & mask) >>> 0;
      // Entries are <rid-base phandle iommu-base length> (one IOMMU specifier cell).
      for (let i = 0; i + 4 <= map.length; i += 4) {
        const [base, ph, idBase, len] = [map[i]!, map[i + 1]!, map[i + 2]!, map[i + 3]!];
        if (r < base || r - base >= len) continue;
        const iommu = iommus.get(ph);
        if (iommu !== undefined) found = { iommu, id: (idBase + r - base) >>> 0 };
        break;
      }
    }
    out.set(d.name, found);
  }
  for (const d of m.platformDevices) {
    const node = root.children.find((n) => addrOf(n) === d.base && cellsOf(n, '#iommu-cells') === undefined);
    const spec = node ? cellsOf(node, 'iommus') : undefined;
    const iommu = spec && spec.length >= 2 ? iommus.get(spec[0]!) : undefined;
    out.set(d.name, spec && iommu !== undefined ? { iommu, id: spec[1]! } : null);
  }
  return out;
}
