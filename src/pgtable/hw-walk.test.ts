/**
 * The hardware walker: each failure kind produced by the condition that defines it, accessed/dirty
 * write-back, and nested table translation.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_USER,
  ACCESS_WRITE,
  HwWalkResult,
  HwWalker,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  WalkFault,
  walkFaultName,
} from './index.js';
import { makeTable } from './testing.js';

const RW = IOMMU_READ | IOMMU_WRITE;
const SZ_4K = 0x1000n;
const SZ_2M = 0x200000n;

/** Address of the leaf entry for `iova`. */
function leafEntry(pt: ReturnType<typeof makeTable>['pt'], iova: bigint): bigint {
  let at = -1n;
  pt.walk(iova, (e) => void (e.kind === 'leaf' && (at = e.tableAddr + BigInt(e.index) * 8n)));
  return at;
}

describe('hardware walk: VT-d second-stage', () => {
  const cfg = { pgsizeBitmap: SZ_4K | SZ_2M, ias: 48, oas: 39 };

  it('faults on reserved bits: address beyond the host width, SNP without snoop control, 2M leaf bits 20:12', () => {
    const { pt, memory } = makeTable('vtd-ss', cfg);
    pt.map(0n, 0x5000n, SZ_4K, RW);
    pt.map(SZ_2M, SZ_2M, SZ_2M, RW);
    const w = new HwWalker(pt.pteFormat, memory);
    const leaf = leafEntry(pt, 0n);
    memory.writeU64(leaf, (1n << 40n) | 0x5003n);
    assert.equal(w.walk(pt.root, 0n, ACCESS_READ).fault, WalkFault.RESERVED);
    memory.writeU64(leaf, 0x5003n | (1n << 11n));
    assert.equal(w.walk(pt.root, 0n, ACCESS_READ).fault, WalkFault.RESERVED);
    memory.writeU64(leaf, 0x5003n);
    assert.equal(w.walk(pt.root, 0n, ACCESS_READ).ok, true);
    const big = leafEntry(pt, SZ_2M);
    memory.writeU64(big, SZ_2M | 0x1000n | 0x83n);
    const r = w.walk(pt.root, SZ_2M, ACCESS_READ);
    assert.equal(walkFaultName(r.fault), 'RESERVED');
    assert.equal(r.level, 2);
  });

  it('faults on PS set in a level-4 entry', () => {
    const { pt, memory } = makeTable('vtd-ss', cfg);
    pt.map(0n, 0x5000n, SZ_4K, RW);
    memory.writeU64(pt.root, memory.readU64(pt.root) | 0x80n);
    const r = w(pt, memory).walk(pt.root, 0n, ACCESS_READ);
    assert.equal(r.fault, WalkFault.RESERVED);
    assert.equal(r.level, 4);
  });

  it('reports the level of a not-present entry and input beyond the width', () => {
    const { pt, memory } = makeTable('vtd-ss', cfg);
    const r = w(pt, memory).walk(pt.root, 0x1234n, ACCESS_READ);
    assert.equal(r.fault, WalkFault.NOT_PRESENT);
    assert.equal(r.level, 4);
    assert.equal(w(pt, memory).walk(pt.root, 1n << 48n, ACCESS_READ).fault, WalkFault.BEYOND_WIDTH);
  });

  it('ANDs permissions across levels: a read-only table entry denies writes to a writable leaf', () => {
    const { pt, memory } = makeTable('vtd-ss', cfg);
    pt.map(0n, 0x5000n, SZ_4K, RW);
    memory.writeU64(pt.root, memory.readU64(pt.root) & ~2n);
    assert.equal(w(pt, memory).walk(pt.root, 0n, ACCESS_WRITE).fault, WalkFault.NO_WRITE);
    assert.equal(w(pt, memory).walk(pt.root, 0n, ACCESS_READ).ok, true);
  });

  it('reports a table pointer outside memory', () => {
    const { pt, memory } = makeTable('vtd-ss', cfg, { memorySize: 1n << 32n });
    memory.writeU64(pt.root, (1n << 36n) | 3n);
    const r = w(pt, memory).walk(pt.root, 0n, ACCESS_READ);
    assert.equal(r.fault, WalkFault.TABLE_OUTSIDE_MEMORY);
    assert.equal(r.level, 3);
  });

  it('writes A at every level and D on the leaf for writes when SSADE is on', () => {
    const { pt, memory } = makeTable('vtd-ss', { ...cfg, quirks: { secondStageAD: true } });
    pt.map(0n, 0x5000n, SZ_4K, RW);
    const walker = new HwWalker(pt.pteFormat, memory, { updateAccessDirty: true });
    const leaf = leafEntry(pt, 0n);
    walker.walk(pt.root, 0n, ACCESS_READ);
    assert.equal(memory.readU64(leaf) & 0x300n, 0x100n);
    assert.equal(memory.readU64(pt.root) & 0x100n, 0x100n);
    walker.walk(pt.root, 0n, ACCESS_WRITE);
    assert.equal(memory.readU64(leaf) & 0x300n, 0x300n);
  });

  it('counts one memory read per level (the figure cost models use)', () => {
    const { pt, memory } = makeTable('vtd-ss', cfg);
    pt.map(0n, 0x5000n, SZ_4K, RW);
    const out = new HwWalkResult();
    assert.equal(w(pt, memory).walkNum(Number(pt.root), 0, ACCESS_READ, out), true);
    assert.equal(out.reads, 4);
  });
});

