/**
 * VT-d remapping-unit registers, declared as data (Intel VT-d spec chapter 11; the facts in
 * ../shared/reference/vtd.md): offset, width, reset value, the bits software may write, and the bits that are
 * write-1-to-clear. One generic bank applies the declarations; the unit adds side effects per register.
 */

export interface RegDef {
  name: string;
  offset: number;
  size: 4 | 8;
  reset: bigint;
  /** Bits a write changes. */
  wmask: bigint;
  /** Bits a write of 1 clears. */
  w1c: bigint;
}

// Register offsets (spellings follow the spec / Linux's DMAR_*_REG).
export const DMAR_VER_REG = 0x00;
export const DMAR_CAP_REG = 0x08;
export const DMAR_ECAP_REG = 0x10;
export const DMAR_GCMD_REG = 0x18;
export const DMAR_GSTS_REG = 0x1c;
export const DMAR_RTADDR_REG = 0x20;
export const DMAR_CCMD_REG = 0x28;
export const DMAR_FSTS_REG = 0x34;
export const DMAR_FECTL_REG = 0x38;
export const DMAR_FEDATA_REG = 0x3c;
export const DMAR_FEADDR_REG = 0x40;
export const DMAR_FEUADDR_REG = 0x44;
export const DMAR_AFLOG_REG = 0x58;
export const DMAR_PMEN_REG = 0x64;
export const DMAR_PLMBASE_REG = 0x68;
export const DMAR_PLMLIMIT_REG = 0x6c;
export const DMAR_PHMBASE_REG = 0x70;
export const DMAR_PHMLIMIT_REG = 0x78;
export const DMAR_IQH_REG = 0x80;
export const DMAR_IQT_REG = 0x88;
export const DMAR_IQA_REG = 0x90;
export const DMAR_ICS_REG = 0x9c;
export const DMAR_IECTL_REG = 0xa0;
export const DMAR_IEDATA_REG = 0xa4;
export const DMAR_IEADDR_REG = 0xa8;
export const DMAR_IEUADDR_REG = 0xac;
export const DMAR_IQER_REG = 0xb0;
export const DMAR_IRTA_REG = 0xb8;
export const DMAR_PQH_REG = 0xc0;
export const DMAR_PQT_REG = 0xc8;
export const DMAR_PQA_REG = 0xd0;
export const DMAR_PRS_REG = 0xdc;
export const DMAR_PECTL_REG = 0xe0;
export const DMAR_PEDATA_REG = 0xe4;
export const DMAR_PEADDR_REG = 0xe8;
export const DMAR_PEUADDR_REG = 0xec;

// GCMD / GSTS bits.
export const GCMD_TE = 1 << 31;
export const GCMD_SRTP = 1 << 30;
export const GCMD_SFL = 1 << 29;
export const GCMD_EAFL = 1 << 28;
export const GCMD_WBF = 1 << 27;
export const GCMD_QIE = 1 << 26;
export const GCMD_IRE = 1 << 25;
export const GCMD_SIRTP = 1 << 24;
export const GCMD_CFI = 1 << 23;
// FSTS bits.
export const FSTS_PFO = 1 << 0;
export const FSTS_PPF = 1 << 1;
export const FSTS_IQE = 1 << 4;
export const FSTS_ICE = 1 << 5;
export const FSTS_ITE = 1 << 6;
export const FSTS_PRO = 1 << 7;
// Event control registers (FECTL, IECTL, PECTL).
export const ECTL_IM = 1 << 31;
export const ECTL_IP = 1 << 30;
// ICS / PRS.
export const ICS_IWC = 1;
export const PRS_PPR = 1;
export const PRS_PRO = 2;

/** Where the register-based invalidation pair (IVA, IOTLB) sits: ECAP.IRO * 16. */
export const IRO_OFFSET = 0xf0;
/** Where the fault recording registers start: CAP.FRO * 16. */
export const FRO_OFFSET = 0x220;
/** The register window, as QEMU's (0x230 with one fault record). */
export function windowSize(faultRecords: number): number {
  return FRO_OFFSET + 16 * faultRecords;
}

