import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseBigint } from './args.js';
import { parsePgtableArgs, runPgtable } from './pgtable-cmd.js';

describe('viommu pgtable', () => {
  it('walks the default example: a read-only page, a write fault, a hole, an unmapped page', () => {
    const out = runPgtable([]);
    assert.match(out, /walk 0x1234 \(read\): -> 0x7f234 \(page 0x1000, level 1\), 4 memory reads/);
    assert.match(out, /walk 0x1234 \(write\): FAULT NO_WRITE at level 1/);
    assert.match(out, /walk 0x401000 \(read\): FAULT NOT_PRESENT at level 1/);
    assert.match(out, /flush ops called: add_page\(0x401000, 0x1000\)/);
  });

  it('builds any format from --map and reports JSON', () => {
    const out = JSON.parse(
      runPgtable(['--format', 'arm-lpae-s2', '--ias', '40', '--map', '0x40000000:0x80000000:1G:r', '--walk', '0x40001234', '--json']),
    ) as { levels: number; walks: { result: { pa: string; pageSize: string } }[] };
    assert.equal(out.levels, 3);
    assert.deepEqual(out.walks[0]!.result, { pa: '0x80001234', pageSize: '0x40000000', level: 3 });
  });

  it('parses sizes with unit suffixes and rejects garbage', () => {
    assert.equal(parseBigint('2M', 'x'), 0x200000n);
    assert.equal(parseBigint('0x1000', 'x'), 0x1000n);
    assert.throws(() => parseBigint('12Q', 'x'), /not a number/);
    assert.throws(() => parsePgtableArgs(['--map', '1:2']), /IOVA:PA:SIZE/);
    assert.throws(() => parsePgtableArgs(['--format', 'nope']), /--format must be one of/);
  });
});

describe('viommu replay-trace', () => {
  it('replays the bundled real-guest trace in full agreement', async () => {
    const { runReplay } = await import('./replay-cmd.js');
    const out = runReplay([]);
    assert.match(out, /8626\/8626 traced outputs matched/);
    assert.match(out, /agreement: complete/);
    assert.throws(() => runReplay(['--profile', 'nope']), /--profile/);
  });
});

describe('viommu firmware', () => {
  it('writes the tables of a machine description and decodes them back', async () => {
    const { runFirmware } = await import('./firmware-cmd.js');
    const { mkdtempSync, readdirSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { fileURLToPath } = await import('node:url');
    const dir = mkdtempSync(join(tmpdir(), 'viommu-fw-'));
    const machine = fileURLToPath(new URL('../../../fixtures/machines/seed-004.json', import.meta.url));
    const out = runFirmware([machine, '--out', dir]);
    assert.match(out, /gpio0 +viommu2, 0x1fff/);
    assert.deepEqual(readdirSync(dir).sort(), ['machine.dtb', 'machine.dts', 'viot.aml']);
    assert.match(runFirmware(['--decode', join(dir, 'viot.aml')]), /MMIO endpoint 0x1fff at 0x9030000/);
    assert.match(runFirmware(['--decode', join(dir, 'machine.dtb')]), /iommus = <0x2 0x1fff>/);
    assert.throws(() => runFirmware(['--decode', machine]), /not a VIOT, DMAR, IORT or DTB/);
  });
});