function w(pt: ReturnType<typeof makeTable>['pt'], memory: ReturnType<typeof makeTable>['memory']): HwWalker {
  return new HwWalker(pt.pteFormat, memory);
}

describe('hardware walk: x86 first-stage', () => {
  const cfg = { pgsizeBitmap: SZ_4K | SZ_2M, ias: 48, oas: 46 };

  it('faults on non-canonical inputs and walks the upper half', () => {
    const { pt, memory } = makeTable('x86-fs', cfg);
    pt.map(0xffffffffffe00000n, 0x200000n, SZ_2M, RW);
    assert.equal(w(pt, memory).walk(pt.root, 0x0000800000000000n, ACCESS_READ).fault, WalkFault.NON_CANONICAL);
    const r = w(pt, memory).walk(pt.root, 0xffffffffffe01234n, ACCESS_READ);
    assert.equal(r.ok, true);
    assert.equal(r.pa, 0x201234);
    assert.equal(r.pageSize, 0x200000);
  });

  it('user requests need U/S at every level; supervisor writes to read-only pages pass only without WPE', () => {
    const { pt, memory } = makeTable('x86-fs', cfg);
    pt.map(0n, 0x5000n, SZ_4K, IOMMU_READ | IOMMU_PRIV);
    pt.map(SZ_4K, 0x6000n, SZ_4K, IOMMU_READ);
    assert.equal(w(pt, memory).walk(pt.root, 0n, ACCESS_READ | ACCESS_USER).fault, WalkFault.NO_USER);
    assert.equal(w(pt, memory).walk(pt.root, 0n, ACCESS_READ).ok, true);
    assert.equal(w(pt, memory).walk(pt.root, SZ_4K, ACCESS_WRITE | ACCESS_USER).fault, WalkFault.NO_WRITE);
    assert.equal(w(pt, memory).walk(pt.root, SZ_4K, ACCESS_WRITE).fault, WalkFault.NO_WRITE);
    const noWpe = new HwWalker(pt.pteFormat, memory, { writeProtect: false });
    assert.equal(noWpe.walk(pt.root, SZ_4K, ACCESS_WRITE).ok, true);
  });

  it('XD forbids execution; SMEP forbids supervisor execution of user pages', () => {
    const { pt, memory } = makeTable('x86-fs', cfg);
    pt.map(0n, 0x5000n, SZ_4K, IOMMU_READ | IOMMU_NOEXEC);
    pt.map(SZ_4K, 0x6000n, SZ_4K, IOMMU_READ);
    assert.equal(w(pt, memory).walk(pt.root, 0n, ACCESS_EXEC | ACCESS_READ).fault, WalkFault.NO_EXEC);
    assert.equal(w(pt, memory).walk(pt.root, SZ_4K, ACCESS_EXEC | ACCESS_READ).ok, true);
    const smep = new HwWalker(pt.pteFormat, memory, { smep: true });
    assert.equal(smep.walk(pt.root, SZ_4K, ACCESS_EXEC | ACCESS_READ).fault, WalkFault.NO_EXEC);
    assert.equal(smep.walk(pt.root, SZ_4K, ACCESS_EXEC | ACCESS_READ | ACCESS_USER).ok, true);
  });

  it('faults on 2M leaf bits 20:13 but not on PAT bit 12', () => {
    const { pt, memory } = makeTable('x86-fs', cfg);
    pt.map(SZ_2M, SZ_2M, SZ_2M, RW);
    const leaf = leafEntry(pt, SZ_2M);
    const v = memory.readU64(leaf);
    memory.writeU64(leaf, v | 0x1000n);
    assert.equal(w(pt, memory).walk(pt.root, SZ_2M, ACCESS_READ).ok, true);
    memory.writeU64(leaf, v | 0x2000n);
    assert.equal(w(pt, memory).walk(pt.root, SZ_2M, ACCESS_READ).fault, WalkFault.RESERVED);
  });

  it('nested: table addresses go through translateTable, and A/D write-back asks it for write permission', () => {
    const { pt, memory } = makeTable('x86-fs', { ...cfg, quirks: { presetAccessDirty: false } });
    pt.map(0n, 0x5000n, SZ_4K, RW);
    const asked: [number, boolean][] = [];
    const identity = new HwWalker(pt.pteFormat, memory, {
      updateAccessDirty: true,
      translateTable: (addr, write) => (asked.push([addr, write]), addr),
    });
    assert.equal(identity.walk(pt.root, 0n, ACCESS_WRITE).ok, true);
    assert.equal(asked.filter(([, write]) => !write).length, 4, 'root and three next-table pointers');
    assert.equal(asked.filter(([, write]) => write).length, 1, 'only the leaf lacked A/D (tables are created with A set)');
    const readOnlyParent = new HwWalker(pt.pteFormat, memory, {
      updateAccessDirty: true,
      translateTable: (addr, write) => (write ? -1 : addr),
    });
    pt.map(SZ_4K, 0x6000n, SZ_4K, RW);
    const r = readOnlyParent.walk(pt.root, SZ_4K, ACCESS_WRITE);
    assert.equal(r.fault, WalkFault.TABLE_XLATE);
    assert.equal(r.level, 1);
  });
});

