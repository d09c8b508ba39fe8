/**
 * Device tree: the machine as DTS source and as a flattened blob (DTB, version 17), and a blob parser.
 *
 * IOMMU bindings (Linux Documentation/devicetree/bindings/iommu, virtio/iommu.yaml, pci/pci-iommu.yaml):
 * an IOMMU node has `#iommu-cells`; a platform master has `iommus = <&iommu ID>`; a PCI host bridge has
 * `iommu-map = <rid-base &iommu id-base length>` entries (and may have `iommu-map-mask`). virtio-iommu over
 * virtio-mmio is a `virtio,mmio` node with `#iommu-cells = <1>`; over PCI, a child of its host bridge with
 * compatible `virtio,pci-iommu` and `reg` encoding its BDF.
 *
 * DTB layout (devicetree specification 0.4, chapter 5): big-endian header {magic 0xd00dfeed, totalsize,
 * off_dt_struct, off_dt_strings, off_mem_rsvmap, version, last_comp_version, boot_cpuid_phys,
 * size_dt_strings, size_dt_struct}; memory reservation map; structure block of tokens BEGIN_NODE 1,
 * END_NODE 2, PROP 3 {len, nameoff}, NOP 4, END 9, each 4-byte aligned; strings block.
 */
import { FirmwareError } from './errors.js';
import { parseBdf, rid, type MachineDescription } from './machine.js';

export type Cell = number | { ref: string };
export type DtValue = { cells: Cell[] } | { strings: string[] } | { empty: true } | { bytes: Uint8Array };

export interface DtNode {
  name: string;
  label?: string;
  props: { name: string; value: DtValue }[];
  children: DtNode[];
}

const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_NOP = 4;
const FDT_END = 9;
/** Deepest nesting the parser follows: real trees are a few levels deep; a hostile blob cannot recurse. */
const MAX_DEPTH = 64;

const ECAM_BASE = 0x4010000000n;
const ECAM_SEGMENT_SIZE = 0x10000000n;

function hi32(v: bigint): number {
  return Number((v >> 32n) & 0xffffffffn);
}
function lo32(v: bigint): number {
  return Number(v & 0xffffffffn);
}
function label(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_');
}

