/**
 * Replay a QEMU virtio-iommu trace (a real guest's driver at work) against our device: every ATTACH,
 * DETACH, MAP and UNMAP goes through the request queue, in order, as the driver sent it; every translation
 * QEMU performed is repeated with `translate()` at the same point of the sequence and compared: the traced
 * output address, or — where QEMU traced no output — an untranslated pass-through (MSI doorbell or bypass).
 *
 * The device is configured from the trace itself: `virtio_iommu_get_config` gives the geometry,
 * `virtio_iommu_fill_resv_property` the reserved regions, and every endpoint id seen becomes an endpoint.
 */
import { PhysMemory } from '../mem/phys-memory.js';
import type { ParsedTraceLine } from '../trace/qemu-log.js';
import type { TraceEvent } from '../trace/catalog.js';
import { VirtioMmioDriver } from '../virtio/driver.js';
import { VirtioMmioTransport } from '../virtio/mmio.js';
import { VirtioIommu, type ReservedRegion, type VirtioIommuProfile } from '../devices/virtio-iommu/device.js';
import {
  VIRTIO_IOMMU_REQ_ATTACH,
  VIRTIO_IOMMU_REQ_DETACH,
  VIRTIO_IOMMU_REQ_MAP,
  VIRTIO_IOMMU_REQ_UNMAP,
  VIRTIO_IOMMU_RESV_MEM_T_MSI,
  VIRTIO_IOMMU_STATUS_NAMES,
  VIRTIO_IOMMU_T_ATTACH,
  VIRTIO_IOMMU_T_DETACH,
  VIRTIO_IOMMU_T_MAP,
  VIRTIO_IOMMU_T_UNMAP,
} from '../devices/virtio-iommu/wire.js';

export interface ReplayMismatch {
  line: number;
  what: string;
}

export interface ReplayReport {
  profile: VirtioIommuProfile;
  requests: { attach: number; detach: number; map: number; unmap: number };
  /** Statuses our device answered, by name. */
  statuses: Record<string, number>;
  translations: { traced: number; matched: number; passThrough: number };
  unmapDone: { traced: number; ours: number };
  /** Everything that disagreed (at most 50 listed). */
  mismatches: ReplayMismatch[];
  mismatchCount: number;
}

