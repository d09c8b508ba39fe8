/**
 * The virtio-iommu device (virtio 1.2 "IOMMU device"; facts in ../shared/reference/virtio-iommu.md).
 *
 * Driven only through its transport: requests arrive on the request queue, faults leave on the event
 * queue, and the configuration space carries the geometry and the bypass switch. Endpoints that do DMA call
 * `translate()`.
 *
 * Request handling has three layers: `serveRequestQueue` pops chains and writes tails; `dispatch` reads the
 * head and decodes the request bytes; one semantic function per request type validates everything and
 * only then changes state, returning the spec's status.
 *
 * Two behaviour profiles: 'spec' (default) applies every MUST and SHOULD of the spec; 'qemu-7.2'
 * reproduces what QEMU 7.2 does, so both can be compared: no alignment, input-range or domain-range checks,
 * UNSUPP written for unknown request types, INVAL for short requests, a failed UNMAP may already have removed
 * the contained mappings below the one it could not split, and an ATTACH with a conflicting bypass flag
 * leaves the endpoint detached.
 */
import { ViommuError, hex } from '../../errors.js';
import { MAX_EXACT, U64_MAX } from '../../mem/addr.js';
import type { TraceSink } from '../../trace/catalog.js';
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1 } from '../../virtio/constants.js';
import type { VirtioContext, VirtioDevice } from '../../virtio/core.js';
import { VirtqueueError, type VirtqChain } from '../../virtio/virtqueue.js';
import { IntervalMap } from '../common/interval-map.js';
import {
  REQ_HEAD_SIZE,
  REQ_TAIL_SIZE,
  VIRTIO_ID_IOMMU,
  VIRTIO_IOMMU_ATTACH_F_BYPASS,
  VIRTIO_IOMMU_CONFIG,
  VIRTIO_IOMMU_EVENTQ,
  VIRTIO_IOMMU_FAULT,
  VIRTIO_IOMMU_FAULT_F_ADDRESS,
  VIRTIO_IOMMU_FAULT_F_READ,
  VIRTIO_IOMMU_FAULT_F_WRITE,
  VIRTIO_IOMMU_FAULT_R_DOMAIN,
  VIRTIO_IOMMU_FAULT_R_MAPPING,
  VIRTIO_IOMMU_FAULT_R_UNKNOWN,
  VIRTIO_IOMMU_F_BYPASS,
  VIRTIO_IOMMU_F_BYPASS_CONFIG,
  VIRTIO_IOMMU_F_DOMAIN_RANGE,
  VIRTIO_IOMMU_F_INPUT_RANGE,
  VIRTIO_IOMMU_F_MAP_UNMAP,
  VIRTIO_IOMMU_F_MMIO,
  VIRTIO_IOMMU_F_PROBE,
  VIRTIO_IOMMU_MAP_F_MMIO,
  VIRTIO_IOMMU_MAP_F_READ,
  VIRTIO_IOMMU_MAP_F_WRITE,
  VIRTIO_IOMMU_PROBE_RESV_MEM,
  VIRTIO_IOMMU_PROBE_T_RESV_MEM,
  VIRTIO_IOMMU_REQ_ATTACH,
  VIRTIO_IOMMU_REQ_DETACH,
  VIRTIO_IOMMU_REQ_MAP,
  VIRTIO_IOMMU_REQ_PROBE,
  VIRTIO_IOMMU_REQ_UNMAP,
  VIRTIO_IOMMU_REQUESTQ,
  VIRTIO_IOMMU_RESV_MEM_T_MSI,
  VIRTIO_IOMMU_RESV_MEM_T_RESERVED,
  VIRTIO_IOMMU_S_INVAL,
  VIRTIO_IOMMU_S_NOENT,
  VIRTIO_IOMMU_S_NOMEM,
  VIRTIO_IOMMU_S_OK,
  VIRTIO_IOMMU_S_RANGE,
  VIRTIO_IOMMU_S_UNSUPP,
  VIRTIO_IOMMU_T_ATTACH,
  VIRTIO_IOMMU_T_DETACH,
  VIRTIO_IOMMU_T_MAP,
  VIRTIO_IOMMU_T_PROBE,
  VIRTIO_IOMMU_T_UNMAP,
  type VirtioIommuStatus,
} from './wire.js';

export type VirtioIommuProfile = 'spec' | 'qemu-7.2';

export interface ReservedRegion {
  /** 'msi': accesses pass through untranslated; 'reserved': accesses fault. */
  subtype: 'reserved' | 'msi';
  start: bigint;
  /** Inclusive. */
  end: bigint;
  /** Endpoints the region applies to; all endpoints when absent. */
  endpoints?: readonly number[];
}

export interface VirtioIommuFeatures {
  inputRange?: boolean;
  domainRange?: boolean;
  mapUnmap?: boolean;
  /** Legacy VIRTIO_IOMMU_F_BYPASS (new devices should not offer it). */
  legacyBypass?: boolean;
  probe?: boolean;
  mmio?: boolean;
  bypassConfig?: boolean;
  eventIdx?: boolean;
  indirectDesc?: boolean;
}

