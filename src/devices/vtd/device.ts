/**
 * An Intel VT-d remapping unit (Intel VT-d spec rev 4; facts in ../shared/reference/vtd.md), driven only
 * through its MMIO registers and the tables software builds in memory; it answers with translations,
 * fault records in its registers, and MSI writes through `onInterrupt(address, data)`.
 *
 * Modelled: the register map as data; GCMD one command at a time with GSTS (TE, SRTP, QIE, WBF, IRE, SIRTP,
 * CFI); legacy mode (root and context entries; translated and pass-through contexts; second-stage walk) and
 * scalable mode (scalable root and 256-bit context entries, PASID directory and 512-bit PASID entries;
 * PGTT first-stage, second-stage, nested and pass-through); caches that keep what they cached until software
 * invalidates (context, PASID and IOTLB, bounded with FIFO replacement); register-based invalidation and
 * the invalidation queue (128/256-bit descriptors; context, IOTLB, PASID-IOTLB, PASID-cache, wait; device-TLB
 * and interrupt-entry descriptors accepted as no-ops; errors stop the head with FSTS.IQE and IQERCD); fault
 * recording with FPD, overflow and the fault event.
 *
 * Page requests from endpoints go to the page request queue (PQA/PQH/PQT, PRS, the page request event);
 * page group responses (descriptor type 9) go back through `onPageResponse`.
 *
 * A VMM observes through `observer`: every invalidation (register or queue) raw and decoded; in caching
 * mode, map/unmap notifications computed by re-walking what an IOTLB invalidation covered (second-stage
 * tables of the `devices` given); PASID-cache changes.
 *
 * Not modelled: interrupt remapping beyond its status bits, paging-structure caches.
 */
import { ViommuError, hex } from '../../errors.js';
import type { PhysMemory } from '../../mem/phys-memory.js';
import { HwWalkResult, HwWalker, ACCESS_EXEC, ACCESS_READ, ACCESS_USER, ACCESS_WRITE, WalkFault } from '../../pgtable/hw-walk.js';
import { VtdSecondStageFormat } from '../../pgtable/vtd-ss.js';
import { X86FirstStageFormat } from '../../pgtable/x86-fs.js';
import type { PteFormat } from '../../pgtable/format.js';
import { pgtableView } from '../../pgtable/index.js';
import * as F from './faults.js';
import * as R from './regs.js';

export interface VtdOptions {
  memory: PhysMemory;
  /** MSI writes the unit raises (fault events, invalidation-wait interrupts). */
  onInterrupt?: (address: bigint, data: number) => void;
  /** Guest address width: 39, 48 or 57 (SAGAW / MGAW; 48 also advertises 39, as QEMU). Default 39. */
  awBits?: 39 | 48 | 57;
  cachingMode?: boolean;
  scalableMode?: boolean;
  firstStage?: boolean;
  secondStage?: boolean;
  nesting?: boolean;
  passThrough?: boolean;
  deviceTlb?: boolean;
  snoopControl?: boolean;
  interruptRemapping?: boolean;
  /** PASID width in bits (ECAP.PSS + 1) in scalable mode; default 20. */
  pasidBits?: number;
  pageRequests?: boolean;
  /** Fault recording registers (NFR + 1); default 1. */
  faultRecords?: number;
  /** IOTLB entries; default 1024. */
  iotlbSize?: number;
  /**
   * Do not record a fault while a record from the same requester is still pending (F set), as the spec
   * recommends and QEMU does. Default true.
   */
  collapseFaults?: boolean;
  firstStage5Level?: boolean;
  firstStage1G?: boolean;
  /** Defaults that reproduce what QEMU 7.2 reports. */
  preset?: 'qemu-7.2';
  /** Page group responses (invalidation descriptor type 9) back to the endpoint. */
  onPageResponse?: (r: PageGroupResponse) => void;
  /** What a VMM watches: invalidations, caching-mode map/unmap, PASID-cache changes. */
  observer?: VtdObserver;
  /** Requester IDs behind the unit, for caching-mode replays (as QEMU walks its address spaces). */
  devices?: readonly number[];
}

/** One invalidation the unit performed, raw and decoded. */
export interface VtdInvalidation {
  source: 'register' | 'queue';
  /** The descriptor (queue: 2 or 4 qwords) or register value (CCMD, or IVA and IOTLB). */
  raw: bigint[];
  type: number;
  name: 'context' | 'iotlb' | 'device-tlb' | 'iec' | 'wait' | 'pasid-iotlb' | 'pasid-cache' | 'pasid-device-tlb' | 'page-group-response';
  granularity: number;
  did?: number;
  sid?: number;
  pasid?: number;
  addr?: bigint;
  am?: number;
  ih?: boolean;
}

export interface VtdMapEvent {
  sid: number;
  did: number;
  iova: bigint;
  size: bigint;
  pa: bigint;
  read: boolean;
  write: boolean;
}

export interface VtdObserver {
  invalidation?(inv: VtdInvalidation): void;
  /** Caching mode: a mapping appeared (found by re-walking after an IOTLB invalidation). */
  map?(e: VtdMapEvent): void;
  /** Caching mode: a mapping the VMM was told about is gone or changed. */
  unmap?(e: Omit<VtdMapEvent, 'pa' | 'read' | 'write'>): void;
  /** A PASID-cache invalidation: PASID entries of this domain (and PASID) may have changed. */
  pasidChange?(e: { granularity: number; did: number; pasid?: number }): void;
}

/** A page request an endpoint issues (PCIe PRI), as the unit receives it. */
export interface PageRequest {
  sid: number;
  pasid?: number;
  address: bigint;
  read: boolean;
  write: boolean;
  exec?: boolean;
  priv?: boolean;
  /** Page request group index, 9 bits. */
  prgi: number;
  lastInGroup: boolean;
}

export interface PageGroupResponse {
  sid: number;
  pasid?: number;
  prgi: number;
  /** 0 success, 1 invalid request, 0xf response failure. */
  code: number;
  /** Sent by the unit itself because the queue overflowed, not by software. */
  auto: boolean;
}

export type PageRequestOutcome = 'queued' | 'overflow' | 'refused';

export interface VtdRequest {
  /** Requester ID: bus << 8 | devfn. */
  sid: number;
  pasid?: number;
  iova: bigint;
  write: boolean;
  exec?: boolean;
  /** Privileged (supervisor) request. */
  priv?: boolean;
  /** An ATS translated request (AT = 10b): the address is already translated by the device TLB. */
  translated?: boolean;
}

export type VtdTranslation =
  | { ok: true; addr: bigint; pageSize: bigint; read: boolean; write: boolean; cached: boolean; passthrough: boolean }
  | { ok: false; faultReason: number; recorded: boolean };

export class VtdError extends ViommuError {}

/** Registers in one 4 KiB page of MMIO. */
export const VTD_MMIO_SIZE = 0x1000;

interface CachedContext {
  present: true;
  did: number;
  /** legacy: 0 translated, 1 translated + device TLB, 2 pass-through. */
  tt: number;
  levels: number;
  awBits: number;
  sslptptr: number;
  fpd: boolean;
  // scalable
  dte: boolean;
  pasidDir: number;
  pdts: number;
  paside: boolean;
  ridPasid: number;
}

interface CachedPasid {
  did: number;
  pgtt: number;
  fpd: boolean;
  ssptptr: number;
  ssLevels: number;
  ssAwBits: number;
  fsptptr: number;
  fsLevels: number;
  sre: boolean;
  /** Execute requests enabled. */
  ere: boolean;
  wpe: boolean;
}

interface IotlbEntry {
  did: number;
  pasid: number;
  pa: number;
  pageSize: number;
  read: boolean;
  write: boolean;
}

const NO_PASID = 0x1fffff;
/** The x86 interrupt address range (0xFEEx_xxxx). */
const INTERRUPT_RANGE_START = 0xfee00000;
const INTERRUPT_RANGE_END = 0xfeefffff;
/** The leaf sizes as bigints, made once: the hit path allocates only the address. */
const PAGE_SIZES_BIG = [0x1000n, 0x200000n, 0x40000000n] as const; // beyond any 20-bit PASID: "request without PASID" in cache keys

