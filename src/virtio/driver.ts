/**
 * The driver side of virtio: the initialization sequence, split rings in guest memory, and request
 * submission, over either transport (virtio-mmio registers, or virtio-pci configuration space and BAR).
 * Guests use it to talk to devices exactly as a kernel driver would (registers and memory only); tests use
 * it to drive devices the same way.
 *
 * Memory: the driver owns a window of guest memory. Each queue gets its rings and one fixed buffer slot per
 * descriptor, so a request's buffers need no allocator.
 */
import { ViommuError, hex } from '../errors.js';
import type { PhysMemory } from '../mem/phys-memory.js';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_EVENT_IDX,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from './constants.js';
import {
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_INTERRUPT_ACK,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
  VIRTIO_MMIO_QUEUE_DEVICE_LOW,
  VIRTIO_MMIO_QUEUE_DRIVER_HIGH,
  VIRTIO_MMIO_QUEUE_DRIVER_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VERSION,
} from './mmio.js';

export class VirtioDriverError extends ViommuError {}

/** Register access, as a virtio-mmio transport (or a real bus) offers it. */
export interface MmioRegisters {
  mmioRead(offset: number, size: 1 | 2 | 4 | 8): bigint;
  mmioWrite(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void;
}

export interface DriverQueue {
  index: number;
  size: number;
  desc: number;
  avail: number;
  used: number;
  slots: number;
  slotSize: number;
  nextAvail: number;
  lastUsed: number;
  freeHeads: number[];
}

export interface UsedEntry {
  id: number;
  len: number;
}

/** What the generic driver needs from a transport. */
export interface DriverTransport {
  /** Throws unless a modern virtio device answers. */
  probe(): void;
  readStatus(): number;
  writeStatus(v: number): void;
  deviceFeatures(): bigint;
  writeDriverFeatures(f: bigint): void;
  queueMax(index: number): number;
  setupQueue(index: number, size: number, desc: number, avail: number, used: number): void;
  notify(index: number): void;
  readConfig(offset: number, size: 1 | 2 | 4 | 8): bigint;
  writeConfig(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void;
  /** Read and acknowledge the interrupt status. */
  ackInterrupts(): number;
}

/** virtio-mmio registers. */
export class MmioDriverTransport implements DriverTransport {
  constructor(private readonly regs: MmioRegisters) {}
  private rd(off: number): number {
    return Number(this.regs.mmioRead(off, 4));
  }
  private wr(off: number, v: number): void {
    this.regs.mmioWrite(off, 4, BigInt(v >>> 0));
  }
  probe(): void {
    if (this.rd(VIRTIO_MMIO_MAGIC_VALUE) !== VIRTIO_MMIO_MAGIC || this.rd(VIRTIO_MMIO_VERSION) !== 2) {
      throw new VirtioDriverError('VDRV_NOT_VIRTIO', 'no virtio-mmio version 2 device here');
    }
  }
  readStatus(): number {
    return this.rd(VIRTIO_MMIO_STATUS);
  }
  writeStatus(v: number): void {
    this.wr(VIRTIO_MMIO_STATUS, v);
  }
  deviceFeatures(): bigint {
    this.wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    const lo = BigInt(this.rd(VIRTIO_MMIO_DEVICE_FEATURES));
    this.wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    return (BigInt(this.rd(VIRTIO_MMIO_DEVICE_FEATURES)) << 32n) | lo;
  }
  writeDriverFeatures(f: bigint): void {
    this.wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    this.wr(VIRTIO_MMIO_DRIVER_FEATURES, Number(f & 0xffffffffn));
    this.wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    this.wr(VIRTIO_MMIO_DRIVER_FEATURES, Number(f >> 32n));
  }
  queueMax(index: number): number {
    this.wr(VIRTIO_MMIO_QUEUE_SEL, index);
    return this.rd(VIRTIO_MMIO_QUEUE_NUM_MAX);
  }
  setupQueue(index: number, size: number, desc: number, avail: number, used: number): void {
    this.wr(VIRTIO_MMIO_QUEUE_SEL, index);
    this.wr(VIRTIO_MMIO_QUEUE_NUM, size);
    this.wr(VIRTIO_MMIO_QUEUE_DESC_LOW, desc);
    this.wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    this.wr(VIRTIO_MMIO_QUEUE_DRIVER_LOW, avail);
    this.wr(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0);
    this.wr(VIRTIO_MMIO_QUEUE_DEVICE_LOW, used);
    this.wr(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
    this.wr(VIRTIO_MMIO_QUEUE_READY, 1);
  }
  notify(index: number): void {
    this.wr(VIRTIO_MMIO_QUEUE_NOTIFY, index);
  }
  readConfig(offset: number, size: 1 | 2 | 4 | 8): bigint {
    return this.regs.mmioRead(VIRTIO_MMIO_CONFIG + offset, size);
  }
  writeConfig(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    this.regs.mmioWrite(VIRTIO_MMIO_CONFIG + offset, size, value);
  }
  ackInterrupts(): number {
    const s = this.rd(VIRTIO_MMIO_INTERRUPT_STATUS);
    this.wr(VIRTIO_MMIO_INTERRUPT_ACK, s);
    return s;
  }
}

export class VirtioDriver {
  negotiated = 0n;
  readonly queues: DriverQueue[] = [];
  private next: number;
  private readonly end: number;

