/**
 * Hardware-style page walks for the device models: from a root pointer and an input address, read the
 * tables as the IOMMU does — reserved bits, permissions AND-ed across levels, accessed/dirty updates written
 * back — and report the leaf or why the walk failed.
 *
 * Nesting composes through `translateTable`: when set, the root and every next-table pointer are input
 * addresses of another stage (VT-d nested: first-stage tables live in guest-physical space), translated
 * before they are read; A/D write-back asks that stage for write permission.
 *
 * `walkNum` is the hot path: numbers only, no allocation, the result in a caller-owned `HwWalkResult`.
 */
import { hex } from '../errors.js';
import { CHUNK_MASK, type PhysMemory } from '../mem/phys-memory.js';
import { PERM_ALL, PERM_R, PERM_U, PERM_UX, PERM_W, PERM_X, levelShift, type PteFormat } from './format.js';
import { PgtableError } from './types.js';

const TWO32 = 2 ** 32;

// Access kinds a request carries.
export const ACCESS_READ = 1;
export const ACCESS_WRITE = 2;
export const ACCESS_EXEC = 4;
/** The request is unprivileged (user); without it, supervisor. */
export const ACCESS_USER = 8;

/** Why a walk failed. Device models map these to their own fault reasons. */
export const WalkFault = {
  NONE: 0,
  /** An entry on the path is not present (VT-d "not present"; Arm translation fault). */
  NOT_PRESENT: 1,
  /** Reserved bits set, or a leaf where the configuration allows none. */
  RESERVED: 2,
  NO_READ: 3,
  NO_WRITE: 4,
  NO_EXEC: 5,
  /** A user request reached a supervisor-only page. */
  NO_USER: 6,
  /** Input address beyond the input width. */
  BEYOND_WIDTH: 7,
  /** Input address not canonical (x86 first-stage). */
  NON_CANONICAL: 8,
  /** A table pointer leads outside physical memory. */
  TABLE_OUTSIDE_MEMORY: 9,
  /** Arm access flag clear without hardware update. */
  ACCESS_FLAG: 10,
  /** An output or table address beyond the output width (Arm address size fault). */
  OUTPUT_BEYOND: 11,
  /** `translateTable` refused a table address (nested walk failed in the other stage). */
  TABLE_XLATE: 12,
} as const;
export type WalkFaultCode = (typeof WalkFault)[keyof typeof WalkFault];

const FAULT_NAMES = Object.fromEntries(Object.entries(WalkFault).map(([k, v]) => [v, k])) as Record<number, string>;
export function walkFaultName(code: number): string {
  return FAULT_NAMES[code] ?? `UNKNOWN(${code})`;
}

export interface HwWalkOptions {
  /** Hardware sets A/D (x86, VT-d with SSADE) or AF/DBM (Arm with HTTU) and writes them back. */
  updateAccessDirty?: boolean;
  /** x86 WPE: supervisor writes honour R/W. Default true (and the only behaviour for other formats). */
  writeProtect?: boolean;
  /** x86 SMEP: supervisor execution of user pages faults. */
  smep?: boolean;
  /**
   * Nested walks: translate a table address (an input address of the other stage) to a physical address,
   * asking for write permission when `write`; return a negative number to fail the walk (TABLE_XLATE).
   */
  translateTable?: (addr: number, write: boolean) => number;
}

/** Result of one walk; reused across walks on the hot path. */
export class HwWalkResult {
  fault: WalkFaultCode = WalkFault.NONE;
  /** Level of the leaf, or of the entry that faulted. */
  level = 0;
  /** Output address for the input address (leaf base plus the offset inside the leaf). */
  pa = 0;
  /** Leaf size in bytes. */
  pageSize = 0;
  /** PERM_* granted along the whole path. */
  perms = 0;
  /** Physical address of the last entry read, and that entry. */
  entryAddr = 0;
  lo = 0;
  hi = 0;
  /** Memory reads the walk made (for cost models). */
  reads = 0;

  get ok(): boolean {
    return this.fault === WalkFault.NONE;
  }
}