export class VtdIommu {
  readonly cap: bigint;
  readonly ecap: bigint;
  readonly faultRecords: number;
  readonly stats = { translations: 0, iotlbHits: 0, walks: 0, faults: 0, faultsRecorded: 0, faultsSuppressed: 0, qiDescriptors: 0, interrupts: 0 };

  private readonly memory: PhysMemory;
  private readonly onInterrupt: (address: bigint, data: number) => void;
  private readonly onPageResponse: (r: PageGroupResponse) => void;
  private readonly observer: VtdObserver | undefined;
  private readonly devices: readonly number[];
  /** Caching mode: per requester ID, what the observer was told is mapped (iova -> leaf). */
  private readonly shadow = new Map<number, Map<number, { size: number; pa: number; read: boolean; write: boolean; did: number }>>();
  private readonly regs: R.RegisterBank;
  private readonly o: Required<Omit<VtdOptions, 'memory' | 'onInterrupt' | 'preset' | 'onPageResponse' | 'observer' | 'devices'>>;
  private readonly iotlbMax: number;
  private readonly contextCache = new Map<number, CachedContext>();
  private readonly pasidCache = new Map<number, CachedPasid>();
  /** IOTLB: key (sid, pasid, level) -> (page number -> entry). */
  private readonly iotlb = new Map<number, Map<number, IotlbEntry>>();
  private iotlbCount = 0;
  private readonly walkers = new Map<string, HwWalker>();
  private readonly out = new HwWalkResult();
  /** Root table pointer and mode latched by SRTP. */
  private rootPtr = 0;
  private scalableRoot = false;
  private rootValid = false;
  /** GSTS.TES, kept as a field for the hot path. */
  private translationEnabled = false;

  constructor(opts: VtdOptions) {
    this.memory = opts.memory;
    this.onInterrupt = opts.onInterrupt ?? (() => {});
    this.onPageResponse = opts.onPageResponse ?? (() => {});
    this.observer = opts.observer;
    this.devices = opts.devices ?? [];
    const qemu = opts.preset === 'qemu-7.2';
    this.o = {
      awBits: opts.awBits ?? 39,
      cachingMode: opts.cachingMode ?? false,
      scalableMode: opts.scalableMode ?? false,
      firstStage: opts.firstStage ?? false,
      secondStage: opts.secondStage ?? true,
      nesting: opts.nesting ?? false,
      passThrough: opts.passThrough ?? true,
      deviceTlb: opts.deviceTlb ?? false,
      snoopControl: opts.snoopControl ?? false,
      interruptRemapping: opts.interruptRemapping ?? qemu,
      pasidBits: opts.pasidBits ?? (qemu ? 0 : 20),
      pageRequests: opts.pageRequests ?? false,
      faultRecords: opts.faultRecords ?? 1,
      iotlbSize: opts.iotlbSize ?? 1024,
      collapseFaults: opts.collapseFaults ?? true,
      firstStage5Level: opts.firstStage5Level ?? false,
      firstStage1G: opts.firstStage1G ?? false,
    };
    if (![39, 48, 57].includes(this.o.awBits)) throw new VtdError('VTD_BAD_OPTION', `awBits ${this.o.awBits} must be 39, 48 or 57`);
    if (!Number.isInteger(this.o.faultRecords) || this.o.faultRecords < 1 || this.o.faultRecords > 256) {
      throw new VtdError('VTD_BAD_OPTION', 'faultRecords must be in 1..256');
    }
    if (this.o.scalableMode && !this.o.firstStage && !this.o.secondStage) {
      throw new VtdError('VTD_BAD_OPTION', 'scalable mode needs first-stage or second-stage translation');
    }
    this.faultRecords = this.o.faultRecords;
    this.iotlbMax = this.o.iotlbSize;
    this.cap = this.deriveCap();
    this.ecap = this.deriveEcap();
    this.regs = new R.RegisterBank(VTD_MMIO_SIZE, R.registerDefs(this.cap, this.ecap, this.faultRecords));
  }

  private deriveCap(): bigint {
    const o = this.o;
    const sagaw = o.awBits === 39 ? 0b010n : o.awBits === 48 ? 0b110n : 0b1110n;
    let cap = 6n; // ND: 16-bit domain ids
    if (o.cachingMode) cap |= 1n << 7n;
    cap |= sagaw << 8n;
    cap |= BigInt(o.awBits - 1) << 16n;
    cap |= BigInt(R.FRO_OFFSET / 16) << 24n;
    cap |= 0b11n << 34n; // SLLPS: 2 MiB and 1 GiB second-stage pages
    cap |= 1n << 39n; // PSI
    cap |= BigInt(o.faultRecords - 1) << 40n;
    cap |= 18n << 48n; // MAMV
    cap |= 0b11n << 54n; // DWD, DRD
    if (o.firstStage1G) cap |= 1n << 56n;
    if (o.firstStage5Level) cap |= 1n << 60n;
    return cap;
  }

  private deriveEcap(): bigint {
    const o = this.o;
    let e = 1n << 1n; // QI
    if (o.deviceTlb) e |= 1n << 2n;
    if (o.interruptRemapping) e |= (1n << 3n) | (15n << 20n);
    if (o.passThrough) e |= 1n << 6n;
    if (o.snoopControl) e |= 1n << 7n;
    e |= BigInt(R.IRO_OFFSET / 16) << 8n;
    if (o.scalableMode) {
      e |= 1n << 43n; // SMTS
      e |= 1n << 31n; // SRS
      if (o.secondStage) e |= 1n << 46n;
      if (o.firstStage) e |= 1n << 47n;
      if (o.nesting) e |= 1n << 26n;
      if (o.pageRequests) e |= 1n << 29n;
      if (o.pasidBits > 0) e |= (1n << 40n) | (BigInt(o.pasidBits - 1) << 35n);
    }
    return e;
  }

  // ---- MMIO ---------------------------------------------------------------------------------------

  mmioRead(offset: number, size: 4 | 8): bigint {
    // spec: GCMD is write-only.
    if (offset === R.DMAR_GCMD_REG) return 0n;
    if (size !== 4 && size !== 8) return 0n;
    return this.regs.get(offset, size);
  }

  mmioWrite(offset: number, size: 4 | 8, value: bigint): void {
    if ((size !== 4 && size !== 8) || offset < 0 || offset + size > VTD_MMIO_SIZE) return;
    value = BigInt.asUintN(size * 8, value);
    // A 4-byte write to the upper half of a 64-bit register: write it as such.
    this.regs.write(offset, size, value);
    const covers = (reg: number, regSize: number): boolean => offset < reg + regSize && reg < offset + size;
    if (covers(R.DMAR_GCMD_REG, 4)) this.gcmd(this.regs.get32(R.DMAR_GCMD_REG));
    if (covers(R.DMAR_CCMD_REG + 4, 4)) this.ccmd();
    if (covers(R.IRO_OFFSET + 12, 4)) this.iotlbReg();
    if (covers(R.DMAR_IQT_REG, 4)) this.processQueue();
    if (covers(R.DMAR_FSTS_REG, 4)) this.fstsChanged();
    if (covers(R.DMAR_FECTL_REG, 4)) this.ectlUnmasked(R.DMAR_FECTL_REG, R.DMAR_FEDATA_REG, R.DMAR_FEADDR_REG);
    if (covers(R.DMAR_IECTL_REG, 4)) this.ectlUnmasked(R.DMAR_IECTL_REG, R.DMAR_IEDATA_REG, R.DMAR_IEADDR_REG);
    if (covers(R.DMAR_ICS_REG, 4) && !(this.regs.get32(R.DMAR_ICS_REG) & R.ICS_IWC)) {
      // spec: clearing IWC clears the pending interrupt.
      this.regs.set32(R.DMAR_IECTL_REG, this.regs.get32(R.DMAR_IECTL_REG) & ~R.ECTL_IP);
    }
  }

  private gsts(): number {
    return this.regs.get32(R.DMAR_GSTS_REG);
  }

