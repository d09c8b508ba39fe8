/**
 * A machine described once: PCI segments, PCI and platform devices, IOMMUs and which devices each
 * translates under which Device ID (seed 004). Firmware tables are generated from it, and the same
 * description answers "which IOMMU, which ID" directly — the ground truth the table resolvers are checked
 * against.
 *
 * Device IDs (seed 004): 32-bit, per IOMMU, never overlapping within one IOMMU. A PCI range maps the
 * requester IDs (bus << 8 | devfn) of buses busStart..busEnd of one segment to idBase + (rid - busStart<<8);
 * platform devices get the ID the description chooses. For VT-d the ID is the requester ID itself.
 */
import { FirmwareError } from './errors.js';
import type { AcpiOem } from './acpi.js';

export interface PciRange {
  segment: number;
  busStart: number;
  busEnd: number;
  /** Device ID of requester ID (busStart, 0, 0). */
  idBase: number;
}

export interface PlatformId {
  /** Name of a platform device. */
  device: string;
  id: number;
}

interface IommuCommon {
  name: string;
  /** PCI ranges this IOMMU translates. */
  pci?: PciRange[];
  /** Platform devices this IOMMU translates. */
  platform?: PlatformId[];
}

export type IommuDesc =
  | (IommuCommon & { type: 'virtio-iommu-pci'; bdf: string })
  | (IommuCommon & { type: 'virtio-iommu-mmio'; base: bigint; size?: bigint })
  | (IommuCommon & {
      type: 'vtd';
      base: bigint;
      segment: number;
      /** INCLUDE_PCI_ALL: every device of the segment not claimed by another unit. */
      includePciAll?: boolean;
      /** Endpoints listed in device scopes (PCI device names). */
      devices?: string[];
      rmrr?: { base: bigint; limit: bigint; devices: string[] }[];
      atsr?: { allPorts: boolean; devices?: string[] };
      /** I/O APICs in the unit's scope (QEMU lists its IOAPIC at the pseudo bus 0xff). */
      ioapics?: { id: number; bus: number; device: number; function: number }[];
    })
  | (IommuCommon & { type: 'smmuv3'; base: bigint });

export interface PciDeviceDesc {
  name: string;
  segment: number;
  bus: number;
  device: number;
  function: number;
}

/** A PCI-to-PCI bridge or root port: the buses secondaryBus..subordinateBus sit below it. */
export interface PciBridgeDesc extends PciDeviceDesc {
  secondaryBus: number;
  subordinateBus: number;
}

export interface PlatformDeviceDesc {
  name: string;
  base: bigint;
  size: bigint;
}

export interface MachineDescription {
  name: string;
  oem: AcpiOem;
  /** DMAR host address width in bits (default 39). */
  hostAddressWidth: number;
  segments: { segment: number; busStart: number; busEnd: number }[];
  pciDevices: PciDeviceDesc[];
  /** Bridges (they are PCI functions too, but translate nothing of their own here). */
  bridges: PciBridgeDesc[];
  platformDevices: PlatformDeviceDesc[];
  iommus: IommuDesc[];
  /** An ITS group for IORT (MSI target of RIDs no SMMU translates). */
  its?: { base: bigint; identifier: number };
}

export interface Resolution {
  iommu: string;
  id: number;
}

// ---- parsing a JSON description -----------------------------------------------------------------

type Json = unknown;

function fail(path: string, message: string): never {
  throw new FirmwareError('MACHINE_INVALID', `${path}: ${message}`, { path });
}

function obj(v: Json, path: string): Record<string, Json> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'must be an object');
  return v as Record<string, Json>;
}

function arr(v: Json, path: string): Json[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail(path, 'must be an array');
  return v;
}

function str(v: Json, path: string): string {
  if (typeof v !== 'string' || v === '') fail(path, 'must be a non-empty string');
  return v;
}

/** A number or a "0x..." / decimal string, within [0, max]. */
function int(v: Json, path: string, max: bigint): bigint {
  let n: bigint;
  if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v);
  else if (typeof v === 'string' && /^(0x[0-9a-f]+|\d+)$/i.test(v)) n = BigInt(v);
  else fail(path, 'must be an integer (number or "0x..." string)');
  if (n < 0n || n > max) fail(path, `${n} is outside 0..${max}`);
  return n;
}