export function replayVirtioIommuTrace(events: readonly ParsedTraceLine[], profile: VirtioIommuProfile = 'qemu-7.2'): ReplayReport {
  const endpoints = new Set<number>();
  const regions = new Map<string, ReservedRegion>();
  let config: Extract<TraceEvent, { name: 'virtio_iommu_get_config' }>['args'] | undefined;
  for (const { event } of events) {
    if (event.name === 'virtio_iommu_get_config') config ??= event.args;
    if (event.name === 'virtio_iommu_attach' || event.name === 'virtio_iommu_detach') endpoints.add(event.args.endpoint);
    if (event.name === 'virtio_iommu_translate') endpoints.add(event.args.rid);
    if (event.name === 'virtio_iommu_fill_resv_property') {
      const a = event.args;
      regions.set(`${a.subtype}:${a.start}:${a.end}`, { subtype: a.subtype === VIRTIO_IOMMU_RESV_MEM_T_MSI ? 'msi' : 'reserved', start: a.start, end: a.end });
    }
  }
  const memory = new PhysMemory(1n << 32n);
  const ours: TraceEvent[] = [];
  const device = new VirtioIommu({
    profile,
    endpoints: [...endpoints],
    ...(config && {
      pageSizeMask: config.page_size_mask,
      inputRange: { start: config.input_start, end: config.input_end },
      domainRange: { start: config.domain_start, end: config.domain_end },
      probeSize: config.probe_size,
      bypass: config.bypass === 1,
    }),
    reservedRegions: [...regions.values()],
    trace: (e) => {
      if (e.name === 'virtio_iommu_unmap_done') ours.push(e);
    },
  });
  const transport = new VirtioMmioTransport(device, { memory });
  const driver = new VirtioMmioDriver(transport, memory, { base: 0x1000000n, size: 0x1000000n });
  driver.init((1n << 64n) - 1n, [256, 256]);

  const report: ReplayReport = {
    profile,
    requests: { attach: 0, detach: 0, map: 0, unmap: 0 },
    statuses: {},
    translations: { traced: 0, matched: 0, passThrough: 0 },
    unmapDone: { traced: 0, ours: 0 },
    mismatches: [],
    mismatchCount: 0,
  };
  const mismatch = (line: number, what: string): void => {
    report.mismatchCount++;
    if (report.mismatches.length < 50) report.mismatches.push({ line, what });
  };
  const send = (bytes: Uint8Array, line: number): void => {
    const r = driver.request(0, bytes, 4);
    const name = r.used === 4 ? (VIRTIO_IOMMU_STATUS_NAMES[r.data[0]!] ?? `status ${r.data[0]}`) : 'unwritten';
    report.statuses[name] = (report.statuses[name] ?? 0) + 1;
    // QEMU traces the request before deciding; a Linux driver only sends requests that succeed.
    if (name !== 'OK') mismatch(line, `request answered ${name}`);
  };
  let pending: { rid: number; addr: bigint; flag: number; line: number } | undefined;
  const settlePassThrough = (): void => {
    if (pending === undefined) return;
    const p = pending;
    pending = undefined;
    const r = device.translate(p.rid, p.addr, { read: (p.flag & 1) !== 0, write: (p.flag & 2) !== 0 });
    if (r.ok && r.bypass && r.addr === p.addr) report.translations.passThrough++;
    else mismatch(p.line, `QEMU passed 0x${p.addr.toString(16)} through untranslated; we ${r.ok ? `translated it to 0x${r.addr.toString(16)}` : `faulted (reason ${r.reason})`}`);
  };
  for (const { event, line } of events) {
    switch (event.name) {
      case 'virtio_iommu_attach':
        settlePassThrough();
        report.requests.attach++;
        send(VIRTIO_IOMMU_REQ_ATTACH.serialize({ type: VIRTIO_IOMMU_T_ATTACH, domain: event.args.domain, endpoint: event.args.endpoint }), line);
        break;
      case 'virtio_iommu_detach':
        settlePassThrough();
        report.requests.detach++;
        send(VIRTIO_IOMMU_REQ_DETACH.serialize({ type: VIRTIO_IOMMU_T_DETACH, domain: event.args.domain, endpoint: event.args.endpoint }), line);
        break;
      case 'virtio_iommu_map': {
        settlePassThrough();
        report.requests.map++;
        const a = event.args;
        send(
          VIRTIO_IOMMU_REQ_MAP.serialize({ type: VIRTIO_IOMMU_T_MAP, domain: a.domain, virt_start: a.virt_start, virt_end: a.virt_end, phys_start: a.phys_start, flags: a.flags }),
          line,
        );
        break;
      }
      case 'virtio_iommu_unmap':
        settlePassThrough();
        report.requests.unmap++;
        send(VIRTIO_IOMMU_REQ_UNMAP.serialize({ type: VIRTIO_IOMMU_T_UNMAP, domain: event.args.domain, virt_start: event.args.virt_start, virt_end: event.args.virt_end }), line);
        break;
      case 'virtio_iommu_unmap_done':
        report.unmapDone.traced++;
        break;
      case 'virtio_iommu_translate':
        settlePassThrough();
        pending = { rid: event.args.rid, addr: event.args.addr, flag: event.args.flag, line };
        break;
      case 'virtio_iommu_translate_out': {
        report.translations.traced++;
        const p = pending;
        pending = undefined;
        if (p === undefined || p.addr !== event.args.virt_addr) {
          mismatch(line, 'translation output without its request');
          break;
        }
        const r = device.translate(event.args.sid, p.addr, { read: (p.flag & 1) !== 0, write: (p.flag & 2) !== 0 });
        if (r.ok && r.addr === event.args.phys_addr) report.translations.matched++;
        else mismatch(line, `0x${p.addr.toString(16)}: QEMU 0x${event.args.phys_addr.toString(16)}, we ${r.ok ? `0x${r.addr.toString(16)}` : `faulted (reason ${r.reason})`}`);
        break;
      }
      default:
        break;
    }
  }
  settlePassThrough();
  report.unmapDone.ours = ours.length;
  if (report.unmapDone.ours !== report.unmapDone.traced) {
    mismatch(0, `QEMU removed ${report.unmapDone.traced} mappings, we removed ${report.unmapDone.ours}`);
  }
  return report;
}
