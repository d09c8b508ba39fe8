/**
 * The one interface every IO page-table format sits behind, in the shape of Linux's io-pgtable
 * (`include/linux/io-pgtable.h`): a config the format may narrow, map / unmap / iovaToPhys / walk, and
 * injected flush ops so that a format never invalidates a TLB itself.
 */
import { ViommuError } from '../errors.js';

// Protection flags, spelled and valued as Linux's `IOMMU_*` (include/linux/iommu.h).
export const IOMMU_READ = 1 << 0;
export const IOMMU_WRITE = 1 << 1;
export const IOMMU_CACHE = 1 << 2;
export const IOMMU_NOEXEC = 1 << 3;
export const IOMMU_MMIO = 1 << 4;
export const IOMMU_PRIV = 1 << 5;

export type PgtableFormatName = 'vtd-ss' | 'x86-fs' | 'arm-lpae-s1' | 'arm-lpae-s2';

/**
 * Linux-errno-like reason carried by every `PgtableError`:
 * EINVAL bad size / alignment / prot; ERANGE outside ias or oas; EEXIST something already mapped;
 * ENOMEM the table-page allocator cannot supply the tables; EBLOCK an unmap that would cut a block.
 */
export type PgtableErrno = 'EINVAL' | 'ERANGE' | 'EEXIST' | 'ENOMEM' | 'EBLOCK';

export class PgtableError extends ViommuError {
  constructor(
    readonly errno: PgtableErrno,
    code: string,
    message: string,
    details: Record<string, unknown> = {},
  ) {
    super(code, message, { errno, ...details });
  }
}

/**
 * Collects what an unmap removed so the caller can invalidate once (Linux's iommu_iotlb_gather): the
 * covering range and the smallest granule seen.
 */
export class IotlbGather {
  start = 0n;
  end = 0n; // exclusive; start === end means empty
  pgsize = 0n;
  pages = 0;

  add(iova: bigint, size: bigint): void {
    if (this.start === this.end) {
      this.start = iova;
      this.end = iova + size;
      this.pgsize = size;
    } else {
      if (iova < this.start) this.start = iova;
      if (iova + size > this.end) this.end = iova + size;
      if (size < this.pgsize) this.pgsize = size;
    }
    this.pages++;
  }

  get empty(): boolean {
    return this.start === this.end;
  }
}

/** TLB maintenance the owner of the table injects (Linux's iommu_flush_ops). */
export interface FlushOps {
  /** Everything this table ever cached must go. */
  tlbFlushAll(): void;
  /** Leaf and intermediate (walk-cache) state for [iova, iova + size) must go, synchronously. */
  tlbFlushWalk(iova: bigint, size: bigint, granule: bigint): void;
  /** A leaf of `granule` bytes at `iova` was removed; batch it into `gather` for a later sync. */
  tlbAddPage(gather: IotlbGather, iova: bigint, granule: bigint): void;
}

/** Flush ops that only gather: the default when the owner injects none. */
export const gatherOnlyFlushOps: FlushOps = {
  tlbFlushAll() {},
  tlbFlushWalk() {},
  tlbAddPage(gather, iova, granule) {
    gather.add(iova, granule);
  },
};

export interface PgtableQuirks {
  /** x86 first-stage: create leaves with A (and D when writable) already set, as Linux does. Default true. */
  presetAccessDirty?: boolean;
  /** VT-d second-stage: the unit honours A/D (SSADE); leaves may carry them and dirty tracking works. */
  secondStageAD?: boolean;
  /** VT-d second-stage: IOMMU_CACHE sets SNP (needs snoop control). */
  snoopControl?: boolean;
  /** x86 first-stage: 1 GiB pages allowed (FL1GP). */
  firstStage1G?: boolean;
  /** Arm LPAE: tables in the secure world are not modelled; NS is set on leaves when true. */
  armNs?: boolean;
  /** Arm LPAE stage 1: hardware dirty-bit management (DBM); writable leaves start writable-clean. */
  armHttuDbm?: boolean;
}

export interface IoPgtableCfg {
  /** Page sizes the caller wants; the format keeps those it supports. */
  pgsizeBitmap: bigint;
  /** Input address bits. */
  ias: number;
  /** Output address bits. */
  oas: number;
  /** Arm LPAE: translation granule. Defaults to the smallest page in `pgsizeBitmap`. */
  granule?: 4096 | 16384 | 65536;
  quirks?: PgtableQuirks;
  tlb?: FlushOps;
}

/** One entry as the walker saw it. */
export interface WalkEntry {
  /** Height in the tree: 1 is the level of the smallest pages. */
  level: number;
  /** First input address the entry covers. */
  iova: bigint;
  /** Bytes the entry covers. */
  size: bigint;
  /** Physical address of the table holding the entry, and its index there. */
  tableAddr: bigint;
  index: number;
  /** The raw 64-bit entry. */
  pte: bigint;
  kind: 'table' | 'leaf';
  /** Next table or output page address. */
  addr: bigint;
  /** For leaves: IOMMU_* flags the entry grants. */
  prot: number;
}

/** What a visitor returns: 'skip' does not descend into this table entry; 'stop' ends the walk. */
export type WalkControl = 'skip' | 'stop' | void;

export interface IoPgtable {
  readonly format: PgtableFormatName;
  /** The config after the format narrowed it. */
  readonly cfg: Readonly<Required<Omit<IoPgtableCfg, 'quirks' | 'tlb'>>> & { quirks: PgtableQuirks };
  /** Root table address (what a context / PASID entry or TTBR points to). */
  readonly root: bigint;
  /** Number of levels a walk from the root visits. */
  readonly levels: number;
  /**
   * Map [iova, iova + size) to [paddr, paddr + size) with `prot` (IOMMU_* flags), using the largest page
   * sizes that alignment allows. Returns the bytes mapped (all of them: any failure is a typed error
   * thrown before anything changes).
   */
  map(iova: bigint, paddr: bigint, size: bigint, prot: number): bigint;
  /**
   * Remove every mapping inside [iova, iova + size); returns the bytes unmapped (holes are skipped).
   * Removed leaves go to `gather` through `tlbAddPage`; freed tables through `tlbFlushWalk`. A block that
   * crosses either end of the range is refused (EBLOCK) with nothing changed.
   */
  unmap(iova: bigint, size: bigint, gather?: IotlbGather): bigint;
  /** The physical address `iova` translates to, or undefined. */
  iovaToPhys(iova: bigint): bigint | undefined;
  /**
   * Visit the present entries covering [iova, iova + size) (default: one smallest page), tables before
   * the entries below them, in address order.
   */
  walk(iova: bigint, visit: (e: WalkEntry) => WalkControl, size?: bigint): void;
  /**
   * Report each dirty leaf inside [iova, iova + size) and (unless `noClear`) mark it clean. Formats or
   * configurations without a dirty bit throw EINVAL.
   */
  readAndClearDirty(iova: bigint, size: bigint, onDirty: (iova: bigint, size: bigint) => void, noClear?: boolean): void;
  /** Free every table page, root included. The table is unusable afterwards. */
  free(): void;
}
