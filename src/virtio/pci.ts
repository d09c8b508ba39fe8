/**
 * virtio-pci, modern (virtio 1.2 "Virtio Over PCI Bus"): a type-0 PCI function whose capability list holds
 * the virtio vendor capabilities (common, notify, ISR, device and PCI-configuration-access windows) and an
 * MSI-X capability, all pointing into one 64-bit memory BAR.
 *
 * BAR0 layout (32 KiB): common configuration at 0x0000, ISR at 0x1000, device configuration at 0x2000,
 * notifications at 0x3000 (queue n at 0x3000 + 4 n), MSI-X table at 0x4000 and pending-bit array at 0x5000.
 *
 * Interrupts: with MSI-X enabled, each queue and the configuration change use the vector the driver
 * assigned, delivered as `onMsi(address, data)` (or left pending while masked); otherwise INTx: the ISR
 * status bit is set and `onInterrupt(true)`; reading the ISR clears it and lowers the line.
 */
import type { PhysMemory } from '../mem/phys-memory.js';
import { VirtioCore, type VirtioDevice } from './core.js';
import { VIRTIO_INT_CONFIG } from './constants.js';

export const PCI_VENDOR_ID_REDHAT_QUMRANET = 0x1af4;
/** Modern virtio-pci device ids are 0x1040 + the virtio device id. */
export const VIRTIO_PCI_DEVICE_ID_BASE = 0x1040;

export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
export const VIRTIO_PCI_CAP_PCI_CFG = 5;
export const PCI_CAP_ID_VNDR = 0x09;
export const PCI_CAP_ID_MSIX = 0x11;
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

// Common configuration structure offsets (struct virtio_pci_common_cfg).
export const VIRTIO_PCI_COMMON_DFSELECT = 0;
export const VIRTIO_PCI_COMMON_DF = 4;
export const VIRTIO_PCI_COMMON_GFSELECT = 8;
export const VIRTIO_PCI_COMMON_GF = 12;
export const VIRTIO_PCI_COMMON_MSIX = 16;
export const VIRTIO_PCI_COMMON_NUMQ = 18;
export const VIRTIO_PCI_COMMON_STATUS = 20;
export const VIRTIO_PCI_COMMON_CFGGENERATION = 21;
export const VIRTIO_PCI_COMMON_Q_SELECT = 22;
export const VIRTIO_PCI_COMMON_Q_SIZE = 24;
export const VIRTIO_PCI_COMMON_Q_MSIX = 26;
export const VIRTIO_PCI_COMMON_Q_ENABLE = 28;
export const VIRTIO_PCI_COMMON_Q_NOFF = 30;
export const VIRTIO_PCI_COMMON_Q_DESCLO = 32;
export const VIRTIO_PCI_COMMON_Q_DESCHI = 36;
export const VIRTIO_PCI_COMMON_Q_AVAILLO = 40;
export const VIRTIO_PCI_COMMON_Q_AVAILHI = 44;
export const VIRTIO_PCI_COMMON_Q_USEDLO = 48;
export const VIRTIO_PCI_COMMON_Q_USEDHI = 52;
export const VIRTIO_PCI_COMMON_Q_NDATA = 56;
export const VIRTIO_PCI_COMMON_Q_RESET = 58;
const COMMON_SIZE = 64;

export const BAR0_SIZE = 0x8000;
export const BAR0_COMMON = 0x0000;
export const BAR0_ISR = 0x1000;
export const BAR0_DEVICE = 0x2000;
export const BAR0_NOTIFY = 0x3000;
export const BAR0_MSIX_TABLE = 0x4000;
export const BAR0_MSIX_PBA = 0x5000;
export const NOTIFY_OFF_MULTIPLIER = 4;

// Capability placement in configuration space.
const CAP_COMMON = 0x40;
const CAP_NOTIFY = 0x50;
const CAP_ISR = 0x64;
const CAP_DEVICE = 0x74;
const CAP_PCI_CFG = 0x84;
const CAP_MSIX = 0x98;