export interface VirtioIommuOptions {
  /** Endpoint ids the IOMMU manages (for PCI: requester ids). */
  endpoints: readonly number[];
  /** Default 0xfffffffffffff000 (4 KiB granule, every larger power of two), as QEMU on a 4K host. */
  pageSizeMask?: bigint;
  /** Inclusive; default the whole 64-bit space. */
  inputRange?: { start: bigint; end: bigint };
  /** Inclusive; default every 32-bit id. */
  domainRange?: { start: number; end: number };
  /** Bytes of probe properties; default 512. */
  probeSize?: number;
  /** Boot bypass (config.bypass at system reset); default true, as QEMU. */
  bypass?: boolean;
  reservedRegions?: readonly ReservedRegion[];
  features?: VirtioIommuFeatures;
  profile?: VirtioIommuProfile;
  /** Bound on live domains; a guest exceeding it gets NOMEM. */
  maxDomains?: number;
  /** Bound on mappings in one domain; a guest exceeding it gets NOMEM. */
  maxMappingsPerDomain?: number;
  queueSize?: number;
  trace?: TraceSink;
}

export const VIRTIO_IOMMU_MAX_DOMAINS = 65536;
export const VIRTIO_IOMMU_MAX_MAPPINGS_PER_DOMAIN = 1 << 20;
export const VIRTIO_IOMMU_DEFAULT_PROBE_SIZE = 512;
/** Largest probe_size we accept as an option: the properties buffer is guest-visible but device-sized. */
export const VIRTIO_IOMMU_MAX_PROBE_SIZE = 1 << 16;

export interface TranslateAccess {
  read?: boolean;
  write?: boolean;
}

export type TranslateResult =
  /** `bypass`: the address went through untranslated (bypass, a bypass domain, or an MSI region). */
  | { ok: true; addr: bigint; bypass: boolean }
  | { ok: false; reason: number; flags: number; endpoint: number; address: bigint };

export interface VirtioIommuStats {
  requests: number;
  /** Requests by type byte (index 0-255). */
  byType: Uint32Array;
  /** Requests by status (index = VIRTIO_IOMMU_S_*). */
  byStatus: Uint32Array;
  /** Requests returned unwritten (used length 0). */
  unwritten: number;
  translations: number;
  faults: number;
  faultsReported: number;
  /** Faults that found no event buffer. */
  faultsDropped: number;
}

interface Mapping {
  phys: bigint;
  flags: number;
}

const MAX_EXACT_BIG = 1n << 53n;

interface Domain {
  id: number;
  bypass: boolean;
  mappings: IntervalMap<Mapping>;
  endpoints: Set<number>;
}

interface Endpoint {
  id: number;
  domain: Domain | undefined;
  regions: ReservedRegion[];
}

export class VirtioIommuError extends ViommuError {}

const OFF_MAP = {
  domain: VIRTIO_IOMMU_REQ_MAP.byteOffset('domain'),
  virtStart: VIRTIO_IOMMU_REQ_MAP.byteOffset('virt_start'),
  virtEnd: VIRTIO_IOMMU_REQ_MAP.byteOffset('virt_end'),
  physStart: VIRTIO_IOMMU_REQ_MAP.byteOffset('phys_start'),
  flags: VIRTIO_IOMMU_REQ_MAP.byteOffset('flags'),
};
const OFF_UNMAP = {
  domain: VIRTIO_IOMMU_REQ_UNMAP.byteOffset('domain'),
  virtStart: VIRTIO_IOMMU_REQ_UNMAP.byteOffset('virt_start'),
  virtEnd: VIRTIO_IOMMU_REQ_UNMAP.byteOffset('virt_end'),
  reserved: VIRTIO_IOMMU_REQ_UNMAP.byteOffset('reserved'),
};
const OFF_ATTACH = {
  domain: VIRTIO_IOMMU_REQ_ATTACH.byteOffset('domain'),
  endpoint: VIRTIO_IOMMU_REQ_ATTACH.byteOffset('endpoint'),
  flags: VIRTIO_IOMMU_REQ_ATTACH.byteOffset('flags'),
  reserved: VIRTIO_IOMMU_REQ_ATTACH.byteOffset('reserved'),
};
const OFF_DETACH = {
  domain: VIRTIO_IOMMU_REQ_DETACH.byteOffset('domain'),
  endpoint: VIRTIO_IOMMU_REQ_DETACH.byteOffset('endpoint'),
  reserved: VIRTIO_IOMMU_REQ_DETACH.byteOffset('reserved'),
};
const OFF_PROBE = {
  endpoint: VIRTIO_IOMMU_REQ_PROBE.byteOffset('endpoint'),
  reserved: VIRTIO_IOMMU_REQ_PROBE.byteOffset('reserved'),
};
/** Device-readable bytes each request type needs. */
const REQ_SIZE: Record<number, number> = {
  [VIRTIO_IOMMU_T_ATTACH]: VIRTIO_IOMMU_REQ_ATTACH.size,
  [VIRTIO_IOMMU_T_DETACH]: VIRTIO_IOMMU_REQ_DETACH.size,
  [VIRTIO_IOMMU_T_MAP]: VIRTIO_IOMMU_REQ_MAP.size,
  [VIRTIO_IOMMU_T_UNMAP]: VIRTIO_IOMMU_REQ_UNMAP.size,
  [VIRTIO_IOMMU_T_PROBE]: VIRTIO_IOMMU_REQ_PROBE.size,
};
const MAX_REQ_SIZE = VIRTIO_IOMMU_REQ_PROBE.size;