  constructor(
    readonly transport: DriverTransport,
    private readonly memory: PhysMemory,
    /** Guest-physical window the driver may use for rings and buffers. */
    window: { base: bigint; size: bigint },
  ) {
    this.next = Number(window.base);
    this.end = Number(window.base + window.size);
  }

  deviceFeatures(): bigint {
    return this.transport.deviceFeatures();
  }

  /**
   * The spec's initialization sequence: reset, ACKNOWLEDGE, DRIVER, feature negotiation (accept `wanted`
   * ∩ offered), FEATURES_OK and its check, queue setup, DRIVER_OK. Returns the negotiated features.
   */
  init(wanted: bigint, queueSizes: readonly number[]): bigint {
    const t = this.transport;
    t.probe();
    t.writeStatus(0);
    t.writeStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    t.writeStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    const accept = t.deviceFeatures() & wanted;
    t.writeDriverFeatures(accept);
    const s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    t.writeStatus(s);
    if (!(t.readStatus() & VIRTIO_CONFIG_S_FEATURES_OK)) {
      throw new VirtioDriverError('VDRV_FEATURES_REFUSED', `device refused features ${hex(accept)}`);
    }
    this.negotiated = accept;
    queueSizes.forEach((size, i) => this.setupQueue(i, size));
    t.writeStatus(s | VIRTIO_CONFIG_S_DRIVER_OK);
    return accept;
  }

  private alloc(bytes: number, align: number): number {
    const at = Math.ceil(this.next / align) * align;
    if (at + bytes > this.end) throw new VirtioDriverError('VDRV_NO_MEMORY', 'driver window exhausted');
    this.next = at + bytes;
    this.memory.fill(BigInt(at), bytes, 0);
    return at;
  }

  setupQueue(index: number, size: number, slotSize = 1024): DriverQueue {
    const max = this.transport.queueMax(index);
    if (max === 0 || size > max) throw new VirtioDriverError('VDRV_QUEUE', `queue ${index}: size ${size}, max ${max}`);
    const q: DriverQueue = {
      index,
      size,
      desc: this.alloc(16 * size, 16),
      avail: this.alloc(6 + 2 * size, 2),
      used: this.alloc(6 + 8 * size, 4),
      slots: this.alloc(slotSize * size, 16),
      slotSize,
      nextAvail: 0,
      lastUsed: 0,
      freeHeads: Array.from({ length: size }, (_, i) => size - 1 - i),
    };
    this.transport.setupQueue(index, size, q.desc, q.avail, q.used);
    this.queues[index] = q;
    return q;
  }

  /**
   * Put a request on queue `qi`: one device-readable buffer holding `out` (if non-empty) and one
   * device-writable buffer of `inLen` bytes (if non-zero), each in its descriptor's slot. Returns the head.
   */
  submit(qi: number, out: Uint8Array, inLen: number): number {
    const q = this.queues[qi]!;
    const parts = (out.length > 0 ? 1 : 0) + (inLen > 0 ? 1 : 0);
    if (parts === 0 || q.freeHeads.length < parts) throw new VirtioDriverError('VDRV_QUEUE_FULL', `queue ${qi} has no room`);
    if (out.length > q.slotSize || inLen > q.slotSize) {
      throw new VirtioDriverError('VDRV_BUFFER', `a buffer of ${Math.max(out.length, inLen)} bytes exceeds the slot size ${q.slotSize}`);
    }
    const first = q.freeHeads.pop()!;
    const second = parts === 2 ? q.freeHeads.pop()! : -1;
    if (out.length > 0) this.writeDescriptor(q, first, out, out.length, false, second);
    if (inLen > 0) this.writeDescriptor(q, parts === 2 ? second : first, undefined, inLen, true, -1);
    this.memory.writeU16n(q.avail + 4 + 2 * (q.nextAvail % q.size), first);
    q.nextAvail = (q.nextAvail + 1) & 0xffff;
    this.memory.writeU16n(q.avail + 2, q.nextAvail);
    return first;
  }

