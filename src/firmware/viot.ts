/**
 * ACPI VIOT, the Virtual I/O Translation table (ACPI 6.4+, 5.2.31; facts in ../shared/reference/firmware.md):
 * which endpoints each virtio-iommu translates, and under which endpoint IDs.
 *
 * Layout after the 36-byte header: node_count u16 @36, node_offset u16 @38, reserved[8] @40; nodes from
 * node_offset, each {type u8, reserved u8, length u16, ...}. Types: 1 PCI range (24 B), 2 single MMIO
 * endpoint (24 B), 3 virtio-pci IOMMU (16 B), 4 virtio-mmio IOMMU (16 B).
 */
import { FirmwareError } from './errors.js';
import { buildAcpiTable, checkAcpiTable, rebuildWithHeader, Reader, Writer, type AcpiHeader } from './acpi.js';
import { parseBdf, rid, type MachineDescription } from './machine.js';

export const VIOT_NODE_PCI_RANGE = 1;
export const VIOT_NODE_MMIO = 2;
export const VIOT_NODE_VIRTIO_IOMMU_PCI = 3;
export const VIOT_NODE_VIRTIO_IOMMU_MMIO = 4;
const HEADER_END = 48;

export type ViotNode =
  | { type: 1; offset: number; endpointStart: number; segmentStart: number; segmentEnd: number; bdfStart: number; bdfEnd: number; outputNode: number }
  | { type: 2; offset: number; endpointId: number; baseAddress: bigint; outputNode: number }
  | { type: 3; offset: number; segment: number; bdf: number }
  | { type: 4; offset: number; baseAddress: bigint }
  | { type: number; offset: number; unknown: true; length: number };

export interface Viot {
  header: AcpiHeader;
  nodeOffset: number;
  nodes: ViotNode[];
}

/** VIOT for the machine's virtio-iommus, or undefined when it has none. */
export function buildViot(m: MachineDescription): Uint8Array | undefined {
  const viommus = m.iommus.filter((io) => io.type === 'virtio-iommu-pci' || io.type === 'virtio-iommu-mmio');
  if (viommus.length === 0) return undefined;
  const w = new Writer();
  const nodeOffsets = new Map<string, number>();
  let count = 0;
  // IOMMU nodes first (as QEMU lays them out), so endpoint nodes can point back at them.
  for (const io of viommus) {
    nodeOffsets.set(io.name, HEADER_END + w.length);
    count++;
    if (io.type === 'virtio-iommu-pci') {
      const b = parseBdf(io.bdf, io.name);
      w.u8(VIOT_NODE_VIRTIO_IOMMU_PCI).u8(0).u16(16).u16(b.segment).u16(rid(b.bus, b.device, b.function)).zeros(8);
    } else if (io.type === 'virtio-iommu-mmio') {
      w.u8(VIOT_NODE_VIRTIO_IOMMU_MMIO).u8(0).u16(16).zeros(4).u64(io.base);
    }
  }
  for (const io of viommus) {
    const out = nodeOffsets.get(io.name)!;
    for (const r of io.pci ?? []) {
      count++;
      w.u8(VIOT_NODE_PCI_RANGE).u8(0).u16(24).u32(r.idBase).u16(r.segment).u16(r.segment).u16(r.busStart << 8).u16((r.busEnd << 8) | 0xff).u16(out).zeros(6);
    }
    for (const p of io.platform ?? []) {
      const dev = m.platformDevices.find((d) => d.name === p.device)!;
      count++;
      w.u8(VIOT_NODE_MMIO).u8(0).u16(24).u32(p.id).u64(dev.base).u16(out).zeros(6);
    }
  }
  const body = new Writer().u16(count).u16(HEADER_END).zeros(8).bytes(w.done()).done();
  return buildAcpiTable('VIOT', 0, m.oem, body);
}

