/**
 * Golden encodings: entries computed by hand from each format's bit layout (named in each case), compared
 * byte for byte with what the engine writes to memory.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ARM_LPAE_S1_PTE,
  ARM_LPAE_S2_PTE,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  VTD_SL_PTE,
  X86_FS_PTE,
  type IoPgtableCfg,
  type PgtableFormatName,
} from './index.js';
import { makeTable } from './testing.js';

const SZ_4K = 1n << 12n;
const SZ_2M = 1n << 21n;
const SZ_1G = 1n << 30n;

/** Map one page and return the 8 bytes of its leaf and of the table entry above it, as stored. */
function entryBytes(format: PgtableFormatName, cfg: Omit<IoPgtableCfg, 'tlb'>, iova: bigint, pa: bigint, size: bigint, prot: number) {
  const { pt, memory } = makeTable(format, cfg);
  pt.map(iova, pa, size, prot);
  let leaf: Uint8Array | undefined;
  let table: { bytes: Uint8Array; addr: bigint } | undefined;
  pt.walk(iova, (e) => {
    const bytes = memory.read(e.tableAddr + BigInt(e.index) * 8n, 8);
    if (e.kind === 'leaf') leaf = bytes;
    else table = { bytes, addr: e.addr };
  });
  assert.ok(leaf && table);
  return { leaf, table };
}

const le = (...b: number[]): Uint8Array => Uint8Array.from(b);

describe('golden: VT-d second-stage entries', () => {
  const cfg = { pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, ias: 48, oas: 52, quirks: { snoopControl: true } };
  it('4K leaf R|W at 0x12345000: R bit 0, W bit 1, address 51:12', () => {
    const { leaf } = entryBytes('vtd-ss', cfg, 0x1000n, 0x12345000n, SZ_4K, IOMMU_READ | IOMMU_WRITE);
    assert.deepEqual(leaf, le(0x03, 0x50, 0x34, 0x12, 0, 0, 0, 0));
    assert.deepEqual(VTD_SL_PTE.parse(leaf), { R: 1, W: 1, X: 0, EMT: 0, IPAT: 0, PS: 0, A: 0, D: 0, SNP: 0, ADDR: 0x12345000n, TM: 0 });
  });
  it('2M leaf read-only at 0x8_4020_0000: PS bit 7', () => {
    const { leaf } = entryBytes('vtd-ss', cfg, SZ_2M, 0x840200000n, SZ_2M, IOMMU_READ);
    assert.deepEqual(leaf, le(0x81, 0x00, 0x20, 0x40, 0x08, 0, 0, 0));
  });
  it('1G leaf write-only, snooped, at 0xF_C000_0000: SNP bit 11', () => {
    const { leaf } = entryBytes('vtd-ss', cfg, SZ_1G, 0xfc0000000n, SZ_1G, IOMMU_WRITE | IOMMU_CACHE);
    assert.deepEqual(leaf, le(0x82, 0x08, 0x00, 0xc0, 0x0f, 0, 0, 0));
  });
  it('4K leaf at the top of a 52-bit output space, and a table entry R|W', () => {
    const { leaf, table } = entryBytes('vtd-ss', cfg, 0n, (1n << 52n) - SZ_4K, SZ_4K, IOMMU_READ);
    assert.deepEqual(leaf, le(0x01, 0xf0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00));
    assert.deepEqual(table.bytes, VTD_SL_PTE.serialize({ R: 1, W: 1, ADDR: table.addr }));
  });
});