  /** Fill descriptor `id` with its slot; `next` >= 0 chains to it. Writable buffers start zeroed. */
  private writeDescriptor(q: DriverQueue, id: number, data: Uint8Array | undefined, len: number, writable: boolean, next: number): void {
    const buf = q.slots + id * q.slotSize;
    if (data) this.memory.writeBytesN(buf, data);
    else this.memory.fillN(buf, len, 0);
    const d = q.desc + 16 * id;
    this.memory.writeU32n(d, buf);
    this.memory.writeU32n(d + 4, 0);
    this.memory.writeU32n(d + 8, len);
    this.memory.writeU16n(d + 12, (writable ? VIRTQ_DESC_F_WRITE : 0) | (next >= 0 ? VIRTQ_DESC_F_NEXT : 0));
    this.memory.writeU16n(d + 14, next >= 0 ? next : 0);
  }

  kick(qi: number): void {
    this.transport.notify(qi);
  }

  /** Used entries since the last call; their descriptors go back to the free list. */
  reap(qi: number): UsedEntry[] {
    const q = this.queues[qi]!;
    const idx = this.memory.readU16n(q.used + 2);
    const out: UsedEntry[] = [];
    while (q.lastUsed !== idx) {
      const e = q.used + 4 + 8 * (q.lastUsed % q.size);
      const id = this.memory.readU32n(e);
      out.push({ id, len: this.memory.readU32n(e + 4) });
      this.freeChain(q, id);
      q.lastUsed = (q.lastUsed + 1) & 0xffff;
    }
    if (this.negotiated & (1n << VIRTIO_F_EVENT_IDX)) this.memory.writeU16n(q.avail + 4 + 2 * q.size, q.lastUsed);
    return out;
  }

  private freeChain(q: DriverQueue, head: number): void {
    let id = head;
    for (let n = 0; n < q.size; n++) {
      q.freeHeads.push(id);
      const d = q.desc + 16 * id;
      if (!(this.memory.readU16n(d + 12) & VIRTQ_DESC_F_NEXT)) return;
      id = this.memory.readU16n(d + 14);
    }
  }

  /** The device-writable buffer of chain `head` (its second descriptor, or its first if it has one). */
  writableOf(qi: number, head: number, len: number): Uint8Array {
    const q = this.queues[qi]!;
    let id = head;
    for (let n = 0; n < q.size; n++) {
      const d = q.desc + 16 * id;
      const flags = this.memory.readU16n(d + 12);
      if (flags & VIRTQ_DESC_F_WRITE) return this.memory.read(BigInt(this.memory.readU32n(d)), len);
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      id = this.memory.readU16n(d + 14);
    }
    throw new VirtioDriverError('VDRV_NO_WRITABLE', `chain ${head} has no device-writable buffer`);
  }

  /** Submit, kick, and return what the device wrote (synchronous transports complete at the kick). */
  request(qi: number, out: Uint8Array, inLen: number): { used: number; data: Uint8Array } {
    const head = this.submit(qi, out, inLen);
    const data = inLen > 0 ? this.writableOf(qi, head, inLen) : new Uint8Array(0);
    this.kick(qi);
    const done = this.reap(qi).find((u) => u.id === head);
    if (!done) throw new VirtioDriverError('VDRV_NOT_COMPLETED', `request ${head} on queue ${qi} was not completed`);
    return { used: done.len, data: inLen > 0 ? this.writableOf(qi, head, inLen) : data };
  }

  readConfig(offset: number, size: 1 | 2 | 4 | 8): bigint {
    return this.transport.readConfig(offset, size);
  }
  writeConfig(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    this.transport.writeConfig(offset, size, value);
  }
  ackInterrupts(): number {
    return this.transport.ackInterrupts();
  }
  status(): number {
    return this.transport.readStatus();
  }
}

/** The generic driver over virtio-mmio registers. */
export class VirtioMmioDriver extends VirtioDriver {
  constructor(regs: MmioRegisters, memory: PhysMemory, window: { base: bigint; size: bigint }) {
    super(new MmioDriverTransport(regs), memory, window);
  }
}

/** A PCI function as a driver reaches it: configuration space and BARs. */
export interface PciFunction {
  pciConfigRead(offset: number, size: 1 | 2 | 4): number;
  pciConfigWrite(offset: number, size: 1 | 2 | 4, value: number): void;
  barRead(bar: number, offset: number, size: 1 | 2 | 4 | 8): bigint;
  barWrite(bar: number, offset: number, size: 1 | 2 | 4 | 8, value: bigint): void;
}

interface CapWindow {
  bar: number;
  offset: number;
}

/**
 * virtio-pci (modern): finds the virtio capabilities by walking the capability list, enables memory
 * decoding and bus mastering, and programs the common configuration structure.
 */
export class PciDriverTransport implements DriverTransport {
  private common: CapWindow | undefined;
  private notifyCap: CapWindow | undefined;
  private notifyMultiplier = 0;
  private isr: CapWindow | undefined;
  private device: CapWindow | undefined;