function small(v: Json, path: string, max: number): number {
  return Number(int(v, path, BigInt(max)));
}

/** "SSSS:BB:DD.F" or "BB:DD.F" (segment 0). */
export function parseBdf(text: string, path: string): { segment: number; bus: number; device: number; function: number } {
  const m = /^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i.exec(text);
  if (!m) fail(path, `"${text}" is not a BDF like 0000:00:03.0`);
  const device = parseInt(m[3]!, 16);
  if (device > 31) fail(path, `device ${device} > 31`);
  return { segment: m[1] ? parseInt(m[1], 16) : 0, bus: parseInt(m[2]!, 16), device, function: Number(m[4]) };
}

export function rid(bus: number, device: number, fn: number): number {
  return (bus << 8) | (device << 3) | fn;
}

const U32 = 0xffffffffn;
const U64 = (1n << 64n) - 1n;

/** Validate a JSON machine description; errors name the bad field. */
export function parseMachine(json: Json): MachineDescription {
  const root = obj(json, '$');
  const oemJ = root['oem'] === undefined ? {} : obj(root['oem'], '$.oem');
  const oem: AcpiOem = {};
  if (oemJ['oemId'] !== undefined) oem.oemId = asciiField(oemJ['oemId'], '$.oem.oemId', 6);
  if (oemJ['oemTableId'] !== undefined) oem.oemTableId = asciiField(oemJ['oemTableId'], '$.oem.oemTableId', 8);
  if (oemJ['oemRevision'] !== undefined) oem.oemRevision = small(oemJ['oemRevision'], '$.oem.oemRevision', 0xffffffff);
  if (oemJ['creatorId'] !== undefined) oem.creatorId = asciiField(oemJ['creatorId'], '$.oem.creatorId', 4);
  if (oemJ['creatorRevision'] !== undefined) oem.creatorRevision = small(oemJ['creatorRevision'], '$.oem.creatorRevision', 0xffffffff);

  const segments = arr(root['segments'], '$.segments').map((s, i) => {
    const p = `$.segments[${i}]`;
    const o = obj(s, p);
    const seg = { segment: small(o['segment'], `${p}.segment`, 0xffff), busStart: small(o['busStart'] ?? 0, `${p}.busStart`, 255), busEnd: small(o['busEnd'] ?? 255, `${p}.busEnd`, 255) };
    if (seg.busEnd < seg.busStart) fail(`${p}.busEnd`, 'is below busStart');
    return seg;
  });
  const names = new Set<string>();
  const named = (v: Json, p: string): string => {
    const n = str(v, p);
    if (names.has(n)) fail(p, `name "${n}" is used twice`);
    names.add(n);
    return n;
  };
  const pciDevices = arr(root['pciDevices'], '$.pciDevices').map((d, i) => {
    const p = `$.pciDevices[${i}]`;
    const o = obj(d, p);
    const name = named(o['name'], `${p}.name`);
    const b = parseBdf(str(o['bdf'], `${p}.bdf`), `${p}.bdf`);
    const seg = segments.find((s) => s.segment === b.segment);
    if (!seg) fail(`${p}.bdf`, `segment ${b.segment} is not described in $.segments`);
    if (b.bus < seg.busStart || b.bus > seg.busEnd) fail(`${p}.bdf`, `bus ${b.bus} is outside segment ${b.segment}'s buses ${seg.busStart}-${seg.busEnd}`);
    return { name, ...b };
  });
  const bridges = arr(root['bridges'], '$.bridges').map((d, i) => {
    const p = `$.bridges[${i}]`;
    const o = obj(d, p);
    const name = named(o['name'], `${p}.name`);
    const b = parseBdf(str(o['bdf'], `${p}.bdf`), `${p}.bdf`);
    const seg = segments.find((s) => s.segment === b.segment);
    if (!seg) fail(`${p}.bdf`, `segment ${b.segment} is not described in $.segments`);
    const secondaryBus = small(o['secondaryBus'], `${p}.secondaryBus`, 255);
    const subordinateBus = small(o['subordinateBus'] ?? secondaryBus, `${p}.subordinateBus`, 255);
    if (secondaryBus <= b.bus) fail(`${p}.secondaryBus`, `must be above the bridge's own bus ${b.bus}`);
    if (subordinateBus < secondaryBus) fail(`${p}.subordinateBus`, 'is below secondaryBus');
    if (subordinateBus > seg.busEnd) fail(`${p}.subordinateBus`, `is beyond segment ${b.segment}'s last bus ${seg.busEnd}`);
    return { name, ...b, secondaryBus, subordinateBus };
  });
  for (const [i, a] of bridges.entries()) {
    // Bridges nest or stay apart: their bus ranges never partly overlap.
    for (const b of bridges) {
      if (a === b || a.segment !== b.segment) continue;
      const overlap = a.secondaryBus <= b.subordinateBus && b.secondaryBus <= a.subordinateBus;
      const nested = (a.secondaryBus > b.secondaryBus && a.subordinateBus <= b.subordinateBus) || (b.secondaryBus > a.secondaryBus && b.subordinateBus <= a.subordinateBus);
      if (overlap && !nested) fail(`$.bridges[${i}]`, `buses ${a.secondaryBus}-${a.subordinateBus} partly overlap bridge "${b.name}"`);
    }
  }
  const platformDevices = arr(root['platformDevices'], '$.platformDevices').map((d, i) => {
    const p = `$.platformDevices[${i}]`;
    const o = obj(d, p);
    return { name: named(o['name'], `${p}.name`), base: int(o['base'], `${p}.base`, U64), size: int(o['size'] ?? 0x1000, `${p}.size`, U64) };
  });
  const iommus = arr(root['iommus'], '$.iommus').map((d, i) => parseIommu(obj(d, `$.iommus[${i}]`), `$.iommus[${i}]`, named, segments));
  const m: MachineDescription = {
    name: root['name'] === undefined ? 'machine' : str(root['name'], '$.name'),
    oem,
    hostAddressWidth: root['hostAddressWidth'] === undefined ? 39 : small(root['hostAddressWidth'], '$.hostAddressWidth', 64),
    segments,
    pciDevices,
    bridges,
    platformDevices,
    iommus,
  };
  if (root['its'] !== undefined) {
    const o = obj(root['its'], '$.its');
    m.its = { base: int(o['base'], '$.its.base', U64), identifier: small(o['identifier'] ?? 0, '$.its.identifier', 0xffffffff) };
  }
  checkMachine(m);
  return m;
}