  /** GCMD: one command at a time; the status bit in GSTS shows completion at once. */
  private gcmd(cmd: number): void {
    let st = this.gsts();
    const set = (bit: number, on: boolean): void => {
      st = on ? st | bit : st & ~bit;
    };
    set(R.GCMD_TE, (cmd & R.GCMD_TE) !== 0);
    if (cmd & R.GCMD_SRTP) {
      const rta = this.regs.get(R.DMAR_RTADDR_REG, 8);
      this.rootPtr = Number(rta & 0xffffffffff000n);
      const ttm = Number((rta >> 10n) & 3n);
      this.scalableRoot = ttm === 1;
      // spec: TTM 01 needs scalable-mode support; 10/11 are reserved.
      this.rootValid = ttm === 0 || (ttm === 1 && this.o.scalableMode);
      st |= R.GCMD_SRTP; // RTPS
      this.contextCache.clear();
      this.pasidCache.clear();
      this.flushIotlb(() => true);
    }
    if (cmd & R.GCMD_WBF) st &= ~R.GCMD_WBF; // write buffer flush completes at once
    set(R.GCMD_QIE, (cmd & R.GCMD_QIE) !== 0);
    if ((cmd & R.GCMD_QIE) && !(this.gsts() & R.GCMD_QIE)) this.regs.set(R.DMAR_IQH_REG, 8, 0n);
    set(R.GCMD_IRE, (cmd & R.GCMD_IRE) !== 0 && this.o.interruptRemapping);
    if (cmd & R.GCMD_SIRTP) st |= R.GCMD_SIRTP;
    set(R.GCMD_CFI, (cmd & R.GCMD_CFI) !== 0);
    this.regs.set32(R.DMAR_GSTS_REG, st);
    this.translationEnabled = (st & R.GCMD_TE) !== 0;
  }

  // ---- register-based invalidation ----------------------------------------------------------------

  private ccmd(): void {
    const v = this.regs.get(R.DMAR_CCMD_REG, 8);
    if (!(v >> 63n)) return;
    const cirg = Number((v >> 61n) & 3n);
    const did = Number(v & 0xffffn);
    const sid = Number((v >> 16n) & 0xffffn);
    this.invalidateContext(cirg, did, sid, Number((v >> 32n) & 3n));
    this.observer?.invalidation?.({ source: 'register', raw: [v], type: 1, name: 'context', granularity: cirg, did, sid });
    // Done: ICC clears, CAIG reports the granularity performed.
    this.regs.set(R.DMAR_CCMD_REG, 8, (v & ~(1n << 63n) & ~(3n << 59n)) | (BigInt(cirg) << 59n));
  }

  private iotlbReg(): void {
    const v = this.regs.get(R.IRO_OFFSET + 8, 8);
    if (!(v >> 63n)) return;
    const iirg = Number((v >> 60n) & 3n);
    const did = Number((v >> 32n) & 0xffffn);
    const iva = this.regs.get(R.IRO_OFFSET, 8);
    this.invalidateIotlb(iirg, did, Number(iva & ~0xfffn), Number(iva & 0x3fn), -1);
    this.observer?.invalidation?.({ source: 'register', raw: [iva, v], type: 2, name: 'iotlb', granularity: iirg, did, addr: iva & ~0xfffn, am: Number(iva & 0x3fn), ih: (iva & 0x40n) !== 0n });
    this.cachingModeReplay(iirg, did, Number(iva & ~0xfffn), Number(iva & 0x3fn));
    this.regs.set(R.IRO_OFFSET + 8, 8, (v & ~(1n << 63n) & ~(3n << 57n)) | (BigInt(iirg) << 57n));
  }

  /** Context-cache invalidation: 1 global, 2 domain, 3 device (sid with function mask fm). */
  private invalidateContext(granularity: number, did: number, sid: number, fm: number): void {
    const mask = fm === 0 ? 0xffff : fm === 1 ? 0xfffe : fm === 2 ? 0xfffc : 0xfff8;
    for (const [key, c] of this.contextCache) {
      if (granularity === 1 || (granularity === 2 && c.did === did) || (granularity === 3 && (key & mask) === (sid & mask))) {
        this.contextCache.delete(key);
      }
    }
    // Cached PASID entries hang off context entries.
    if (granularity === 1) this.pasidCache.clear();
    else for (const [key, p] of this.pasidCache) if (granularity === 2 ? p.did === did : (Math.floor(key / 2 ** 21) & mask) === (sid & mask)) this.pasidCache.delete(key);
  }

  /** IOTLB invalidation: 1 global, 2 domain, 3 page (addr, 2^am pages) in domain; pasid -1 = any. */
  private invalidateIotlb(granularity: number, did: number, addr: number, am: number, pasid: number): void {
    if (granularity === 1) {
      this.flushIotlb(() => true);
      return;
    }
    const span = 4096 * 2 ** am;
    const base = addr - (addr % span);
    this.flushIotlb((e, va) => {
      if (e.did !== did || (pasid >= 0 && e.pasid !== pasid)) return false;
      if (granularity !== 3) return true;
      return va < base + span && base < va + e.pageSize;
    });
  }

  private flushIotlb(match: (e: IotlbEntry, va: number) => boolean): void {
    for (const [key, m] of this.iotlb) {
      const level = key % 4;
      const size = 2 ** (12 + 9 * (level - 1));
      for (const [vpn, e] of m) {
        if (match(e, vpn * size)) {
          m.delete(vpn);
          this.iotlbCount--;
        }
      }
      if (m.size === 0) this.iotlb.delete(key);
    }
  }

  // ---- translation --------------------------------------------------------------------------------

  translate(req: VtdRequest): VtdTranslation {
    this.stats.translations++;
    const pasid = req.pasid ?? -1;
    if (!this.translationEnabled) {
      // Remapping disabled: requests go to memory untranslated.
      return { ok: true, addr: req.iova, pageSize: 0x1000n, read: true, write: true, cached: false, passthrough: true };
    }
    const iova = Number(req.iova);
    // The IOTLB holds translations of ordinary (user, non-execute) requests; privileged and execute
    // requests take the walk, which applies SRE, U/S and XD.
    const plain = !req.priv && !req.exec;
    const hit = plain && iova < 2 ** 53 && req.iova >= 0n ? this.iotlbLookup(req.sid, pasid < 0 ? NO_PASID : pasid, iova) : undefined;
    if (hit && (!req.write || hit.write)) {
      this.stats.iotlbHits++;
      const off = iova - Math.floor(iova / hit.pageSize) * hit.pageSize;
      return { ok: true, addr: BigInt(hit.pa + off), pageSize: PAGE_SIZES_BIG[hit.pageSize === 0x1000 ? 0 : hit.pageSize === 0x200000 ? 1 : 2]!, read: hit.read, write: hit.write, cached: true, passthrough: false };
    }
    return this.scalableRoot ? this.translateScalable(req) : this.translateLegacy(req);
  }

  private iotlbLookup(sid: number, pasid: number, iova: number): IotlbEntry | undefined {
    const key = (sid * 2 ** 21 + pasid) * 4;
    for (let level = 1; level <= 3; level++) {
      const m = this.iotlb.get(key + level);
      if (m === undefined) continue;
      const e = m.get(Math.floor(iova / 2 ** (12 + 9 * (level - 1))));
      if (e !== undefined) return e;
    }
    return undefined;
  }

  private iotlbInsert(req: VtdRequest, pasid: number, iova: number, e: IotlbEntry): void {
    if (req.priv || req.exec) return;
    const sid = req.sid;
    if (this.iotlbCount >= this.iotlbMax) {
      // FIFO replacement: the oldest set's oldest entry goes.
      const [k, m] = this.iotlb.entries().next().value as [number, Map<number, IotlbEntry>];
      const first = m.keys().next().value as number;
      m.delete(first);
      this.iotlbCount--;
      if (m.size === 0) this.iotlb.delete(k);
    }
    const level = e.pageSize === 0x1000 ? 1 : e.pageSize === 0x200000 ? 2 : 3;
    const key = (sid * 2 ** 21 + pasid) * 4 + level;
    let m = this.iotlb.get(key);
    if (m === undefined) {
      m = new Map();
      this.iotlb.set(key, m);
    }
    const vpn = Math.floor(iova / e.pageSize);
    if (!m.has(vpn)) this.iotlbCount++;
    m.set(vpn, e);
  }