/** The machine as a device tree (VT-d units have no device-tree binding and are left out). */
export function buildDeviceTree(m: MachineDescription): DtNode {
  const root: DtNode = {
    name: '',
    props: [
      { name: '#address-cells', value: { cells: [2] } },
      { name: '#size-cells', value: { cells: [2] } },
      { name: 'model', value: { strings: [m.name] } },
    ],
    children: [],
  };
  let phandle = 1;
  const phandles = new Map<string, number>();
  for (const io of m.iommus) {
    if (io.type === 'virtio-iommu-mmio') {
      phandles.set(io.name, phandle);
      root.children.push({
        name: `virtio_mmio@${io.base.toString(16)}`,
        label: label(io.name),
        props: [
          { name: 'compatible', value: { strings: ['virtio,mmio'] } },
          { name: 'reg', value: { cells: [hi32(io.base), lo32(io.base), hi32(io.size ?? 0x200n), lo32(io.size ?? 0x200n)] } },
          { name: '#iommu-cells', value: { cells: [1] } },
          { name: 'phandle', value: { cells: [phandle++] } },
        ],
        children: [],
      });
    } else if (io.type === 'smmuv3') {
      phandles.set(io.name, phandle);
      root.children.push({
        name: `iommu@${io.base.toString(16)}`,
        label: label(io.name),
        props: [
          { name: 'compatible', value: { strings: ['arm,smmu-v3'] } },
          { name: 'reg', value: { cells: [hi32(io.base), lo32(io.base), 0, 0x20000] } },
          { name: '#iommu-cells', value: { cells: [1] } },
          { name: 'phandle', value: { cells: [phandle++] } },
        ],
        children: [],
      });
    }
  }
  const pciIommus = m.iommus.filter((io) => io.type === 'virtio-iommu-pci');
  for (const io of pciIommus) phandles.set(io.name, phandle++);
  for (const d of m.platformDevices) {
    const io = m.iommus.find((i) => i.platform?.some((p) => p.device === d.name) && phandles.has(i.name));
    const props: DtNode['props'] = [
      { name: 'compatible', value: { strings: ['viommu,dma-master'] } },
      { name: 'reg', value: { cells: [hi32(d.base), lo32(d.base), hi32(d.size), lo32(d.size)] } },
    ];
    if (io) props.push({ name: 'iommus', value: { cells: [{ ref: label(io.name) }, io.platform!.find((p) => p.device === d.name)!.id] } });
    root.children.push({ name: `${label(d.name).replace(/_/g, '-')}@${d.base.toString(16)}`, props, children: [] });
  }
  for (const seg of m.segments) {
    const ecam = ECAM_BASE + BigInt(seg.segment) * ECAM_SEGMENT_SIZE;
    const map: Cell[] = [];
    for (const io of m.iommus) {
      if (!phandles.has(io.name)) continue;
      for (const r of io.pci ?? []) {
        if (r.segment !== seg.segment) continue;
        map.push(r.busStart << 8, { ref: label(io.name) }, r.idBase, (r.busEnd - r.busStart + 1) * 256);
      }
    }
    const children: DtNode[] = [];
    for (const io of pciIommus) {
      const b = parseBdf(io.bdf, io.name);
      if (b.segment !== seg.segment) continue;
      children.push({
        name: `virtio_iommu@${b.device.toString(16)}${b.function ? `,${b.function}` : ''}`,
        label: label(io.name),
        props: [
          { name: 'compatible', value: { strings: ['virtio,pci-iommu'] } },
          { name: 'reg', value: { cells: [(rid(b.bus, b.device, b.function) << 8) >>> 0, 0, 0, 0, 0] } },
          { name: '#iommu-cells', value: { cells: [1] } },
          { name: 'phandle', value: { cells: [phandles.get(io.name)!] } },
        ],
        children: [],
      });
    }
    const props: DtNode['props'] = [
      { name: 'compatible', value: { strings: ['pci-host-ecam-generic'] } },
      { name: 'device_type', value: { strings: ['pci'] } },
      { name: '#address-cells', value: { cells: [3] } },
      { name: '#size-cells', value: { cells: [2] } },
      { name: 'bus-range', value: { cells: [seg.busStart, seg.busEnd] } },
      { name: 'linux,pci-domain', value: { cells: [seg.segment] } },
      { name: 'reg', value: { cells: [hi32(ecam), lo32(ecam), 0, (seg.busEnd - seg.busStart + 1) << 20] } },
      { name: 'ranges', value: { cells: [0x02000000, 0, 0x40000000, 0, 0x40000000, 0, 0x10000000] } },
    ];
    if (map.length > 0) props.push({ name: 'iommu-map', value: { cells: map } });
    root.children.push({ name: `pcie@${ecam.toString(16)}`, props, children });
  }
  return root;
}

// ---- DTS ----------------------------------------------------------------------------------------

function dtsValue(v: DtValue): string {
  if ('empty' in v) return '';
  if ('strings' in v) return ` = ${v.strings.map((s) => JSON.stringify(s)).join(', ')}`;
  if ('bytes' in v) return ` = [${Array.from(v.bytes, (b) => b.toString(16).padStart(2, '0')).join(' ')}]`;
  return ` = <${v.cells.map((c) => (typeof c === 'number' ? `0x${c.toString(16)}` : `&${c.ref}`)).join(' ')}>`;
}

export function toDts(root: DtNode): string {
  const out = ['/dts-v1/;', ''];
  const emit = (n: DtNode, depth: number): void => {
    const pad = '\t'.repeat(depth);
    out.push(`${pad}${n.label ? `${n.label}: ` : ''}${n.name === '' ? '/' : n.name} {`);
    for (const p of n.props) out.push(`${pad}\t${p.name}${dtsValue(p.value)};`);
    for (const c of n.children) {
      out.push('');
      emit(c, depth + 1);
    }
    out.push(`${pad}};`);
  };
  emit(root, 0);
  return `${out.join('\n')}\n`;
}

