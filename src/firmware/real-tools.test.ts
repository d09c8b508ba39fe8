/**
 * Our tables checked by the real tools: iasl (acpica-tools) decodes DMAR and IORT without complaint and
 * reads the same fields we wrote; dtc compiles our DTS and decompiles our DTB without warnings (with the
 * iommus cell-count check as an error), and both describe the same tree. The tools are installed by
 * .ci/run; without them (outside CI) these tests are skipped with that reason.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDeviceTree, toDtb, toDts } from './devicetree.js';
import { buildDmar, parseDmar } from './dmar.js';
import { buildIort, parseIort } from './iort.js';
import { FIXTURE_MACHINES, fixtureMachine } from './testing.js';

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

function skipReason(tool: string): string | false {
  if (has(tool)) return false;
  if (process.env['CI']) throw new Error(`${tool} is missing in CI: .ci/run must install it`);
  return `${tool} is not installed (apt-get install acpica-tools device-tree-compiler)`;
}

/** Run iasl -d under a timeout (it can spin on malformed tables) and return the disassembly. */
function iaslDecode(bytes: Uint8Array, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'viommu-iasl-'));
  const file = join(dir, `${name}.dat`);
  writeFileSync(file, bytes);
  const r = spawnSync('iasl', ['-d', file], { cwd: dir, timeout: 30_000, encoding: 'utf8' });
  assert.notEqual(r.error?.name, 'Error', `iasl did not finish: ${String(r.error)}`);
  const dsl = readFileSync(join(dir, `${name}.dsl`), 'utf8');
  const all = `${r.stdout}\n${r.stderr}\n${dsl}`;
  for (const bad of [/Unknown/i, /\bError\b/, /Incorrect checksum/i, /Invalid/i]) assert.doesNotMatch(all, bad, `iasl on ${name}`);
  return dsl;
}

/** The value iasl printed for the n-th field with this label. */
function field(dsl: string, label: string, n = 0): string | undefined {
  const re = new RegExp(`\\]\\s+${label.replace(/[()]/g, '\\$&')} : (.*)$`, 'gm');
  return [...dsl.matchAll(re)][n]?.[1]?.trim();
}

describe('iasl decodes our ACPI tables', { skip: skipReason('iasl') }, () => {
  it('DMAR: no complaints, and the fields iasl reads are the ones we wrote', () => {
    const bytes = buildDmar(fixtureMachine('q35-vtd'))!;
    const ours = parseDmar(bytes);
    const dsl = iaslDecode(bytes, 'dmar');
    assert.equal(field(dsl, 'Signature'), '"DMAR"    [DMA Remapping table]');
    assert.equal(field(dsl, 'Oem Table ID'), '"VIOMMUQ3"');
    assert.equal(parseInt(field(dsl, 'Host Address Width')!, 16), ours.hostAddressWidth - 1);
    const drhds = ours.structs.filter((s) => s.type === 0);
    drhds.forEach((s, i) => {
      assert.ok('registerBase' in s);
      assert.equal(BigInt(`0x${field(dsl, 'Register Base Address', i)}`), s.registerBase);
    });
    assert.equal(field(dsl, 'PCI Path'), '02,00');
    assert.equal(BigInt(`0x${field(dsl, 'Base Address')}`), 0x7d000000n);
    assert.equal(BigInt(`0x${field(dsl, 'End Address (limit)')}`), 0x7f7fffffn);
  });

  it('DMAR with scopes through bridges: iasl reads the same paths', () => {
    const bytes = buildDmar(fixtureMachine('vtd-bridges'))!;
    const dsl = iaslDecode(bytes, 'dmar-bridges');
    assert.deepEqual([...dsl.matchAll(/PCI Path : (\S+)/g)].map((m) => m[1]), ['1C,00', '00,00', '00,00', '1D,00']);
    assert.deepEqual([...dsl.matchAll(/Device Scope Type : (\S+)/g)].map((m) => m[1]), ['01', '02']);
  });

  it('IORT: no complaints, and nodes, mappings and names read back as written', () => {
    const bytes = buildIort(fixtureMachine('arm-smmuv3'))!;
    const ours = parseIort(bytes);
    const dsl = iaslDecode(bytes, 'iort');
    assert.equal(parseInt(field(dsl, 'Node Count')!, 16), ours.nodes.length);
    assert.deepEqual(
      [...dsl.matchAll(/\]\s+Type : (\S+)/g)].map((m) => parseInt(m[1]!, 16)),
      ours.nodes.map((n) => n.type),
    );
    assert.equal(BigInt(`0x${field(dsl, 'Base Address')}`), 0x9050000n);
    const outputs = [...dsl.matchAll(/\]\s+Output Base : (\S+)/g)].map((m) => parseInt(m[1]!, 16));
    assert.deepEqual(outputs, ours.nodes.flatMap((n) => n.mappings.map((m) => m.outputBase)));
    assert.deepEqual([...dsl.matchAll(/Device Name : "(.*)"/g)].map((m) => m[1]), ['\\_SB.DMA0', '\\_SB.GPU0']);
  });
});

describe('dtc accepts our device trees', { skip: skipReason('dtc') }, () => {
  for (const name of FIXTURE_MACHINES) {
    it(`${name}: DTS compiles and DTB decompiles without warnings, and they are the same tree`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'viommu-dtc-'));
      const tree = buildDeviceTree(fixtureMachine(name));
      writeFileSync(join(dir, 'ours.dts'), toDts(tree));
      writeFileSync(join(dir, 'ours.dtb'), toDtb(tree));
      const run = (args: string[]) => spawnSync('dtc', args, { cwd: dir, timeout: 30_000, encoding: 'utf8' });
      const compile = run(['-E', 'iommus_property', '-I', 'dts', '-O', 'dtb', '-o', 'theirs.dtb', 'ours.dts']);
      assert.equal(compile.status, 0, compile.stderr);
      assert.equal(compile.stderr, '', 'dtc warnings compiling our DTS');
      const a = run(['-E', 'iommus_property', '-I', 'dtb', '-O', 'dts', 'ours.dtb']);
      const b = run(['-I', 'dtb', '-O', 'dts', 'theirs.dtb']);
      assert.equal(a.status, 0, a.stderr);
      assert.equal(a.stderr, '', 'dtc warnings decompiling our DTB');
      assert.equal(a.stdout, b.stdout);
      const m = fixtureMachine(name);
      if (m.iommus.some((io) => io.type !== 'vtd')) assert.match(a.stdout, /#iommu-cells = <0x0?1>/);
    });
  }
});
