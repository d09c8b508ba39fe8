/**
 * `viommu firmware`: write a machine's firmware tables, or decode one.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildDeviceTree,
  buildDmar,
  buildIort,
  buildViot,
  parseDmar,
  parseDtb,
  parseIort,
  parseMachine,
  parseViot,
  renderDmar,
  renderIort,
  renderViot,
  resolveMachine,
  toDtb,
  toDts,
  type DtNode,
} from '../firmware/index.js';
import { CliError } from './args.js';

export const FIRMWARE_HELP = `viommu firmware machine.json --out DIR
viommu firmware --decode FILE

Write the firmware a guest reads for a machine description (JSON; see fixtures/machines/): ACPI VIOT (for
virtio-iommus), DMAR (VT-d), IORT (SMMUv3), and a device tree as source (machine.dts) and blob
(machine.dtb); then print which IOMMU translates each device, under which ID.
--decode renders a VIOT, DMAR, IORT or DTB file readably.`;

export function runFirmware(argv: string[]): string {
  let out: string | undefined;
  let decode: string | undefined;
  let input: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--out') out = argv[++i];
    else if (a === '--decode') decode = argv[++i];
    else if (a.startsWith('--')) throw new CliError(`unknown option ${a}`);
    else input = a;
  }
  if (decode !== undefined) return decodeFile(decode);
  if (input === undefined || out === undefined) throw new CliError('need a machine description and --out DIR (or --decode FILE)');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(input, 'utf8'));
  } catch (e) {
    throw new CliError(`cannot read ${input}: ${(e as Error).message}`);
  }
  const m = parseMachine(json);
  mkdirSync(out, { recursive: true });
  const written: string[] = [];
  const put = (name: string, data: Uint8Array | string | undefined): void => {
    if (data === undefined) return;
    writeFileSync(join(out, name), data);
    written.push(name);
  };
  put('viot.aml', buildViot(m));
  put('dmar.aml', buildDmar(m));
  put('iort.aml', buildIort(m));
  const dt = buildDeviceTree(m);
  put('machine.dts', toDts(dt));
  put('machine.dtb', toDtb(dt));
  const lines = [`${m.name}: wrote ${written.join(', ')} to ${out}`, 'device -> IOMMU, Device ID:'];
  for (const [dev, r] of resolveMachine(m)) lines.push(`  ${dev.padEnd(16)} ${r ? `${r.iommu}, 0x${r.id.toString(16)}` : 'none (not translated)'}`);
  return lines.join('\n');
}

function decodeFile(path: string): string {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CliError(`cannot read ${path}: ${(e as Error).message}`);
  }
  const sig = String.fromCharCode(...bytes.subarray(0, 4));
  if (sig === 'VIOT') return renderViot(parseViot(bytes));
  if (sig === 'DMAR') return renderDmar(parseDmar(bytes));
  if (sig === 'IORT') return renderIort(parseIort(bytes));
  if (bytes.length >= 4 && new DataView(bytes.buffer, bytes.byteOffset).getUint32(0) === 0xd00dfeed) return renderDt(parseDtb(bytes));
  throw new CliError(`${path}: not a VIOT, DMAR, IORT or DTB (starts with ${JSON.stringify(sig)})`);
}

function renderDt(root: DtNode): string {
  const lines: string[] = [];
  const show = (n: DtNode, depth: number): void => {
    const pad = '  '.repeat(depth);
    lines.push(`${pad}${n.name === '' ? '/' : n.name}`);
    for (const p of n.props) {
      const b = 'bytes' in p.value ? p.value.bytes : new Uint8Array(0);
      const printable = b.length > 0 && b[b.length - 1] === 0 && b.subarray(0, -1).every((c) => (c >= 0x20 && c < 0x7f) || c === 0);
      const text = printable
        ? new TextDecoder().decode(b.subarray(0, -1)).split('\0').map((s) => JSON.stringify(s)).join(', ')
        : b.length % 4 === 0
          ? `<${Array.from({ length: b.length / 4 }, (_, i) => `0x${new DataView(b.buffer, b.byteOffset).getUint32(4 * i).toString(16)}`).join(' ')}>`
          : `[${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ')}]`;
      lines.push(`${pad}  ${p.name}${b.length ? ` = ${text}` : ''}`);
    }
    n.children.forEach((c) => show(c, depth + 1));
  };
  show(root, 0);
  return lines.join('\n');
}
