/**
 * Arm VMSAv8-64 long-descriptor (LPAE) translation tables, stage 1 and stage 2 (Arm ARM D8 "VMSAv8-64
 * translation table format"; the io-pgtable-arm facts in ../shared/reference/host-iommufd-vfio.md).
 *
 * Granules 4, 16 and 64 KiB: bits per level = log2(granule) - 3; levels = ceil((ias - log2(granule)) /
 * bits per level). Pages at Arm level 3; blocks at level 2 (2 MiB, 32 MiB, 512 MiB) and, for 4 KiB, level 1
 * (1 GiB); 64 KiB with a 52-bit output also has 4 TiB blocks at level 1 (output bits 51:48 in entry bits
 * 15:12). Stage 2 concatenates up to 16 root tables to save the level-0 lookup, as Linux does when the
 * level-0 table would have at most 16 entries.
 *
 * Descriptor: bits 1:0 = 0b11 table (levels 0-2) or page (level 3), 0b01 block; 0bx0 invalid. Stage-1 leaf:
 * AttrIndx 4:2, NS 5, AP 7:6 (AP[2] read-only, AP[1] unprivileged), SH 9:8, AF 10, nG 11, OA, DBM 51, PXN
 * 53, UXN 54. Stage-2 leaf: MemAttr 5:2, S2AP (HAP) 7:6 (read 6, write 7), SH 9:8, AF 10, XN 54:53.
 *
 * Our levels count from the leaf: level 1 is Arm level 3 (Arm level = 4 - level).
 *
 * Leaves are built as Linux's io-pgtable-arm builds them: stage 1 nG, AP read-only unless writable, AP
 * unprivileged unless IOMMU_PRIV, AttrIndx 2 for IOMMU_MMIO / 1 for IOMMU_CACHE / 0 otherwise; stage 2 HAP
 * from read/write, MemAttr 0x1 device / 0xf write-back / 0x5 non-cacheable; both inner-shareable when
 * cacheable else outer-shareable, AF set, XN when IOMMU_NOEXEC. With `armHttuDbm` writable stage-1 leaves
 * carry DBM and start writable-dirty, as Linux's dirty-tracking quirk does.
 */
import { addr, bit, bits, defineLayout } from '../layout/layout.js';
import {
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  PgtableError,
  type IoPgtableCfg,
} from './types.js';
import { PERM_ALL, PERM_R, PERM_U, PERM_UX, PERM_W, PERM_X, type PteFormat, type PteOut } from './format.js';

export const ARM_LPAE_S1_PTE = defineLayout('arm_lpae_s1_pte', 8, {
  TYPE: bits(1, 0),
  ATTRINDX: bits(4, 2),
  NS: bit(5),
  AP: bits(7, 6),
  SH: bits(9, 8),
  AF: bit(10),
  NG: bit(11),
  OA: addr(47, 12),
  DBM: bit(51),
  CONT: bit(52),
  PXN: bit(53),
  UXN: bit(54),
});

export const ARM_LPAE_S2_PTE = defineLayout('arm_lpae_s2_pte', 8, {
  TYPE: bits(1, 0),
  MEMATTR: bits(5, 2),
  HAP: bits(7, 6),
  SH: bits(9, 8),
  AF: bit(10),
  OA: addr(47, 12),
  DBM: bit(51),
  CONT: bit(52),
  XN: bits(54, 53),
});

const TYPE_MASK = 3;
const TYPE_TABLE = 3; // also "page" at the last level
const TYPE_BLOCK = 1;
const AP_UNPRIV = 1 << 6;
const AP_RDONLY = 1 << 7;
const HAP_READ = 1 << 6;
const HAP_WRITE = 1 << 7;
const SH_OS = 2 << 8;
const SH_IS = 3 << 8;
const AF = 1 << 10;
const NG = 1 << 11;
const NS = 1 << 5;
const HI_DBM = 1 << 19; // bit 51
const HI_PXN = 1 << 21; // bit 53
const HI_UXN = 1 << 22; // bit 54 (stage-2 XN[1])
const HI_XN_BOTH = HI_PXN | HI_UXN;
const ATTRIDX_NC = 0;
const ATTRIDX_CACHE = 1;
const ATTRIDX_DEV = 2;
const MEMATTR_DEV = 0x1;
const MEMATTR_NC = 0x5;
const MEMATTR_WB = 0xf;
const TWO32 = 2 ** 32;
const TWO48 = 2 ** 48;

