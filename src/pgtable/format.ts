/**
 * What a page-table format is, as data and small pure functions over one 64-bit entry.
 *
 * The generic radix engine (radix.ts) and the hardware walker (hw-walk.ts) are written once against this
 * interface. Entries travel as two unsigned 32-bit halves (`lo` = bits 31:0, `hi` = bits 63:32) so that no
 * bigint is made per entry; physical addresses are exact `number`s (at most 52 bits).
 *
 * Levels count up from the leaf: level 1 holds the smallest pages (VT-d's "level 1" PTE; Arm's level 3).
 */
import type { PgtableFormatName, PgtableQuirks } from './types.js';

/** Permission bits an entry grants, AND-ed along a hardware walk. */
export const PERM_R = 1;
export const PERM_W = 2;
/** Executable by a supervisor (privileged) request. */
export const PERM_X = 4;
/** Accessible to a user (unprivileged) request. */
export const PERM_U = 8;
/** Executable by a user request. */
export const PERM_UX = 16;
export const PERM_ALL = PERM_R | PERM_W | PERM_X | PERM_U | PERM_UX;

/** Scratch pair a format encodes an entry into. */
export interface PteOut {
  lo: number;
  hi: number;
}

export interface PteFormat {
  readonly name: PgtableFormatName;
  /** log2 of the table granule (smallest page): 12, 14 or 16. */
  readonly granuleShift: number;
  /** Index bits per table below the top: granuleShift - 3. */
  readonly bitsPerLevel: number;
  /** Levels a walk visits; the root table is at this level. */
  readonly levels: number;
  /** Index bits of the root table (more than bitsPerLevel when Arm stage-2 tables are concatenated). */
  readonly topIndexBits: number;
  readonly ias: number;
  readonly oas: number;
  /** Page sizes after narrowing. */
  readonly pgsizeBitmap: bigint;
  /** Input addresses are sign-extended from bit ias-1 (x86 first-stage). */
  readonly canonical: boolean;
  readonly quirks: PgtableQuirks;

  /** Entry is valid (present). */
  isPresent(lo: number, hi: number): boolean;
  /** A present entry at `level` is a leaf (page or block) rather than a next-table pointer. */
  isLeaf(lo: number, hi: number, level: number): boolean;
  /** The address an entry holds (next table or output page). */
  addrOf(lo: number, hi: number): number;
  /** The same address split: bits 51:32 ... */
  addrHiOf(lo: number, hi: number): number;
  /** ... and bits 31:0, as int32 bits. */
  addrLoOf(lo: number, hi: number): number;
  /** IOMMU_* flags a leaf grants (the inverse of encodeLeaf, for iovaToPhys users and walk reports). */
  leafProt(lo: number, hi: number, level: number): number;
  encodeTable(pa: number, out: PteOut): void;
  encodeLeaf(pa: number, prot: number, level: number, out: PteOut): void;

  // ---- what hardware checks during a walk ----
  /** Bits set that the spec reserves for this entry (checked on every entry the walk reads). */
  hasReservedBits(lo: number, hi: number, level: number, leaf: boolean): boolean;
  /** A leaf descriptor at a level where this configuration allows none. */
  leafNotAllowed(level: number): boolean;
  /** PERM_* bits the entry grants. */
  entryPerms(lo: number, hi: number, level: number, leaf: boolean): number;
  /**
   * The low half of the entry after hardware's accessed/dirty (or access-flag / DBM) update for this access;
   * `lo` itself when nothing changes. Only used when the walker is told the hardware updates them.
   */
  adUpdate(lo: number, hi: number, leaf: boolean, write: boolean): number;
  /** The entry lacks an access flag hardware demands (Arm AF = 0 without hardware update). */
  accessFlagFault(lo: number, leaf: boolean): boolean;
  /** Supervisor writes to read-only pages are allowed unless the walker enables write protection (x86). */
  readonly supervisorWriteOverride: boolean;

  // ---- dirty tracking ----
  /** Whether dirty state exists in this configuration. */
  readonly tracksDirty: boolean;
  isDirty(lo: number, hi: number): boolean;
  /** The entry with its dirty state cleared. */
  cleanDirty(lo: number, hi: number, out: PteOut): void;
}

/** Shift of the bits an entry at `level` translates. */
export function levelShift(fmt: PteFormat, level: number): number {
  return fmt.granuleShift + (level - 1) * fmt.bitsPerLevel;
}

/** Level whose leaves are `size` bytes, or 0 if none. */
export function levelForSize(fmt: PteFormat, size: bigint): number {
  for (let level = 1; level <= fmt.levels; level++) {
    if (2n ** BigInt(levelShift(fmt, level)) === size) return level;
  }
  return 0;
}

const TWO32 = 2 ** 32;

/** x86-style address in bits 51:12 of an entry (VT-d second-stage, IA-32e first-stage). */
export function x86Addr(lo: number, hi: number): number {
  return (hi & 0xfffff) * TWO32 + ((lo & 0xfffff000) >>> 0);
}

/** Low and high halves of an address for an entry (bits 31:12 / 51:32). */
export function addrLo(pa: number): number {
  return (pa % TWO32) >>> 0;
}
export function addrHi(pa: number): number {
  return Math.floor(pa / TWO32);
}