  private walker(fmt: PteFormat, key: string, opts: ConstructorParameters<typeof HwWalker>[2] = {}): HwWalker {
    let w = this.walkers.get(key);
    if (w === undefined) {
      w = new HwWalker(fmt, this.memory, opts);
      this.walkers.set(key, w);
    }
    return w;
  }

  private ssWalker(awBits: number): HwWalker {
    const pg = (1n << 12n) | (1n << 21n) | (1n << 30n);
    return this.walker(new VtdSecondStageFormat({ pgsizeBitmap: pg, ias: awBits, oas: this.o.awBits, quirks: { snoopControl: this.o.snoopControl } }), `ss${awBits}`);
  }

  private read64(pa: number): bigint | undefined {
    return this.memory.containsRange(pa, 8) ? this.memory.readU64n(pa) : undefined;
  }

  private fail(req: VtdRequest, reason: number, fpd: boolean): VtdTranslation {
    this.stats.faults++;
    if (fpd) {
      // spec: fault processing disable suppresses recording of qualified faults.
      this.stats.faultsSuppressed++;
      return { ok: false, faultReason: reason, recorded: false };
    }
    return { ok: false, faultReason: reason, recorded: this.recordFault(req, reason) };
  }

  private translateLegacy(req: VtdRequest): VtdTranslation {
    if (!this.rootValid) return this.fail(req, F.VTD_FR_ROOT_TABLE_INV, false);
    if (req.pasid !== undefined) return this.fail(req, F.VTD_FR_RTADDR_INV_TTM, false);
    let ctx = this.contextCache.get(req.sid);
    if (ctx === undefined) {
      const bus = req.sid >> 8;
      const devfn = req.sid & 0xff;
      const rootLo = this.read64(this.rootPtr + 16 * bus);
      const rootHi = this.read64(this.rootPtr + 16 * bus + 8);
      if (rootLo === undefined || rootHi === undefined) return this.fail(req, F.VTD_FR_ROOT_TABLE_INV, false);
      if (!(rootLo & 1n)) return this.fail(req, F.VTD_FR_ROOT_ENTRY_P, false);
      // spec: root entry bits 11:1 and the whole upper half are reserved.
      if (rootLo & 0xffen || rootHi !== 0n || this.beyondHaw(rootLo)) return this.fail(req, F.VTD_FR_ROOT_ENTRY_RSVD, false);
      const ctp = Number(rootLo & 0xffffffffff000n);
      const lo = this.read64(ctp + 16 * devfn);
      const hi = this.read64(ctp + 16 * devfn + 8);
      if (lo === undefined || hi === undefined) return this.fail(req, F.VTD_FR_CONTEXT_TABLE_INV, false);
      if (!(lo & 1n)) return this.fail(req, F.VTD_FR_CONTEXT_ENTRY_P, false);
      const fpd = (lo & 2n) !== 0n;
      // spec: context entry lo bits 11:4, hi bit 7 and 63:24 are reserved.
      if (lo & 0xff0n || hi & 0xffffffffff000080n || this.beyondHaw(lo)) return this.fail(req, F.VTD_FR_CONTEXT_ENTRY_RSVD, fpd);
      const tt = Number((lo >> 2n) & 3n);
      const aw = Number(hi & 7n);
      const awBits = aw === 1 ? 39 : aw === 2 ? 48 : aw === 3 ? 57 : 0;
      const sagaw = Number((this.cap >> 8n) & 0x1fn);
      const ttOk = tt === 0 || (tt === 1 && this.o.deviceTlb) || (tt === 2 && this.o.passThrough);
      if (!ttOk || (tt !== 2 && (awBits === 0 || !(sagaw & (1 << aw))))) return this.fail(req, F.VTD_FR_CONTEXT_ENTRY_INV, fpd);
      ctx = {
        present: true,
        did: Number((hi >> 8n) & 0xffffn),
        tt,
        levels: aw + 2,
        awBits,
        sslptptr: Number(lo & 0xffffffffff000n),
        fpd,
        dte: tt === 1,
        pasidDir: 0,
        pdts: 0,
        paside: false,
        ridPasid: 0,
      };
      this.contextCache.set(req.sid, ctx);
    }
    if (req.translated) {
      // spec: only TT = 01b (device-TLB) lets translated requests through; other types block them.
      if (ctx.tt !== 1) return this.fail(req, F.VTD_FR_CONTEXT_ENTRY_TT, ctx.fpd);
      return { ok: true, addr: req.iova, pageSize: 0x1000n, read: true, write: true, cached: false, passthrough: true };
    }
    if (ctx.tt === 2) {
      return { ok: true, addr: req.iova, pageSize: 0x1000n, read: true, write: true, cached: false, passthrough: true };
    }
    if (req.iova >= 1n << BigInt(ctx.awBits)) return this.fail(req, F.VTD_FR_ADDR_BEYOND_MGAW, ctx.fpd);
    return this.secondStage(req, ctx.sslptptr, ctx.awBits, ctx.did, NO_PASID, ctx.fpd, false);
  }

  private beyondHaw(entry: bigint): boolean {
    return (entry & 0xffffffffff000n) >> BigInt(this.o.awBits) !== 0n;
  }

  /** Second-stage translation of `req.iova` (legacy, or scalable PGTT second-stage). */
  private secondStage(req: VtdRequest, root: number, awBits: number, did: number, pasidKey: number, fpd: boolean, scalable: boolean): VtdTranslation {
    this.stats.walks++;
    const w = this.ssWalker(awBits);
    const access = (req.write ? ACCESS_WRITE : ACCESS_READ) | (req.exec ? ACCESS_EXEC : 0);
    const iova = Number(req.iova);
    const r = this.out;
    w.walkNum(root, iova - (iova % 4096), access, r);
    if (!r.ok) {
      let reason: number;
      if (scalable) reason = r.fault === WalkFault.RESERVED ? F.VTD_FR_SS_RSVD : r.fault === WalkFault.TABLE_OUTSIDE_MEMORY ? F.VTD_FR_SS_ACCESS : F.VTD_FR_SS_RW;
      else if (r.fault === WalkFault.RESERVED || r.fault === WalkFault.OUTPUT_BEYOND) reason = F.VTD_FR_PAGING_ENTRY_RSVD;
      else if (r.fault === WalkFault.TABLE_OUTSIDE_MEMORY) reason = F.VTD_FR_PAGING_ENTRY_INV;
      else reason = req.write ? F.VTD_FR_WRITE : F.VTD_FR_READ;
      return this.fail(req, reason, fpd);
    }
    const pageBase = r.pa - (r.pa % r.pageSize);
    // An output page overlapping the interrupt address range is refused (as QEMU 7.2 does): DMA there
    // would be taken for an MSI.
    if (pageBase <= INTERRUPT_RANGE_END && pageBase + r.pageSize - 1 >= INTERRUPT_RANGE_START) {
      return this.fail(req, scalable ? F.VTD_FR_SM_INTERRUPT_ADDR : F.VTD_FR_INTERRUPT_ADDR, fpd);
    }
    this.iotlbInsert(req, pasidKey, iova, {
      did,
      pasid: pasidKey,
      pa: pageBase,
      pageSize: r.pageSize,
      read: (r.perms & 1) !== 0,
      write: (r.perms & 2) !== 0,
    });
    return { ok: true, addr: BigInt(pageBase + (iova % r.pageSize)), pageSize: BigInt(r.pageSize), read: (r.perms & 1) !== 0, write: (r.perms & 2) !== 0, cached: false, passthrough: false };
  }