function asciiField(v: Json, path: string, max: number): string {
  const s = str(v, path);
  if (s.length > max || !/^[\x20-\x7e]+$/.test(s)) fail(path, `must be printable ASCII of at most ${max} characters`);
  return s;
}

function parseIommu(
  o: Record<string, Json>,
  p: string,
  named: (v: Json, p: string) => string,
  segments: MachineDescription['segments'],
): IommuDesc {
  const name = named(o['name'], `${p}.name`);
  const pci = arr(o['pci'], `${p}.pci`).map((r, i) => {
    const q = `${p}.pci[${i}]`;
    const ro = obj(r, q);
    const range = {
      segment: small(ro['segment'] ?? 0, `${q}.segment`, 0xffff),
      busStart: small(ro['busStart'] ?? 0, `${q}.busStart`, 255),
      busEnd: small(ro['busEnd'] ?? 255, `${q}.busEnd`, 255),
      idBase: small(ro['idBase'] ?? 0, `${q}.idBase`, 0xffffffff),
    };
    if (range.busEnd < range.busStart) fail(`${q}.busEnd`, 'is below busStart');
    const seg = segments.find((s) => s.segment === range.segment);
    if (!seg) fail(`${q}.segment`, `segment ${range.segment} is not described in $.segments`);
    if (range.busStart < seg.busStart || range.busEnd > seg.busEnd) fail(q, `buses ${range.busStart}-${range.busEnd} are outside segment ${range.segment}`);
    if (BigInt(range.idBase) + BigInt((range.busEnd - range.busStart + 1) * 256) - 1n > U32) fail(`${q}.idBase`, 'the range runs past 2^32 - 1');
    return range;
  });
  const platform = arr(o['platform'], `${p}.platform`).map((r, i) => {
    const q = `${p}.platform[${i}]`;
    const ro = obj(r, q);
    return { device: str(ro['device'], `${q}.device`), id: small(ro['id'], `${q}.id`, 0xffffffff) };
  });
  const common = { name, pci, platform };
  const type = str(o['type'], `${p}.type`);
  switch (type) {
    case 'virtio-iommu-pci':
      return { ...common, type, bdf: str(o['bdf'], `${p}.bdf`) };
    case 'virtio-iommu-mmio':
      return { ...common, type, base: int(o['base'], `${p}.base`, U64), size: int(o['size'] ?? 0x200, `${p}.size`, U64) };
    case 'smmuv3':
      return { ...common, type, base: int(o['base'], `${p}.base`, U64) };
    case 'vtd': {
      const atsr = o['atsr'] === undefined ? undefined : obj(o['atsr'], `${p}.atsr`);
      const v: IommuDesc = {
        ...common,
        type,
        base: int(o['base'], `${p}.base`, U64),
        segment: small(o['segment'] ?? 0, `${p}.segment`, 0xffff),
        includePciAll: o['includePciAll'] === true,
        devices: arr(o['devices'], `${p}.devices`).map((d, i) => str(d, `${p}.devices[${i}]`)),
        rmrr: arr(o['rmrr'], `${p}.rmrr`).map((r, i) => {
          const q = `${p}.rmrr[${i}]`;
          const ro = obj(r, q);
          return { base: int(ro['base'], `${q}.base`, U64), limit: int(ro['limit'], `${q}.limit`, U64), devices: arr(ro['devices'], `${q}.devices`).map((d, j) => str(d, `${q}.devices[${j}]`)) };
        }),
      };
      if (atsr) v.atsr = { allPorts: atsr['allPorts'] === true, devices: arr(atsr['devices'], `${p}.atsr.devices`).map((d, i) => str(d, `${p}.atsr.devices[${i}]`)) };
      v.ioapics = arr(o['ioapics'], `${p}.ioapics`).map((a, i) => {
        const q = `${p}.ioapics[${i}]`;
        const ao = obj(a, q);
        const b = parseBdf(str(ao['bdf'], `${q}.bdf`), `${q}.bdf`);
        return { id: small(ao['id'] ?? 0, `${q}.id`, 255), bus: b.bus, device: b.device, function: b.function };
      });
      return v;
    }
    default:
      fail(`${p}.type`, `"${type}" is not one of virtio-iommu-pci, virtio-iommu-mmio, vtd, smmuv3`);
  }
}

