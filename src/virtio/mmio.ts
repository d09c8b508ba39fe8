/**
 * virtio-mmio, version 2 register layout (virtio 1.2, "Virtio Over MMIO"). Registers are 32 bits wide;
 * device configuration starts at 0x100 and may be accessed with 1, 2, 4 (or 8) byte accesses.
 *
 * A QueueNotify write is processed synchronously: when it returns, the used ring is updated and the
 * interrupt raised. The interrupt is a level: `onInterrupt(true)` when InterruptStatus becomes non-zero,
 * `onInterrupt(false)` when the driver acknowledges everything.
 */
import type { PhysMemory } from '../mem/phys-memory.js';
import { VirtioCore, type VirtioDevice } from './core.js';

export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
export const VIRTIO_MMIO_VERSION = 0x004;
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
export const VIRTIO_MMIO_STATUS = 0x070;
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
export const VIRTIO_MMIO_QUEUE_DRIVER_LOW = 0x090;
export const VIRTIO_MMIO_QUEUE_DRIVER_HIGH = 0x094;
export const VIRTIO_MMIO_QUEUE_DEVICE_LOW = 0x0a0;
export const VIRTIO_MMIO_QUEUE_DEVICE_HIGH = 0x0a4;
export const VIRTIO_MMIO_SHM_SEL = 0x0ac;
export const VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0;
export const VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4;
export const VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8;
export const VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc;
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
export const VIRTIO_MMIO_CONFIG = 0x100;

export const VIRTIO_MMIO_MAGIC = 0x74726976; // "virt"
/** Vendor id reported: "VIOM" would do, QEMU reports 0x554d4551 ("QEMU"); ours is "vmmu". */
export const VIOMMU_VENDOR_ID = 0x756d6d76;

export interface VirtioMmioOptions {
  memory: PhysMemory;
  /** Interrupt line level changes. */
  onInterrupt?: (level: boolean) => void;
}

export class VirtioMmioTransport {
  readonly core: VirtioCore;
  private readonly onInterrupt: (level: boolean) => void;

  constructor(
    readonly device: VirtioDevice,
    opts: VirtioMmioOptions,
  ) {
    this.onInterrupt = opts.onInterrupt ?? (() => {});
    this.core = new VirtioCore(device, opts.memory, {
      raise: () => this.onInterrupt(true),
    });
  }

  /** Size of the register window (registers plus device configuration). */
  get windowSize(): number {
    return VIRTIO_MMIO_CONFIG + this.device.configSize;
  }

  mmioRead(offset: number, size: 1 | 2 | 4 | 8): bigint {
    if (offset >= VIRTIO_MMIO_CONFIG) return this.readConfig(offset - VIRTIO_MMIO_CONFIG, size);
    // spec: registers other than the config space are 32-bit; other widths read as 0 (undefined).
    if (size !== 4 || offset % 4 !== 0) return 0n;
    return BigInt(this.readRegister(offset) >>> 0);
  }

  mmioWrite(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      this.writeConfig(offset - VIRTIO_MMIO_CONFIG, size, value);
      return;
    }
    if (size !== 4 || offset % 4 !== 0) return;
    this.writeRegister(offset, Number(value & 0xffffffffn));
  }

  private readConfig(off: number, size: 1 | 2 | 4 | 8): bigint {
    if (off + size > this.device.configSize) return 0n;
    return this.device.readConfig(off, size);
  }

  private writeConfig(off: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    if (off + size > this.device.configSize) return;
    this.device.writeConfig(off, size, value);
  }

  private readRegister(offset: number): number {
    const c = this.core;
    const q = c.queues[c.queueSel];
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return 2;
      case VIRTIO_MMIO_DEVICE_ID:
        return this.device.deviceId;
      case VIRTIO_MMIO_VENDOR_ID:
        return VIOMMU_VENDOR_ID;
      case VIRTIO_MMIO_DEVICE_FEATURES:
        return c.deviceFeatureWord();
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return q ? this.device.queueMaxSizes[c.queueSel]! : 0;
      case VIRTIO_MMIO_QUEUE_READY:
        return q?.ready ? 1 : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return c.interruptStatus;
      case VIRTIO_MMIO_STATUS:
        return c.status;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
        return q ? Number(q.desc & 0xffffffffn) : 0;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        return q ? Number(q.desc >> 32n) : 0;
      case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
        return q ? Number(q.driver & 0xffffffffn) : 0;
      case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
        return q ? Number(q.driver >> 32n) : 0;
      case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
        return q ? Number(q.device & 0xffffffffn) : 0;
      case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        return q ? Number(q.device >> 32n) : 0;
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
      case VIRTIO_MMIO_SHM_BASE_LOW:
      case VIRTIO_MMIO_SHM_BASE_HIGH:
        // spec: no shared memory region -> length and base read as all ones.
        return 0xffffffff;
      case VIRTIO_MMIO_CONFIG_GENERATION:
        return c.configGeneration;
      default:
        return 0;
    }
  }

  private writeRegister(offset: number, v: number): void {
    const c = this.core;
    const q = c.queues[c.queueSel];
    // spec: queue configuration may only change while the queue is not ready.
    const queueWritable = q !== undefined && !q.ready;
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        c.deviceFeaturesSel = v;
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES:
        c.writeDriverFeatureWord(v);
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        c.driverFeaturesSel = v;
        return;
      case VIRTIO_MMIO_QUEUE_SEL:
        c.queueSel = v;
        return;
      case VIRTIO_MMIO_QUEUE_NUM:
        if (queueWritable) q.size = v;
        return;
      case VIRTIO_MMIO_QUEUE_READY:
        c.setQueueReady(c.queueSel, (v & 1) === 1);
        return;
      case VIRTIO_MMIO_QUEUE_NOTIFY:
        c.notify(v & 0xffff);
        return;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        c.interruptStatus &= ~v;
        if (c.interruptStatus === 0) this.onInterrupt(false);
        return;
      case VIRTIO_MMIO_STATUS:
        c.writeStatus(v);
        if (v === 0) this.onInterrupt(false);
        return;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
        if (queueWritable) q.desc = setLow(q.desc, v);
        return;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        if (queueWritable) q.desc = setHigh(q.desc, v);
        return;
      case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
        if (queueWritable) q.driver = setLow(q.driver, v);
        return;
      case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
        if (queueWritable) q.driver = setHigh(q.driver, v);
        return;
      case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
        if (queueWritable) q.device = setLow(q.device, v);
        return;
      case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        if (queueWritable) q.device = setHigh(q.device, v);
        return;
      case VIRTIO_MMIO_SHM_SEL:
      default:
        return;
    }
  }
}

function setLow(v: bigint, lo: number): bigint {
  return (v & ~0xffffffffn) | BigInt(lo >>> 0);
}
function setHigh(v: bigint, hi: number): bigint {
  return (v & 0xffffffffn) | (BigInt(hi >>> 0) << 32n);
}
