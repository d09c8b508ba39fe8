/**
 * ACPI DMAR, the DMA Remapping table of Intel VT-d (VT-d spec chapter 8; facts in
 * ../shared/reference/firmware.md): remapping units (DRHD) with the devices in their scope, reserved
 * memory regions (RMRR) and ATS reporting (ATSR).
 *
 * After the header: host_address_width u8 @36 (width - 1), flags u8 @37, reserved[10]; then structures
 * {type u16, length u16, ...}. Device scope: {type u8, length u8, reserved u16, enumeration_id u8,
 * start_bus u8, path: {device u8, function u8}[]}.
 */
import { FirmwareError } from './errors.js';
import { buildAcpiTable, checkAcpiTable, rebuildWithHeader, Reader, Writer, type AcpiHeader } from './acpi.js';
import { bridgePath, type MachineDescription, type PciDeviceDesc } from './machine.js';

export const DMAR_TYPE_DRHD = 0;
export const DMAR_TYPE_RMRR = 1;
export const DMAR_TYPE_ATSR = 2;
export const DMAR_DRHD_INCLUDE_PCI_ALL = 1;
export const DMAR_ATSR_ALL_PORTS = 1;
export const DMAR_SCOPE_PCI_ENDPOINT = 1;
export const DMAR_SCOPE_PCI_SUB_HIERARCHY = 2;
export const DMAR_SCOPE_IOAPIC = 3;
export const DMAR_SCOPE_HPET = 4;
export const DMAR_SCOPE_ACPI_NAMESPACE = 5;
const FIRST_STRUCT = 48;

export interface DeviceScope {
  type: number;
  enumerationId: number;
  startBus: number;
  path: { device: number; function: number }[];
}

export type DmarStruct =
  | { type: 0; offset: number; flags: number; size: number; segment: number; registerBase: bigint; scopes: DeviceScope[] }
  | { type: 1; offset: number; segment: number; base: bigint; limit: bigint; scopes: DeviceScope[] }
  | { type: 2; offset: number; flags: number; segment: number; scopes: DeviceScope[] }
  | { type: number; offset: number; unknown: true; length: number };

export interface Dmar {
  header: AcpiHeader;
  hostAddressWidth: number;
  flags: number;
  structs: DmarStruct[];
}

/** A device scope: from the root bus through every bridge down to the device (or bridge) itself. */
function scope(w: Writer, type: number, d: PciDeviceDesc, m: MachineDescription): void {
  const bridges = bridgePath(m, d.segment, d.bus);
  const path = [...bridges, d];
  w.u8(type).u8(6 + 2 * path.length).u16(0).u8(0).u8(path[0]!.bus);
  for (const hop of path) w.u8(hop.device).u8(hop.function);
}

/** DMAR for the machine's VT-d units, or undefined when it has none. */
export function buildDmar(m: MachineDescription, flags = 0): Uint8Array | undefined {
  const units = m.iommus.filter((io) => io.type === 'vtd');
  if (units.length === 0) return undefined;
  const dev = (name: string): PciDeviceDesc => (m.pciDevices.find((d) => d.name === name) ?? m.bridges.find((b) => b.name === name))!;
  const isBridge = (name: string): boolean => m.bridges.some((b) => b.name === name);
  const w = new Writer().u8(m.hostAddressWidth - 1).u8(flags).zeros(10);
  // spec: a unit with INCLUDE_PCI_ALL comes last among the units of its segment.
  const ordered = [...units.filter((u) => !u.includePciAll), ...units.filter((u) => u.includePciAll)];
  for (const u of ordered) {
    const at = w.length;
    w.u16(DMAR_TYPE_DRHD).u16(0).u8(u.includePciAll ? DMAR_DRHD_INCLUDE_PCI_ALL : 0).u8(0).u16(u.segment).u64(u.base);
    for (const a of u.ioapics ?? []) w.u8(DMAR_SCOPE_IOAPIC).u8(8).u16(0).u8(a.id).u8(a.bus).u8(a.device).u8(a.function);
    for (const d of u.devices ?? []) scope(w, isBridge(d) ? DMAR_SCOPE_PCI_SUB_HIERARCHY : DMAR_SCOPE_PCI_ENDPOINT, dev(d), m);
    w.patchU16(at + 2, w.length - at);
  }
  for (const u of units) {
    for (const r of u.rmrr ?? []) {
      const at = w.length;
      w.u16(DMAR_TYPE_RMRR).u16(0).u16(0).u16(u.segment).u64(r.base).u64(r.limit);
      for (const d of r.devices) scope(w, DMAR_SCOPE_PCI_ENDPOINT, dev(d), m);
      w.patchU16(at + 2, w.length - at);
    }
  }
  for (const u of units) {
    if (!u.atsr) continue;
    const at = w.length;
    w.u16(DMAR_TYPE_ATSR).u16(0).u8(u.atsr.allPorts ? DMAR_ATSR_ALL_PORTS : 0).u8(0).u16(u.segment);
    for (const d of u.atsr.devices ?? []) scope(w, DMAR_SCOPE_PCI_SUB_HIERARCHY, dev(d), m);
    w.patchU16(at + 2, w.length - at);
  }
  return buildAcpiTable('DMAR', 1, m.oem, w.done());
}

function parseScopes(t: Reader, from: number, to: number, where: string): DeviceScope[] {
  const out: DeviceScope[] = [];
  let at = from;
  while (at < to) {
    const type = t.u8(at, `${where} scope type`);
    const len = t.u8(at + 1, `${where} scope length`);
    if (len < 6 || len % 2 !== 0 || at + len > to) {
      throw new FirmwareError('DMAR_SCOPE_LENGTH', `${where}: device scope at ${at} has length ${len}`, { offset: at });
    }
    const path: DeviceScope['path'] = [];
    for (let p = at + 6; p < at + len; p += 2) path.push({ device: t.u8(p, 'path device'), function: t.u8(p + 1, 'path function') });
    out.push({ type, enumerationId: t.u8(at + 4, 'enumeration id'), startBus: t.u8(at + 5, 'start bus'), path });
    at += len;
  }
  return out;
}

