/**
 * x86 first-stage (IA-32e) paging entries, as VT-d's first-stage translation reads them (Intel SDM vol. 3
 * "4-level and 5-level paging"; VT-d spec "First-Stage Paging Entries"; ../shared/reference/vtd.md).
 *
 * 512 eight-byte entries per 4 KiB table; 4 levels for 48-bit or 5 for 57-bit canonical inputs. P 0,
 * R/W 1, U/S 2, PWT 3, PCD 4, A 5, D 6, PS 7 (2 MiB at level 2, 1 GiB at level 3 when FL1GP), G 8,
 * address 51:12, XD 63. Present is P alone: there are no write-only pages, so a present leaf always reads.
 *
 * Reserved: address bits at or above MAXPHYADDR (`oas`); PS at level 4 and 5; bits 20:13 of a 2 MiB leaf
 * and 29:13 of a 1 GiB leaf (bit 12 is PAT there); a 1 GiB leaf without FL1GP.
 *
 * Leaves are created as Linux creates them for DMA: P, U/S unless IOMMU_PRIV, R/W if writable, XD if
 * IOMMU_NOEXEC, and A (plus D when writable) already set unless `presetAccessDirty` is false, so that
 * hardware need not write them back. Tables are P|R/W|U/S|A so that leaves alone decide.
 */
import { addr, bit, bits, defineLayout } from '../layout/layout.js';
import {
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  PgtableError,
  type IoPgtableCfg,
} from './types.js';
import { PERM_R, PERM_U, PERM_UX, PERM_W, PERM_X, addrHi, addrLo, x86Addr, type PteFormat, type PteOut } from './format.js';

export const X86_FS_PTE = defineLayout('x86_fs_pte', 8, {
  P: bit(0),
  RW: bit(1),
  US: bit(2),
  PWT: bit(3),
  PCD: bit(4),
  A: bit(5),
  D: bit(6),
  PS: bit(7),
  G: bit(8),
  IGN: bits(11, 9),
  ADDR: addr(51, 12),
  XD: bit(63),
});

const P = 1 << 0;
const RW = 1 << 1;
const US = 1 << 2;
const A = 1 << 5;
const D = 1 << 6;
const PS = 1 << 7;
const XD_HI = 1 << 31;
const SZ_4K = 1n << 12n;
const SZ_2M = 1n << 21n;
const SZ_1G = 1n << 30n;

export class X86FirstStageFormat implements PteFormat {
  readonly name = 'x86-fs' as const;
  readonly granuleShift = 12;
  readonly bitsPerLevel = 9;
  readonly topIndexBits = 9;
  readonly canonical = true;
  readonly supervisorWriteOverride = true;
  readonly levels: number;
  readonly ias: number;
  readonly oas: number;
  readonly pgsizeBitmap: bigint;
  readonly quirks: IoPgtableCfg['quirks'] & object;
  readonly tracksDirty: boolean;
  /** 2^(oas - 32): address bits 51:32 at or above it are beyond the output width. */
  private readonly oasHiLimit: number;
  private readonly presetAD: boolean;

  constructor(cfg: IoPgtableCfg) {
    if (!Number.isInteger(cfg.ias) || cfg.ias < 12 || cfg.ias > 57) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_CFG', `x86-fs: ias ${cfg.ias} must be in 12..57`);
    }
    if (!Number.isInteger(cfg.oas) || cfg.oas < 32 || cfg.oas > 52) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_CFG', `x86-fs: oas ${cfg.oas} must be in 32..52`);
    }
    this.quirks = { ...cfg.quirks };
    const pg = cfg.pgsizeBitmap & (SZ_4K | SZ_2M | (this.quirks.firstStage1G ? SZ_1G : 0n));
    if ((pg & SZ_4K) === 0n) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_CFG', 'x86-fs: the page-size bitmap must include 4 KiB');
    }
    // The canonical width is fixed by the paging mode; a narrower ias is widened to it.
    this.levels = cfg.ias <= 48 ? 4 : 5;
    this.ias = this.levels === 4 ? 48 : 57;
    this.oas = cfg.oas;
    this.pgsizeBitmap = pg;
    this.presetAD = this.quirks.presetAccessDirty !== false;
    this.tracksDirty = !this.presetAD;
    this.oasHiLimit = 2 ** (cfg.oas - 32);
  }

  isPresent(lo: number): boolean {
    return (lo & P) !== 0;
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
  leafProt(lo: number, hi: number): number {
    return (
      IOMMU_READ |
      (lo & RW ? IOMMU_WRITE : 0) |
      (lo & US ? 0 : IOMMU_PRIV) |
      (hi & XD_HI ? IOMMU_NOEXEC : 0)
    );
  }
  encodeTable(pa: number, out: PteOut): void {
    out.lo = (addrLo(pa) | P | RW | US | A) >>> 0;
    out.hi = addrHi(pa);
  }
  encodeLeaf(pa: number, prot: number, level: number, out: PteOut): void {
    let lo = addrLo(pa) | P;
    if (prot & IOMMU_WRITE) lo |= RW;
    if (!(prot & IOMMU_PRIV)) lo |= US;
    if (level > 1) lo |= PS;
    if (this.presetAD) lo |= prot & IOMMU_WRITE ? A | D : A;
    out.lo = lo >>> 0;
    out.hi = (addrHi(pa) | (prot & IOMMU_NOEXEC ? XD_HI : 0)) >>> 0;
  }

  hasReservedBits(lo: number, hi: number, level: number, leaf: boolean): boolean {
    if ((hi & 0xfffff) >= this.oasHiLimit) return true;
    if (level >= 4 && lo & PS) return true;
    if (leaf && level === 2 && (lo & 0x1fe000) !== 0) return true;
    if (leaf && level === 3 && (lo & 0x3fffe000) !== 0) return true;
    return false;
  }
  leafNotAllowed(level: number): boolean {
    if (level === 3) return !this.quirks.firstStage1G;
    return level > 3;
  }
  entryPerms(lo: number, hi: number): number {
    return PERM_R | (lo & RW ? PERM_W : 0) | (lo & US ? PERM_U : 0) | (hi & XD_HI ? 0 : PERM_X | PERM_UX);
  }
  adUpdate(lo: number, _hi: number, leaf: boolean, write: boolean): number {
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