describe('hardware walk: Arm LPAE', () => {
  it('faults on a clear access flag unless hardware updates it', () => {
    const { pt, memory } = makeTable('arm-lpae-s1', { pgsizeBitmap: SZ_4K, ias: 48, oas: 48 });
    pt.map(0n, 0x5000n, SZ_4K, RW);
    const leaf = leafEntry(pt, 0n);
    memory.writeU64(leaf, memory.readU64(leaf) & ~(1n << 10n));
    assert.equal(w(pt, memory).walk(pt.root, 0n, ACCESS_READ).fault, WalkFault.ACCESS_FLAG);
    const ha = new HwWalker(pt.pteFormat, memory, { updateAccessDirty: true });
    assert.equal(ha.walk(pt.root, 0n, ACCESS_READ).ok, true);
    assert.equal(memory.readU64(leaf) & (1n << 10n), 1n << 10n);
  });

  it('treats a block-type descriptor at the last level as invalid and an output beyond oas as an address size fault', () => {
    const { pt, memory } = makeTable('arm-lpae-s2', { pgsizeBitmap: SZ_4K, ias: 40, oas: 40 });
    pt.map(0n, 0x5000n, SZ_4K, RW);
    const leaf = leafEntry(pt, 0n);
    const v = memory.readU64(leaf);
    memory.writeU64(leaf, v & ~2n);
    assert.equal(w(pt, memory).walk(pt.root, 0n, ACCESS_READ).fault, WalkFault.RESERVED);
    memory.writeU64(leaf, v | (1n << 41n));
    assert.equal(w(pt, memory).walk(pt.root, 0n, ACCESS_READ).fault, WalkFault.OUTPUT_BEYOND);
  });

  it('stage-1 unprivileged pages and PXN/UXN', () => {
    const { pt, memory } = makeTable('arm-lpae-s1', { pgsizeBitmap: SZ_4K, ias: 48, oas: 48 });
    pt.map(0n, 0x5000n, SZ_4K, RW | IOMMU_PRIV);
    pt.map(SZ_4K, 0x6000n, SZ_4K, IOMMU_READ | IOMMU_NOEXEC);
    assert.equal(w(pt, memory).walk(pt.root, 0n, ACCESS_READ | ACCESS_USER).fault, WalkFault.NO_USER);
    assert.equal(w(pt, memory).walk(pt.root, 0n, ACCESS_WRITE).ok, true);
    assert.equal(w(pt, memory).walk(pt.root, SZ_4K, ACCESS_READ | ACCESS_EXEC).fault, WalkFault.NO_EXEC);
    assert.equal(w(pt, memory).walk(pt.root, SZ_4K, ACCESS_WRITE | ACCESS_USER).fault, WalkFault.NO_WRITE);
  });
});
