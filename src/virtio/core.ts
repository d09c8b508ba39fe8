/**
 * What every virtio transport shares (virtio 1.2, "Device Status Field", "Feature Bits", "Device
 * Initialization"): the status machine, feature negotiation, per-queue configuration, the interrupt status
 * and device reset. A transport (virtio-mmio, virtio-pci) maps its registers onto a `VirtioCore`; the same
 * device object sits behind either.
 */
import type { PhysMemory } from '../mem/phys-memory.js';
import {
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  VIRTIO_INT_CONFIG,
  VIRTIO_INT_USED_BUFFER,
  VIRTQ_MAX_SIZE,
} from './constants.js';
import { Virtqueue, VirtqueueError } from './virtqueue.js';

/** What a device model offers its transport. */
export interface VirtioDevice {
  readonly deviceId: number;
  /** Device-specific feature bits plus the transport bits it supports. */
  readonly deviceFeatures: bigint;
  /** Maximum size of each queue (the number of queues is the length). */
  readonly queueMaxSizes: readonly number[];
  /** Bytes of device configuration space. */
  readonly configSize: number;
  readConfig(offset: number, size: 1 | 2 | 4 | 8): bigint;
  writeConfig(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void;
  /** The transport calls this once; the device keeps the context to reach its queues. */
  bind(ctx: VirtioContext): void;
  /** Driver accepted `features` (FEATURES_OK); return false to refuse them. */
  featuresOk(features: bigint): boolean;
  /** The driver notified queue `index`; process it (synchronously). */
  queueNotify(index: number): void;
  /** Device reset (status written 0): drop all driver-visible state the spec says goes. */
  reset(): void;
}

/** What a device may ask of its transport. */
export interface VirtioContext {
  readonly memory: PhysMemory;
  /** The queue, or undefined while the driver has not made it ready. */
  queue(index: number): Virtqueue | undefined;
  /** Features the driver accepted (valid after FEATURES_OK). */
  readonly negotiated: bigint;
  readonly driverOk: boolean;
  /** Signal the driver that queue `index` has used buffers (respects its suppression). */
  notifyUsed(index: number): void;
  /** Signal a configuration change. */
  notifyConfig(): void;
  /** The driver broke the rules: set DEVICE_NEEDS_RESET and stop serving queues until reset. */
  deviceError(err: VirtqueueError): void;
}

export interface QueueState {
  size: number;
  ready: boolean;
  desc: bigint;
  driver: bigint;
  device: bigint;
  /** virtio-pci: MSI-X vector of this queue (0xffff = none). */
  msixVector: number;
  vq: Virtqueue | undefined;
}

/** Interrupt delivery, provided by the transport. */
export interface InterruptSink {
  /** `bits` (VIRTIO_INT_*) were set; `queue` is the queue for used-buffer interrupts, -1 for config. */
  raise(bits: number, queue: number): void;
}

export class VirtioCore implements VirtioContext {
  status = 0;
  deviceFeaturesSel = 0;
  driverFeaturesSel = 0;
  driverFeatures = 0n;
  negotiated = 0n;
  queueSel = 0;
  interruptStatus = 0;
  configGeneration = 0;
  readonly queues: QueueState[];
  /** Ring errors seen (each one also set DEVICE_NEEDS_RESET). */
  deviceErrors = 0;
  lastError: VirtqueueError | undefined;

  constructor(
    readonly device: VirtioDevice,
    readonly memory: PhysMemory,
    private readonly sink: InterruptSink,
  ) {
    this.queues = device.queueMaxSizes.map((max) => freshQueue(max));
    device.bind(this);
  }

  get driverOk(): boolean {
    return (this.status & VIRTIO_CONFIG_S_DRIVER_OK) !== 0 && (this.status & VIRTIO_CONFIG_S_NEEDS_RESET) === 0;
  }

  queue(index: number): Virtqueue | undefined {
    return this.queues[index]?.vq;
  }

  /** The 32-bit window of the device features selected by `deviceFeaturesSel`. */
  deviceFeatureWord(): number {
    return this.deviceFeaturesSel > 1 ? 0 : Number((this.device.deviceFeatures >> BigInt(32 * this.deviceFeaturesSel)) & 0xffffffffn);
  }