export interface VirtioPciOptions {
  memory: PhysMemory;
  /** INTx level changes (used while MSI-X is disabled). */
  onInterrupt?: (level: boolean) => void;
  /** MSI-X messages: a DWORD write of `data` to `address`. */
  onMsi?: (address: bigint, data: number) => void;
  /** MSI-X vectors (default: one per queue plus one for configuration changes). */
  msixVectors?: number;
  /** PCI class code (default 0xff0000, "other", as QEMU's virtio-iommu-pci). */
  classCode?: number;
}

export class VirtioPciTransport {
  readonly core: VirtioCore;
  /** 256 bytes of configuration space. */
  private readonly cfg = new Uint8Array(256);
  private readonly cfgView = new DataView(this.cfg.buffer);
  private readonly writable = new Uint8Array(256);
  private readonly msixTable: DataView;
  private readonly pending: Uint8Array;
  private readonly vectors: number;
  private configVector = VIRTIO_MSI_NO_VECTOR;
  private readonly onInterrupt: (level: boolean) => void;
  private readonly onMsi: (address: bigint, data: number) => void;

  constructor(
    readonly device: VirtioDevice,
    opts: VirtioPciOptions,
  ) {
    this.onInterrupt = opts.onInterrupt ?? (() => {});
    this.onMsi = opts.onMsi ?? (() => {});
    this.vectors = opts.msixVectors ?? device.queueMaxSizes.length + 1;
    this.msixTable = new DataView(new ArrayBuffer(16 * this.vectors));
    for (let v = 0; v < this.vectors; v++) this.msixTable.setUint32(16 * v + 12, 1, true); // masked at reset
    this.pending = new Uint8Array(this.vectors);
    this.core = new VirtioCore(device, opts.memory, { raise: (bits, queue) => this.raise(bits, queue) });
    this.buildConfigSpace(opts.classCode ?? 0xff0000);
  }

  // ---- PCI configuration space ------------------------------------------------------------------

  private buildConfigSpace(classCode: number): void {
    const v = this.cfgView;
    v.setUint16(0x00, PCI_VENDOR_ID_REDHAT_QUMRANET, true);
    v.setUint16(0x02, VIRTIO_PCI_DEVICE_ID_BASE + this.device.deviceId, true);
    v.setUint16(0x06, 0x0010, true); // status: capabilities list
    v.setUint8(0x08, 0x01); // revision: modern
    v.setUint8(0x09, classCode & 0xff);
    v.setUint8(0x0a, (classCode >> 8) & 0xff);
    v.setUint8(0x0b, (classCode >> 16) & 0xff);
    v.setUint32(0x10, 0x0000000c, true); // BAR0: 64-bit, prefetchable memory
    v.setUint16(0x2c, PCI_VENDOR_ID_REDHAT_QUMRANET, true);
    v.setUint16(0x2e, 0x1100, true);
    v.setUint8(0x34, CAP_COMMON);
    v.setUint8(0x3d, 1); // INTA#
    this.vendorCap(CAP_COMMON, CAP_NOTIFY, 16, VIRTIO_PCI_CAP_COMMON_CFG, BAR0_COMMON, COMMON_SIZE);
    this.vendorCap(CAP_NOTIFY, CAP_ISR, 20, VIRTIO_PCI_CAP_NOTIFY_CFG, BAR0_NOTIFY, NOTIFY_OFF_MULTIPLIER * this.device.queueMaxSizes.length);
    v.setUint32(CAP_NOTIFY + 16, NOTIFY_OFF_MULTIPLIER, true);
    this.vendorCap(CAP_ISR, CAP_DEVICE, 16, VIRTIO_PCI_CAP_ISR_CFG, BAR0_ISR, 1);
    this.vendorCap(CAP_DEVICE, CAP_PCI_CFG, 16, VIRTIO_PCI_CAP_DEVICE_CFG, BAR0_DEVICE, Math.max(4, this.device.configSize));
    this.vendorCap(CAP_PCI_CFG, CAP_MSIX, 20, VIRTIO_PCI_CAP_PCI_CFG, 0, 0);
    // The PCI configuration access capability: bar, offset, length and data are driver-writable.
    this.writable.fill(0xff, CAP_PCI_CFG + 4, CAP_PCI_CFG + 5);
    this.writable.fill(0xff, CAP_PCI_CFG + 8, CAP_PCI_CFG + 20);
    // MSI-X: table and PBA in BAR0.
    v.setUint8(CAP_MSIX, PCI_CAP_ID_MSIX);
    v.setUint8(CAP_MSIX + 1, 0);
    v.setUint16(CAP_MSIX + 2, this.vectors - 1, true);
    v.setUint32(CAP_MSIX + 4, BAR0_MSIX_TABLE, true);
    v.setUint32(CAP_MSIX + 8, BAR0_MSIX_PBA, true);
    this.writable[CAP_MSIX + 3] = 0xc0; // enable, function mask
    // Command register: memory space, bus master, INTx disable; BAR0 address bits; interrupt line.
    this.writable[0x04] = 0x06;
    this.writable[0x05] = 0x04;
    // BAR0 address bits: writing all ones then reading back gives the size, as PCI BAR sizing expects.
    const barMask = ~(BAR0_SIZE - 1) & 0xfffffff0;
    for (let i = 0; i < 4; i++) this.writable[0x10 + i] = (barMask >>> (8 * i)) & 0xff;
    this.writable.fill(0xff, 0x14, 0x18);
    this.writable[0x3c] = 0xff;
  }

