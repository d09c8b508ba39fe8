/**
 * virtio-iommu on the wire (virtio 1.2 "IOMMU device"; Linux include/uapi/linux/virtio_iommu.h for the
 * spellings; ../shared/reference/virtio-iommu.md). All fields little-endian.
 */
import { bytes, defineLayout, u16, u32, u64, u8 } from '../../layout/layout.js';

export const VIRTIO_ID_IOMMU = 23;
export const VIRTIO_IOMMU_REQUESTQ = 0;
export const VIRTIO_IOMMU_EVENTQ = 1;

// Feature bits.
export const VIRTIO_IOMMU_F_INPUT_RANGE = 0n;
export const VIRTIO_IOMMU_F_DOMAIN_RANGE = 1n;
export const VIRTIO_IOMMU_F_MAP_UNMAP = 2n;
export const VIRTIO_IOMMU_F_BYPASS = 3n;
export const VIRTIO_IOMMU_F_PROBE = 4n;
export const VIRTIO_IOMMU_F_MMIO = 5n;
export const VIRTIO_IOMMU_F_BYPASS_CONFIG = 6n;

// Request types.
export const VIRTIO_IOMMU_T_ATTACH = 1;
export const VIRTIO_IOMMU_T_DETACH = 2;
export const VIRTIO_IOMMU_T_MAP = 3;
export const VIRTIO_IOMMU_T_UNMAP = 4;
export const VIRTIO_IOMMU_T_PROBE = 5;

// Statuses.
export const VIRTIO_IOMMU_S_OK = 0;
export const VIRTIO_IOMMU_S_IOERR = 1;
export const VIRTIO_IOMMU_S_UNSUPP = 2;
export const VIRTIO_IOMMU_S_DEVERR = 3;
export const VIRTIO_IOMMU_S_INVAL = 4;
export const VIRTIO_IOMMU_S_RANGE = 5;
export const VIRTIO_IOMMU_S_NOENT = 6;
export const VIRTIO_IOMMU_S_FAULT = 7;
export const VIRTIO_IOMMU_S_NOMEM = 8;
export type VirtioIommuStatus = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8;
export const VIRTIO_IOMMU_STATUS_NAMES = ['OK', 'IOERR', 'UNSUPP', 'DEVERR', 'INVAL', 'RANGE', 'NOENT', 'FAULT', 'NOMEM'] as const;

// Flags.
export const VIRTIO_IOMMU_ATTACH_F_BYPASS = 1;
export const VIRTIO_IOMMU_MAP_F_READ = 1;
export const VIRTIO_IOMMU_MAP_F_WRITE = 2;
export const VIRTIO_IOMMU_MAP_F_MMIO = 4;

// Probe properties.
export const VIRTIO_IOMMU_PROBE_T_NONE = 0;
export const VIRTIO_IOMMU_PROBE_T_RESV_MEM = 1;
export const VIRTIO_IOMMU_RESV_MEM_T_RESERVED = 0;
export const VIRTIO_IOMMU_RESV_MEM_T_MSI = 1;

// Fault reasons and flags.
export const VIRTIO_IOMMU_FAULT_R_UNKNOWN = 0;
export const VIRTIO_IOMMU_FAULT_R_DOMAIN = 1;
export const VIRTIO_IOMMU_FAULT_R_MAPPING = 2;
export const VIRTIO_IOMMU_FAULT_F_READ = 1 << 0;
export const VIRTIO_IOMMU_FAULT_F_WRITE = 1 << 1;
export const VIRTIO_IOMMU_FAULT_F_EXEC = 1 << 2;
export const VIRTIO_IOMMU_FAULT_F_ADDRESS = 1 << 8;

/** Head and tail around every request. */
export const REQ_HEAD_SIZE = 4;
export const REQ_TAIL_SIZE = 4;

export const VIRTIO_IOMMU_CONFIG = defineLayout('virtio_iommu_config', 40, {
  page_size_mask: u64(0),
  input_start: u64(8),
  input_end: u64(16),
  domain_start: u32(24),
  domain_end: u32(28),
  probe_size: u32(32),
  bypass: u8(36),
  reserved: bytes(37, 3),
});

/** The device-readable part of each request (head included, tail excluded). */
export const VIRTIO_IOMMU_REQ_ATTACH = defineLayout('virtio_iommu_req_attach', 20, {
  type: u8(0),
  head_reserved: bytes(1, 3),
  domain: u32(4),
  endpoint: u32(8),
  flags: u32(12),
  reserved: bytes(16, 4),
});
export const VIRTIO_IOMMU_REQ_DETACH = defineLayout('virtio_iommu_req_detach', 20, {
  type: u8(0),
  head_reserved: bytes(1, 3),
  domain: u32(4),
  endpoint: u32(8),
  reserved: bytes(12, 8),
});
export const VIRTIO_IOMMU_REQ_MAP = defineLayout('virtio_iommu_req_map', 36, {
  type: u8(0),
  head_reserved: bytes(1, 3),
  domain: u32(4),
  virt_start: u64(8),
  virt_end: u64(16),
  phys_start: u64(24),
  flags: u32(32),
});
export const VIRTIO_IOMMU_REQ_UNMAP = defineLayout('virtio_iommu_req_unmap', 28, {
  type: u8(0),
  head_reserved: bytes(1, 3),
  domain: u32(4),
  virt_start: u64(8),
  virt_end: u64(16),
  reserved: bytes(24, 4),
});
export const VIRTIO_IOMMU_REQ_PROBE = defineLayout('virtio_iommu_req_probe', 72, {
  type: u8(0),
  head_reserved: bytes(1, 3),
  endpoint: u32(4),
  reserved: bytes(8, 64),
});
export const VIRTIO_IOMMU_REQ_TAIL = defineLayout('virtio_iommu_req_tail', 4, {
  status: u8(0),
  reserved: bytes(1, 3),
});

export const VIRTIO_IOMMU_PROBE_PROPERTY_HEAD = defineLayout('virtio_iommu_probe_property', 4, {
  type: u16(0),
  length: u16(2),
});
export const VIRTIO_IOMMU_PROBE_RESV_MEM = defineLayout('virtio_iommu_probe_resv_mem', 24, {
  type: u16(0),
  length: u16(2),
  subtype: u8(4),
  reserved: bytes(5, 3),
  start: u64(8),
  end: u64(16),
});

export const VIRTIO_IOMMU_FAULT = defineLayout('virtio_iommu_fault', 24, {
  reason: u8(0),
  reserved: bytes(1, 3),
  flags: u32(4),
  endpoint: u32(8),
  reserved2: bytes(12, 4),
  address: u64(16),
});