  writeDriverFeatureWord(value: number): void {
    if (this.driverFeaturesSel > 1 || this.status & VIRTIO_CONFIG_S_FEATURES_OK) return;
    const shift = BigInt(32 * this.driverFeaturesSel);
    this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(value >>> 0) << shift);
  }

  /** A write to the device status field. */
  writeStatus(value: number): void {
    value &= 0xff;
    if (value === 0) {
      this.reset();
      return;
    }
    const adding = value & ~this.status;
    if (adding & VIRTIO_CONFIG_S_FEATURES_OK) {
      // spec: the device refuses (leaves FEATURES_OK clear) features it did not offer or cannot accept;
      // modern transports need VERSION_1.
      const offered = this.device.deviceFeatures;
      const ok =
        (this.driverFeatures & ~offered) === 0n &&
        (this.driverFeatures & (1n << VIRTIO_F_VERSION_1)) !== 0n &&
        this.device.featuresOk(this.driverFeatures);
      if (!ok) value &= ~VIRTIO_CONFIG_S_FEATURES_OK;
      else this.negotiated = this.driverFeatures;
    }
    // The device keeps its own NEEDS_RESET bit; the driver cannot clear status bits except by reset.
    this.status = (this.status & VIRTIO_CONFIG_S_NEEDS_RESET) | (value & ~VIRTIO_CONFIG_S_NEEDS_RESET);
  }

  /** QueueReady written: build the ring view (or refuse a bad configuration). */
  setQueueReady(index: number, ready: boolean): void {
    const q = this.queues[index];
    if (!q) return;
    if (!ready) {
      q.ready = false;
      q.vq = undefined;
      return;
    }
    if (q.size === 0 || q.size > VIRTQ_MAX_SIZE || (q.size & (q.size - 1)) !== 0) {
      this.deviceError(new VirtqueueError('DESC_INDEX', `queue ${index} size ${q.size} is not a power of two <= ${VIRTQ_MAX_SIZE}`));
      return;
    }
    try {
      q.vq = new Virtqueue(this.memory, {
        size: q.size,
        desc: q.desc,
        driver: q.driver,
        device: q.device,
        eventIdx: (this.negotiated & (1n << VIRTIO_F_EVENT_IDX)) !== 0n,
        indirect: (this.negotiated & (1n << VIRTIO_F_INDIRECT_DESC)) !== 0n,
      });
      q.ready = true;
    } catch (e) {
      if (!(e instanceof VirtqueueError)) throw e;
      this.deviceError(e);
    }
  }

  /** The driver kicked queue `index`. */
  notify(index: number): void {
    if (!this.driverOk || this.queues[index]?.vq === undefined) return;
    this.device.queueNotify(index);
  }

  notifyUsed(index: number): void {
    const vq = this.queues[index]?.vq;
    if (vq === undefined || !vq.shouldInterrupt()) return;
    this.interruptStatus |= VIRTIO_INT_USED_BUFFER;
    this.sink.raise(VIRTIO_INT_USED_BUFFER, index);
  }

  notifyConfig(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    this.interruptStatus |= VIRTIO_INT_CONFIG;
    this.sink.raise(VIRTIO_INT_CONFIG, -1);
  }

  deviceError(err: VirtqueueError): void {
    this.deviceErrors++;
    this.lastError = err;
    if (this.status & VIRTIO_CONFIG_S_NEEDS_RESET) return;
    // spec: a device that enters an error state sets DEVICE_NEEDS_RESET and, if DRIVER_OK was set,
    // sends a configuration change notification.
    this.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    if (this.status & VIRTIO_CONFIG_S_DRIVER_OK) {
      this.interruptStatus |= VIRTIO_INT_CONFIG;
      this.sink.raise(VIRTIO_INT_CONFIG, -1);
    }
  }

  reset(): void {
    this.status = 0;
    this.driverFeatures = 0n;
    this.negotiated = 0n;
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.queueSel = 0;
    this.interruptStatus = 0;
    for (let i = 0; i < this.queues.length; i++) this.queues[i] = freshQueue(this.device.queueMaxSizes[i]!);
    this.device.reset();
  }
}

function freshQueue(max: number): QueueState {
  return { size: max, ready: false, desc: 0n, driver: 0n, device: 0n, msixVector: 0xffff, vq: undefined };
}
