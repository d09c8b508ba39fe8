/**
 * ACPI IORT, the I/O Remapping Table of Arm systems (Arm DEN 0049; facts in ../shared/reference/firmware.md):
 * how requester IDs of root complexes and named components map through SMMUs to ITS groups.
 *
 * After the header: node_count u32 @36, node_offset u32 @40, reserved u32 @44. Node header (16 B): type u8,
 * length u16, revision u8, identifier u32, id_mapping_count u32, id_mapping_offset u32. ID mapping (20 B):
 * input_base, id_count (IDs minus one), output_base, output_reference (node offset), flags (bit 0 single).
 */
import { FirmwareError } from './errors.js';
import { buildAcpiTable, checkAcpiTable, rebuildWithHeader, Reader, Writer, type AcpiHeader } from './acpi.js';
import type { MachineDescription } from './machine.js';

export const IORT_NODE_ITS_GROUP = 0;
export const IORT_NODE_NAMED_COMPONENT = 1;
export const IORT_NODE_ROOT_COMPLEX = 2;
export const IORT_NODE_SMMU_V3 = 4;
export const IORT_ID_SINGLE_MAPPING = 1;
const TABLE_REVISION = 3;
const FIRST_NODE = 48;
const MAPPING_SIZE = 20;

export interface IdMapping {
  inputBase: number;
  /** Number of IDs minus one. */
  idCount: number;
  outputBase: number;
  outputReference: number;
  flags: number;
}

interface NodeCommon {
  offset: number;
  length: number;
  revision: number;
  identifier: number;
  /** The type-specific bytes between the node header and the ID mappings, as found. */
  data: Uint8Array;
  mappings: IdMapping[];
}

export type IortNode =
  | (NodeCommon & { type: 0; its: number[] })
  | (NodeCommon & { type: 1; name: string })
  | (NodeCommon & { type: 2; segment: number })
  | (NodeCommon & { type: 4; base: bigint; model: number })
  | (NodeCommon & { type: number; unknown: true });

export interface Iort {
  header: AcpiHeader;
  nodes: IortNode[];
}

/** The ACPI namespace path we give a platform device's named component. */
export function namedComponentPath(device: string): string {
  return `\\_SB.${device.toUpperCase().replace(/[^A-Z0-9_]/g, '_').slice(0, 4).padEnd(4, '_')}`;
}

