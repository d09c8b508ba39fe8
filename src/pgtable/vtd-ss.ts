/**
 * VT-d second-stage paging entries (Intel VT-d spec, "Second-Stage Paging Entries"; the facts in
 * ../shared/reference/vtd.md).
 *
 * 512 eight-byte entries per 4 KiB table; 3, 4 or 5 levels for 39, 48 or 57 input bits. R 0, W 1, X 2,
 * PS 7 (2 MiB at level 2, 1 GiB at level 3), A 8 and D 9 (only with SSADE), SNP 11 (only with snoop
 * control), address 51:12. An entry is present when R or W is set.
 *
 * Reserved, as hardware checks them (and as QEMU's reserved masks have them): address bits at or above the
 * host address width (`oas`); SNP unless snoop control; PS at level 4 and 5; bits 20:12 of a 2 MiB leaf and
 * 29:12 of a 1 GiB leaf. Bits 61:52 and 63 are ignored.
 */
import { addr, bit, defineLayout, bits } from '../layout/layout.js';
import { PgtableError, IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, type IoPgtableCfg } from './types.js';
import { PERM_R, PERM_U, PERM_UX, PERM_W, PERM_X, addrHi, addrLo, x86Addr, type PteFormat, type PteOut } from './format.js';

/** The entry as data, for rendering and golden tests. */
export const VTD_SL_PTE = defineLayout('vtd_sl_pte', 8, {
  R: bit(0),
  W: bit(1),
  X: bit(2),
  EMT: bits(5, 3),
  IPAT: bit(6),
  PS: bit(7),
  A: bit(8),
  D: bit(9),
  SNP: bit(11),
  ADDR: addr(51, 12),
  TM: bit(62),
});

const R = 1 << 0;
const W = 1 << 1;
const X = 1 << 2;
const PS = 1 << 7;
const A = 1 << 8;
const D = 1 << 9;
const SNP = 1 << 11;
const SZ_4K = 1n << 12n;
const SZ_2M = 1n << 21n;
const SZ_1G = 1n << 30n;

export class VtdSecondStageFormat implements PteFormat {
  readonly name = 'vtd-ss' as const;
  readonly granuleShift = 12;
  readonly bitsPerLevel = 9;
  readonly topIndexBits = 9;
  readonly canonical = false;
  readonly supervisorWriteOverride = false;
  readonly levels: number;
  readonly ias: number;
  readonly oas: number;
  readonly pgsizeBitmap: bigint;
  readonly quirks: IoPgtableCfg['quirks'] & object;
  readonly tracksDirty: boolean;
  /** 2^(oas - 32): address bits 51:32 at or above it are beyond the output width. */
  private readonly oasHiLimit: number;

  constructor(cfg: IoPgtableCfg) {
    if (!Number.isInteger(cfg.ias) || cfg.ias < 12 || cfg.ias > 57) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_CFG', `vtd-ss: ias ${cfg.ias} must be in 12..57`);
    }
    if (!Number.isInteger(cfg.oas) || cfg.oas < 32 || cfg.oas > 52) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_CFG', `vtd-ss: oas ${cfg.oas} must be in 32..52`);
    }
    const pg = cfg.pgsizeBitmap & (SZ_4K | SZ_2M | SZ_1G);
    if ((pg & SZ_4K) === 0n) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_CFG', 'vtd-ss: the page-size bitmap must include 4 KiB');
    }
    this.ias = cfg.ias;
    this.oas = cfg.oas;
    // spec: AW selects 3, 4 or 5 levels for 39, 48 or 57 bits; narrower inputs use the smallest that fits.
    this.levels = cfg.ias <= 39 ? 3 : cfg.ias <= 48 ? 4 : 5;
    this.pgsizeBitmap = pg;
    this.quirks = { ...cfg.quirks };
    this.tracksDirty = this.quirks.secondStageAD === true;
    this.oasHiLimit = 2 ** (cfg.oas - 32);
  }

  isPresent(lo: number): boolean {
    return (lo & (R | W)) !== 0;
  }
  isLeaf(lo: number, _hi: number, level: number): boolean {
    return level === 1 || (level <= 3 && (lo & PS) !== 0);
  }
  addrOf(lo: number, hi: number): number {
    return x86Addr(lo, hi);
  }
  addrHiOf(_lo: number, hi: number): number {
    return hi & 0xfffff;
  }
  addrLoOf(lo: number): number {
    return lo & 0xfffff000;
  }
  leafProt(lo: number): number {
    return (lo & R ? IOMMU_READ : 0) | (lo & W ? IOMMU_WRITE : 0) | (lo & SNP ? IOMMU_CACHE : 0);
  }
  encodeTable(pa: number, out: PteOut): void {
    // Linux gives non-leaf entries R|W so that leaf permissions alone decide.
    out.lo = (addrLo(pa) | R | W) >>> 0;
    out.hi = addrHi(pa);
  }
  encodeLeaf(pa: number, prot: number, level: number, out: PteOut): void {
    let lo = addrLo(pa);
    if (prot & IOMMU_READ) lo |= R;
    if (prot & IOMMU_WRITE) lo |= W;
    if (level > 1) lo |= PS;
    if (prot & IOMMU_CACHE && this.quirks.snoopControl) lo |= SNP;
    out.lo = lo >>> 0;
    out.hi = addrHi(pa);
  }

  hasReservedBits(lo: number, hi: number, level: number, leaf: boolean): boolean {
    if ((hi & 0xfffff) >= this.oasHiLimit) return true;
    if (lo & SNP && !this.quirks.snoopControl) return true;
    if (level >= 4 && lo & PS) return true;
    if (leaf && level === 2 && (lo & 0x1ff000) !== 0) return true;
    if (leaf && level === 3 && (lo & 0x3ffff000) !== 0) return true;
    return false;
  }
  leafNotAllowed(level: number): boolean {
    if (level === 2) return (this.pgsizeBitmap & SZ_2M) === 0n;
    if (level === 3) return (this.pgsizeBitmap & SZ_1G) === 0n;
    return level > 3;
  }
  entryPerms(lo: number): number {
    return (lo & R ? PERM_R : 0) | (lo & W ? PERM_W : 0) | (lo & X ? PERM_X | PERM_UX : 0) | PERM_U;
  }
  adUpdate(lo: number, _hi: number, leaf: boolean, write: boolean): number {
    if (!this.quirks.secondStageAD) return lo;
    return (lo | (leaf && write ? A | D : A)) >>> 0;
  }
  accessFlagFault(): boolean {
    return false;
  }
  isDirty(lo: number): boolean {
    return (lo & D) !== 0;
  }
  cleanDirty(lo: number, hi: number, out: PteOut): void {
    out.lo = (lo & ~D) >>> 0;
    out.hi = hi;
  }
}
