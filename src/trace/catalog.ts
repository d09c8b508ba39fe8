/**
 * The one catalog of trace events. Devices, host and guest emit these; trace replay and the visualizer
 * consume them. Names and arguments follow QEMU's trace-events where QEMU has the same event, so a trace
 * from viommu and one from QEMU can be compared line by line.
 */

/** IOMMU access flags as QEMU traces them (IOMMU_RO 1, IOMMU_WO 2, IOMMU_RW 3). */
export type IommuAccessFlag = 0 | 1 | 2 | 3;

export interface TraceEventMap {
  virtio_iommu_device_reset: Record<string, never>;
  virtio_iommu_system_reset: Record<string, never>;
  virtio_iommu_device_status: { status: number };
  virtio_iommu_get_config: {
    page_size_mask: bigint;
    input_start: bigint;
    input_end: bigint;
    domain_start: number;
    domain_end: number;
    probe_size: number;
    bypass: number;
  };
  virtio_iommu_set_config: { bypass: number };
  virtio_iommu_attach: { domain: number; endpoint: number };
  virtio_iommu_detach: { domain: number; endpoint: number };
  virtio_iommu_map: { domain: number; virt_start: bigint; virt_end: bigint; phys_start: bigint; flags: number };
  virtio_iommu_unmap: { domain: number; virt_start: bigint; virt_end: bigint };
  virtio_iommu_unmap_done: { domain: number; virt_start: bigint; virt_end: bigint };
  virtio_iommu_probe: { endpoint: number };
  virtio_iommu_fill_resv_property: { endpoint: number; subtype: number; start: bigint; end: bigint };
  virtio_iommu_get_domain: { domain: number };
  virtio_iommu_put_domain: { domain: number };
  virtio_iommu_get_endpoint: { endpoint: number };
  virtio_iommu_put_endpoint: { endpoint: number };
  /** A translation request from endpoint `rid` (QEMU's field name for the endpoint id). */
  virtio_iommu_translate: { mr: string; rid: number; addr: bigint; flag: IommuAccessFlag };
  virtio_iommu_translate_out: { virt_addr: bigint; phys_addr: bigint; sid: number };
  virtio_iommu_report_fault: { reason: number; flags: number; endpoint: number; address: bigint };
  /** Request completed with a status (viommu only: QEMU does not trace statuses). */
  virtio_iommu_req_status: { type: number; status: number };
}

export type TraceEventName = keyof TraceEventMap;

export type TraceEvent = { [K in TraceEventName]: { name: K; args: TraceEventMap[K] } }[TraceEventName];

export type TraceSink = (event: TraceEvent) => void;

export const TRACE_EVENT_NAMES: readonly TraceEventName[] = [
  'virtio_iommu_device_reset',
  'virtio_iommu_system_reset',
  'virtio_iommu_device_status',
  'virtio_iommu_get_config',
  'virtio_iommu_set_config',
  'virtio_iommu_attach',
  'virtio_iommu_detach',
  'virtio_iommu_map',
  'virtio_iommu_unmap',
  'virtio_iommu_unmap_done',
  'virtio_iommu_probe',
  'virtio_iommu_fill_resv_property',
  'virtio_iommu_get_domain',
  'virtio_iommu_put_domain',
  'virtio_iommu_get_endpoint',
  'virtio_iommu_put_endpoint',
  'virtio_iommu_translate',
  'virtio_iommu_translate_out',
  'virtio_iommu_report_fault',
  'virtio_iommu_req_status',
];