/** IORT for the machine's SMMUv3s (and ITS), or undefined when it has no SMMUv3. */
export function buildIort(m: MachineDescription): Uint8Array | undefined {
  const smmus = m.iommus.filter((io) => io.type === 'smmuv3');
  if (smmus.length === 0) return undefined;
  const nodes = new Writer();
  let count = 0;
  const header = (type: number, revision: number, identifier: number, mappings: number, dataLen: number): number => {
    const at = nodes.length;
    const mapOffset = 16 + dataLen;
    nodes.u8(type).u16(mapOffset + MAPPING_SIZE * mappings).u8(revision).u32(identifier).u32(mappings).u32(mappings > 0 ? mapOffset : 0);
    count++;
    return FIRST_NODE + at;
  };
  const mapping = (inputBase: number, ids: number, outputBase: number, ref: number, flags = 0): void => {
    nodes.u32(inputBase).u32(ids - 1).u32(outputBase).u32(ref).u32(flags);
  };
  let itsRef = 0;
  if (m.its) {
    itsRef = header(IORT_NODE_ITS_GROUP, 1, count, 0, 8);
    nodes.u32(1).u32(m.its.identifier);
  }
  const smmuRef = new Map<string, number>();
  for (const s of smmus) {
    const toIts = m.its ? 1 : 0;
    smmuRef.set(s.name, header(IORT_NODE_SMMU_V3, 4, count, toIts, 52));
    // base, flags (COHACC_OVERRIDE), reserved, VATOS, model (generic), event/PRI/GERR/sync GSIVs,
    // proximity domain, device ID mapping index.
    nodes.u64(s.base).u32(1).u32(0).u64(0n).u32(0).u32(0).u32(0).u32(0).u32(0).u32(0).u32(0);
    if (toIts) mapping(0, 0x10000, 0, itsRef);
  }
  for (const seg of m.segments) {
    const ranges = smmus.flatMap((s) => (s.pci ?? []).filter((r) => r.segment === seg.segment).map((r) => ({ r, ref: smmuRef.get(s.name)! })));
    ranges.sort((a, b) => a.r.busStart - b.r.busStart);
    const maps: [number, number, number, number][] = [];
    let next = seg.busStart << 8;
    for (const { r, ref } of ranges) {
      const lo = r.busStart << 8;
      if (m.its && lo > next) maps.push([next, lo - next, next, itsRef]);
      maps.push([lo, (r.busEnd - r.busStart + 1) * 256, r.idBase, ref]);
      next = (r.busEnd + 1) << 8;
    }
    const end = (seg.busEnd + 1) << 8;
    if (m.its && next < end) maps.push([next, end - next, next, itsRef]);
    header(IORT_NODE_ROOT_COMPLEX, 3, count, maps.length, 20);
    // memory access properties (coherent), ATS attribute, segment, memory address size limit, reserved.
    nodes.u32(1).u8(0).u16(0).u8(0).u32(0).u32(seg.segment).u8(64).zeros(3);
    for (const [input, ids, output, ref] of maps) mapping(input, ids, output, ref);
  }
  for (const s of smmus) {
    for (const p of s.platform ?? []) {
      const name = namedComponentPath(p.device);
      const nameBytes = new TextEncoder().encode(name);
      const dataLen = (13 + nameBytes.length + 1 + 3) & ~3;
      header(IORT_NODE_NAMED_COMPONENT, 4, count, 1, dataLen);
      const start = nodes.length;
      nodes.u32(0).u32(1).u8(0).u16(0).u8(0).u8(64).bytes(nameBytes).u8(0);
      nodes.zeros(dataLen - (nodes.length - start));
      mapping(0, 1, p.id, smmuRef.get(s.name)!, IORT_ID_SINGLE_MAPPING);
    }
  }
  const body = new Writer().u32(count).u32(FIRST_NODE).u32(0).bytes(nodes.done()).done();
  return buildAcpiTable('IORT', TABLE_REVISION, m.oem, body);
}