export class HwWalker {
  // Per-level constants, indexed by level (0 unused); Int32Arrays keep the loop in integer registers.
  private readonly shift: Int32Array;
  private readonly idxMask: Int32Array;
  private readonly span: Float64Array;
  private readonly invSpan: Float64Array;
  private readonly iasLimit: number;
  private readonly oasHiLimit: number;
  private readonly updateAD: boolean;
  private readonly writeProtect: boolean;
  private readonly smep: boolean;
  private readonly xlate: ((addr: number, write: boolean) => number) | undefined;

  constructor(
    readonly fmt: PteFormat,
    private readonly mem: PhysMemory,
    opts: HwWalkOptions = {},
  ) {
    this.shift = new Int32Array(fmt.levels + 1);
    this.idxMask = new Int32Array(fmt.levels + 1);
    this.span = new Float64Array(fmt.levels + 1);
    this.invSpan = new Float64Array(fmt.levels + 1);
    for (let level = 1; level <= fmt.levels; level++) {
      const shift = levelShift(fmt, level);
      this.shift[level] = shift;
      this.span[level] = 2 ** shift;
      this.invSpan[level] = 2 ** -shift;
      this.idxMask[level] = (1 << (level === fmt.levels ? fmt.topIndexBits : fmt.bitsPerLevel)) - 1;
    }
    this.iasLimit = 2 ** fmt.ias;
    this.oasHiLimit = 2 ** (fmt.oas - 32);
    this.updateAD = opts.updateAccessDirty === true;
    this.writeProtect = opts.writeProtect !== false;
    this.smep = opts.smep === true;
    this.xlate = opts.translateTable;
  }

  /**
   * Walk `iova` (below 2^53, or granule-aligned; canonical upper-half x86 addresses folded below 2^ias, as
   * `walk` does) from the table at `root`. Returns `out.ok`.
   *
   * Inside, every address is kept as two 32-bit halves so the loop does integer work only.
   */
  walkNum(root: number, iova: number, access: number, out: HwWalkResult): boolean {
    // Everything the loop reads is hoisted into locals: V8 does not keep `this.x` loads out of a loop that
    // also stores to `out`.
    const fmt = this.fmt;
    const mem = this.mem;
    const shifts = this.shift;
    const masks = this.idxMask;
    const xlate = this.xlate;
    const updateAD = this.updateAD;
    const oasHiLimit = this.oasHiLimit;
    const top = fmt.levels;
    if (iova >= this.iasLimit || iova < 0) return this.fail(out, WalkFault.BEYOND_WIDTH, top, 0);
    const ih = Math.floor(iova / TWO32);
    const il = iova >>> 0;
    let inHi = Math.floor(root / TWO32);
    let inLo = root | 0;
    let th = inHi;
    let tl = inLo;
    if (xlate !== undefined) {
      const t = xlate(root, false);
      if (t < 0) return this.fail(out, WalkFault.TABLE_XLATE, top, 0);
      th = Math.floor(t / TWO32);
      tl = t | 0;
    }
    let perms = PERM_ALL;
    for (let level = top; level >= 1; level--) {
      const sh = shifts[level]!;
      const index = (sh >= 32 ? ih >>> (sh - 32) : (il >>> sh) | (ih << (32 - sh))) & masks[level]!;
      const el = (tl + index * 8) | 0;
      const reads = top - level + 1;
      if (!mem.containsHL(th, el, 8)) return this.fail(out, WalkFault.TABLE_OUTSIDE_MEMORY, level, reads - 1);
      const c = mem.chunkHL(th, el);
      const o = el & CHUNK_MASK;
      let lo = c.getUint32(o, true);
      const hi = c.getUint32(o + 4, true);
      let fault: WalkFaultCode = WalkFault.NONE;
      const leaf = fmt.isLeaf(lo, hi, level);
      const nh = fmt.addrHiOf(lo, hi);
      if (!fmt.isPresent(lo, hi)) fault = WalkFault.NOT_PRESENT;
      else if ((leaf && fmt.leafNotAllowed(level)) || fmt.hasReservedBits(lo, hi, level, leaf)) fault = WalkFault.RESERVED;
      else if (nh >= oasHiLimit) fault = WalkFault.OUTPUT_BEYOND;
      else if (!updateAD && fmt.accessFlagFault(lo, leaf)) fault = WalkFault.ACCESS_FLAG;
      else {
        perms &= fmt.entryPerms(lo, hi, level, leaf);
        if (leaf) fault = this.checkAccess(perms, access);
      }
      if (fault === WalkFault.NONE && updateAD) {
        const updated = fmt.adUpdate(lo, hi, leaf, (access & ACCESS_WRITE) !== 0);
        if (updated !== lo) {
          if (xlate !== undefined && xlate(inHi * TWO32 + ((inLo + index * 8) >>> 0), true) < 0) {
            fault = WalkFault.TABLE_XLATE;
          } else {
            mem.writableChunkHL(th, el).setUint32(o, updated, true);
            lo = updated;
          }
        }
      }
      if (fault !== WalkFault.NONE || leaf) {
        out.lo = lo;
        out.hi = hi;
        out.entryAddr = th * TWO32 + (el >>> 0);
        if (fault !== WalkFault.NONE) return this.fail(out, fault, level, reads);
        const size = this.span[level]!;
        out.fault = WalkFault.NONE;
        out.level = level;
        out.reads = reads;
        out.pageSize = size;
        out.perms = perms;
        out.pa = nh * TWO32 + (fmt.addrLoOf(lo, hi) >>> 0) + (iova - Math.floor(iova * this.invSpan[level]!) * size);
        return true;
      }
      const nl = fmt.addrLoOf(lo, hi);
      inHi = th = nh;
      inLo = tl = nl;
      if (xlate !== undefined) {
        const t = xlate(nh * TWO32 + (nl >>> 0), false);
        if (t < 0) return this.fail(out, WalkFault.TABLE_XLATE, level - 1, reads);
        th = Math.floor(t / TWO32);
        tl = t | 0;
      }
    }
    throw new Error('unreachable: level 1 entries are always leaves');
  }

