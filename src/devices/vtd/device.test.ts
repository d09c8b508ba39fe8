/**
 * The VT-d unit driven only through its registers, over tables built in memory: capabilities, every
 * translation type, each fault reason by the condition that defines it, caches that stay stale until
 * invalidated, register-based and queued invalidation, and fault events.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IOMMU_READ, IOMMU_WRITE } from '../../pgtable/types.js';
import * as F from './faults.js';
import * as R from './regs.js';
import { VtdRig } from './testing.js';

const RW = IOMMU_READ | IOMMU_WRITE;
const SID = 0x0020; // 00:04.0

function fault(r: ReturnType<VtdRig['unit']['translate']>): number {
  assert.equal(r.ok, false, 'expected a fault');
  return r.ok ? -1 : r.faultReason;
}

describe('VT-d capabilities', () => {
  it('reproduces the CAP and ECAP QEMU 7.2 reports', () => {
    assert.equal(new VtdRig({ preset: 'qemu-7.2' }).unit.cap, 0xd2008c22260206n);
    assert.equal(new VtdRig({ preset: 'qemu-7.2' }).unit.ecap, 0xf00f4an);
    assert.equal(new VtdRig({ preset: 'qemu-7.2', interruptRemapping: false }).unit.ecap, 0xf42n);
    assert.equal(new VtdRig({ preset: 'qemu-7.2', interruptRemapping: false, scalableMode: true }).unit.ecap, 0x480080000f42n);
  });

  it('derives SAGAW/MGAW from awBits, CM, NFR, and reads them through the registers', () => {
    const rig = new VtdRig({ awBits: 48, cachingMode: true, faultRecords: 4 });
    const cap = rig.reg(R.DMAR_CAP_REG, 8);
    assert.equal((cap >> 8n) & 0x1fn, 0b110n, '48-bit also advertises 39-bit tables');
    assert.equal(((cap >> 16n) & 0x3fn) + 1n, 48n);
    assert.equal((cap >> 7n) & 1n, 1n);
    assert.equal(((cap >> 40n) & 0xffn) + 1n, 4n);
    assert.equal(((cap >> 24n) & 0x3ffn) * 16n, BigInt(R.FRO_OFFSET));
    assert.equal(rig.reg(R.DMAR_VER_REG), 0x10n);
  });
});

describe('VT-d legacy mode', () => {
  function legacy() {
    const rig = new VtdRig({ awBits: 48 });
    const pt = rig.ssTable(48);
    pt.map(0x10000n, 0x500000n, 0x2000n, RW);
    pt.map(0x20000n, 0x600000n, 0x1000n, IOMMU_READ);
    rig.legacyContext(SID, { aw: 2, did: 7, table: pt.root });
    rig.enable();
    return { rig, pt };
  }

  it('translates through root, context and a 4-level second-stage table', () => {
    const { rig } = legacy();
    assert.equal(Number(rig.reg(R.DMAR_GSTS_REG)) & (R.GCMD_TE | R.GCMD_SRTP), R.GCMD_TE | R.GCMD_SRTP);
    const r = rig.unit.translate({ sid: SID, iova: 0x11234n, write: true });
    assert.ok(r.ok);
    assert.equal(r.addr, 0x501234n);
    assert.equal(r.pageSize, 0x1000n);
  });

  it('records a write to a read-only page as fault 5 with SID, reason, type and address, and raises the fault event', () => {
    const { rig } = legacy();
    rig.wr(R.DMAR_FEDATA_REG, 0x4041n);
    rig.wr(R.DMAR_FEADDR_REG, 0xfee00000n);
    rig.wr(R.DMAR_FECTL_REG, 0n); // unmask
    assert.equal(fault(rig.unit.translate({ sid: SID, iova: 0x20008n, write: true })), F.VTD_FR_WRITE);
    const [lo, hi] = rig.faultRecord();
    assert.equal(lo, 0x20000n);
    assert.equal(hi & 0xffffn, BigInt(SID));
    assert.equal((hi >> 32n) & 0xffn, BigInt(F.VTD_FR_WRITE));
    assert.equal((hi >> 62n) & 1n, 0n, 'T = 0: write');
    assert.equal(hi >> 63n, 1n, 'F');
    assert.ok(Number(rig.reg(R.DMAR_FSTS_REG)) & R.FSTS_PPF);
    assert.deepEqual(rig.msis, [{ address: 0xfee00000n, data: 0x4041 }]);
  });

  it('produces each legacy fault reason from the condition that defines it', () => {
    const { rig, pt } = legacy();
    assert.equal(fault(rig.unit.translate({ sid: 0x0100, iova: 0n, write: false })), F.VTD_FR_ROOT_ENTRY_P, 'bus 1 has no root entry');
    assert.equal(fault(rig.unit.translate({ sid: 0x0028, iova: 0n, write: false })), F.VTD_FR_CONTEXT_ENTRY_P);
    assert.equal(fault(rig.unit.translate({ sid: SID, iova: 1n << 48n, write: false })), F.VTD_FR_ADDR_BEYOND_MGAW);
    assert.equal(fault(rig.unit.translate({ sid: SID, iova: 0x30000n, write: false })), F.VTD_FR_READ, 'not-present PTE on a read');
    rig.legacyContext(0x0030, { tt: 2, aw: 2 });
    assert.equal(rig.unit.translate({ sid: 0x0030, iova: 0x1234n, write: true }).ok, true, 'pass-through');
    rig.legacyContext(0x0031, { tt: 3, aw: 2, table: pt.root });
    assert.equal(fault(rig.unit.translate({ sid: 0x0031, iova: 0n, write: false })), F.VTD_FR_CONTEXT_ENTRY_INV, 'TT = 3');
    rig.legacyContext(0x0032, { aw: 3, table: pt.root });
    assert.equal(fault(rig.unit.translate({ sid: 0x0032, iova: 0n, write: false })), F.VTD_FR_CONTEXT_ENTRY_INV, '57-bit AW not in SAGAW');
    rig.legacyContext(0x0033, { raw: [pt.root | 0x10n | 1n, 0x102n] });
    assert.equal(fault(rig.unit.translate({ sid: 0x0033, iova: 0n, write: false })), F.VTD_FR_CONTEXT_ENTRY_RSVD);
    rig.memory.writeU64(rig.root + 16n * 2n, 0x4000n | 0x10n | 1n);
    assert.equal(fault(rig.unit.translate({ sid: 0x0200, iova: 0n, write: false })), F.VTD_FR_ROOT_ENTRY_RSVD);
  });

  it('blocks translated requests unless the context allows device TLBs (fault 0xD), and lets them through when it does', () => {
    const { rig, pt } = legacy();
    assert.equal(fault(rig.unit.translate({ sid: SID, iova: 0x500000n, write: false, translated: true })), F.VTD_FR_CONTEXT_ENTRY_TT);
    const dt = new VtdRig({ awBits: 48, deviceTlb: true });
    dt.legacyContext(SID, { tt: 1, aw: 2, table: pt.root });
    dt.enable();
    const r = dt.unit.translate({ sid: SID, iova: 0x500000n, write: true, translated: true });
    assert.ok(r.ok && r.addr === 0x500000n);
  });

  it('refuses a second-stage output in the interrupt address range (0xE legacy, 0x87 scalable)', () => {
    const { rig, pt } = legacy();
    pt.map(0x70000n, 0xfee00000n, 0x1000n, RW);
    assert.equal(fault(rig.unit.translate({ sid: SID, iova: 0x70000n, write: true })), F.VTD_FR_INTERRUPT_ADDR);
    const sm = new VtdRig({ scalableMode: true, awBits: 48 });
    const ss = sm.ssTable(48);
    ss.map(0x70000n, 0xfee01000n, 0x1000n, RW);
    const dir = sm.scalableContext(SID);
    sm.pasidEntry(dir, 0, { pgtt: 2, aw: 2, ss: ss.root });
    sm.enable(true);
    assert.equal(fault(sm.unit.translate({ sid: SID, iova: 0x70000n, write: false })), F.VTD_FR_SM_INTERRUPT_ADDR);
  });

  it('faults a context table pointer outside memory (fault 9)', () => {
    const { rig } = legacy();
    rig.memory.writeU64(rig.root + 16n * 7n, 0x7fff00000000n | 1n);
    assert.equal(fault(rig.unit.translate({ sid: 0x0700, iova: 0n, write: false })), F.VTD_FR_CONTEXT_TABLE_INV);
  });

  it('faults reserved bits in a PTE (fault 0xC) and a table pointer outside memory (fault 7)', () => {
    const { rig, pt } = legacy();
    let leaf = 0n;
    pt.walk(0x10000n, (e) => void (e.kind === 'leaf' && (leaf = e.tableAddr + BigInt(e.index) * 8n)));
    rig.memory.writeU64(leaf, rig.memory.readU64(leaf) | (1n << 11n)); // SNP without snoop control
    assert.equal(fault(rig.unit.translate({ sid: SID, iova: 0x10000n, write: false })), F.VTD_FR_PAGING_ENTRY_RSVD);
    rig.memory.writeU64(pt.root + 8n, 0x7fff0000000n | 3n); // PML4E[1] -> beyond 16 GiB of memory
    assert.equal(fault(rig.unit.translate({ sid: SID, iova: 1n << 39n, write: false })), F.VTD_FR_PAGING_ENTRY_INV);
  });

  it('keeps a cached translation after the table changes until software invalidates it', () => {
    const { rig, pt } = legacy();
    assert.equal((rig.unit.translate({ sid: SID, iova: 0x10000n, write: false }) as { addr: bigint }).addr, 0x500000n);
    pt.unmap(0x10000n, 0x1000n);
    pt.map(0x10000n, 0x900000n, 0x1000n, RW);
    const stale = rig.unit.translate({ sid: SID, iova: 0x10000n, write: false });
    assert.ok(stale.ok && stale.cached && stale.addr === 0x500000n, 'stale IOTLB entry');
    // Page-selective IOTLB invalidation through the IVA/IOTLB registers, domain 7.
    rig.wr(R.IRO_OFFSET, 0x10000n, 8);
    rig.wr(R.IRO_OFFSET + 8, (1n << 63n) | (3n << 60n) | (7n << 32n), 8);
    const iotlbReg = rig.reg(R.IRO_OFFSET + 8, 8);
    assert.equal(iotlbReg >> 63n, 0n, 'IVT clears when done');
    assert.equal((iotlbReg >> 57n) & 3n, 3n, 'IAIG reports page-selective');
    assert.equal((rig.unit.translate({ sid: SID, iova: 0x10000n, write: false }) as { addr: bigint }).addr, 0x900000n);
  });

  it('keeps a cached context entry until a context-cache invalidation', () => {
    const { rig, pt } = legacy();
    rig.unit.translate({ sid: SID, iova: 0x10000n, write: false });
    rig.legacyContext(SID, { tt: 2, aw: 2, did: 7, table: pt.root });
    // Global IOTLB flush alone does not drop the cached context.
    rig.wr(R.IRO_OFFSET + 8, (1n << 63n) | (1n << 60n), 8);
    assert.equal((rig.unit.translate({ sid: SID, iova: 0x10000n, write: false }) as { passthrough: boolean }).passthrough, false);
    rig.wr(R.DMAR_CCMD_REG, (1n << 63n) | (3n << 61n) | (BigInt(SID) << 16n), 8);
    assert.equal((rig.reg(R.DMAR_CCMD_REG, 8) >> 59n) & 3n, 3n, 'CAIG: device-selective');
    // spec: software follows a context-cache invalidation with an IOTLB invalidation.
    rig.wr(R.IRO_OFFSET + 8, (1n << 63n) | (1n << 60n), 8);
    assert.equal((rig.unit.translate({ sid: SID, iova: 0x10000n, write: false }) as { passthrough: boolean }).passthrough, true);
  });

  it('FPD in the context entry suppresses fault recording', () => {
    const { rig, pt } = legacy();
    rig.legacyContext(0x0040, { aw: 2, table: pt.root, fpd: true });
    const r = rig.unit.translate({ sid: 0x0040, iova: 0x30000n, write: false });
    assert.deepEqual(r, { ok: false, faultReason: F.VTD_FR_READ, recorded: false });
    assert.equal(rig.faultRecord()[1] >> 63n, 0n);
  });

  it('collapses a requester\'s repeated faults while its record is pending', () => {
    const { rig } = legacy();
    rig.unit.translate({ sid: SID, iova: 0x30000n, write: false });
    const again = rig.unit.translate({ sid: SID, iova: 0x31000n, write: false });
    assert.equal(!again.ok && again.recorded, false);
    assert.equal(Number(rig.reg(R.DMAR_FSTS_REG)) & R.FSTS_PFO, 0, 'collapsed, not overflowed');
    assert.equal(rig.faultRecord()[0], 0x30000n);
  });

  it('sets PFO and drops faults while the next record is still in use; clearing F lets recording resume', () => {
    const { rig } = legacy();
    rig.unit.translate({ sid: SID, iova: 0x30000n, write: false });
    const r = rig.unit.translate({ sid: 0x0100, iova: 0x31000n, write: false });
    assert.equal(!r.ok && r.recorded, false);
    assert.ok(Number(rig.reg(R.DMAR_FSTS_REG)) & R.FSTS_PFO);
    rig.wr(R.FRO_OFFSET + 12, 1n << 31n); // write 1 to F
    rig.wr(R.DMAR_FSTS_REG, BigInt(R.FSTS_PFO));
    assert.equal(Number(rig.reg(R.DMAR_FSTS_REG)) & (R.FSTS_PFO | R.FSTS_PPF), 0);
    const again = rig.unit.translate({ sid: SID, iova: 0x32000n, write: false });
    assert.equal(!again.ok && again.recorded, true);
  });

  it('translates nothing while translation is disabled: requests pass untranslated', () => {
    const rig = new VtdRig();
    const r = rig.unit.translate({ sid: SID, iova: 0x1234n, write: true });
    assert.ok(r.ok && r.passthrough && r.addr === 0x1234n);
  });
});

describe('VT-d queued invalidation', () => {
  function qi(scalable = false) {
    const rig = new VtdRig({ scalableMode: scalable, firstStage: scalable });
    const queue = rig.alloc.alloc();
    rig.wr(R.DMAR_IQA_REG, queue | (scalable ? 0x800n : 0n), 8);
    rig.command(R.GCMD_QIE);
    return { rig, queue, dw: scalable ? 32n : 16n };
  }

  it('runs descriptors up to the tail; the wait descriptor writes its status and interrupts', () => {
    const { rig, queue } = qi();
    rig.wr(R.DMAR_IEDATA_REG, 0x55n);
    rig.wr(R.DMAR_IEADDR_REG, 0xfee01000n);
    rig.wr(R.DMAR_IECTL_REG, 0n);
    rig.memory.writeU64(queue, 0x12n); // IOTLB, global
    rig.memory.writeU64(queue + 16n, (0xcafen << 32n) | 0x20n | 0x10n | 0x5n); // wait: SW + IF
    rig.memory.writeU64(queue + 24n, 0x7000n);
    rig.wr(R.DMAR_IQT_REG, 0x20n, 8);
    assert.equal(rig.reg(R.DMAR_IQH_REG, 8), 0x20n);
    assert.equal(rig.memory.readU32(0x7000n), 0xcafe);
    assert.ok(Number(rig.reg(R.DMAR_ICS_REG)) & R.ICS_IWC);
    assert.deepEqual(rig.msis, [{ address: 0xfee01000n, data: 0x55 }]);
  });

  it('stops on an invalid descriptor with FSTS.IQE and IQERCD, and resumes once IQE is cleared', () => {
    const { rig, queue } = qi();
    rig.memory.writeU64(queue, 0x12n);
    rig.memory.writeU64(queue + 16n, 0xfn); // type 15: unknown
    rig.memory.writeU64(queue + 32n, 0x12n);
    rig.wr(R.DMAR_IQT_REG, 0x30n, 8);
    assert.equal(rig.reg(R.DMAR_IQH_REG, 8), 0x10n, 'head stays on the bad descriptor');
    assert.ok(Number(rig.reg(R.DMAR_FSTS_REG)) & R.FSTS_IQE);
    assert.equal(rig.reg(R.DMAR_IQER_REG, 8) & 0xfn, 3n);
    rig.memory.writeU64(queue + 16n, 0x12n);
    rig.wr(R.DMAR_FSTS_REG, BigInt(R.FSTS_IQE));
    rig.wr(R.DMAR_IQT_REG, 0x30n, 8);
    assert.equal(rig.reg(R.DMAR_IQH_REG, 8), 0x30n);
  });

  it('refuses reserved bits (IQEI 4) and a 256-bit tail at an odd 128-bit slot (IQEI 1)', () => {
    const { rig, queue } = qi();
    rig.memory.writeU64(queue, 0x12n | (1n << 8n));
    rig.wr(R.DMAR_IQT_REG, 0x10n, 8);
    assert.equal(rig.reg(R.DMAR_IQER_REG, 8) & 0xfn, 4n);
    const s = qi(true);
    s.rig.wr(R.DMAR_IQT_REG, 0x10n, 8);
    assert.equal(s.rig.reg(R.DMAR_IQER_REG, 8) & 0xfn, 1n);
  });
});

describe('VT-d scalable mode', () => {
  function sm() {
    const rig = new VtdRig({ scalableMode: true, firstStage: true, secondStage: true, nesting: true, awBits: 48 });
    return rig;
  }

  it('PGTT second-stage: RID_PASID for requests without PASID', () => {
    const rig = sm();
    const ss = rig.ssTable(48);
    ss.map(0x4000n, 0x800000n, 0x1000n, RW);
    const dir = rig.scalableContext(SID, { ridPasid: 0 });
    rig.pasidEntry(dir, 0, { pgtt: 2, aw: 2, ss: ss.root, did: 3 });
    rig.enable(true);
    const r = rig.unit.translate({ sid: SID, iova: 0x4010n, write: true });
    assert.ok(r.ok && r.addr === 0x800010n);
    assert.equal(fault(rig.unit.translate({ sid: SID, iova: 0x5000n, write: false })), F.VTD_FR_SS_RW);
  });

  it('PGTT first-stage: walks IA-32e tables, writes A/D back, checks U/S, SRE and canonical addresses', () => {
    const rig = sm();
    const fs = rig.fsTable(4);
    fs.map(0x7000n, 0x900000n, 0x1000n, RW);
    const dir = rig.scalableContext(SID, { paside: true });
    rig.pasidEntry(dir, 5, { pgtt: 1, fs: fs.root, did: 4 });
    rig.enable(true);
    const r = rig.unit.translate({ sid: SID, pasid: 5, iova: 0x7008n, write: true });
    assert.ok(r.ok && r.addr === 0x900008n);
    let leaf = 0n;
    fs.walk(0x7000n, (e) => void (e.kind === 'leaf' && (leaf = e.pte)));
    assert.equal(leaf & 0x60n, 0x60n, 'A and D set by the walk');
    assert.equal(fault(rig.unit.translate({ sid: SID, pasid: 5, iova: 0x7000n, write: false, priv: true })), F.VTD_FR_SM_SRE_0);
    assert.equal(fault(rig.unit.translate({ sid: SID, pasid: 5, iova: 0x0000800000000000n, write: false })), F.VTD_FR_NON_CANONICAL);
    assert.equal(fault(rig.unit.translate({ sid: SID, pasid: 5, iova: 0x9000n, write: false })), F.VTD_FR_FS_NOT_PRESENT);
    assert.equal(fault(rig.unit.translate({ sid: SID, pasid: 6, iova: 0x7000n, write: false })), F.VTD_FR_SM_PASID_TABLE_P);
  });

  it('PGTT nested: every first-stage table pointer and the output go through the second stage', () => {
    const rig = sm();
    // Second stage: the guest's table pages are identity-mapped (GPA = HPA), its data at GPA 0 lives at
    // HPA 1 GiB. So table fetches are nested walks, and the output moves.
    const ss = rig.ssTable(48);
    ss.map(0x10000000n, 0x10000000n, 0x4000000n, RW);
    ss.map(0n, 0x40000000n, 0x4000000n, RW);
    const fs = rig.fsTable(4);
    fs.map(0x1000n, 0x2000n, 0x1000n, RW);
    const dir = rig.scalableContext(SID, { paside: true });
    rig.pasidEntry(dir, 9, { pgtt: 3, fs: fs.root, ss: ss.root, aw: 2, did: 5 });
    rig.enable(true);
    const r = rig.unit.translate({ sid: SID, pasid: 9, iova: 0x1004n, write: false });
    assert.ok(r.ok);
    assert.equal(r.addr, 0x40002004n, 'GVA 0x1004 -> GPA 0x2004 -> HPA 0x40002004');
    // Remove the second-stage mapping of the first-stage root: the table fetch itself faults.
    ss.unmap(0x10000000n, 0x4000000n);
    rig.wr(R.DMAR_IQA_REG, 0n, 8);
    rig.wr(R.IRO_OFFSET + 8, (1n << 63n) | (1n << 60n), 8);
    assert.equal(fault(rig.unit.translate({ sid: SID, pasid: 9, iova: 0x1004n, write: false })), F.VTD_FR_NESTED_FS_READ);
  });

  it('faults a PASID request when PASIDE is clear, a PASID beyond PDTS, and an unsupported PGTT', () => {
    const rig = new VtdRig({ scalableMode: true, firstStage: false, secondStage: true, awBits: 48 });
    const dir = rig.scalableContext(SID, { paside: false });
    rig.pasidEntry(dir, 0, { pgtt: 1, did: 3 });
    rig.enable(true);
    assert.equal(fault(rig.unit.translate({ sid: SID, pasid: 3, iova: 0n, write: false })), F.VTD_FR_SM_CTX_PASIDE);
    assert.equal(fault(rig.unit.translate({ sid: SID, iova: 0n, write: false })), F.VTD_FR_SM_PASID_ENTRY_INV, 'first-stage without ECAP.FSTS');
    rig.scalableContext(0x0050, { paside: true, pdts: 0 });
    assert.equal(fault(rig.unit.translate({ sid: 0x0050, pasid: 1 << 14, iova: 0n, write: false })), F.VTD_FR_SM_PASID_OVER_PDTS);
  });

  it('a legacy root table refuses requests with PASID (0x31)', () => {
    const rig = sm();
    rig.legacyContext(SID, { tt: 2, aw: 2 });
    rig.enable(false);
    assert.equal(fault(rig.unit.translate({ sid: SID, pasid: 1, iova: 0n, write: false })), F.VTD_FR_RTADDR_INV_TTM);
  });
});

describe('VT-d page requests', () => {
  function prq() {
    const rig = new VtdRig({ scalableMode: true, firstStage: true, pageRequests: true, awBits: 48 });
    const fs = rig.fsTable(4);
    const dir = rig.scalableContext(SID, { paside: true, pre: true });
    rig.pasidEntry(dir, 3, { pgtt: 1, fs: fs.root });
    rig.scalableContext(0x0028, { paside: true, pre: false });
    rig.enable(true);
    const pq = rig.alloc.alloc();
    rig.wr(R.DMAR_PQA_REG, pq, 8); // PQS 0: 128 descriptors
    rig.wr(R.DMAR_PEDATA_REG, 0x77n);
    rig.wr(R.DMAR_PEADDR_REG, 0xfee02000n);
    rig.wr(R.DMAR_PECTL_REG, 0n);
    return { rig, pq };
  }

  it('writes the page request descriptor at PQT, sets PPR and raises the page request event', () => {
    const { rig, pq } = prq();
    const out = rig.unit.pageRequest({ sid: SID, pasid: 3, address: 0x7123n, read: true, write: true, prgi: 0x55, lastInGroup: true });
    assert.equal(out, 'queued');
    assert.equal(rig.reg(R.DMAR_PQT_REG, 8), 0x20n);
    const qw0 = rig.memory.readU64(pq);
    const qw1 = rig.memory.readU64(pq + 8n);
    assert.equal(qw0 & 0xffn, 1n);
    assert.equal((qw0 >> 8n) & 1n, 1n, 'PASID present');
    assert.equal((qw0 >> 16n) & 0xffffn, BigInt(SID));
    assert.equal((qw0 >> 32n) & 0xfffffn, 3n);
    assert.equal(qw1, 0x7000n | (0x55n << 3n) | 4n | 2n | 1n);
    assert.ok(Number(rig.reg(R.DMAR_PRS_REG)) & R.PRS_PPR);
    assert.deepEqual(rig.msis, [{ address: 0xfee02000n, data: 0x77 }]);
  });

  it('returns page group responses (descriptor type 9) to the endpoint', () => {
    const { rig } = prq();
    const queue = rig.alloc.alloc();
    rig.wr(R.DMAR_IQA_REG, queue | 0x800n, 8);
    rig.command(R.GCMD_QIE);
    rig.memory.writeU64(queue, 0x9n | 0x10n | (1n << 12n) | (BigInt(SID) << 16n) | (3n << 32n));
    rig.memory.writeU64(queue + 8n, (0x55n << 3n) | 4n);
    rig.wr(R.DMAR_IQT_REG, 0x20n, 8);
    assert.deepEqual(rig.responses, [{ sid: SID, pasid: 3, prgi: 0x55, code: 1, auto: false }]);
  });

  it('refuses requests from a device whose context has PRE clear (fault 0x47)', () => {
    const { rig } = prq();
    assert.equal(rig.unit.pageRequest({ sid: 0x0028, pasid: 1, address: 0n, read: true, write: false, prgi: 1, lastInGroup: true }), 'refused');
    assert.equal((rig.faultRecord()[1] >> 32n) & 0xffn, BigInt(F.VTD_FR_SM_CTX_PRE));
  });

  it('sets PRO when the queue is full and answers the group itself', () => {
    const { rig } = prq();
    for (let i = 0; i < 127; i++) assert.equal(rig.unit.pageRequest({ sid: SID, pasid: 3, address: BigInt(i) << 12n, read: true, write: false, prgi: 1, lastInGroup: false }), 'queued');
    assert.equal(rig.unit.pageRequest({ sid: SID, pasid: 3, address: 0n, read: true, write: false, prgi: 2, lastInGroup: true }), 'overflow');
    assert.ok(Number(rig.reg(R.DMAR_PRS_REG)) & R.PRS_PRO);
    assert.deepEqual(rig.responses, [{ sid: SID, pasid: 3, prgi: 2, code: 0, auto: true }]);
  });
});

describe('VT-d: what a VMM observes', () => {
  it('caching mode: page-selective invalidations after map and unmap become map and unmap notifications', () => {
    const seen: string[] = [];
    const rig = new VtdRig({
      awBits: 48,
      cachingMode: true,
      devices: [SID],
      observer: {
        invalidation: (i) => void seen.push(`inv ${i.source} ${i.name} g${i.granularity} did${i.did ?? '-'} ${i.addr === undefined ? '' : `0x${i.addr.toString(16)}/${i.am}`}`.trim()),
        map: (e) => void seen.push(`map sid${e.sid} 0x${e.iova.toString(16)}+0x${e.size.toString(16)} -> 0x${e.pa.toString(16)} ${e.write ? 'rw' : 'r'}`),
        unmap: (e) => void seen.push(`unmap sid${e.sid} 0x${e.iova.toString(16)}+0x${e.size.toString(16)}`),
      },
    });
    const pt = rig.ssTable(48);
    rig.legacyContext(SID, { aw: 2, did: 9, table: pt.root });
    rig.enable();
    const queue = rig.alloc.alloc();
    rig.wr(R.DMAR_IQA_REG, queue, 8);
    rig.command(R.GCMD_QIE);
    const psi = (slot: number, addr: bigint, am: bigint): void => {
      rig.memory.writeU64(queue + BigInt(16 * slot), (9n << 16n) | (3n << 4n) | 2n);
      rig.memory.writeU64(queue + BigInt(16 * slot + 8), addr | am);
      rig.wr(R.DMAR_IQT_REG, BigInt(16 * (slot + 1)), 8);
    };
    // spec (caching mode): software invalidates after creating a mapping, so the VMM can shadow it.
    pt.map(0x40000n, 0x123000n, 0x2000n, RW);
    psi(0, 0x40000n, 1n);
    pt.unmap(0x41000n, 0x1000n);
    psi(1, 0x41000n, 0n);
    assert.deepEqual(seen, [
      'inv queue iotlb g3 did9 0x40000/1',
      'map sid32 0x40000+0x1000 -> 0x123000 rw',
      'map sid32 0x41000+0x1000 -> 0x124000 rw',
      'inv queue iotlb g3 did9 0x41000/0',
      'unmap sid32 0x41000+0x1000',
    ]);
  });

  it('reports every queued descriptor raw and decoded, and PASID-cache invalidations', () => {
    const invs: { name: string; raw: bigint[] }[] = [];
    const pasids: unknown[] = [];
    const rig = new VtdRig({ scalableMode: true, firstStage: true, observer: { invalidation: (i) => void invs.push({ name: i.name, raw: i.raw }), pasidChange: (e) => void pasids.push(e) } });
    const queue = rig.alloc.alloc();
    rig.wr(R.DMAR_IQA_REG, queue | 0x800n, 8);
    rig.command(R.GCMD_QIE);
    rig.memory.writeU64(queue, (1n << 4n) | (4n << 16n) | (7n << 32n) | 7n); // PASID cache, PASID-selective, DID 4, PASID 7
    rig.memory.writeU64(queue + 32n, (2n << 4n) | (4n << 16n) | (7n << 32n) | 6n); // PASID-IOTLB, all in PASID
    rig.wr(R.DMAR_IQT_REG, 0x40n, 8);
    assert.deepEqual(invs.map((i) => i.name), ['pasid-cache', 'pasid-iotlb']);
    assert.equal(invs[0]!.raw.length, 4, '256-bit descriptors are reported whole');
    assert.deepEqual(pasids, [{ granularity: 1, did: 4, pasid: 7 }]);
  });
});

describe('VT-d fault reasons, each from the condition that defines it', () => {
  /** A scalable unit with one device whose PASID 1 uses first-stage and PASID 2 second-stage tables. */
  function setup() {
    const rig = new VtdRig({ scalableMode: true, firstStage: true, nesting: true, awBits: 48 });
    const fs = rig.fsTable(4);
    fs.map(0x1000n, 0x5000n, 0x1000n, IOMMU_READ);
    const ss = rig.ssTable(48);
    ss.map(0x1000n, 0x6000n, 0x1000n, RW);
    const dir = rig.scalableContext(SID, { paside: true, pdts: 0 });
    rig.pasidEntry(dir, 1, { pgtt: 1, fs: fs.root, sre: true });
    rig.pasidEntry(dir, 2, { pgtt: 2, ss: ss.root, aw: 2 });
    rig.enable(true);
    return { rig, fs, ss, dir };
  }
  const leafOf = (t: { walk: (i: bigint, v: (e: { kind: string; tableAddr: bigint; index: number }) => void) => void }, iova: bigint): bigint => {
    let at = 0n;
    t.walk(iova, (e) => void (e.kind === 'leaf' && (at = e.tableAddr + BigInt(e.index) * 8n)));
    return at;
  };

  type Outcome = ReturnType<VtdRig['unit']['translate']>;
  /** A case returns the outcome, or the outcome and the rig it used when it needed its own unit. */
  const cases: [string, number, (s: ReturnType<typeof setup>) => Outcome | [Outcome, VtdRig]][] = [
    ['legacy root table with a reserved TTM (8)', F.VTD_FR_ROOT_TABLE_INV, ({ rig }) => {
      rig.wr(R.DMAR_RTADDR_REG, rig.root | 0xc00n, 8);
      rig.command(R.GCMD_SRTP);
      return rig.translate({ sid: SID, iova: 0n, write: false });
    }],
    ['scalable root entry not present (0x39)', F.VTD_FR_SM_ROOT_P, ({ rig }) => rig.translate({ sid: 0x0300, iova: 0n, write: false })],
    ['scalable root entry with reserved bits (0x3A)', F.VTD_FR_SM_ROOT_RSVD, ({ rig }) => {
      rig.memory.writeU64(rig.root + 16n * 5n, 0x1000n | 0x20n | 1n);
      return rig.translate({ sid: 0x0500, iova: 0n, write: false });
    }],
    ['scalable context entry not present (0x41)', F.VTD_FR_SM_CTX_P, ({ rig }) => rig.translate({ sid: SID + 1, iova: 0n, write: false })],
    ['scalable context entry with reserved bits (0x42)', F.VTD_FR_SM_CTX_RSVD, ({ rig }) => {
      const ctp = rig.memory.readU64(rig.root) & ~0xfffn;
      rig.memory.writeU64(ctp + 32n * 0x21n, 0x1000n | 0x40n | 1n);
      return rig.translate({ sid: 0x21, iova: 0n, write: false });
    }],
    ['PASID directory entry not present (0x51)', F.VTD_FR_SM_PASID_DIR_P, ({ rig }) => {
      rig.scalableContext(0x22, { paside: true, pdts: 1 });
      return rig.translate({ sid: 0x22, pasid: 64, iova: 0n, write: false });
    }],
    ['PASID directory entry with reserved bits (0x52)', F.VTD_FR_SM_PASID_DIR_RSVD, ({ rig, dir }) => {
      rig.memory.writeU64(dir + 8n, 0x2000n | 0x10n | 1n);
      return rig.translate({ sid: SID, pasid: 70, iova: 0n, write: false });
    }],
    ['PASID table entry with reserved bits (0x5A)', F.VTD_FR_SM_PASID_TABLE_RSVD, ({ rig, dir }) => {
      const table = rig.memory.readU64(dir) & ~0xfffn;
      rig.memory.writeU64(table + 64n * 1n + 24n, 1n);
      return rig.translate({ sid: SID, pasid: 1, iova: 0x1000n, write: false });
    }],
    ['execute request with ERE clear (0x5C)', F.VTD_FR_SM_ERE_0, ({ rig }) => rig.translate({ sid: SID, pasid: 1, iova: 0x1000n, write: false, exec: true })],
    ['first-stage table pointer outside memory (0x70)', F.VTD_FR_FS_ACCESS, ({ rig, fs }) => {
      rig.memory.writeU64(fs.root + 8n, 0x7fff0000000n | 0x27n);
      return rig.translate({ sid: SID, pasid: 1, iova: 1n << 39n, write: false });
    }],
    ['first-stage entry with reserved bits (0x72)', F.VTD_FR_FS_RSVD, ({ rig, fs }) => {
      rig.memory.writeU64(fs.root + 16n, 0x3000n | 0x80n | 0x27n); // PS in a PML4E
      return rig.translate({ sid: SID, pasid: 1, iova: 2n << 39n, write: false });
    }],
    ['first-stage write to a read-only page (0x85)', F.VTD_FR_FS_WRITE, ({ rig }) => rig.translate({ sid: SID, pasid: 1, iova: 0x1000n, write: true })],
    ['first-stage user request to a supervisor page (0x81)', F.VTD_FR_FS_USER, ({ rig, fs }) => {
      const leaf = leafOf(fs, 0x1000n);
      rig.memory.writeU64(leaf, rig.memory.readU64(leaf) & ~4n);
      return rig.translate({ sid: SID, pasid: 1, iova: 0x1000n, write: false });
    }],
    ['second-stage table pointer outside memory (0x78)', F.VTD_FR_SS_ACCESS, ({ rig, ss }) => {
      rig.memory.writeU64(ss.root + 8n, 0x7fff0000000n | 3n);
      return rig.translate({ sid: SID, pasid: 2, iova: 1n << 39n, write: false });
    }],
    ['second-stage entry with reserved bits (0x7A)', F.VTD_FR_SS_RSVD, ({ rig, ss }) => {
      const leaf = leafOf(ss, 0x1000n);
      rig.memory.writeU64(leaf, rig.memory.readU64(leaf) | (1n << 11n));
      return rig.translate({ sid: SID, pasid: 2, iova: 0x1000n, write: false });
    }],
    ['nested: first-stage A/D update without second-stage write permission (0x77)', F.VTD_FR_NESTED_FS_WRITE, ({ rig }) => {
      const ss = rig.ssTable(48);
      ss.map(0x10000000n, 0x10000000n, 0x4000000n, IOMMU_READ);
      ss.map(0n, 0n, 0x1000000n, RW);
      const fs = rig.fsTable(4);
      fs.map(0x1000n, 0x2000n, 0x1000n, RW);
      const dir = rig.scalableContext(0x30, { paside: true });
      rig.pasidEntry(dir, 4, { pgtt: 3, fs: fs.root, ss: ss.root, aw: 2 });
      return rig.translate({ sid: 0x30, pasid: 4, iova: 0x1000n, write: true });
    }],
    ['scalable root table outside memory (0x38)', F.VTD_FR_SM_ROOT_ACCESS, ({ rig }) => {
      rig.wr(R.DMAR_RTADDR_REG, 0x7fffff000000n | 0x400n, 8);
      rig.command(R.GCMD_SRTP);
      return rig.translate({ sid: SID, iova: 0n, write: false });
    }],
    ['scalable context table outside memory (0x40)', F.VTD_FR_SM_CTX_ACCESS, ({ rig }) => {
      rig.memory.writeU64(rig.root + 16n * 6n, 0x7fff00000000n | 1n);
      return rig.translate({ sid: 0x0600, iova: 0n, write: false });
    }],
    ['PASIDE set on a unit without PASID support (0x43)', F.VTD_FR_SM_CTX_INV, () => {
      const rig = new VtdRig({ scalableMode: true, secondStage: true, pasidBits: 0 });
      rig.scalableContext(SID, { paside: true });
      rig.enable(true);
      return [rig.translate({ sid: SID, iova: 0n, write: false }), rig];
    }],
    ['translated request without DTE (0x44)', F.VTD_FR_SM_CTX_DTE, ({ rig }) => rig.translate({ sid: SID, iova: 0x1000n, write: false, translated: true })],
    ['RID_PASID beyond the PASID width (0x48)', F.VTD_FR_SM_RID_PASID, () => {
      const rig = new VtdRig({ scalableMode: true, secondStage: true, pasidBits: 8 });
      rig.scalableContext(SID, { ridPasid: 0x100 });
      rig.enable(true);
      return [rig.translate({ sid: SID, iova: 0n, write: false }), rig];
    }],
    ['PASID directory outside memory (0x50)', F.VTD_FR_SM_PASID_DIR_ACCESS, ({ rig }) => {
      const ctp = rig.memory.readU64(rig.root) & ~0xfffn;
      rig.memory.writeU64(ctp + 32n * 0x24n, 0x7fff00000000n | 1n);
      return rig.translate({ sid: 0x24, iova: 0n, write: false });
    }],
    ['PASID table outside memory (0x58)', F.VTD_FR_SM_PASID_TABLE_ACCESS, ({ rig, dir }) => {
      rig.memory.writeU64(dir + 8n * 3n, 0x7fff00000000n | 1n);
      return rig.translate({ sid: SID, pasid: 3 * 64, iova: 0n, write: false });
    }],
    ['second-stage table pointer beyond the host width (0x7B)', F.VTD_FR_SS_INV_PTR, ({ rig, dir }) => {
      rig.pasidEntry(dir, 7, { pgtt: 2, aw: 2, ss: 1n << 50n });
      return rig.translate({ sid: SID, pasid: 7, iova: 0n, write: false });
    }],
    ['nested: first-stage output beyond the second-stage width (0x74)', F.VTD_FR_NESTED_BEYOND_MGAW, ({ rig }) => {
      const ss = rig.ssTable(39);
      ss.map(0x10000000n, 0x10000000n, 0x4000000n, RW);
      const fs = rig.fsTable(4);
      fs.map(0x1000n, 1n << 40n, 0x1000n, RW);
      const dir = rig.scalableContext(0x31, { paside: true });
      rig.pasidEntry(dir, 4, { pgtt: 3, fs: fs.root, ss: ss.root, aw: 1 });
      return rig.translate({ sid: 0x31, pasid: 4, iova: 0x1000n, write: false });
    }],
    ['first-stage execute of an XD page (0x82)', F.VTD_FR_FS_EXEC, ({ rig, fs, dir }) => {
      const leaf = leafOf(fs, 0x1000n);
      rig.memory.writeU64(leaf, rig.memory.readU64(leaf) | (1n << 63n));
      rig.pasidEntry(dir, 8, { pgtt: 1, fs: fs.root, ere: true });
      return rig.translate({ sid: SID, pasid: 8, iova: 0x1000n, write: false, exec: true });
    }],
  ];
  for (const [name, reason, run] of cases) {
    it(name, () => {
      const s = setup();
      const out = run(s);
      const [r, rig] = Array.isArray(out) ? out : [out, s.rig];
      assert.equal(fault(r), reason);
      const [lo, hi] = rig.faultRecord();
      const req = rig.lastRequest!;
      assert.equal((hi >> 32n) & 0xffn, BigInt(reason), 'FR');
      assert.equal(hi & 0xffffn, BigInt(req.sid), 'SID');
      assert.equal(lo, BigInt.asUintN(64, req.iova) & ~0xfffn, 'FI: the faulting page');
      assert.equal((hi >> 62n) & 1n, req.write ? 0n : 1n, 'T: 0 write, 1 read');
      assert.equal((hi >> 31n) & 1n, req.pasid === undefined ? 0n : 1n, 'PP');
      assert.equal((hi >> 40n) & 0xfffffn, BigInt(req.pasid ?? 0), 'PASID');
      assert.ok(Number(rig.reg(R.DMAR_FSTS_REG)) & R.FSTS_PPF, 'FSTS.PPF');
    });
  }
});
