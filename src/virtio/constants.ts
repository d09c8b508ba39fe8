/**
 * Virtio constants shared by every transport and device (virtio 1.2: "Basic Facilities of a Virtio
 * Device", "Virtqueues", "Reserved Feature Bits").
 */

// Device status field bits.
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
export const VIRTIO_CONFIG_S_DRIVER = 2;
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
export const VIRTIO_CONFIG_S_FAILED = 0x80;

// Transport feature bits.
export const VIRTIO_F_INDIRECT_DESC = 28n;
export const VIRTIO_F_EVENT_IDX = 29n;
export const VIRTIO_F_VERSION_1 = 32n;
export const VIRTIO_F_ACCESS_PLATFORM = 33n;

export function featureBit(bit: bigint): bigint {
  return 1n << bit;
}

// Split virtqueue descriptor flags.
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
// Ring flags.
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Largest split queue the spec allows. */
export const VIRTQ_MAX_SIZE = 32768;

// Interrupt status (virtio-mmio InterruptStatus, virtio-pci ISR) bits.
export const VIRTIO_INT_USED_BUFFER = 1;
export const VIRTIO_INT_CONFIG = 2;