/** Cross-field rules: references resolve, IDs never overlap within one IOMMU, a device has one IOMMU. */
function checkMachine(m: MachineDescription): void {
  const plat = new Map(m.platformDevices.map((d) => [d.name, d]));
  const pci = new Map(m.pciDevices.map((d) => [d.name, d]));
  m.iommus.forEach((io, i) => {
    const p = `$.iommus[${i}]`;
    const ranges: { lo: bigint; hi: bigint; what: string }[] = [];
    (io.pci ?? []).forEach((r, j) => {
      ranges.push({ lo: BigInt(r.idBase), hi: BigInt(r.idBase) + BigInt((r.busEnd - r.busStart + 1) * 256) - 1n, what: `${p}.pci[${j}]` });
    });
    (io.platform ?? []).forEach((pl, j) => {
      if (!plat.has(pl.device)) fail(`${p}.platform[${j}].device`, `no platform device named "${pl.device}"`);
      ranges.push({ lo: BigInt(pl.id), hi: BigInt(pl.id), what: `${p}.platform[${j}]` });
    });
    ranges.sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
    for (let k = 1; k < ranges.length; k++) {
      if (ranges[k]!.lo <= ranges[k - 1]!.hi) fail(ranges[k]!.what, `Device IDs overlap ${ranges[k - 1]!.what} within IOMMU "${io.name}"`);
    }
    if (io.type === 'virtio-iommu-pci') {
      const b = parseBdf(io.bdf, `${p}.bdf`);
      if (!m.segments.some((s) => s.segment === b.segment && b.bus >= s.busStart && b.bus <= s.busEnd)) fail(`${p}.bdf`, 'is not on a described segment and bus');
    }
    if (io.type === 'vtd') {
      if (!m.segments.some((s) => s.segment === io.segment)) fail(`${p}.segment`, `segment ${io.segment} is not described`);
      if ((io.pci ?? []).length > 0 || (io.platform ?? []).length > 0) fail(p, 'VT-d units translate by requester ID: use includePciAll or devices, not pci/platform ranges');
      for (const [k, d] of (io.devices ?? []).entries()) {
        const dev = pci.get(d) ?? m.bridges.find((b) => b.name === d);
        if (!dev) fail(`${p}.devices[${k}]`, `no PCI device or bridge named "${d}"`);
        if (dev.segment !== io.segment) fail(`${p}.devices[${k}]`, `"${d}" is on segment ${dev.segment}, the unit on ${io.segment}`);
      }
      for (const [k, r] of (io.rmrr ?? []).entries()) {
        if (r.limit < r.base) fail(`${p}.rmrr[${k}].limit`, 'is below base');
        for (const d of r.devices) if (!pci.has(d)) fail(`${p}.rmrr[${k}].devices`, `no PCI device named "${d}"`);
      }
    }
  });
  if (m.iommus.filter((io) => io.type === 'vtd' && io.includePciAll).length > new Set(m.iommus.filter((io) => io.type === 'vtd' && io.includePciAll).map((io) => (io as { segment: number }).segment)).size) {
    fail('$.iommus', 'at most one VT-d unit per segment may have includePciAll');
  }
  // Every device is behind at most one IOMMU.
  for (const d of [...m.pciDevices.map((x) => x.name), ...m.platformDevices.map((x) => x.name)]) {
    const behind = m.iommus.filter((io) => claims(m, io, d) !== undefined).map((io) => io.name);
    if (behind.length > 1) fail('$.iommus', `device "${d}" is behind more than one IOMMU: ${behind.join(', ')}`);
  }
}