export function parseIort(bytes: Uint8Array): Iort {
  const header = checkAcpiTable(bytes, 'IORT');
  const t = new Reader(bytes.subarray(0, header.length), 'IORT');
  const count = t.u32(36, 'node_count');
  const first = t.u32(40, 'node_offset');
  if (first < FIRST_NODE) throw new FirmwareError('IORT_NODE_OFFSET', `node_offset ${first} is inside the header`);
  // Every node takes at least 16 bytes, so a count beyond what fits is a lie, not a loop to follow.
  if (count > (header.length - first) / 16) throw new FirmwareError('IORT_NODE_COUNT', `${count} nodes cannot fit in ${header.length} bytes`);
  const nodes: IortNode[] = [];
  let at = first;
  for (let i = 0; i < count; i++) {
    const type = t.u8(at, `node ${i} type`);
    const length = t.u16(at + 1, `node ${i} length`);
    if (length < 16) throw new FirmwareError('IORT_NODE_LENGTH', `node ${i} at ${at} has length ${length}`, { offset: at });
    t.need(at, length, `node ${i}`);
    const mapCount = t.u32(at + 8, 'id_mapping_count');
    const mapOffset = t.u32(at + 12, 'id_mapping_offset');
    if (mapCount > 0 && (mapOffset < 16 || mapOffset + MAPPING_SIZE * mapCount > length)) {
      throw new FirmwareError('IORT_MAPPINGS', `node ${i} at ${at}: ${mapCount} ID mappings at +${mapOffset} do not fit its ${length} bytes`, { offset: at });
    }
    const mappings: IdMapping[] = [];
    for (let k = 0; k < mapCount; k++) {
      const p = at + mapOffset + MAPPING_SIZE * k;
      mappings.push({
        inputBase: t.u32(p, 'input_base'),
        idCount: t.u32(p + 4, 'id_count'),
        outputBase: t.u32(p + 8, 'output_base'),
        outputReference: t.u32(p + 12, 'output_reference'),
        flags: t.u32(p + 16, 'flags'),
      });
    }
    // Type-specific data runs from the header to the mappings (or the node's end).
    const dataEnd = mapCount > 0 ? at + mapOffset : at + length;
    if (mapCount > 0 && at + mapOffset + MAPPING_SIZE * mapCount !== at + length) {
      throw new FirmwareError('IORT_MAPPINGS', `node ${i} at ${at}: ID mappings do not end the node`, { offset: at });
    }
    const data = bytes.slice(at + 16, dataEnd);
    const common = { offset: at, length, revision: t.u8(at + 3, 'revision'), identifier: t.u32(at + 4, 'identifier'), data, mappings };
    switch (type) {
      case IORT_NODE_ITS_GROUP: {
        const n = t.u32(at + 16, 'its_count');
        if (20 + 4 * n > length) throw new FirmwareError('IORT_NODE_LENGTH', `ITS group at ${at} lists ${n} ITSs in ${length} bytes`);
        nodes.push({ ...common, type, its: Array.from({ length: n }, (_, k) => t.u32(at + 20 + 4 * k, 'its id')) });
        break;
      }
      case IORT_NODE_NAMED_COMPONENT: {
        const end = mapCount > 0 ? at + mapOffset : at + length;
        let name = '';
        for (let p = at + 29; p < end; p++) {
          const c = t.u8(p, 'device object name');
          if (c === 0) break;
          name += String.fromCharCode(c);
        }
        nodes.push({ ...common, type, name });
        break;
      }
      case IORT_NODE_ROOT_COMPLEX:
        nodes.push({ ...common, type, segment: t.u32(at + 28, 'pci segment') });
        break;
      case IORT_NODE_SMMU_V3:
        nodes.push({ ...common, type, base: t.u64(at + 16, 'base address'), model: t.u32(at + 40, 'model') });
        break;
      default:
        nodes.push({ ...common, type, unknown: true });
    }
    at += length;
  }
  return { header, nodes };
}

/** Bytes of a parsed IORT: parse then serialize is exact. */
export function serializeIort(v: Iort): Uint8Array {
  const first = v.nodes[0]?.offset ?? FIRST_NODE;
  const w = new Writer().u32(v.nodes.length).u32(first).u32(0);
  w.zeros(first - FIRST_NODE);
  for (const n of v.nodes) {
    w.u8(n.type).u16(n.length).u8(n.revision).u32(n.identifier).u32(n.mappings.length).u32(n.mappings.length > 0 ? 16 + n.data.length : 0);
    w.bytes(n.data);
    for (const m of n.mappings) w.u32(m.inputBase).u32(m.idCount).u32(m.outputBase).u32(m.outputReference).u32(m.flags);
  }
  return rebuildWithHeader(v.header, w.done());
}

const NODE_NAMES: Record<number, string> = { 0: 'ITS group', 1: 'named component', 2: 'root complex', 3: 'SMMUv1/v2', 4: 'SMMUv3', 5: 'PMCG', 6: 'RMR' };

export function renderIort(v: Iort): string {
  const h = v.header;
  const lines = [`[IORT] I/O Remapping Table, revision ${h.revision}, ${h.length} bytes, OEM "${h.oem_id}" "${h.oem_table_id}" rev ${h.oem_revision}`];
  for (const n of v.nodes) {
    let what = NODE_NAMES[n.type] ?? `type ${n.type}`;
    if ('its' in n) what += ` [${n.its.join(', ')}]`;
    if ('name' in n) what += ` ${n.name}`;
    if ('segment' in n) what += ` segment ${n.segment}`;
    if ('base' in n) what += ` at 0x${n.base.toString(16)}`;
    lines.push(`  @0x${n.offset.toString(16).padStart(3, '0')} ${what} (id ${n.identifier})`);
    for (const m of n.mappings) {
      lines.push(`      IDs 0x${m.inputBase.toString(16)}+${m.idCount + 1} -> 0x${m.outputBase.toString(16)} at node @0x${m.outputReference.toString(16)}${m.flags & 1 ? ' (single)' : ''}`);
    }
  }
  return lines.join('\n');
}