export class VirtioIommu implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_IOMMU;
  readonly deviceFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = VIRTIO_IOMMU_CONFIG.size;
  readonly profile: VirtioIommuProfile;
  readonly stats: VirtioIommuStats = {
    requests: 0,
    byType: new Uint32Array(256),
    byStatus: new Uint32Array(16),
    unwritten: 0,
    translations: 0,
    faults: 0,
    faultsReported: 0,
    faultsDropped: 0,
  };

  readonly pageSizeMask: bigint;
  readonly inputRange: { start: bigint; end: bigint };
  readonly domainRange: { start: number; end: number };
  readonly probeSize: number;
  /** The granule: the lowest set bit of page_size_mask. */
  readonly granule: bigint;
  private readonly bootBypass: boolean;
  private bypassConfig: number;
  private readonly maxDomains: number;
  private readonly maxMappings: number;
  private readonly endpoints = new Map<number, Endpoint>();
  private readonly domains = new Map<number, Domain>();
  private ctx: VirtioContext | undefined;
  private readonly trace: TraceSink | undefined;
  private readonly req = new Uint8Array(MAX_REQ_SIZE);
  private readonly reqView = new DataView(this.req.buffer);
  private readonly tail = new Uint8Array(REQ_TAIL_SIZE);

  constructor(opts: VirtioIommuOptions) {
    this.profile = opts.profile ?? 'spec';
    this.pageSizeMask = opts.pageSizeMask ?? 0xfffffffffffff000n;
    if (this.pageSizeMask <= 0n || this.pageSizeMask > U64_MAX) {
      // spec: at least one bit of page_size_mask must be set.
      throw new VirtioIommuError('VIOMMU_BAD_OPTION', `pageSizeMask ${hex(this.pageSizeMask)} must be a non-zero u64`);
    }
    this.granule = this.pageSizeMask & -this.pageSizeMask;
    this.inputRange = opts.inputRange ?? { start: 0n, end: U64_MAX };
    this.domainRange = opts.domainRange ?? { start: 0, end: 0xffffffff };
    if (this.inputRange.start > this.inputRange.end || this.inputRange.start < 0n || this.inputRange.end > U64_MAX) {
      throw new VirtioIommuError('VIOMMU_BAD_OPTION', 'inputRange must be a non-empty range of u64');
    }
    if (!isU32(this.domainRange.start) || !isU32(this.domainRange.end) || this.domainRange.start > this.domainRange.end) {
      throw new VirtioIommuError('VIOMMU_BAD_OPTION', 'domainRange must be a non-empty range of u32');
    }
    this.probeSize = opts.probeSize ?? VIRTIO_IOMMU_DEFAULT_PROBE_SIZE;
    if (!Number.isInteger(this.probeSize) || this.probeSize < 0 || this.probeSize > VIRTIO_IOMMU_MAX_PROBE_SIZE) {
      throw new VirtioIommuError('VIOMMU_BAD_OPTION', `probeSize ${this.probeSize} must be in 0..${VIRTIO_IOMMU_MAX_PROBE_SIZE}`);
    }
    this.bootBypass = opts.bypass ?? true;
    this.bypassConfig = this.bootBypass ? 1 : 0;
    this.maxDomains = opts.maxDomains ?? VIRTIO_IOMMU_MAX_DOMAINS;
    this.maxMappings = opts.maxMappingsPerDomain ?? VIRTIO_IOMMU_MAX_MAPPINGS_PER_DOMAIN;
    this.trace = opts.trace;
    const qs = opts.queueSize ?? 256;
    this.queueMaxSizes = [qs, qs];

    const f = opts.features ?? {};
    let features = 1n << VIRTIO_F_VERSION_1;
    const offer = (on: boolean | undefined, dflt: boolean, bit: bigint): void => {
      if (on ?? dflt) features |= 1n << bit;
    };
    offer(f.inputRange, true, VIRTIO_IOMMU_F_INPUT_RANGE);
    offer(f.domainRange, true, VIRTIO_IOMMU_F_DOMAIN_RANGE);
    offer(f.mapUnmap, true, VIRTIO_IOMMU_F_MAP_UNMAP);
    offer(f.legacyBypass, false, VIRTIO_IOMMU_F_BYPASS);
    offer(f.probe, true, VIRTIO_IOMMU_F_PROBE);
    offer(f.mmio, true, VIRTIO_IOMMU_F_MMIO);
    offer(f.bypassConfig, true, VIRTIO_IOMMU_F_BYPASS_CONFIG);
    offer(f.eventIdx, true, VIRTIO_F_EVENT_IDX);
    offer(f.indirectDesc, true, VIRTIO_F_INDIRECT_DESC);
    this.deviceFeatures = features;

    const regions = opts.reservedRegions ?? [];
    for (const r of regions) {
      if (r.start > r.end || r.start < 0n || r.end > U64_MAX) {
        throw new VirtioIommuError('VIOMMU_BAD_OPTION', `reserved region ${hex(r.start)}-${hex(r.end)} is not a u64 range`);
      }
    }
    for (const id of opts.endpoints) {
      if (!isU32(id)) throw new VirtioIommuError('VIOMMU_BAD_OPTION', `endpoint ${id} is not a u32`);
      const mine = regions.filter((r) => r.endpoints === undefined || r.endpoints.includes(id));
      // spec: at most one MSI region per endpoint.
      if (mine.filter((r) => r.subtype === 'msi').length > 1) {
        throw new VirtioIommuError('VIOMMU_BAD_OPTION', `endpoint ${id} has more than one MSI region`);
      }
      this.endpoints.set(id, { id, domain: undefined, regions: mine });
    }
  }

  // ---- VirtioDevice -----------------------------------------------------------------------------

  bind(ctx: VirtioContext): void {
    this.ctx = ctx;
  }

  /** Any subset of what we offer is acceptable (a driver without MAP_UNMAP just cannot map anything). */
  featuresOk(_features: bigint): boolean {
    return true;
  }

  readConfig(offset: number, size: 1 | 2 | 4 | 8): bigint {
    const bytes = VIRTIO_IOMMU_CONFIG.serialize({
      page_size_mask: this.pageSizeMask,
      input_start: this.inputRange.start,
      input_end: this.inputRange.end,
      domain_start: this.domainRange.start,
      domain_end: this.domainRange.end,
      probe_size: this.probeSize,
      bypass: this.bypassConfig,
    });
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[offset + i] ?? 0);
    return v;
  }

  writeConfig(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    // spec: the driver writes only `bypass`, only with BYPASS_CONFIG negotiated, only 0 or 1; anything
    // else is ignored.
    const bypassOff = VIRTIO_IOMMU_CONFIG.byteOffset('bypass');
    if (offset !== bypassOff || size !== 1) return;
    if (!this.negotiated(VIRTIO_IOMMU_F_BYPASS_CONFIG)) return;
    if (value !== 0n && value !== 1n) return;
    this.bypassConfig = Number(value);
    this.trace?.({ name: 'virtio_iommu_set_config', args: { bypass: this.bypassConfig } });
  }

  queueNotify(index: number): void {
    if (index === VIRTIO_IOMMU_REQUESTQ) this.serveRequestQueue();
    // The event queue is only a source of empty buffers: nothing to do when it is kicked.
  }

  /** Device reset: every endpoint detached, every domain gone. The bypass setting stays (spec). */
  reset(): void {
    this.trace?.({ name: 'virtio_iommu_device_reset', args: {} });
    for (const d of [...this.domains.values()]) this.destroyDomain(d);
  }

  /** System reset: also restores the boot bypass setting. */
  systemReset(): void {
    this.trace?.({ name: 'virtio_iommu_system_reset', args: {} });
    this.reset();
    this.bypassConfig = this.bootBypass ? 1 : 0;
  }

  // ---- observation ------------------------------------------------------------------------------

  /** The domain an endpoint is attached to, if any. */
  domainOf(endpoint: number): number | undefined {
    return this.endpoints.get(endpoint)?.domain?.id;
  }

  /** The mappings of a domain, in address order. */
  mappings(domain: number): { start: bigint; end: bigint; phys: bigint; flags: number }[] {
    const d = this.domains.get(domain);
    if (!d) return [];
    return [...d.mappings].map((m) => ({ start: m.start, end: m.end, phys: m.value.phys, flags: m.value.flags }));
  }

  /** Every domain with its endpoints and mappings, in id order: what a driver has built. */
  snapshot(): { id: number; bypass: boolean; endpoints: number[]; mappings: { start: bigint; end: bigint; phys: bigint; flags: number }[] }[] {
    return [...this.domains.values()]
      .sort((a, b) => a.id - b.id)
      .map((d) => ({ id: d.id, bypass: d.bypass, endpoints: [...d.endpoints].sort((a, b) => a - b), mappings: this.mappings(d.id) }));
  }

  get domainCount(): number {
    return this.domains.size;
  }

  get bypass(): boolean {
    return this.bypassConfig === 1;
  }

  // ---- translation ------------------------------------------------------------------------------

  /**
   * Translate a DMA access of `endpoint` at `iova`. A failure is reported on the event queue (or counted
   * as dropped when the driver left no buffer) and returned with the spec's fault reason.
   */
  translate(endpoint: number, iova: bigint, access: TranslateAccess = { read: true }): TranslateResult {
    this.stats.translations++;
    const flag = (access.read ? 1 : 0) | (access.write ? 2 : 0);
    this.trace?.({ name: 'virtio_iommu_translate', args: { mr: '', rid: endpoint, addr: iova, flag: flag as 0 | 1 | 2 | 3 } });
    const ep = this.endpoints.get(endpoint);
    if (ep === undefined) {
      if (this.unattachedBypass()) return { ok: true, addr: iova, bypass: true };
      return this.fault(VIRTIO_IOMMU_FAULT_R_UNKNOWN, VIRTIO_IOMMU_FAULT_F_ADDRESS, endpoint, iova);
    }
    for (const r of ep.regions) {
      if (iova >= r.start && iova <= r.end) {
        if (r.subtype === 'msi') return { ok: true, addr: iova, bypass: true };
        return this.fault(VIRTIO_IOMMU_FAULT_R_MAPPING, VIRTIO_IOMMU_FAULT_F_ADDRESS, endpoint, iova);
      }
    }
    const domain = ep.domain;
    if (domain === undefined) {
      // spec: unattached endpoints not in bypass should not reach memory.
      if (this.unattachedBypass()) return { ok: true, addr: iova, bypass: true };
      return this.fault(VIRTIO_IOMMU_FAULT_R_DOMAIN, VIRTIO_IOMMU_FAULT_F_ADDRESS, endpoint, iova);
    }
    if (domain.bypass) return { ok: true, addr: iova, bypass: true };
    // The mapping's phys and flags sit beside its keys in the store (aux words): no object is touched.
    if (!domain.mappings.contains(iova)) return this.fault(VIRTIO_IOMMU_FAULT_R_MAPPING, VIRTIO_IOMMU_FAULT_F_ADDRESS, endpoint, iova);
    const flags = domain.mappings.foundAux(2);
    // spec: writes MUST NOT be allowed without WRITE; a write-only mapping MAY permit reads (we do not).
    let denied = 0;
    if (access.read && !(flags & VIRTIO_IOMMU_MAP_F_READ)) denied |= VIRTIO_IOMMU_FAULT_F_READ;
    if (access.write && !(flags & VIRTIO_IOMMU_MAP_F_WRITE)) denied |= VIRTIO_IOMMU_FAULT_F_WRITE;
    if (denied) return this.fault(VIRTIO_IOMMU_FAULT_R_MAPPING, denied | VIRTIO_IOMMU_FAULT_F_ADDRESS, endpoint, iova);
    // Below 2^53 everything is an exact number: one bigint for the result instead of three.
    const start = domain.mappings.foundStartNumber();
    const physHi = domain.mappings.foundAux(0);
    const physNum = physHi < 0x200000 ? physHi * 2 ** 32 + domain.mappings.foundAux(1) : NaN;
    const out = start + physNum;
    const addr =
      out < MAX_EXACT && iova < MAX_EXACT_BIG
        ? BigInt(Number(iova) - start + physNum)
        : BigInt.asUintN(64, iova - domain.mappings.foundStart() + ((BigInt(physHi) << 32n) | BigInt(domain.mappings.foundAux(1))));
    this.trace?.({ name: 'virtio_iommu_translate_out', args: { virt_addr: iova, phys_addr: addr, sid: endpoint } });
    return { ok: true, addr, bypass: false };
  }

  private unattachedBypass(): boolean {
    // spec: bypass applies to unattached endpoints when config.bypass is 1 (BYPASS_CONFIG offered; before
    // negotiation the boot value governs) or when the legacy BYPASS feature was negotiated.
    if (this.deviceFeatures & (1n << VIRTIO_IOMMU_F_BYPASS_CONFIG)) {
      if (this.bypassConfig === 1) return true;
    }
    return this.negotiated(VIRTIO_IOMMU_F_BYPASS);
  }

  private fault(reason: number, flags: number, endpoint: number, address: bigint): TranslateResult {
    this.stats.faults++;
    this.reportFault(reason, flags, endpoint, address);
    return { ok: false, reason, flags, endpoint, address };
  }

  private reportFault(reason: number, flags: number, endpoint: number, address: bigint): void {
    const vq = this.ctx?.queue(VIRTIO_IOMMU_EVENTQ);
    if (!this.ctx || !this.ctx.driverOk || vq === undefined) {
      this.stats.faultsDropped++;
      return;
    }
    let chain: VirtqChain | null;
    try {
      chain = vq.pop();
    } catch (e) {
      if (!(e instanceof VirtqueueError)) throw e;
      this.ctx.deviceError(e);
      this.stats.faultsDropped++;
      return;
    }
    if (chain === null) {
      this.stats.faultsDropped++;
      return;
    }
    const record = VIRTIO_IOMMU_FAULT.serialize({ reason, flags, endpoint, address: BigInt.asUintN(64, address) });
    if (chain.writableBytes < record.length) {
      // The buffer cannot hold a record: give it back unwritten and drop the fault.
      vq.push(chain.head, 0);
      this.ctx.notifyUsed(VIRTIO_IOMMU_EVENTQ);
      this.stats.faultsDropped++;
      return;
    }
    chain.write(0, record);
    vq.push(chain.head, record.length);
    this.ctx.notifyUsed(VIRTIO_IOMMU_EVENTQ);
    this.stats.faultsReported++;
    this.trace?.({ name: 'virtio_iommu_report_fault', args: { reason, flags, endpoint, address } });
  }

  // ---- request queue ----------------------------------------------------------------------------

  private serveRequestQueue(): void {
    const ctx = this.ctx;
    const vq = ctx?.queue(VIRTIO_IOMMU_REQUESTQ);
    if (!ctx || vq === undefined) return;
    let served = 0;
    try {
      for (;;) {
        const chain = vq.pop();
        if (chain === null) break;
        const used = this.dispatch(chain);
        vq.push(chain.head, used);
        served++;
      }
    } catch (e) {
      if (!(e instanceof VirtqueueError)) throw e;
      ctx.deviceError(e);
    }
    if (served > 0) ctx.notifyUsed(VIRTIO_IOMMU_REQUESTQ);
  }

  /** Decode one request, run it, write its tail; returns the used length. */
  private dispatch(chain: VirtqChain): number {
    this.stats.requests++;
    const spec = this.profile === 'spec';
    // spec: a request too short to hold its head or locate its tail is returned unwritten.
    if (chain.readableBytes < REQ_HEAD_SIZE || chain.writableBytes < REQ_TAIL_SIZE) {
      this.stats.unwritten++;
      return 0;
    }
    chain.read(0, this.req, REQ_HEAD_SIZE);
    const type = this.req[0]!;
    this.stats.byType[type]!++;
    const need = REQ_SIZE[type];
    if (need === undefined || (type === VIRTIO_IOMMU_T_PROBE && !this.negotiated(VIRTIO_IOMMU_F_PROBE))) {
      // spec: unknown request type -> do not write the buffer, used length 0. QEMU writes UNSUPP.
      if (spec && need === undefined) {
        this.stats.unwritten++;
        return 0;
      }
      return this.finish(chain, type, VIRTIO_IOMMU_S_UNSUPP);
    }
    if (chain.readableBytes < need) return this.finish(chain, type, VIRTIO_IOMMU_S_INVAL);
    chain.read(0, this.req, need);
    switch (type) {
      case VIRTIO_IOMMU_T_ATTACH:
        return this.finish(chain, type, this.attach());
      case VIRTIO_IOMMU_T_DETACH:
        return this.finish(chain, type, this.detach());
      case VIRTIO_IOMMU_T_MAP:
        return this.finish(chain, type, this.map());
      case VIRTIO_IOMMU_T_UNMAP:
        return this.finish(chain, type, this.unmap());
      case VIRTIO_IOMMU_T_PROBE:
        return this.probe(chain);
      default:
        throw new Error(`unreachable: request type ${type} has a size but no handler`);
    }
  }

  /** Write the status into the tail (the last four device-writable bytes). */
  private finish(chain: VirtqChain, type: number, status: VirtioIommuStatus): number {
    this.tail[0] = status;
    chain.write(chain.writableBytes - REQ_TAIL_SIZE, this.tail);
    this.stats.byStatus[status]!++;
    this.trace?.({ name: 'virtio_iommu_req_status', args: { type, status } });
    return chain.writableBytes;
  }

  private u32(off: number): number {
    return this.reqView.getUint32(off, true);
  }
  private u64(off: number): bigint {
    return this.reqView.getBigUint64(off, true);
  }
  private zero(off: number, len: number): boolean {
    for (let i = off; i < off + len; i++) if (this.req[i] !== 0) return false;
    return true;
  }

  private attach(): VirtioIommuStatus {
    const domainId = this.u32(OFF_ATTACH.domain);
    const endpointId = this.u32(OFF_ATTACH.endpoint);
    const flags = this.u32(OFF_ATTACH.flags);
    this.trace?.({ name: 'virtio_iommu_attach', args: { domain: domainId, endpoint: endpointId } });
    const spec = this.profile === 'spec';
    // spec: nonzero reserved -> INVAL (MUST); unknown flags -> INVAL (MUST).
    if (spec && !this.zero(OFF_ATTACH.reserved, 4)) return VIRTIO_IOMMU_S_INVAL;
    const knownFlags = this.negotiated(VIRTIO_IOMMU_F_BYPASS_CONFIG) || !spec ? VIRTIO_IOMMU_ATTACH_F_BYPASS : 0;
    if (flags & ~knownFlags) return VIRTIO_IOMMU_S_INVAL;
    const bypass = (flags & VIRTIO_IOMMU_ATTACH_F_BYPASS) !== 0;
    // spec: unknown endpoint -> NOENT (MUST).
    const ep = this.endpoints.get(endpointId);
    if (ep === undefined) return VIRTIO_IOMMU_S_NOENT;
    // spec: with DOMAIN_RANGE the driver stays inside it; the device checks (RANGE).
    if (spec && !this.domainInRange(domainId)) return VIRTIO_IOMMU_S_RANGE;
    const existing = this.domains.get(domainId);
    if (!spec && ep.domain !== undefined && ep.domain !== existing) {
      // QEMU detaches first and may then fail on the bypass check below, leaving the endpoint detached.
      this.detachEndpoint(ep);
    }
    // spec: a BYPASS flag inconsistent with the existing domain -> INVAL (SHOULD).
    if (existing !== undefined && existing.bypass !== bypass) return VIRTIO_IOMMU_S_INVAL;
    if (existing === undefined && this.domains.size >= this.maxDomains) return VIRTIO_IOMMU_S_NOMEM;
    // spec: an endpoint whose reserved regions collide with the domain's mappings is incompatible (UNSUPP).
    if (spec && existing !== undefined && ep.domain !== existing && this.regionsCollide(ep, existing)) return VIRTIO_IOMMU_S_UNSUPP;
    if (ep.domain === existing && existing !== undefined) return VIRTIO_IOMMU_S_OK;
    // spec: an endpoint attached elsewhere is detached first (SHOULD).
    if (ep.domain !== undefined) this.detachEndpoint(ep);
    let domain = this.domains.get(domainId);
    if (domain === undefined) {
      domain = { id: domainId, bypass, mappings: new IntervalMap<Mapping>(), endpoints: new Set() };
      this.domains.set(domainId, domain);
      this.trace?.({ name: 'virtio_iommu_get_domain', args: { domain: domainId } });
    }
    domain.endpoints.add(endpointId);
    ep.domain = domain;
    return VIRTIO_IOMMU_S_OK;
  }

  private detach(): VirtioIommuStatus {
    const domainId = this.u32(OFF_DETACH.domain);
    const endpointId = this.u32(OFF_DETACH.endpoint);
    this.trace?.({ name: 'virtio_iommu_detach', args: { domain: domainId, endpoint: endpointId } });
    const ep = this.endpoints.get(endpointId);
    // spec: unknown endpoint -> NOENT (MUST).
    if (ep === undefined) return VIRTIO_IOMMU_S_NOENT;
    // spec: nonzero reserved MAY be rejected; a domain mismatch MAY be rejected with INVAL.
    if (this.profile === 'spec' && !this.zero(OFF_DETACH.reserved, 8)) return VIRTIO_IOMMU_S_INVAL;
    if (ep.domain === undefined || ep.domain.id !== domainId) return VIRTIO_IOMMU_S_INVAL;
    this.detachEndpoint(ep);
    return VIRTIO_IOMMU_S_OK;
  }

  private map(): VirtioIommuStatus {
    const domainId = this.u32(OFF_MAP.domain);
    const virtStart = this.u64(OFF_MAP.virtStart);
    const virtEnd = this.u64(OFF_MAP.virtEnd);
    const physStart = this.u64(OFF_MAP.physStart);
    const flags = this.u32(OFF_MAP.flags);
    const spec = this.profile === 'spec';
    // spec: unknown flags -> INVAL (MUST); MMIO only when negotiated.
    const known = VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE | (this.negotiated(VIRTIO_IOMMU_F_MMIO) || !spec ? VIRTIO_IOMMU_MAP_F_MMIO : 0);
    if (flags & ~known) return VIRTIO_IOMMU_S_INVAL;
    const domain = this.domains.get(domainId);
    // spec: unknown domain -> NOENT (SHOULD); bypass domain -> INVAL (SHOULD).
    if (domain === undefined) return VIRTIO_IOMMU_S_NOENT;
    if (domain.bypass) return VIRTIO_IOMMU_S_INVAL;
    // spec: the driver sends virt_end >= virt_start.
    if (virtEnd < virtStart) return VIRTIO_IOMMU_S_INVAL;
    if (spec) {
      // spec: virt_start, phys_start and virt_end + 1 aligned to the granule, else RANGE (SHOULD).
      const m = this.granule - 1n;
      if ((virtStart & m) !== 0n || (physStart & m) !== 0n || ((virtEnd + 1n) & m) !== 0n) return VIRTIO_IOMMU_S_RANGE;
      // spec: with INPUT_RANGE the driver stays inside it (the device checks: RANGE).
      if (virtStart < this.inputRange.start || virtEnd > this.inputRange.end) return VIRTIO_IOMMU_S_RANGE;
      // The output must not wrap past 2^64.
      if (physStart + (virtEnd - virtStart) > U64_MAX) return VIRTIO_IOMMU_S_RANGE;
    }
    // spec: overlap with an existing mapping -> INVAL (SHOULD).
    if (domain.mappings.firstOverlap(virtStart, virtEnd) !== undefined) return VIRTIO_IOMMU_S_INVAL;
    // spec: overlap with a RESV_MEM region of an endpoint in the domain -> reject (SHOULD).
    if (spec && this.overlapsReserved(domain, virtStart, virtEnd)) return VIRTIO_IOMMU_S_INVAL;
    if (domain.mappings.size >= this.maxMappings) return VIRTIO_IOMMU_S_NOMEM;
    const physHi = this.reqView.getUint32(OFF_MAP.physStart + 4, true);
    const physLo = this.reqView.getUint32(OFF_MAP.physStart, true);
    domain.mappings.insert(virtStart, virtEnd, { phys: physStart, flags }, [physHi, physLo, flags]);
    this.trace?.({ name: 'virtio_iommu_map', args: { domain: domainId, virt_start: virtStart, virt_end: virtEnd, phys_start: physStart, flags } });
    return VIRTIO_IOMMU_S_OK;
  }

  private unmap(): VirtioIommuStatus {
    const domainId = this.u32(OFF_UNMAP.domain);
    const virtStart = this.u64(OFF_UNMAP.virtStart);
    const virtEnd = this.u64(OFF_UNMAP.virtEnd);
    const spec = this.profile === 'spec';
    this.trace?.({ name: 'virtio_iommu_unmap', args: { domain: domainId, virt_start: virtStart, virt_end: virtEnd } });
    const domain = this.domains.get(domainId);
    if (domain === undefined) return VIRTIO_IOMMU_S_NOENT;
    if (domain.bypass) return VIRTIO_IOMMU_S_INVAL;
    if (spec) {
      // spec: nonzero reserved MAY be rejected.
      if (!this.zero(OFF_UNMAP.reserved, 4)) return VIRTIO_IOMMU_S_INVAL;
      if (virtEnd < virtStart) return VIRTIO_IOMMU_S_INVAL;
    }
    if (virtEnd < virtStart) return VIRTIO_IOMMU_S_OK;
    const r = domain.mappings.removeRange(virtStart, virtEnd, this.trace !== undefined);
    if (r.ok) {
      for (const m of r.removed) this.traceUnmapDone(domainId, m.start, m.end);
      return VIRTIO_IOMMU_S_OK;
    }
    // spec: a range that would split a mapping -> RANGE and nothing removed (SHOULD).
    if (spec) return VIRTIO_IOMMU_S_RANGE;
    // QEMU 7.2 removes contained mappings one by one until it meets one it cannot split; which ones it
    // meets first depends on its tree's shape. Modelled as: those below the split mapping go.
    if (r.splits.start > virtStart) {
      const partial = domain.mappings.removeRange(virtStart, r.splits.start - 1n);
      if (partial.ok) for (const m of partial.removed) this.traceUnmapDone(domainId, m.start, m.end);
    }
    return VIRTIO_IOMMU_S_RANGE;
  }

  private traceUnmapDone(domain: number, start: bigint, end: bigint): void {
    this.trace?.({ name: 'virtio_iommu_unmap_done', args: { domain, virt_start: start, virt_end: end } });
  }

  private probe(chain: VirtqChain): number {
    const type = VIRTIO_IOMMU_T_PROBE;
    const endpointId = this.u32(OFF_PROBE.endpoint);
    this.trace?.({ name: 'virtio_iommu_probe', args: { endpoint: endpointId } });
    const ep = this.endpoints.get(endpointId);
    if (ep === undefined) return this.finish(chain, type, VIRTIO_IOMMU_S_NOENT);
    if (this.profile === 'spec' && !this.zero(OFF_PROBE.reserved, 64)) return this.finish(chain, type, VIRTIO_IOMMU_S_INVAL);
    // spec: a properties area smaller than probe_size -> INVAL, properties not written (SHOULD).
    if (chain.writableBytes < this.probeSize + REQ_TAIL_SIZE) return this.finish(chain, type, VIRTIO_IOMMU_S_INVAL);
    const props = new Uint8Array(this.probeSize);
    let at = 0;
    for (const r of ep.regions) {
      const prop = VIRTIO_IOMMU_PROBE_RESV_MEM.serialize({
        type: VIRTIO_IOMMU_PROBE_T_RESV_MEM,
        length: VIRTIO_IOMMU_PROBE_RESV_MEM.size - 4,
        subtype: r.subtype === 'msi' ? VIRTIO_IOMMU_RESV_MEM_T_MSI : VIRTIO_IOMMU_RESV_MEM_T_RESERVED,
        start: r.start,
        end: r.end,
      });
      if (at + prop.length > this.probeSize) return this.finish(chain, type, VIRTIO_IOMMU_S_INVAL);
      props.set(prop, at);
      at += prop.length;
      this.trace?.({
        name: 'virtio_iommu_fill_resv_property',
        args: { endpoint: endpointId, subtype: prop[4]!, start: r.start, end: r.end },
      });
    }
    // spec: unused bytes of the properties area are zero.
    chain.write(chain.writableBytes - REQ_TAIL_SIZE - this.probeSize, props);
    return this.finish(chain, type, VIRTIO_IOMMU_S_OK);
  }

  // ---- helpers ----------------------------------------------------------------------------------

  private negotiated(bit: bigint): boolean {
    return this.ctx !== undefined && (this.ctx.negotiated & (1n << bit)) !== 0n;
  }

  private domainInRange(id: number): boolean {
    return id >= this.domainRange.start && id <= this.domainRange.end;
  }

  private regionsCollide(ep: Endpoint, domain: Domain): boolean {
    return ep.regions.some((r) => r.subtype === 'reserved' && domain.mappings.firstOverlap(r.start, r.end) !== undefined);
  }

  private overlapsReserved(domain: Domain, start: bigint, end: bigint): boolean {
    for (const id of domain.endpoints) {
      for (const r of this.endpoints.get(id)!.regions) if (r.start <= end && start <= r.end) return true;
    }
    return false;
  }

  private detachEndpoint(ep: Endpoint): void {
    const d = ep.domain;
    if (d === undefined) return;
    d.endpoints.delete(ep.id);
    ep.domain = undefined;
    // spec: a domain with no endpoints ceases to exist, with all its mappings.
    if (d.endpoints.size === 0) this.destroyDomain(d);
  }

  private destroyDomain(d: Domain): void {
    for (const id of d.endpoints) this.endpoints.get(id)!.domain = undefined;
    d.endpoints.clear();
    d.mappings.clear();
    this.domains.delete(d.id);
    this.trace?.({ name: 'virtio_iommu_put_domain', args: { domain: d.id } });
  }
}

function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}