  private translateScalable(req: VtdRequest): VtdTranslation {
    if (!this.rootValid) return this.fail(req, F.VTD_FR_ROOT_TABLE_INV, false);
    let ctx = this.contextCache.get(req.sid);
    if (ctx === undefined) {
      const bus = req.sid >> 8;
      const devfn = req.sid & 0xff;
      const root = this.read64(this.rootPtr + 16 * bus + (devfn >= 128 ? 8 : 0));
      if (root === undefined) return this.fail(req, F.VTD_FR_SM_ROOT_ACCESS, false);
      if (!(root & 1n)) return this.fail(req, F.VTD_FR_SM_ROOT_P, false);
      if (root & 0xffen || this.beyondHaw(root)) return this.fail(req, F.VTD_FR_SM_ROOT_RSVD, false);
      const at = Number(root & 0xffffffffff000n) + 32 * (devfn & 0x7f);
      const q0 = this.read64(at);
      const q1 = this.read64(at + 8);
      const q2 = this.read64(at + 16);
      const q3 = this.read64(at + 24);
      if (q0 === undefined || q1 === undefined || q2 === undefined || q3 === undefined) return this.fail(req, F.VTD_FR_SM_CTX_ACCESS, false);
      if (!(q0 & 1n)) return this.fail(req, F.VTD_FR_SM_CTX_P, false);
      const fpd = (q0 & 2n) !== 0n;
      // spec: scalable context bits 8:5 and 127:84 (we also hold 255:128 to zero) are reserved.
      if (q0 & 0x1e0n || q1 & ~0x1fffffn || q2 !== 0n || q3 !== 0n || this.beyondHaw(q0)) return this.fail(req, F.VTD_FR_SM_CTX_RSVD, fpd);
      const paside = (q0 & 8n) !== 0n;
      const ridPasid = Number(q1 & 0xfffffn);
      // spec: PASID-granular translation needs PASID support; RID_PASID must fit the PASID width.
      if (paside && this.o.pasidBits === 0) return this.fail(req, F.VTD_FR_SM_CTX_INV, fpd);
      if (ridPasid >= 2 ** this.o.pasidBits && ridPasid !== 0) return this.fail(req, F.VTD_FR_SM_RID_PASID, fpd);
      ctx = {
        present: true,
        did: 0,
        tt: 0,
        levels: 0,
        awBits: 0,
        sslptptr: 0,
        fpd,
        dte: (q0 & 4n) !== 0n,
        pasidDir: Number(q0 & 0xffffffffff000n),
        pdts: Number((q0 >> 9n) & 7n),
        paside,
        ridPasid,
      };
      this.contextCache.set(req.sid, ctx);
    }
    if (req.translated) {
      // spec: translated requests need the device-TLB enabled in the context (DTE).
      if (!ctx.dte) return this.fail(req, F.VTD_FR_SM_CTX_DTE, ctx.fpd);
      return { ok: true, addr: req.iova, pageSize: 0x1000n, read: true, write: true, cached: false, passthrough: true };
    }
    let pasid = ctx.ridPasid;
    if (req.pasid !== undefined) {
      if (!ctx.paside) return this.fail(req, F.VTD_FR_SM_CTX_PASIDE, ctx.fpd);
      pasid = req.pasid;
    }
    if (pasid >> 6 >= 2 ** (ctx.pdts + 7)) return this.fail(req, F.VTD_FR_SM_PASID_OVER_PDTS, ctx.fpd);
    const pkey = req.sid * 2 ** 21 + pasid;
    let pe = this.pasidCache.get(pkey);
    if (pe === undefined) {
      const dir = this.read64(ctx.pasidDir + 8 * (pasid >> 6));
      if (dir === undefined) return this.fail(req, F.VTD_FR_SM_PASID_DIR_ACCESS, ctx.fpd);
      if (!(dir & 1n)) return this.fail(req, F.VTD_FR_SM_PASID_DIR_P, ctx.fpd);
      const dirFpd = ctx.fpd || (dir & 2n) !== 0n;
      if (dir & 0xffcn || this.beyondHaw(dir)) return this.fail(req, F.VTD_FR_SM_PASID_DIR_RSVD, dirFpd);
      const at = Number(dir & 0xffffffffff000n) + 64 * (pasid & 63);
      const q: bigint[] = [];
      for (let i = 0; i < 8; i++) {
        const v = this.read64(at + 8 * i);
        if (v === undefined) return this.fail(req, F.VTD_FR_SM_PASID_TABLE_ACCESS, dirFpd);
        q.push(v);
      }
      const [q0, q1, q2] = q as [bigint, bigint, bigint];
      if (!(q0 & 1n)) return this.fail(req, F.VTD_FR_SM_PASID_TABLE_P, dirFpd);
      const fpd = dirFpd || (q0 & 2n) !== 0n;
      // Reserved: qword 0 bits 11:10 and address bits beyond the host width; qword 1 above PGSNP (88) and
      // 86:80; qword 2 bits 11:6 (above WPE/NXE/SMEP/EAFE are 139:136 ... kept zero here); qwords 3-7.
      if (q0 & 0xc00n || q1 & ~0x180ffffn || q2 & 0xf00n || q.slice(3).some((v) => v !== 0n)) {
        return this.fail(req, F.VTD_FR_SM_PASID_TABLE_RSVD, fpd);
      }
      const pgtt = Number((q0 >> 6n) & 7n);
      const aw = Number((q0 >> 2n) & 7n);
      const ok =
        (pgtt === 1 && this.o.firstStage) ||
        (pgtt === 2 && this.o.secondStage) ||
        (pgtt === 3 && this.o.nesting && this.o.firstStage && this.o.secondStage) ||
        (pgtt === 4 && this.o.passThrough);
      if (!ok) return this.fail(req, F.VTD_FR_SM_PASID_ENTRY_INV, fpd);
      const fspm = Number((q2 >> 2n) & 3n);
      // spec: a second-stage table pointer beyond the host address width is an invalid SSPTPTR.
      if ((pgtt === 2 || pgtt === 3) && this.beyondHaw(q0)) return this.fail(req, F.VTD_FR_SS_INV_PTR, fpd);
      const ssAw = aw === 1 ? 39 : aw === 2 ? 48 : aw === 3 ? 57 : 0;
      if ((pgtt === 2 || pgtt === 3) && (ssAw === 0 || !(Number((this.cap >> 8n) & 0x1fn) & (1 << aw)))) return this.fail(req, F.VTD_FR_SM_PASID_ENTRY_INV, fpd);
      if ((pgtt === 1 || pgtt === 3) && (fspm > 1 || (fspm === 1 && !this.o.firstStage5Level))) return this.fail(req, F.VTD_FR_SM_PASID_ENTRY_INV, fpd);
      pe = {
        did: Number(q1 & 0xffffn),
        pgtt,
        fpd,
        ssptptr: Number(q0 & 0xffffffffff000n),
        ssLevels: aw + 2,
        ssAwBits: ssAw,
        fsptptr: Number(q2 & 0xffffffffff000n),
        fsLevels: fspm === 1 ? 5 : 4,
        sre: (q2 & 1n) !== 0n,
        ere: (q2 & 2n) !== 0n,
        wpe: (q2 & 0x10n) !== 0n,
      };
      this.pasidCache.set(pkey, pe);
    }
    const pasidKey = req.pasid === undefined ? NO_PASID : pasid;
    switch (pe.pgtt) {
      case 4:
        return { ok: true, addr: req.iova, pageSize: 0x1000n, read: true, write: true, cached: false, passthrough: true };
      case 2:
        if (req.iova >= 1n << BigInt(pe.ssAwBits)) return this.fail(req, F.VTD_FR_SS_RW, pe.fpd);
        return this.secondStage(req, pe.ssptptr, pe.ssAwBits, pe.did, pasidKey, pe.fpd, true);
      default:
        return this.firstStage(req, pe, pasidKey);
    }
  }