export function parseDmar(bytes: Uint8Array): Dmar {
  const header = checkAcpiTable(bytes, 'DMAR');
  const t = new Reader(bytes.subarray(0, header.length), 'DMAR');
  const hostAddressWidth = t.u8(36, 'host_address_width') + 1;
  const flags = t.u8(37, 'flags');
  const structs: DmarStruct[] = [];
  let at = FIRST_STRUCT;
  while (at < header.length) {
    const type = t.u16(at, 'structure type');
    const len = t.u16(at + 2, 'structure length');
    if (len < 4) throw new FirmwareError('DMAR_STRUCT_LENGTH', `structure at ${at} has length ${len}`, { offset: at });
    t.need(at, len, `structure at ${at}`);
    const need = (n: number): void => {
      if (len < n) throw new FirmwareError('DMAR_STRUCT_LENGTH', `structure type ${type} at ${at} needs ${n} bytes, has ${len}`, { offset: at });
    };
    const where = `structure at ${at}`;
    switch (type) {
      case DMAR_TYPE_DRHD:
        need(16);
        structs.push({ type, offset: at, flags: t.u8(at + 4, 'flags'), size: t.u8(at + 5, 'size'), segment: t.u16(at + 6, 'segment'), registerBase: t.u64(at + 8, 'register base'), scopes: parseScopes(t, at + 16, at + len, where) });
        break;
      case DMAR_TYPE_RMRR:
        need(24);
        structs.push({ type, offset: at, segment: t.u16(at + 6, 'segment'), base: t.u64(at + 8, 'base'), limit: t.u64(at + 16, 'limit'), scopes: parseScopes(t, at + 24, at + len, where) });
        break;
      case DMAR_TYPE_ATSR:
        need(8);
        structs.push({ type, offset: at, flags: t.u8(at + 4, 'flags'), segment: t.u16(at + 6, 'segment'), scopes: parseScopes(t, at + 8, at + len, where) });
        break;
      default:
        structs.push({ type, offset: at, unknown: true, length: len });
    }
    at += len;
  }
  return { header, hostAddressWidth, flags, structs };
}

function writeScopes(w: Writer, scopes: DeviceScope[]): void {
  for (const s of scopes) {
    w.u8(s.type).u8(6 + 2 * s.path.length).u16(0).u8(s.enumerationId).u8(s.startBus);
    for (const p of s.path) w.u8(p.device).u8(p.function);
  }
}

/** Bytes of a parsed DMAR: parse then serialize is exact for tables whose reserved fields are zero. */
export function serializeDmar(d: Dmar, raw?: Uint8Array): Uint8Array {
  const w = new Writer().u8(d.hostAddressWidth - 1).u8(d.flags).zeros(10);
  for (const s of d.structs) {
    const at = w.length;
    if ('unknown' in s) {
      if (!raw) throw new FirmwareError('DMAR_UNKNOWN_STRUCT', `structure type ${s.type} can only be copied from the original bytes`);
      w.bytes(raw.subarray(s.offset, s.offset + s.length));
      continue;
    }
    if (s.type === 0) w.u16(0).u16(0).u8(s.flags).u8(s.size).u16(s.segment).u64(s.registerBase);
    else if (s.type === 1) w.u16(1).u16(0).u16(0).u16(s.segment).u64(s.base).u64(s.limit);
    else w.u16(2).u16(0).u8(s.flags).u8(0).u16(s.segment);
    writeScopes(w, s.scopes);
    w.patchU16(at + 2, w.length - at);
  }
  return rebuildWithHeader(d.header, w.done());
}

const SCOPE_NAMES: Record<number, string> = { 1: 'PCI endpoint', 2: 'PCI sub-hierarchy', 3: 'IOAPIC', 4: 'HPET', 5: 'ACPI namespace' };

export function renderDmar(d: Dmar): string {
  const h = d.header;
  const lines = [
    `[DMAR] DMA Remapping table, revision ${h.revision}, ${h.length} bytes, OEM "${h.oem_id}" "${h.oem_table_id}" rev ${h.oem_revision}`,
    `  host address width ${d.hostAddressWidth}, flags 0x${d.flags.toString(16)}`,
  ];
  const scopes = (ss: DeviceScope[]): string[] =>
    ss.map((s) => `      scope: ${SCOPE_NAMES[s.type] ?? `type ${s.type}`} id ${s.enumerationId}, bus ${s.startBus}, path ${s.path.map((p) => `${p.device.toString(16).padStart(2, '0')}.${p.function}`).join(' / ')}`);
  for (const s of d.structs) {
    const at = `  @0x${s.offset.toString(16).padStart(3, '0')}`;
    if ('unknown' in s) lines.push(`${at} structure type ${s.type}, ${s.length} bytes`);
    else if (s.type === 0) lines.push(`${at} DRHD segment ${s.segment}, registers 0x${s.registerBase.toString(16)}${s.flags & 1 ? ', INCLUDE_PCI_ALL' : ''}`, ...scopes(s.scopes));
    else if (s.type === 1) lines.push(`${at} RMRR segment ${s.segment}, 0x${s.base.toString(16)}-0x${s.limit.toString(16)}`, ...scopes(s.scopes));
    else lines.push(`${at} ATSR segment ${s.segment}${s.flags & 1 ? ', ALL_PORTS' : ''}`, ...scopes(s.scopes));
  }
  return lines.join('\n');
}