/** The ID under which `io` translates device `name`, if it does (INCLUDE_PCI_ALL handled by the caller). */
function claims(m: MachineDescription, io: IommuDesc, name: string): number | undefined {
  const dev = m.pciDevices.find((d) => d.name === name);
  if (dev) {
    if (io.type === 'vtd') {
      // Named directly, or below a bridge the unit names (a sub-hierarchy scope).
      const direct = io.devices?.includes(name) ?? false;
      const below = (io.devices ?? []).some((n) => {
        const br = m.bridges.find((b) => b.name === n);
        return br !== undefined && br.segment === dev.segment && dev.bus >= br.secondaryBus && dev.bus <= br.subordinateBus;
      });
      return direct || below ? rid(dev.bus, dev.device, dev.function) : undefined;
    }
    for (const r of io.pci ?? []) {
      if (r.segment === dev.segment && dev.bus >= r.busStart && dev.bus <= r.busEnd) return r.idBase + (rid(dev.bus, dev.device, dev.function) - (r.busStart << 8));
    }
    return undefined;
  }
  return io.platform?.find((p) => p.device === name)?.id;
}

/**
 * The bridges from a root bus down to `bus` (outermost first): the path a DMAR device scope spells. A bus
 * no bridge claims is a root bus.
 */
export function bridgePath(m: MachineDescription, segment: number, bus: number): PciBridgeDesc[] {
  const path: PciBridgeDesc[] = [];
  let at = bus;
  for (let guard = 0; guard < 256; guard++) {
    // The innermost bridge whose range holds `at`.
    const parent = m.bridges
      .filter((b) => b.segment === segment && at >= b.secondaryBus && at <= b.subordinateBus)
      .sort((a, b) => b.secondaryBus - a.secondaryBus)[0];
    if (!parent) return path;
    path.unshift(parent);
    at = parent.bus;
  }
  return path;
}

/** The ground truth: which IOMMU translates each device, under which ID (null: none). */
export function resolveMachine(m: MachineDescription): Map<string, Resolution | null> {
  const out = new Map<string, Resolution | null>();
  for (const d of [...m.pciDevices, ...m.platformDevices]) {
    let found: Resolution | null = null;
    for (const io of m.iommus) {
      const id = claims(m, io, d.name);
      if (id !== undefined) found = { iommu: io.name, id };
    }
    if (found === null && 'segment' in d) {
      // INCLUDE_PCI_ALL catches what no explicit scope claimed, on its segment.
      const all = m.iommus.find((io) => io.type === 'vtd' && io.includePciAll && io.segment === d.segment);
      if (all) found = { iommu: all.name, id: rid(d.bus, d.device, d.function) };
    }
    out.set(d.name, found);
  }
  return out;
}