// ---- DTB ----------------------------------------------------------------------------------------

/** Resolve `&label` references to phandles (labels must belong to nodes with a `phandle`). */
function phandleTable(root: DtNode): Map<string, number> {
  const map = new Map<string, number>();
  const walk = (n: DtNode): void => {
    const ph = n.props.find((p) => p.name === 'phandle');
    if (n.label && ph && 'cells' in ph.value && typeof ph.value.cells[0] === 'number') map.set(n.label, ph.value.cells[0]);
    n.children.forEach(walk);
  };
  walk(root);
  return map;
}

function encodeValue(v: DtValue, phandles: Map<string, number>): Uint8Array {
  if ('empty' in v) return new Uint8Array(0);
  if ('bytes' in v) return v.bytes;
  if ('strings' in v) return new TextEncoder().encode(v.strings.map((s) => `${s}\0`).join(''));
  const out = new Uint8Array(4 * v.cells.length);
  const dv = new DataView(out.buffer);
  v.cells.forEach((c, i) => {
    const n = typeof c === 'number' ? c : phandles.get(c.ref);
    if (n === undefined) throw new FirmwareError('DT_UNRESOLVED_REF', `&${(c as { ref: string }).ref} names no node with a phandle`);
    dv.setUint32(4 * i, n >>> 0);
  });
  return out;
}

export function toDtb(root: DtNode, bootCpuid = 0): Uint8Array {
  const phandles = phandleTable(root);
  const strings: number[] = [];
  const stringOffsets = new Map<string, number>();
  const nameOff = (name: string): number => {
    let off = stringOffsets.get(name);
    if (off === undefined) {
      off = strings.length;
      stringOffsets.set(name, off);
      strings.push(...new TextEncoder().encode(`${name}\0`));
    }
    return off;
  };
  const struct: number[] = [];
  const u32 = (v: number): void => void struct.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  const pad = (): void => {
    while (struct.length % 4 !== 0) struct.push(0);
  };
  const emit = (n: DtNode): void => {
    u32(FDT_BEGIN_NODE);
    struct.push(...new TextEncoder().encode(n.name), 0);
    pad();
    for (const p of n.props) {
      const val = encodeValue(p.value, phandles);
      u32(FDT_PROP);
      u32(val.length);
      u32(nameOff(p.name));
      struct.push(...val);
      pad();
    }
    n.children.forEach(emit);
    u32(FDT_END_NODE);
  };
  emit(root);
  u32(FDT_END);
  const headerSize = 40;
  const rsvmap = headerSize; // 8-byte aligned; one terminating {0, 0} entry
  const offStruct = rsvmap + 16;
  const offStrings = offStruct + struct.length;
  const total = offStrings + strings.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  [FDT_MAGIC, total, offStruct, offStrings, rsvmap, 17, 16, bootCpuid, strings.length, struct.length].forEach((v, i) => dv.setUint32(4 * i, v));
  out.set(struct, offStruct);
  out.set(strings, offStrings);
  return out;
}