  private vendorCap(at: number, next: number, len: number, type: number, offset: number, length: number): void {
    const v = this.cfgView;
    v.setUint8(at, PCI_CAP_ID_VNDR);
    v.setUint8(at + 1, next);
    v.setUint8(at + 2, len);
    v.setUint8(at + 3, type);
    v.setUint8(at + 4, 0);
    v.setUint32(at + 8, offset, true);
    v.setUint32(at + 12, length, true);
  }

  pciConfigRead(offset: number, size: 1 | 2 | 4): number {
    if (offset < 0 || offset + size > 256) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    if (offset === CAP_PCI_CFG + 16 && size <= 4) return this.pciCfgWindow(undefined, size);
    return readBytes(this.cfg, offset, size);
  }

  pciConfigWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset < 0 || offset + size > 256) return;
    if (offset === CAP_PCI_CFG + 16) {
      this.pciCfgWindow(value, size);
      return;
    }
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const w = this.writable[o]!;
      const b = (value >>> (8 * i)) & 0xff;
      this.cfg[o] = (this.cfg[o]! & ~w) | (b & w);
    }
    if (offset <= CAP_MSIX + 3 && offset + size > CAP_MSIX + 2) this.deliverPending();
  }

  /** The address BAR0 is programmed at. */
  get bar0(): bigint {
    return (BigInt(this.cfgView.getUint32(0x14, true)) << 32n) | BigInt((this.cfgView.getUint32(0x10, true) & ~0xf) >>> 0);
  }

  private get msixEnabled(): boolean {
    return (this.cfg[CAP_MSIX + 3]! & 0x80) !== 0;
  }
  private get msixFunctionMasked(): boolean {
    return (this.cfg[CAP_MSIX + 3]! & 0x40) !== 0;
  }

  /** VIRTIO_PCI_CAP_PCI_CFG: a window onto the BAR selected by the capability's bar/offset/length. */
  private pciCfgWindow(value: number | undefined, size: 1 | 2 | 4): number {
    const bar = this.cfg[CAP_PCI_CFG + 4]!;
    const off = this.cfgView.getUint32(CAP_PCI_CFG + 8, true);
    const len = this.cfgView.getUint32(CAP_PCI_CFG + 12, true);
    if (bar !== 0 || (len !== 1 && len !== 2 && len !== 4) || len > size) return 0;
    if (value === undefined) return Number(this.barRead(0, off, len));
    this.barWrite(0, off, len, BigInt(value >>> 0) & ((1n << BigInt(8 * len)) - 1n));
    return 0;
  }

  // ---- BAR0 ---------------------------------------------------------------------------------------

  /** Accesses to BAR0 by offset (the contract's name for the memory window a driver maps). */
  mmioRead(offset: number, size: 1 | 2 | 4 | 8): bigint {
    return this.barRead(0, offset, size);
  }
  mmioWrite(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    this.barWrite(0, offset, size, value);
  }

  barRead(bar: number, offset: number, size: 1 | 2 | 4 | 8): bigint {
    if (bar !== 0 || offset < 0 || offset + size > BAR0_SIZE) return 0n;
    if (offset < BAR0_COMMON + COMMON_SIZE) {
      if (size === 8) return this.commonRead(offset, 4) | (this.commonRead(offset + 4, 4) << 32n);
      return this.commonRead(offset, size);
    }
    if (offset === BAR0_ISR) {
      // spec: reading the ISR status clears it and deasserts the interrupt.
      const isr = this.core.interruptStatus;
      this.core.interruptStatus = 0;
      if (isr !== 0) this.onInterrupt(false);
      return BigInt(isr);
    }
    if (offset >= BAR0_DEVICE && offset < BAR0_DEVICE + this.device.configSize) {
      if (offset - BAR0_DEVICE + size > this.device.configSize) return 0n;
      return this.device.readConfig(offset - BAR0_DEVICE, size);
    }
    if (offset >= BAR0_MSIX_TABLE && offset + size <= BAR0_MSIX_TABLE + 16 * this.vectors) {
      return readBigBytes(this.msixTable, offset - BAR0_MSIX_TABLE, size);
    }
    if (offset >= BAR0_MSIX_PBA && offset < BAR0_MSIX_PBA + 8) {
      let bits = 0n;
      for (let v = 0; v < this.vectors && v < 64; v++) if (this.pending[v]) bits |= 1n << BigInt(v);
      return (bits >> BigInt(8 * (offset - BAR0_MSIX_PBA))) & ((1n << BigInt(8 * size)) - 1n);
    }
    return 0n;
  }

  barWrite(bar: number, offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    if (bar !== 0 || offset < 0 || offset + size > BAR0_SIZE) return;
    if (offset < BAR0_COMMON + COMMON_SIZE) {
      if (size === 8) {
        this.commonWrite(offset, 4, Number(value & 0xffffffffn));
        this.commonWrite(offset + 4, 4, Number(value >> 32n));
      } else {
        this.commonWrite(offset, size, Number(value));
      }
      return;
    }
    if (offset >= BAR0_DEVICE && offset < BAR0_DEVICE + this.device.configSize) {
      if (offset - BAR0_DEVICE + size <= this.device.configSize) this.device.writeConfig(offset - BAR0_DEVICE, size, value);
      return;
    }
    if (offset >= BAR0_NOTIFY && offset < BAR0_NOTIFY + NOTIFY_OFF_MULTIPLIER * this.device.queueMaxSizes.length) {
      // The queue is the one whose notify offset the write hit (the value carries it too).
      this.core.notify((offset - BAR0_NOTIFY) / NOTIFY_OFF_MULTIPLIER);
      return;
    }
    if (offset >= BAR0_MSIX_TABLE && offset + size <= BAR0_MSIX_TABLE + 16 * this.vectors) {
      writeBigBytes(this.msixTable, offset - BAR0_MSIX_TABLE, size, value);
      this.deliverPending();
    }
  }

  private commonRead(off: number, size: 1 | 2 | 4): bigint {
    const c = this.core;
    const q = c.queues[c.queueSel];
    let v: number;
    switch (off & ~(size === 4 ? 3 : size === 2 ? 1 : 0)) {
      case VIRTIO_PCI_COMMON_DFSELECT:
        v = c.deviceFeaturesSel;
        break;
      case VIRTIO_PCI_COMMON_DF:
        v = c.deviceFeatureWord();
        break;
      case VIRTIO_PCI_COMMON_GFSELECT:
        v = c.driverFeaturesSel;
        break;
      case VIRTIO_PCI_COMMON_GF:
        v = c.driverFeaturesSel > 1 ? 0 : Number((c.driverFeatures >> BigInt(32 * c.driverFeaturesSel)) & 0xffffffffn);
        break;
      case VIRTIO_PCI_COMMON_MSIX:
        v = this.configVector;
        break;
      case VIRTIO_PCI_COMMON_NUMQ:
        v = c.queues.length;
        break;
      case VIRTIO_PCI_COMMON_STATUS:
        v = c.status;
        break;
      case VIRTIO_PCI_COMMON_CFGGENERATION:
        v = c.configGeneration & 0xff;
        break;
      case VIRTIO_PCI_COMMON_Q_SELECT:
        v = c.queueSel;
        break;
      case VIRTIO_PCI_COMMON_Q_SIZE:
        v = q ? q.size : 0;
        break;
      case VIRTIO_PCI_COMMON_Q_MSIX:
        v = q ? q.msixVector : VIRTIO_MSI_NO_VECTOR;
        break;
      case VIRTIO_PCI_COMMON_Q_ENABLE:
        v = q?.ready ? 1 : 0;
        break;
      case VIRTIO_PCI_COMMON_Q_NOFF:
      case VIRTIO_PCI_COMMON_Q_NDATA:
        v = q ? c.queueSel : 0;
        break;
      case VIRTIO_PCI_COMMON_Q_DESCLO:
        v = q ? Number(q.desc & 0xffffffffn) : 0;
        break;
      case VIRTIO_PCI_COMMON_Q_DESCHI:
        v = q ? Number(q.desc >> 32n) : 0;
        break;
      case VIRTIO_PCI_COMMON_Q_AVAILLO:
        v = q ? Number(q.driver & 0xffffffffn) : 0;
        break;
      case VIRTIO_PCI_COMMON_Q_AVAILHI:
        v = q ? Number(q.driver >> 32n) : 0;
        break;
      case VIRTIO_PCI_COMMON_Q_USEDLO:
        v = q ? Number(q.device & 0xffffffffn) : 0;
        break;
      case VIRTIO_PCI_COMMON_Q_USEDHI:
        v = q ? Number(q.device >> 32n) : 0;
        break;
      default:
        v = 0;
    }
    return BigInt(v >>> 0);
  }

  private commonWrite(off: number, _size: 1 | 2 | 4, value: number): void {
    const c = this.core;
    const q = c.queues[c.queueSel];
    const queueWritable = q !== undefined && !q.ready;
    const v = value >>> 0;
    switch (off) {
      case VIRTIO_PCI_COMMON_DFSELECT:
        c.deviceFeaturesSel = v;
        return;
      case VIRTIO_PCI_COMMON_GFSELECT:
        c.driverFeaturesSel = v;
        return;
      case VIRTIO_PCI_COMMON_GF:
        c.writeDriverFeatureWord(v);
        return;
      case VIRTIO_PCI_COMMON_MSIX:
        // spec: a vector the device cannot use reads back as NO_VECTOR.
        this.configVector = v < this.vectors ? v : VIRTIO_MSI_NO_VECTOR;
        return;
      case VIRTIO_PCI_COMMON_STATUS:
        c.writeStatus(v & 0xff);
        if ((v & 0xff) === 0) {
          this.configVector = VIRTIO_MSI_NO_VECTOR;
          this.onInterrupt(false);
        }
        return;
      case VIRTIO_PCI_COMMON_Q_SELECT:
        c.queueSel = v & 0xffff;
        return;
      case VIRTIO_PCI_COMMON_Q_SIZE:
        if (queueWritable) q.size = v & 0xffff;
        return;
      case VIRTIO_PCI_COMMON_Q_MSIX:
        if (q) q.msixVector = (v & 0xffff) < this.vectors ? v & 0xffff : VIRTIO_MSI_NO_VECTOR;
        return;
      case VIRTIO_PCI_COMMON_Q_ENABLE:
        // spec: the driver writes 1 to enable; writing 0 is not allowed (use queue_reset).
        if ((v & 1) === 1 && q && !q.ready) c.setQueueReady(c.queueSel, true);
        return;
      case VIRTIO_PCI_COMMON_Q_DESCLO:
        if (queueWritable) q.desc = (q.desc & ~0xffffffffn) | BigInt(v);
        return;
      case VIRTIO_PCI_COMMON_Q_DESCHI:
        if (queueWritable) q.desc = (q.desc & 0xffffffffn) | (BigInt(v) << 32n);
        return;
      case VIRTIO_PCI_COMMON_Q_AVAILLO:
        if (queueWritable) q.driver = (q.driver & ~0xffffffffn) | BigInt(v);
        return;
      case VIRTIO_PCI_COMMON_Q_AVAILHI:
        if (queueWritable) q.driver = (q.driver & 0xffffffffn) | (BigInt(v) << 32n);
        return;
      case VIRTIO_PCI_COMMON_Q_USEDLO:
        if (queueWritable) q.device = (q.device & ~0xffffffffn) | BigInt(v);
        return;
      case VIRTIO_PCI_COMMON_Q_USEDHI:
        if (queueWritable) q.device = (q.device & 0xffffffffn) | (BigInt(v) << 32n);
        return;
      default:
        return;
    }
  }

  // ---- interrupts -------------------------------------------------------------------------------

  private raise(bits: number, queue: number): void {
    if (!this.msixEnabled) {
      this.onInterrupt(true);
      return;
    }
    // spec: with MSI-X the ISR status is not used for queue notifications.
    if (!(bits & VIRTIO_INT_CONFIG)) this.core.interruptStatus &= ~bits;
    const vector = queue >= 0 ? (this.core.queues[queue]?.msixVector ?? VIRTIO_MSI_NO_VECTOR) : this.configVector;
    if (vector === VIRTIO_MSI_NO_VECTOR || vector >= this.vectors) return;
    this.signal(vector);
  }

  private signal(vector: number): void {
    const masked = this.msixFunctionMasked || (this.msixTable.getUint32(16 * vector + 12, true) & 1) !== 0;
    if (masked) {
      this.pending[vector] = 1;
      return;
    }
    this.pending[vector] = 0;
    const lo = this.msixTable.getUint32(16 * vector, true);
    const hi = this.msixTable.getUint32(16 * vector + 4, true);
    this.onMsi((BigInt(hi) << 32n) | BigInt(lo), this.msixTable.getUint32(16 * vector + 8, true));
  }

  /** Deliver messages that became unmasked. */
  private deliverPending(): void {
    if (!this.msixEnabled) return;
    for (let v = 0; v < this.vectors; v++) if (this.pending[v]) this.signal(v);
  }
}

function readBytes(buf: Uint8Array, offset: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + (buf[offset + i] ?? 0);
  return v;
}

function readBigBytes(view: DataView, offset: number, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(view.getUint8(offset + i));
  return v;
}

function writeBigBytes(view: DataView, offset: number, size: number, value: bigint): void {
  for (let i = 0; i < size; i++) view.setUint8(offset + i, Number((value >> BigInt(8 * i)) & 0xffn));
}