  /** First-stage (PGTT 1) or nested (PGTT 3) translation. */
  private firstStage(req: VtdRequest, pe: CachedPasid, pasidKey: number): VtdTranslation {
    this.stats.walks++;
    const ias = pe.fsLevels === 5 ? 57 : 48;
    // spec: supervisor requests need SRE, execute requests ERE, in the PASID entry.
    if (req.priv && !pe.sre) return this.fail(req, F.VTD_FR_SM_SRE_0, pe.fpd);
    if (req.exec && !pe.ere) return this.fail(req, F.VTD_FR_SM_ERE_0, pe.fpd);
    const half = 1n << BigInt(ias - 1);
    const top = req.iova >> BigInt(ias - 1);
    if (top !== 0n && top !== (1n << BigInt(65 - ias)) - 1n) return this.fail(req, F.VTD_FR_NON_CANONICAL, pe.fpd);
    const folded = Number(req.iova & ((half << 1n) - 1n));
    const nested = pe.pgtt === 3;
    let nestedFault = 0;
    const ss = nested ? this.ssWalker(pe.ssAwBits) : undefined;
    const ssOut = new HwWalkResult();
    const fmt = new X86FirstStageFormat({ pgsizeBitmap: (1n << 12n) | (1n << 21n) | (1n << 30n), ias, oas: this.o.awBits, quirks: { firstStage1G: this.o.firstStage1G } });
    const w = nested
      ? new HwWalker(fmt, this.memory, {
          updateAccessDirty: true,
          writeProtect: pe.wpe,
          translateTable: (gpa, write) => {
            // spec: every first-stage table address is a GPA translated by the second stage; A/D updates
            // need second-stage write permission.
            if (gpa >= 2 ** pe.ssAwBits) {
              nestedFault = F.VTD_FR_NESTED_BEYOND_MGAW;
              return -1;
            }
            if (!ss!.walkNum(pe.ssptptr, gpa - (gpa % 4096), write ? ACCESS_WRITE : ACCESS_READ, ssOut)) {
              nestedFault = write ? F.VTD_FR_NESTED_FS_WRITE : F.VTD_FR_NESTED_FS_READ;
              return -1;
            }
            return ssOut.pa + (gpa % 4096);
          },
        })
      : this.walker(fmt, `fs${ias}:${pe.wpe}`, { updateAccessDirty: true, writeProtect: pe.wpe });
    const access = (req.write ? ACCESS_WRITE : ACCESS_READ) | (req.exec ? ACCESS_EXEC : 0) | (req.priv ? 0 : ACCESS_USER);
    const r = this.out;
    w.walkNum(pe.fsptptr, folded - (folded % 4096), access, r);
    if (!r.ok) {
      const reasons: Record<number, number> = {
        [WalkFault.NOT_PRESENT]: F.VTD_FR_FS_NOT_PRESENT,
        [WalkFault.RESERVED]: F.VTD_FR_FS_RSVD,
        [WalkFault.OUTPUT_BEYOND]: F.VTD_FR_FS_RSVD,
        [WalkFault.NO_USER]: F.VTD_FR_FS_USER,
        [WalkFault.NO_EXEC]: F.VTD_FR_FS_EXEC,
        [WalkFault.NO_WRITE]: F.VTD_FR_FS_WRITE,
        [WalkFault.NO_READ]: F.VTD_FR_FS_READ,
        [WalkFault.TABLE_OUTSIDE_MEMORY]: F.VTD_FR_FS_ACCESS,
        [WalkFault.TABLE_XLATE]: nestedFault,
      };
      return this.fail(req, reasons[r.fault] ?? F.VTD_FR_FS_ACCESS, pe.fpd);
    }
    let pa = r.pa - (r.pa % r.pageSize) + (folded % r.pageSize) - (folded % 4096);
    let pageSize = r.pageSize;
    let write = (r.perms & 2) !== 0;
    if (nested) {
      // The first-stage output is a GPA: through the second stage, permissions AND-ed.
      if (pa >= 2 ** pe.ssAwBits) return this.fail(req, F.VTD_FR_NESTED_BEYOND_MGAW, pe.fpd);
      if (!ss!.walkNum(pe.ssptptr, pa, req.write ? ACCESS_WRITE : ACCESS_READ, ssOut)) {
        return this.fail(req, ssOut.fault === WalkFault.RESERVED ? F.VTD_FR_SS_RSVD : F.VTD_FR_SS_RW, pe.fpd);
      }
      pa = ssOut.pa;
      pageSize = Math.min(pageSize, ssOut.pageSize);
      write = write && (ssOut.perms & 2) !== 0;
    }
    const base = pa - (pa % 4096);
    if (base <= INTERRUPT_RANGE_END && base + 4095 >= INTERRUPT_RANGE_START) return this.fail(req, F.VTD_FR_SM_INTERRUPT_ADDR, pe.fpd);
    if (pageSize === 4096 || !nested) {
      this.iotlbInsert(req, pasidKey, folded - (folded % pageSize), { did: pe.did, pasid: pasidKey, pa: nested ? base : pa - (pa % pageSize) + 0, pageSize: nested ? 4096 : pageSize, read: true, write });
    }
    return { ok: true, addr: BigInt(base + (folded % 4096)), pageSize: BigInt(pageSize), read: true, write, cached: false, passthrough: false };
  }

  // ---- page requests ------------------------------------------------------------------------------

  /**
   * An endpoint's page request. It is checked against the device's context (PRE) and written as a 256-bit
   * page request descriptor at PQT, with PRS.PPR and the page request event; a full queue sets PRS.PRO and,
   * for the last request of a group, the unit answers the group itself with Success.
   */
  pageRequest(req: PageRequest): PageRequestOutcome {
    if (!this.o.scalableMode || !this.o.pageRequests || !this.scalableRoot || !this.translationEnabled) return 'refused';
    const xreq: VtdRequest = { sid: req.sid, iova: req.address, write: req.write, ...(req.pasid !== undefined ? { pasid: req.pasid } : {}) };
    // spec: the device's scalable context entry must be present and allow page requests (PRE).
    const ctxLo = this.readContextLow(req.sid);
    if (ctxLo === undefined || !(ctxLo & 1n)) {
      this.fail(xreq, F.VTD_FR_SM_CTX_P, false);
      return 'refused';
    }
    if (!(ctxLo & 0x10n)) {
      this.fail(xreq, F.VTD_FR_SM_CTX_PRE, (ctxLo & 2n) !== 0n);
      return 'refused';
    }
    const pqa = this.regs.get(R.DMAR_PQA_REG, 8);
    const size = 128 * 2 ** Number(pqa & 7n) * 32;
    const head = Number(this.regs.get(R.DMAR_PQH_REG, 8) & 0x7ffe0n);
    const tail = Number(this.regs.get(R.DMAR_PQT_REG, 8) & 0x7ffe0n);
    const stop = req.lastInGroup && !req.read && !req.write;
    if ((tail + 32) % size === head) {
      this.regs.set32(R.DMAR_PRS_REG, this.regs.get32(R.DMAR_PRS_REG) | R.PRS_PRO);
      if (req.lastInGroup && !stop) {
        this.onPageResponse({ sid: req.sid, ...(req.pasid !== undefined ? { pasid: req.pasid } : {}), prgi: req.prgi & 0x1ff, code: 0, auto: true });
      }
      return 'overflow';
    }
    const at = Number(pqa & 0xffffffffff000n) + tail;
    if (!this.memory.containsRange(at, 32)) return 'refused';
    const qw0 =
      1n |
      (req.pasid !== undefined ? 1n << 8n : 0n) |
      (BigInt(req.sid) << 16n) |
      (BigInt((req.pasid ?? 0) & 0xfffff) << 32n) |
      (req.exec ? 1n << 52n : 0n) |
      (req.priv ? 1n << 53n : 0n);
    const qw1 = (req.read ? 1n : 0n) | (req.write ? 2n : 0n) | (req.lastInGroup ? 4n : 0n) | (BigInt(req.prgi & 0x1ff) << 3n) | (BigInt.asUintN(64, req.address) & ~0xfffn);
    this.memory.writeU64(BigInt(at), qw0);
    this.memory.writeU64(BigInt(at + 8), qw1);
    this.memory.writeU64(BigInt(at + 16), 0n);
    this.memory.writeU64(BigInt(at + 24), 0n);
    this.regs.set(R.DMAR_PQT_REG, 8, BigInt((tail + 32) % size));
    const prs = this.regs.get32(R.DMAR_PRS_REG);
    this.regs.set32(R.DMAR_PRS_REG, prs | R.PRS_PPR);
    if (!(prs & R.PRS_PPR)) this.raiseEvent(R.DMAR_PECTL_REG, R.DMAR_PEDATA_REG, R.DMAR_PEADDR_REG);
    return 'queued';
  }

  private readContextLow(sid: number): bigint | undefined {
    const at = this.scalableContextAt(sid);
    return at === undefined ? undefined : this.read64(at);
  }

  // ---- faults -------------------------------------------------------------------------------------