/** Parse a VIOT as an OS would, refusing anything that points outside the table. */
export function parseViot(bytes: Uint8Array): Viot {
  const header = checkAcpiTable(bytes, 'VIOT');
  const t = new Reader(bytes.subarray(0, header.length), 'VIOT');
  const count = t.u16(36, 'node_count');
  const nodeOffset = t.u16(38, 'node_offset');
  if (nodeOffset < HEADER_END) throw new FirmwareError('VIOT_NODE_OFFSET', `node_offset ${nodeOffset} is inside the header`);
  const nodes: ViotNode[] = [];
  let at = nodeOffset;
  for (let i = 0; i < count; i++) {
    const type = t.u8(at, `node ${i} type`);
    const length = t.u16(at + 2, `node ${i} length`);
    if (length < 4) throw new FirmwareError('VIOT_NODE_LENGTH', `node ${i} at ${at} has length ${length}`, { offset: at });
    t.need(at, length, `node ${i}`);
    const need = (n: number): void => {
      if (length < n) throw new FirmwareError('VIOT_NODE_LENGTH', `node ${i} (type ${type}) needs ${n} bytes, has ${length}`, { offset: at });
    };
    switch (type) {
      case VIOT_NODE_PCI_RANGE:
        need(24);
        nodes.push({
          type,
          offset: at,
          endpointStart: t.u32(at + 4, 'endpoint_start'),
          segmentStart: t.u16(at + 8, 'segment_start'),
          segmentEnd: t.u16(at + 10, 'segment_end'),
          bdfStart: t.u16(at + 12, 'bdf_start'),
          bdfEnd: t.u16(at + 14, 'bdf_end'),
          outputNode: t.u16(at + 16, 'output_node'),
        });
        break;
      case VIOT_NODE_MMIO:
        need(24);
        nodes.push({ type, offset: at, endpointId: t.u32(at + 4, 'endpoint_id'), baseAddress: t.u64(at + 8, 'base_address'), outputNode: t.u16(at + 16, 'output_node') });
        break;
      case VIOT_NODE_VIRTIO_IOMMU_PCI:
        need(16);
        nodes.push({ type, offset: at, segment: t.u16(at + 4, 'segment'), bdf: t.u16(at + 6, 'bdf') });
        break;
      case VIOT_NODE_VIRTIO_IOMMU_MMIO:
        need(16);
        nodes.push({ type, offset: at, baseAddress: t.u64(at + 8, 'base_address') });
        break;
      default:
        nodes.push({ type, offset: at, unknown: true, length });
    }
    at += length;
  }
  return { header, nodeOffset, nodes };
}

/** Bytes of a parsed VIOT: parse then serialize is exact for tables whose reserved fields are zero. */
export function serializeViot(v: Viot, raw?: Uint8Array): Uint8Array {
  const w = new Writer().u16(v.nodes.length).u16(v.nodeOffset).zeros(8);
  w.zeros(v.nodeOffset - HEADER_END);
  for (const n of v.nodes) {
    if ('unknown' in n) {
      if (!raw) throw new FirmwareError('VIOT_UNKNOWN_NODE', `node type ${n.type} can only be copied from the original bytes`);
      w.bytes(raw.subarray(n.offset, n.offset + n.length));
    } else if (n.type === 1) w.u8(1).u8(0).u16(24).u32(n.endpointStart).u16(n.segmentStart).u16(n.segmentEnd).u16(n.bdfStart).u16(n.bdfEnd).u16(n.outputNode).zeros(6);
    else if (n.type === 2) w.u8(2).u8(0).u16(24).u32(n.endpointId).u64(n.baseAddress).u16(n.outputNode).zeros(6);
    else if (n.type === 3) w.u8(3).u8(0).u16(16).u16(n.segment).u16(n.bdf).zeros(8);
    else w.u8(4).u8(0).u16(16).zeros(4).u64(n.baseAddress);
  }
  return rebuildWithHeader(v.header, w.done());
}

export function renderViot(v: Viot): string {
  const h = v.header;
  const lines = [
    `[VIOT] Virtual I/O Translation table, revision ${h.revision}, ${h.length} bytes, OEM "${h.oem_id}" "${h.oem_table_id}" rev ${h.oem_revision}`,
    `  ${v.nodes.length} nodes from offset 0x${v.nodeOffset.toString(16)}`,
  ];
  for (const n of v.nodes) {
    const at = `  @0x${n.offset.toString(16).padStart(3, '0')}`;
    if ('unknown' in n) lines.push(`${at} unknown node type ${n.type}, ${n.length} bytes`);
    else if (n.type === 1)
      lines.push(`${at} PCI range: segments ${n.segmentStart}-${n.segmentEnd}, BDF 0x${n.bdfStart.toString(16)}-0x${n.bdfEnd.toString(16)} -> endpoints from 0x${n.endpointStart.toString(16)}, IOMMU @0x${n.outputNode.toString(16)}`);
    else if (n.type === 2) lines.push(`${at} MMIO endpoint 0x${n.endpointId.toString(16)} at 0x${n.baseAddress.toString(16)}, IOMMU @0x${n.outputNode.toString(16)}`);
    else if (n.type === 3) lines.push(`${at} virtio-pci IOMMU at ${n.segment.toString(16).padStart(4, '0')}:${bdfText(n.bdf)}`);
    else lines.push(`${at} virtio-mmio IOMMU at 0x${n.baseAddress.toString(16)}`);
  }
  return lines.join('\n');
}

export function bdfText(bdf: number): string {
  return `${(bdf >> 8).toString(16).padStart(2, '0')}:${((bdf >> 3) & 31).toString(16).padStart(2, '0')}.${bdf & 7}`;
}