describe('golden: x86 first-stage entries', () => {
  it('4K leaf R/W with A/D preset: P|R/W|U/S|A|D = 0x67', () => {
    const { leaf, table } = entryBytes('x86-fs', { pgsizeBitmap: SZ_4K, ias: 48, oas: 46 }, 0x1000n, 0x12345000n, SZ_4K, IOMMU_READ | IOMMU_WRITE);
    assert.deepEqual(leaf, le(0x67, 0x50, 0x34, 0x12, 0, 0, 0, 0));
    assert.deepEqual(table.bytes, X86_FS_PTE.serialize({ P: 1, RW: 1, US: 1, A: 1, ADDR: table.addr }));
  });
  it('2M leaf read-only, supervisor, no-execute: P|A|PS, XD bit 63', () => {
    const { leaf } = entryBytes('x86-fs', { pgsizeBitmap: SZ_4K | SZ_2M, ias: 48, oas: 46 }, SZ_2M, 0x40200000n, SZ_2M, IOMMU_READ | IOMMU_PRIV | IOMMU_NOEXEC);
    assert.deepEqual(leaf, le(0xa1, 0x00, 0x20, 0x40, 0, 0, 0, 0x80));
  });
  it('1G leaf (FL1GP) write-only without preset A/D: P|R/W|U/S|PS', () => {
    const cfg = { pgsizeBitmap: SZ_4K | SZ_1G, ias: 57, oas: 46, quirks: { firstStage1G: true, presetAccessDirty: false } };
    const { leaf } = entryBytes('x86-fs', cfg, SZ_1G, 0x140000000n, SZ_1G, IOMMU_WRITE);
    assert.deepEqual(leaf, le(0x87, 0x00, 0x00, 0x40, 0x01, 0, 0, 0));
  });
});

describe('golden: Arm LPAE entries', () => {
  const s1 = { pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, ias: 48, oas: 48 };
  it('stage-1 page R/W cacheable: type 3, AttrIndx 1, AP[1], SH inner, AF, nG = 0xF47', () => {
    const { leaf, table } = entryBytes('arm-lpae-s1', s1, 0x1000n, 0x12345000n, SZ_4K, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
    assert.deepEqual(leaf, le(0x47, 0x5f, 0x34, 0x12, 0, 0, 0, 0));
    assert.deepEqual(table.bytes, ARM_LPAE_S1_PTE.serialize({ TYPE: 3, OA: table.addr }));
  });
  it('stage-1 2M block read-only, privileged, execute-never: AP[2], SH outer, XN 54:53', () => {
    const { leaf } = entryBytes('arm-lpae-s1', s1, SZ_2M, 0x80400000n, SZ_2M, IOMMU_READ | IOMMU_PRIV | IOMMU_NOEXEC);
    assert.deepEqual(leaf, le(0x81, 0x0e, 0x40, 0x80, 0, 0, 0x60, 0));
  });
  it('stage-1 device page: AttrIndx 2', () => {
    const { leaf } = entryBytes('arm-lpae-s1', s1, 0n, 0x9000000n, SZ_4K, IOMMU_READ | IOMMU_WRITE | IOMMU_MMIO);
    assert.deepEqual(leaf, le(0x4b, 0x0e, 0x00, 0x09, 0, 0, 0, 0));
  });
  it('stage-2 page R/W write-back: MemAttr 0xF, HAP 3, SH inner, AF = 0x7FF', () => {
    const { leaf } = entryBytes('arm-lpae-s2', { ...s1, ias: 40 }, 0n, 0x40000000n, SZ_4K, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
    assert.deepEqual(leaf, le(0xff, 0x07, 0x00, 0x40, 0, 0, 0, 0));
    assert.equal(ARM_LPAE_S2_PTE.parse(leaf).HAP, 3);
  });
  it('stage-2 1G block write-only non-cacheable: MemAttr 0x5, HAP 2', () => {
    const { leaf } = entryBytes('arm-lpae-s2', { ...s1, ias: 44 }, SZ_1G, 0x180000000n, SZ_1G, IOMMU_WRITE);
    assert.deepEqual(leaf, le(0x95, 0x06, 0x00, 0x80, 0x01, 0, 0, 0));
  });
  it('stage-2 64K page with a 52-bit output: OA 51:48 in bits 15:12', () => {
    const cfg = { pgsizeBitmap: 1n << 16n, ias: 48, oas: 52 };
    const { leaf } = entryBytes('arm-lpae-s2', cfg, 0x10000n, 0xabcde00010000n, 1n << 16n, IOMMU_READ);
    assert.deepEqual(leaf, le(0x57, 0xa6, 0x01, 0x00, 0xde, 0xbc, 0, 0));
  });
});