export class ArmLpaeFormat implements PteFormat {
  readonly name: 'arm-lpae-s1' | 'arm-lpae-s2';
  readonly granuleShift: number;
  readonly bitsPerLevel: number;
  readonly levels: number;
  readonly topIndexBits: number;
  readonly ias: number;
  readonly oas: number;
  readonly pgsizeBitmap: bigint;
  readonly canonical = false;
  readonly supervisorWriteOverride = false;
  readonly quirks: IoPgtableCfg['quirks'] & object;
  readonly tracksDirty: boolean;
  private readonly stage2: boolean;
  private readonly granuleMask: number;
  private readonly lpa: boolean;

  constructor(stage: 1 | 2, cfg: IoPgtableCfg) {
    this.stage2 = stage === 2;
    this.name = this.stage2 ? 'arm-lpae-s2' : 'arm-lpae-s1';
    const granule = cfg.granule ?? smallestGranule(cfg.pgsizeBitmap);
    if (granule === undefined) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_CFG', `${this.name}: no 4K, 16K or 64K granule in the bitmap`);
    }
    this.granuleShift = granule === 4096 ? 12 : granule === 16384 ? 14 : 16;
    this.bitsPerLevel = this.granuleShift - 3;
    this.granuleMask = granule - 1;
    const maxAddr = granule === 65536 ? 52 : 48;
    if (!Number.isInteger(cfg.ias) || cfg.ias <= this.granuleShift || cfg.ias > maxAddr) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_CFG', `${this.name}: ias ${cfg.ias} out of range for ${granule}-byte granule`);
    }
    if (!Number.isInteger(cfg.oas) || cfg.oas < 32 || cfg.oas > maxAddr) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_CFG', `${this.name}: oas ${cfg.oas} out of range for ${granule}-byte granule`);
    }
    this.lpa = granule === 65536 && cfg.oas > 48;
    const supported =
      granule === 4096
        ? (1n << 12n) | (1n << 21n) | (1n << 30n)
        : granule === 16384
          ? (1n << 14n) | (1n << 25n)
          : (1n << 16n) | (1n << 29n) | (this.lpa ? 1n << 42n : 0n);
    const pg = cfg.pgsizeBitmap & supported;
    if ((pg & BigInt(granule)) === 0n) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_CFG', `${this.name}: the bitmap must include the ${granule}-byte granule`);
    }
    this.pgsizeBitmap = pg;
    this.ias = cfg.ias;
    this.oas = cfg.oas;
    let levels = Math.ceil((cfg.ias - this.granuleShift) / this.bitsPerLevel);
    let topBits = cfg.ias - (this.granuleShift + (levels - 1) * this.bitsPerLevel);
    // Stage 2 may start one level lower with up to 16 concatenated tables (Arm ARM "concatenated
    // translation tables"); Linux does so whenever the level-0 table would have at most 16 entries.
    if (this.stage2 && levels === 4 && 2 ** topBits <= 16) {
      levels--;
      topBits += this.bitsPerLevel;
    }
    this.levels = levels;
    this.topIndexBits = topBits;
    this.quirks = { ...cfg.quirks };
    this.tracksDirty = !this.stage2 && this.quirks.armHttuDbm === true;
  }

  isPresent(lo: number): boolean {
    return (lo & 1) !== 0;
  }
  isLeaf(lo: number, _hi: number, level: number): boolean {
    return level === 1 || (lo & TYPE_MASK) === TYPE_BLOCK;
  }
  addrOf(lo: number, hi: number): number {
    let pa = (hi & 0xffff) * TWO32 + ((lo & ~this.granuleMask) >>> 0);
    if (this.lpa) pa += ((lo >>> 12) & 0xf) * TWO48;
    return pa;
  }
  addrHiOf(lo: number, hi: number): number {
    return this.lpa ? (hi & 0xffff) | (((lo >>> 12) & 0xf) << 16) : hi & 0xffff;
  }
  addrLoOf(lo: number): number {
    return lo & ~this.granuleMask;
  }
  private encodeAddr(pa: number, out: PteOut): void {
    let lo = (pa % TWO32) >>> 0;
    let hi = Math.floor(pa / TWO32);
    if (this.lpa) {
      lo = (lo | (((hi >>> 16) & 0xf) << 12)) >>> 0;
      hi &= 0xffff;
    }
    out.lo = lo;
    out.hi = hi;
  }
  leafProt(lo: number, hi: number): number {
    if (this.stage2) {
      const memattr = (lo >>> 2) & 0xf;
      return (
        (lo & HAP_READ ? IOMMU_READ : 0) |
        (lo & HAP_WRITE ? IOMMU_WRITE : 0) |
        (memattr === MEMATTR_WB ? IOMMU_CACHE : 0) |
        (memattr === MEMATTR_DEV ? IOMMU_MMIO : 0) |
        (hi & HI_UXN ? IOMMU_NOEXEC : 0)
      );
    }
    const attr = (lo >>> 2) & 7;
    const writable = !(lo & AP_RDONLY) || (this.quirks.armHttuDbm === true && (hi & HI_DBM) !== 0);
    return (
      IOMMU_READ |
      (writable ? IOMMU_WRITE : 0) |
      (lo & AP_UNPRIV ? 0 : IOMMU_PRIV) |
      (attr === ATTRIDX_CACHE ? IOMMU_CACHE : 0) |
      (attr === ATTRIDX_DEV ? IOMMU_MMIO : 0) |
      (hi & HI_UXN ? IOMMU_NOEXEC : 0)
    );
  }
  encodeTable(pa: number, out: PteOut): void {
    this.encodeAddr(pa, out);
    out.lo = (out.lo | TYPE_TABLE) >>> 0;
  }
  encodeLeaf(pa: number, prot: number, level: number, out: PteOut): void {
    this.encodeAddr(pa, out);
    let lo = out.lo | (level === 1 ? TYPE_TABLE : TYPE_BLOCK) | AF;
    let hi = out.hi;
    lo |= prot & IOMMU_CACHE ? SH_IS : SH_OS;
    if (prot & IOMMU_NOEXEC) hi |= HI_XN_BOTH;
    if (this.stage2) {
      if (prot & IOMMU_READ) lo |= HAP_READ;
      if (prot & IOMMU_WRITE) lo |= HAP_WRITE;
      const memattr = prot & IOMMU_MMIO ? MEMATTR_DEV : prot & IOMMU_CACHE ? MEMATTR_WB : MEMATTR_NC;
      lo |= memattr << 2;
    } else {
      lo |= NG;
      if (!(prot & IOMMU_WRITE) && prot & IOMMU_READ) lo |= AP_RDONLY;
      if (!(prot & IOMMU_PRIV)) lo |= AP_UNPRIV;
      const attr = prot & IOMMU_MMIO ? ATTRIDX_DEV : prot & IOMMU_CACHE ? ATTRIDX_CACHE : ATTRIDX_NC;
      lo |= attr << 2;
      if (this.quirks.armNs) lo |= NS;
      if (this.quirks.armHttuDbm && prot & IOMMU_WRITE) hi |= HI_DBM;
    }
    out.lo = lo >>> 0;
    out.hi = hi >>> 0;
  }

  hasReservedBits(lo: number, _hi: number, level: number): boolean {
    // A page-type 0b01 at the last level is an invalid descriptor; hardware takes a translation fault.
    return level === 1 && (lo & TYPE_MASK) === TYPE_BLOCK;
  }
  leafNotAllowed(level: number): boolean {
    if (level === 1 || level === 2) return false;
    if (level === 3) return !(this.granuleShift === 12 || this.lpa);
    return true;
  }
  entryPerms(lo: number, hi: number, _level: number, leaf: boolean): number {
    if (!leaf) return PERM_ALL;
    if (this.stage2) {
      return (lo & HAP_READ ? PERM_R : 0) | (lo & HAP_WRITE ? PERM_W : 0) | PERM_U | (hi & HI_UXN ? 0 : PERM_X | PERM_UX);
    }
    const dbmWritable = this.quirks.armHttuDbm === true && (hi & HI_DBM) !== 0;
    return (
      PERM_R |
      (!(lo & AP_RDONLY) || dbmWritable ? PERM_W : 0) |
      (lo & AP_UNPRIV ? PERM_U : 0) |
      (hi & HI_PXN ? 0 : PERM_X) |
      (hi & HI_UXN ? 0 : PERM_UX)
    );
  }
  adUpdate(lo: number, hi: number, leaf: boolean, write: boolean): number {
    if (!leaf) return lo;
    let next = lo | AF;
    // Hardware dirty-bit management: a write to a writable-clean stage-1 entry makes it writable-dirty.
    if (write && !this.stage2 && this.quirks.armHttuDbm && hi & HI_DBM) next &= ~AP_RDONLY;
    return next >>> 0;
  }
  accessFlagFault(lo: number, leaf: boolean): boolean {
    return leaf && (lo & AF) === 0;
  }
  isDirty(lo: number, hi: number): boolean {
    return (hi & HI_DBM) !== 0 && (lo & AP_RDONLY) === 0;
  }
  cleanDirty(lo: number, hi: number, out: PteOut): void {
    out.lo = (lo | AP_RDONLY) >>> 0;
    out.hi = hi;
  }
}

function smallestGranule(bitmap: bigint): 4096 | 16384 | 65536 | undefined {
  if (bitmap & 0x1000n) return 4096;
  if (bitmap & 0x4000n) return 16384;
  if (bitmap & 0x10000n) return 65536;
  return undefined;
}