  constructor(private readonly pci: PciFunction) {}

  probe(): void {
    const vendor = this.pci.pciConfigRead(0x00, 2);
    const id = this.pci.pciConfigRead(0x02, 2);
    if (vendor !== 0x1af4 || id < 0x1040 || id > 0x107f) {
      throw new VirtioDriverError('VDRV_NOT_VIRTIO', `PCI ${hex(vendor)}:${hex(id)} is not a modern virtio device`);
    }
    let cap = (this.pci.pciConfigRead(0x06, 2) & 0x10) !== 0 ? this.pci.pciConfigRead(0x34, 1) & 0xfc : 0;
    for (let hops = 0; cap !== 0 && hops < 48; hops++) {
      if (this.pci.pciConfigRead(cap, 1) === 0x09) {
        const type = this.pci.pciConfigRead(cap + 3, 1);
        const w = { bar: this.pci.pciConfigRead(cap + 4, 1), offset: this.pci.pciConfigRead(cap + 8, 4) };
        if (type === 1 && !this.common) this.common = w;
        if (type === 2 && !this.notifyCap) {
          this.notifyCap = w;
          this.notifyMultiplier = this.pci.pciConfigRead(cap + 16, 4);
        }
        if (type === 3 && !this.isr) this.isr = w;
        if (type === 4 && !this.device) this.device = w;
      }
      cap = this.pci.pciConfigRead(cap + 1, 1) & 0xfc;
    }
    if (!this.common || !this.notifyCap || !this.isr) throw new VirtioDriverError('VDRV_NO_CAPS', 'virtio-pci capabilities missing');
    // Memory space and bus master.
    this.pci.pciConfigWrite(0x04, 2, this.pci.pciConfigRead(0x04, 2) | 0x6);
  }

  private c(off: number, size: 1 | 2 | 4): number {
    return Number(this.pci.barRead(this.common!.bar, this.common!.offset + off, size));
  }
  private cw(off: number, size: 1 | 2 | 4, v: number): void {
    this.pci.barWrite(this.common!.bar, this.common!.offset + off, size, BigInt(v >>> 0));
  }

  readStatus(): number {
    return this.c(20, 1);
  }
  writeStatus(v: number): void {
    this.cw(20, 1, v);
  }
  deviceFeatures(): bigint {
    this.cw(0, 4, 0);
    const lo = BigInt(this.c(4, 4));
    this.cw(0, 4, 1);
    return (BigInt(this.c(4, 4)) << 32n) | lo;
  }
  writeDriverFeatures(f: bigint): void {
    this.cw(8, 4, 0);
    this.cw(12, 4, Number(f & 0xffffffffn));
    this.cw(8, 4, 1);
    this.cw(12, 4, Number(f >> 32n));
  }
  queueMax(index: number): number {
    if (index >= this.c(18, 2)) return 0;
    this.cw(22, 2, index);
    return this.c(24, 2);
  }
  setupQueue(index: number, size: number, desc: number, avail: number, used: number): void {
    this.cw(22, 2, index);
    this.cw(24, 2, size);
    this.cw(32, 4, desc);
    this.cw(36, 4, 0);
    this.cw(40, 4, avail);
    this.cw(44, 4, 0);
    this.cw(48, 4, used);
    this.cw(52, 4, 0);
    this.cw(28, 2, 1);
  }
  notify(index: number): void {
    this.cw(22, 2, index);
    const off = this.c(30, 2);
    this.pci.barWrite(this.notifyCap!.bar, this.notifyCap!.offset + off * this.notifyMultiplier, 2, BigInt(index));
  }
  readConfig(offset: number, size: 1 | 2 | 4 | 8): bigint {
    return this.device ? this.pci.barRead(this.device.bar, this.device.offset + offset, size) : 0n;
  }
  writeConfig(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    if (this.device) this.pci.barWrite(this.device.bar, this.device.offset + offset, size, value);
  }
  ackInterrupts(): number {
    return Number(this.pci.barRead(this.isr!.bar, this.isr!.offset, 1));
  }
}

/** The generic driver over virtio-pci. */
export class VirtioPciDriver extends VirtioDriver {
  constructor(pci: PciFunction, memory: PhysMemory, window: { base: bigint; size: bigint }) {
    super(new PciDriverTransport(pci), memory, window);
  }
}