  /** Record a fault in the next fault recording register; returns whether it was recorded. */
  private recordFault(req: VtdRequest, reason: number): boolean {
    const fsts = this.regs.get32(R.DMAR_FSTS_REG);
    // spec: an overflow stays until software clears PFO; faults meanwhile are lost.
    if (fsts & R.FSTS_PFO) return false;
    if (this.o.collapseFaults) {
      for (let i = 0; i < this.faultRecords; i++) {
        const hi = this.regs.get(R.FRO_OFFSET + 16 * i + 8, 8);
        if (hi >> 63n && Number(hi & 0xffffn) === req.sid) return false;
      }
    }
    const fri = (fsts >> 8) & 0xff;
    const at = R.FRO_OFFSET + 16 * fri;
    if (this.regs.get(at + 8, 8) >> 63n) {
      // spec: the next record is still in use: set PFO and drop the fault.
      this.regs.set32(R.DMAR_FSTS_REG, fsts | R.FSTS_PFO);
      return false;
    }
    const pasid = req.pasid ?? 0;
    const lo = BigInt.asUintN(64, req.iova) & ~0xfffn;
    const hi =
      BigInt(req.sid) |
      (req.priv ? 1n << 29n : 0n) |
      (req.exec ? 1n << 30n : 0n) |
      (req.pasid !== undefined ? 1n << 31n : 0n) |
      (BigInt(reason) << 32n) |
      (BigInt(pasid & 0xfffff) << 40n) |
      (req.write ? 0n : 1n << 62n) |
      (1n << 63n);
    this.regs.set(at, 8, lo);
    this.regs.set(at + 8, 8, hi);
    this.stats.faultsRecorded++;
    const next = (fri + 1) % this.faultRecords;
    const wasPending = (fsts & R.FSTS_PPF) !== 0;
    this.regs.set32(R.DMAR_FSTS_REG, (fsts & ~0xff00) | (next << 8) | R.FSTS_PPF);
    if (!wasPending) this.raiseEvent(R.DMAR_FECTL_REG, R.DMAR_FEDATA_REG, R.DMAR_FEADDR_REG);
    return true;
  }

  /** FSTS changed by software: PPF follows whether any record still has F set. */
  private fstsChanged(): void {
    let pending = false;
    for (let i = 0; i < this.faultRecords; i++) if (this.regs.get(R.FRO_OFFSET + 16 * i + 8, 8) >> 63n) pending = true;
    const fsts = this.regs.get32(R.DMAR_FSTS_REG);
    this.regs.set32(R.DMAR_FSTS_REG, pending ? fsts | R.FSTS_PPF : fsts & ~R.FSTS_PPF);
  }

  private raiseEvent(ctl: number, data: number, addr: number): void {
    const c = this.regs.get32(ctl);
    if (c & R.ECTL_IM) {
      this.regs.set32(ctl, c | R.ECTL_IP);
      return;
    }
    this.regs.set32(ctl, c & ~R.ECTL_IP);
    this.stats.interrupts++;
    const address = (BigInt(this.regs.get32(addr + 4)) << 32n) | BigInt(this.regs.get32(addr));
    this.onInterrupt(address, this.regs.get32(data));
  }

  /** Unmasking an event with IP set delivers it. */
  private ectlUnmasked(ctl: number, data: number, addr: number): void {
    const c = this.regs.get32(ctl);
    if (!(c & R.ECTL_IM) && c & R.ECTL_IP) this.raiseEvent(ctl, data, addr);
  }

  // ---- invalidation queue -------------------------------------------------------------------------

  private processQueue(): void {
    if (!(this.gsts() & R.GCMD_QIE)) return;
    const fsts = this.regs.get32(R.DMAR_FSTS_REG);
    // spec: after an error the queue stops until software clears FSTS.IQE.
    if (fsts & R.FSTS_IQE) return;
    const iqa = this.regs.get(R.DMAR_IQA_REG, 8);
    const dw = (iqa >> 11n) & 1n ? 32 : 16;
    const base = Number(iqa & 0xffffffffff000n);
    const qsize = 2 ** (Number(iqa & 7n) + 8) * 16; // bytes
    const tail = Number(this.regs.get(R.DMAR_IQT_REG, 8) & 0x7fff0n);
    let head = Number(this.regs.get(R.DMAR_IQH_REG, 8) & 0x7fff0n);
    if (dw === 32 && !this.o.scalableMode) return this.qiError(5, head);
    if ((dw === 32 && tail & 0x10) || tail >= qsize) return this.qiError(1, head);
    for (let n = 0; head !== tail && n < qsize / dw; n++) {
      const at = base + head;
      if (!this.memory.containsRange(at, dw)) return this.qiError(2, head);
      const q0 = this.memory.readU64n(at);
      const q1 = this.memory.readU64n(at + 8);
      const err = this.descriptor(q0, q1, dw === 32 ? [this.memory.readU64n(at + 16), this.memory.readU64n(at + 24)] : undefined);
      if (err !== 0) return this.qiError(err, head);
      this.stats.qiDescriptors++;
      head = (head + dw) % qsize;
      this.regs.set(R.DMAR_IQH_REG, 8, BigInt(head));
    }
  }

  private qiError(code: number, head: number): void {
    this.regs.set(R.DMAR_IQH_REG, 8, BigInt(head));
    this.regs.set(R.DMAR_IQER_REG, 8, BigInt(code));
    const fsts = this.regs.get32(R.DMAR_FSTS_REG);
    this.regs.set32(R.DMAR_FSTS_REG, fsts | R.FSTS_IQE);
    if (!(fsts & R.FSTS_PPF)) this.raiseEvent(R.DMAR_FECTL_REG, R.DMAR_FEDATA_REG, R.DMAR_FEADDR_REG);
  }

  private emit(raw: bigint[], type: number, name: VtdInvalidation['name'], granularity: number, f: Partial<VtdInvalidation>): void {
    this.observer?.invalidation?.({ source: 'queue', raw, type, name, granularity, ...f });
  }

  /**
   * Caching mode: after an IOTLB invalidation, re-walk what it covered for every device of the domain and
   * tell the observer what appeared and what went (as QEMU's shadowing does for assigned devices).
   */
  private cachingModeReplay(granularity: number, did: number, addr: number, am: number): void {
    if (!this.o.cachingMode || (!this.observer?.map && !this.observer?.unmap)) return;
    for (const sid of this.devices) {
      const ss = this.secondStageOf(sid);
      if (ss === undefined || (granularity !== 1 && ss.did !== did)) continue;
      const span = 4096 * 2 ** am;
      const start = granularity === 3 ? addr - (addr % span) : 0;
      const end = granularity === 3 ? start + span : 2 ** ss.awBits;
      const now = new Map<number, { size: number; pa: number; read: boolean; write: boolean; did: number }>();
      try {
        const view = pgtableView('vtd-ss', { pgsizeBitmap: (1n << 12n) | (1n << 21n) | (1n << 30n), ias: ss.awBits, oas: this.o.awBits, quirks: { snoopControl: this.o.snoopControl } }, this.memory, BigInt(ss.root));
        view.walk(BigInt(start), (e) => {
          if (e.kind === 'leaf') now.set(Number(e.iova), { size: Number(e.size), pa: Number(e.addr), read: (e.prot & 1) !== 0, write: (e.prot & 2) !== 0, did: ss.did });
        }, BigInt(end - start));
      } catch (e) {
        if (!(e instanceof ViommuError)) throw e; // a corrupt guest table: nothing is mapped there
      }
      let shadow = this.shadow.get(sid);
      if (shadow === undefined) {
        shadow = new Map();
        this.shadow.set(sid, shadow);
      }
      for (const [iova, old] of shadow) {
        if (iova < start || iova >= end) continue;
        const cur = now.get(iova);
        if (cur && cur.pa === old.pa && cur.size === old.size && cur.read === old.read && cur.write === old.write) continue;
        shadow.delete(iova);
        this.observer.unmap?.({ sid, did: old.did, iova: BigInt(iova), size: BigInt(old.size) });
      }
      for (const [iova, cur] of now) {
        if (shadow.has(iova)) continue;
        shadow.set(iova, cur);
        this.observer.map?.({ sid, did: cur.did, iova: BigInt(iova), size: BigInt(cur.size), pa: BigInt(cur.pa), read: cur.read, write: cur.write });
      }
    }
  }