const M32 = 0xffffffffn;

export function registerDefs(cap: bigint, ecap: bigint, faultRecords: number): RegDef[] {
  const r = (name: string, offset: number, size: 4 | 8, reset: bigint, wmask: bigint, w1c = 0n): RegDef => ({ name, offset, size, reset, wmask, w1c });
  const defs: RegDef[] = [
    r('VER', DMAR_VER_REG, 4, 0x10n, 0n),
    r('CAP', DMAR_CAP_REG, 8, cap, 0n),
    r('ECAP', DMAR_ECAP_REG, 8, ecap, 0n),
    // GCMD is write-only: reads return 0; the unit reports in GSTS.
    r('GCMD', DMAR_GCMD_REG, 4, 0n, M32),
    r('GSTS', DMAR_GSTS_REG, 4, 0n, 0n),
    // RTADDR: address 63:12 and the translation table mode 11:10.
    r('RTADDR', DMAR_RTADDR_REG, 8, 0n, 0xfffffffffffff000n | 0xc00n),
    // CCMD: ICC 63, CIRG 62:61, FM 33:32, SID 31:16, DID 15:0 (CAIG 60:59 read-only).
    r('CCMD', DMAR_CCMD_REG, 8, 0n, 0xe0000003ffffffffn),
    r('FSTS', DMAR_FSTS_REG, 4, 0n, 0n, BigInt(FSTS_PFO | FSTS_IQE | FSTS_ICE | FSTS_ITE | FSTS_PRO)),
    r('FECTL', DMAR_FECTL_REG, 4, BigInt(ECTL_IM), BigInt(ECTL_IM)),
    r('FEDATA', DMAR_FEDATA_REG, 4, 0n, M32),
    r('FEADDR', DMAR_FEADDR_REG, 4, 0n, 0xfffffffcn),
    r('FEUADDR', DMAR_FEUADDR_REG, 4, 0n, M32),
    r('AFLOG', DMAR_AFLOG_REG, 8, 0n, 0n),
    r('PMEN', DMAR_PMEN_REG, 4, 0n, 0x80000000n),
    r('PLMBASE', DMAR_PLMBASE_REG, 4, 0n, 0n),
    r('PLMLIMIT', DMAR_PLMLIMIT_REG, 4, 0n, 0n),
    r('PHMBASE', DMAR_PHMBASE_REG, 8, 0n, 0n),
    r('PHMLIMIT', DMAR_PHMLIMIT_REG, 8, 0n, 0n),
    r('IQH', DMAR_IQH_REG, 8, 0n, 0n),
    r('IQT', DMAR_IQT_REG, 8, 0n, 0x7fff0n),
    // IQA: base 63:12, DW 11 (256-bit descriptors, only with scalable mode), QS 2:0.
    r('IQA', DMAR_IQA_REG, 8, 0n, 0xfffffffffffff000n | 0x800n | 0x7n),
    r('ICS', DMAR_ICS_REG, 4, 0n, 0n, BigInt(ICS_IWC)),
    r('IECTL', DMAR_IECTL_REG, 4, BigInt(ECTL_IM), BigInt(ECTL_IM)),
    r('IEDATA', DMAR_IEDATA_REG, 4, 0n, M32),
    r('IEADDR', DMAR_IEADDR_REG, 4, 0n, 0xfffffffcn),
    r('IEUADDR', DMAR_IEUADDR_REG, 4, 0n, M32),
    r('IQER', DMAR_IQER_REG, 8, 0n, 0n),
    r('IRTA', DMAR_IRTA_REG, 8, 0n, 0xfffffffffffff000n | 0x80fn),
    r('PQH', DMAR_PQH_REG, 8, 0n, 0x7ffe0n),
    r('PQT', DMAR_PQT_REG, 8, 0n, 0n),
    r('PQA', DMAR_PQA_REG, 8, 0n, 0xfffffffffffff000n | 0x7n),
    r('PRS', DMAR_PRS_REG, 4, 0n, 0n, BigInt(PRS_PPR | PRS_PRO)),
    r('PECTL', DMAR_PECTL_REG, 4, BigInt(ECTL_IM), BigInt(ECTL_IM)),
    r('PEDATA', DMAR_PEDATA_REG, 4, 0n, M32),
    r('PEADDR', DMAR_PEADDR_REG, 4, 0n, 0xfffffffcn),
    r('PEUADDR', DMAR_PEUADDR_REG, 4, 0n, M32),
    // IVA: ADDR 63:12, IH 6, AM 5:0. IOTLB: IVT 63, IIRG 61:60, DR 49, DW 48, DID 47:32 (IAIG read-only).
    r('IVA', IRO_OFFSET, 8, 0n, 0xfffffffffffff07fn),
    r('IOTLB', IRO_OFFSET + 8, 8, 0n, 0xb003ffff00000000n),
  ];
  for (let i = 0; i < faultRecords; i++) {
    // Fault record: the F bit (127) is write-1-to-clear; everything else read-only.
    defs.push(r(`FRCD${i}_LO`, FRO_OFFSET + 16 * i, 8, 0n, 0n));
    defs.push(r(`FRCD${i}_HI`, FRO_OFFSET + 16 * i + 8, 8, 0n, 0n, 1n << 63n));
  }
  return defs;
}