/** Parse a blob as an OS does; anything pointing outside the blob or malformed is a typed error. */
export function parseDtb(bytes: Uint8Array): DtNode {
  if (bytes.length < 40) throw new FirmwareError('DT_TRUNCATED', `${bytes.length} bytes cannot hold a DTB header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = (i: number): number => dv.getUint32(4 * i);
  if (h(0) !== FDT_MAGIC) throw new FirmwareError('DT_MAGIC', `bad magic 0x${h(0).toString(16)}`);
  const total = h(1);
  const offStruct = h(2);
  const offStrings = h(3);
  const version = h(5);
  const sizeStrings = h(8);
  const sizeStruct = h(9);
  if (total > bytes.length || total < 40) throw new FirmwareError('DT_LENGTH', `totalsize ${total} outside 40..${bytes.length}`);
  if (version < 16 || h(6) > 17) throw new FirmwareError('DT_VERSION', `version ${version} (last compatible ${h(6)}) not supported`);
  if (offStruct + sizeStruct > total || offStrings + sizeStrings > total || offStruct % 4 !== 0) {
    throw new FirmwareError('DT_LAYOUT', 'structure or strings block outside the blob');
  }
  const end = offStruct + sizeStruct;
  let at = offStruct;
  const word = (): number => {
    if (at + 4 > end) throw new FirmwareError('DT_TRUNCATED', `structure block ends inside a token at ${at}`);
    const v = dv.getUint32(at);
    at += 4;
    return v;
  };
  const cstring = (from: number, limit: number, what: string): string => {
    let s = '';
    for (let p = from; ; p++) {
      if (p >= limit) throw new FirmwareError('DT_STRING', `${what} at ${from} is not terminated`);
      const c = bytes[p]!;
      if (c === 0) return s;
      s += String.fromCharCode(c);
    }
  };
  const stack: DtNode[] = [];
  let root: DtNode | undefined;
  for (;;) {
    const token = word();
    if (token === FDT_NOP) continue;
    if (token === FDT_BEGIN_NODE) {
      const name = cstring(at, end, 'node name');
      at = (at + name.length + 1 + 3) & ~3;
      const node: DtNode = { name, props: [], children: [] };
      if (stack.length === 0) {
        if (root) throw new FirmwareError('DT_STRUCTURE', 'more than one root node');
        root = node;
      } else stack[stack.length - 1]!.children.push(node);
      if (stack.length >= MAX_DEPTH) throw new FirmwareError('DT_DEPTH', `nesting deeper than ${MAX_DEPTH}`);
      stack.push(node);
    } else if (token === FDT_END_NODE) {
      if (stack.length === 0) throw new FirmwareError('DT_STRUCTURE', 'END_NODE without BEGIN_NODE');
      stack.pop();
    } else if (token === FDT_PROP) {
      const len = word();
      const nameoff = word();
      if (stack.length === 0) throw new FirmwareError('DT_STRUCTURE', 'property outside a node');
      if (len > end - at) throw new FirmwareError('DT_TRUNCATED', `property of ${len} bytes runs past the structure block`);
      if (nameoff >= sizeStrings) throw new FirmwareError('DT_STRING', `property name offset ${nameoff} outside the strings block`);
      const name = cstring(offStrings + nameoff, offStrings + sizeStrings, 'property name');
      stack[stack.length - 1]!.props.push({ name, value: { bytes: bytes.slice(at, at + len) } });
      at = (at + len + 3) & ~3;
    } else if (token === FDT_END) {
      if (stack.length !== 0 || !root) throw new FirmwareError('DT_STRUCTURE', 'END before the root node closed');
      return root;
    } else {
      throw new FirmwareError('DT_TOKEN', `unknown token 0x${token.toString(16)} at ${at - 4}`);
    }
  }
}

/** A property's bytes as big-endian cells (for parsed blobs). */
export function cellsOf(node: DtNode, name: string): number[] | undefined {
  const p = node.props.find((x) => x.name === name);
  if (!p) return undefined;
  if ('cells' in p.value) return p.value.cells.map((c) => (typeof c === 'number' ? c : NaN));
  if (!('bytes' in p.value) || p.value.bytes.length % 4 !== 0) return undefined;
  const dv = new DataView(p.value.bytes.buffer, p.value.bytes.byteOffset, p.value.bytes.byteLength);
  return Array.from({ length: p.value.bytes.length / 4 }, (_, i) => dv.getUint32(4 * i));
}

export function stringOf(node: DtNode, name: string): string | undefined {
  const p = node.props.find((x) => x.name === name);
  if (!p) return undefined;
  if ('strings' in p.value) return p.value.strings[0];
  if ('bytes' in p.value) return new TextDecoder().decode(p.value.bytes).split('\0')[0];
  return undefined;
}