  /**
   * Walk a bigint input address (canonical check included for x86). `out.pa` includes the offset within
   * the page; returns a fresh result.
   */
  walk(root: bigint, iova: bigint, access: number): HwWalkResult {
    const out = new HwWalkResult();
    if (root < 0n || root >= 1n << 52n) {
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_ROOT', `root ${hex(root)} is not a physical address`, { root });
    }
    const ias = BigInt(this.fmt.ias);
    let folded = iova;
    if (this.fmt.canonical) {
      const top = iova >> (ias - 1n);
      if (top !== 0n && top !== (1n << (65n - ias)) - 1n) {
        this.fail(out, WalkFault.NON_CANONICAL, this.fmt.levels, 0);
        return out;
      }
      folded = iova & ((1n << ias) - 1n);
    } else if (iova < 0n || iova >= 1n << ias) {
      this.fail(out, WalkFault.BEYOND_WIDTH, this.fmt.levels, 0);
      return out;
    }
    const gran = BigInt(2 ** this.fmt.granuleShift);
    const page = folded & ~(gran - 1n);
    if (this.walkNum(Number(root), Number(page), access, out)) out.pa += Number(folded - page);
    return out;
  }

  private checkAccess(perms: number, access: number): WalkFaultCode {
    const user = (access & ACCESS_USER) !== 0;
    if (user && !(perms & PERM_U)) return WalkFault.NO_USER;
    if (access & ACCESS_READ && !(perms & PERM_R)) return WalkFault.NO_READ;
    if (access & ACCESS_WRITE && !(perms & PERM_W)) {
      if (user || !this.fmt.supervisorWriteOverride || this.writeProtect) return WalkFault.NO_WRITE;
    }
    if (access & ACCESS_EXEC) {
      if (!(perms & (user ? PERM_UX : PERM_X))) return WalkFault.NO_EXEC;
      if (!user && this.smep && perms & PERM_U) return WalkFault.NO_EXEC;
    }
    return WalkFault.NONE;
  }

  private fail(out: HwWalkResult, fault: WalkFaultCode, level: number, reads: number): false {
    out.fault = fault;
    out.level = level;
    out.reads = reads;
    out.pa = 0;
    out.pageSize = 0;
    out.perms = 0;
    return false;
  }
}