/** A register bank applying declarations: masked writes, write-1-to-clear, byte-exact storage. */
export class RegisterBank {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly wmask: Uint8Array;
  private readonly w1c: Uint8Array;
  private readonly defs: RegDef[];

  constructor(size: number, defs: RegDef[]) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
    this.wmask = new Uint8Array(size);
    this.w1c = new Uint8Array(size);
    this.defs = defs;
    const mv = new DataView(this.wmask.buffer);
    const cv = new DataView(this.w1c.buffer);
    for (const d of defs) {
      if (d.size === 8) {
        this.view.setBigUint64(d.offset, d.reset, true);
        mv.setBigUint64(d.offset, d.wmask, true);
        cv.setBigUint64(d.offset, d.w1c, true);
      } else {
        this.view.setUint32(d.offset, Number(d.reset), true);
        mv.setUint32(d.offset, Number(d.wmask), true);
        cv.setUint32(d.offset, Number(d.w1c), true);
      }
    }
  }

  reset(): void {
    for (const d of this.defs) this.set(d.offset, d.size, d.reset);
  }

  get(offset: number, size: 4 | 8): bigint {
    if (offset < 0 || offset + size > this.bytes.length) return 0n;
    return size === 8 ? this.view.getBigUint64(offset, true) : BigInt(this.view.getUint32(offset, true));
  }

  get32(offset: number): number {
    return this.view.getUint32(offset, true);
  }

  /** Set a register's value directly (the unit's own updates, no masks). */
  set(offset: number, size: 4 | 8, value: bigint): void {
    if (size === 8) this.view.setBigUint64(offset, BigInt.asUintN(64, value), true);
    else this.view.setUint32(offset, Number(BigInt.asUintN(32, value)), true);
  }

  set32(offset: number, value: number): void {
    this.view.setUint32(offset, value >>> 0, true);
  }

  /** A software write: writable bits take the value, write-1-to-clear bits clear where 1 is written. */
  write(offset: number, size: 4 | 8, value: bigint): void {
    if (offset < 0 || offset + size > this.bytes.length) return;
    for (let i = 0; i < size; i++) {
      const b = Number((value >> BigInt(8 * i)) & 0xffn);
      const o = offset + i;
      const m = this.wmask[o]!;
      const c = this.w1c[o]!;
      this.bytes[o] = ((this.bytes[o]! & ~m) | (b & m)) & ~(b & c) & 0xff;
    }
  }
}