  /** The second-stage table a device uses now (read fresh from memory, bypassing the caches). */
  private secondStageOf(sid: number): { did: number; root: number; awBits: number } | undefined {
    if (!this.rootValid) return undefined;
    const bus = sid >> 8;
    const devfn = sid & 0xff;
    if (!this.scalableRoot) {
      const root = this.read64(this.rootPtr + 16 * bus);
      if (root === undefined || !(root & 1n)) return undefined;
      const at = Number(root & 0xffffffffff000n) + 16 * devfn;
      const lo = this.read64(at);
      const hi = this.read64(at + 8);
      if (lo === undefined || hi === undefined || !(lo & 1n) || ((lo >> 2n) & 3n) > 1n) return undefined;
      const aw = Number(hi & 7n);
      return { did: Number((hi >> 8n) & 0xffffn), root: Number(lo & 0xffffffffff000n), awBits: aw === 1 ? 39 : aw === 2 ? 48 : 57 };
    }
    const ctx = this.readContextLow(sid);
    const ctxHi = ctx === undefined ? undefined : this.read64(this.scalableContextAt(sid)! + 8);
    if (ctx === undefined || ctxHi === undefined || !(ctx & 1n)) return undefined;
    const pasid = Number(ctxHi & 0xfffffn);
    const dir = this.read64(Number(ctx & 0xffffffffff000n) + 8 * (pasid >> 6));
    if (dir === undefined || !(dir & 1n)) return undefined;
    const at = Number(dir & 0xffffffffff000n) + 64 * (pasid & 63);
    const q0 = this.read64(at);
    const q1 = this.read64(at + 8);
    if (q0 === undefined || q1 === undefined || !(q0 & 1n) || ((q0 >> 6n) & 7n) !== 2n) return undefined;
    const aw = Number((q0 >> 2n) & 7n);
    return { did: Number(q1 & 0xffffn), root: Number(q0 & 0xffffffffff000n), awBits: aw === 1 ? 39 : aw === 2 ? 48 : 57 };
  }

  private scalableContextAt(sid: number): number | undefined {
    const root = this.read64(this.rootPtr + 16 * (sid >> 8) + ((sid & 0xff) >= 128 ? 8 : 0));
    return root === undefined || !(root & 1n) ? undefined : Number(root & 0xffffffffff000n) + 32 * (sid & 0x7f);
  }

  /** Execute one descriptor; returns 0 or an IQEI error code (3 type, 4 reserved field). */
  private descriptor(q0: bigint, q1: bigint, upper: bigint[] | undefined): number {
    const raw = upper ? [q0, q1, upper[0]!, upper[1]!] : [q0, q1];
    const type = Number((q0 & 0xfn) | (((q0 >> 9n) & 7n) << 4n));
    const g = Number((q0 >> 4n) & 3n);
    switch (type) {
      case 1: {
        if (q0 & 0xfffc00000000f1c0n || q1 !== 0n || (upper && (upper[0] !== 0n || upper[1] !== 0n))) return 4;
        if (g === 0) return 4;
        this.invalidateContext(g, Number((q0 >> 16n) & 0xffffn), Number((q0 >> 32n) & 0xffffn), Number((q0 >> 48n) & 3n));
        this.emit(raw, 1, 'context', g, { did: Number((q0 >> 16n) & 0xffffn), sid: Number((q0 >> 32n) & 0xffffn) });
        return 0;
      }
      case 2: {
        if (q0 & 0xffffffff0000f100n || q1 & 0xf80n) return 4;
        if (g === 0) return 4;
        const did = Number((q0 >> 16n) & 0xffffn);
        this.invalidateIotlb(g, did, Number(q1 & ~0xfffn), Number(q1 & 0x3fn), -1);
        this.emit(raw, 2, 'iotlb', g, { did, addr: q1 & ~0xfffn, am: Number(q1 & 0x3fn), ih: (q1 & 0x40n) !== 0n });
        this.cachingModeReplay(g, did, Number(q1 & ~0xfffn), Number(q1 & 0x3fn));
        return 0;
      }
      case 3:
      case 4:
      case 8:
        // Device-TLB and interrupt-entry-cache invalidations: no such caches are modelled, but a VMM sees them.
        this.emit(raw, type, type === 3 ? 'device-tlb' : type === 4 ? 'iec' : 'pasid-device-tlb', g, {});
        return 0;
      case 5: {
        // Invalidation wait: status write, interrupt, fence.
        const statusWrite = (q0 & 0x20n) !== 0n;
        const interrupt = (q0 & 0x10n) !== 0n;
        if (statusWrite) {
          const addr = Number(q1 & ~3n);
          if (!this.memory.containsRange(addr, 4)) return 2;
          this.memory.writeU32n(addr, Number(q0 >> 32n));
        }
        this.emit(raw, 5, 'wait', 0, {});
        if (interrupt) {
          const ics = this.regs.get32(R.DMAR_ICS_REG);
          if (!(ics & R.ICS_IWC)) {
            this.regs.set32(R.DMAR_ICS_REG, ics | R.ICS_IWC);
            this.raiseEvent(R.DMAR_IECTL_REG, R.DMAR_IEDATA_REG, R.DMAR_IEADDR_REG);
          }
        }
        return 0;
      }
      case 6: {
        if (!this.o.scalableMode) return 3;
        if (q0 & 0xfff000000000f1c0n || q1 & 0xf80n) return 4;
        if (g !== 2 && g !== 3) return 4;
        this.invalidateIotlb(g === 2 ? 2 : 3, Number((q0 >> 16n) & 0xffffn), Number(q1 & ~0xfffn), Number(q1 & 0x3fn), Number((q0 >> 32n) & 0xfffffn));
        this.emit(raw, 6, 'pasid-iotlb', g, { did: Number((q0 >> 16n) & 0xffffn), pasid: Number((q0 >> 32n) & 0xfffffn), addr: q1 & ~0xfffn, am: Number(q1 & 0x3fn), ih: (q1 & 0x40n) !== 0n });
        return 0;
      }
      case 7: {
        if (!this.o.scalableMode) return 3;
        const did = Number((q0 >> 16n) & 0xffffn);
        const pasid = Number((q0 >> 32n) & 0xfffffn);
        for (const [key, p] of this.pasidCache) {
          if (g === 3 || (p.did === did && (g === 0 || key % 2 ** 21 === pasid))) this.pasidCache.delete(key);
        }
        this.emit(raw, 7, 'pasid-cache', g, g === 1 ? { did, pasid } : { did });
        this.observer?.pasidChange?.(g === 1 ? { granularity: g, did, pasid } : { granularity: g, did });
        return 0;
      }
      case 9: {
        // Page group response: back to the endpoint.
        if (!this.o.scalableMode || !this.o.pageRequests) return 3;
        const hasPasid = (q0 & 0x10n) !== 0n;
        this.emit(raw, 9, 'page-group-response', 0, {});
        this.onPageResponse({
          sid: Number((q0 >> 16n) & 0xffffn),
          ...(hasPasid ? { pasid: Number((q0 >> 32n) & 0xfffffn) } : {}),
          prgi: Number((q1 >> 3n) & 0x1ffn),
          code: Number((q0 >> 12n) & 0xfn),
          auto: false,
        });
        return 0;
      }
      default:
        return 3;
    }
  }

  /** A readable dump of the live registers (for debugging and the CLI). */
  describe(): string {
    const names: [string, number, 4 | 8][] = [
      ['CAP', R.DMAR_CAP_REG, 8],
      ['ECAP', R.DMAR_ECAP_REG, 8],
      ['GSTS', R.DMAR_GSTS_REG, 4],
      ['RTADDR', R.DMAR_RTADDR_REG, 8],
      ['FSTS', R.DMAR_FSTS_REG, 4],
      ['IQH', R.DMAR_IQH_REG, 8],
      ['IQT', R.DMAR_IQT_REG, 8],
      ['IQA', R.DMAR_IQA_REG, 8],
    ];
    return names.map(([n, o, s]) => `${n.padEnd(7)} ${hex(this.regs.get(o, s))}`).join('\n');
  }
}

