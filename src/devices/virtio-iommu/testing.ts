/**
 * A rig that drives a VirtioIommu only through its virtio-mmio transport, the way a driver does: typed
 * helpers encode each request with the wire layouts, submit it on the request queue and return the status
 * from the tail.
 */
import { PhysMemory } from '../../mem/phys-memory.js';
import type { TraceEvent } from '../../trace/catalog.js';
import { VirtioMmioDriver } from '../../virtio/driver.js';
import { VirtioMmioTransport } from '../../virtio/mmio.js';
import { VirtioIommu, type VirtioIommuOptions } from './device.js';
import {
  VIRTIO_IOMMU_FAULT,
  VIRTIO_IOMMU_REQ_ATTACH,
  VIRTIO_IOMMU_REQ_DETACH,
  VIRTIO_IOMMU_REQ_MAP,
  VIRTIO_IOMMU_REQ_PROBE,
  VIRTIO_IOMMU_REQ_UNMAP,
  VIRTIO_IOMMU_T_ATTACH,
  VIRTIO_IOMMU_T_DETACH,
  VIRTIO_IOMMU_T_MAP,
  VIRTIO_IOMMU_T_PROBE,
  VIRTIO_IOMMU_T_UNMAP,
} from './wire.js';

export const ALL_FEATURES = (1n << 64n) - 1n;

export interface RigOptions extends Partial<VirtioIommuOptions> {
  /** Features the driver accepts (default: everything offered). */
  accept?: bigint;
  memorySize?: bigint;
  /** Queue sizes the driver sets up (default 64, 64). */
  queueSizes?: number[];
}

export class Rig {
  readonly memory: PhysMemory;
  readonly device: VirtioIommu;
  readonly transport: VirtioMmioTransport;
  readonly driver: VirtioMmioDriver;
  readonly events: TraceEvent[] = [];
  interrupts = 0;

  constructor(opts: RigOptions = {}) {
    this.memory = new PhysMemory(opts.memorySize ?? 1n << 32n);
    this.device = new VirtioIommu({
      endpoints: [1, 2, 3],
      ...opts,
      trace: (e) => void this.events.push(e),
    });
    this.transport = new VirtioMmioTransport(this.device, {
      memory: this.memory,
      onInterrupt: (level) => {
        if (level) this.interrupts++;
      },
    });
    this.driver = new VirtioMmioDriver(this.transport, this.memory, { base: 0x1000000n, size: 0x1000000n });
    this.driver.init(opts.accept ?? ALL_FEATURES, opts.queueSizes ?? [64, 64]);
  }

  /** Send raw request bytes with an `inLen`-byte writable part; returns used length and written bytes. */
  raw(out: Uint8Array, inLen = 4): { used: number; data: Uint8Array } {
    return this.driver.request(0, out, inLen);
  }

  /** Status byte of a request with a 4-byte tail. */
  private status(out: Uint8Array): number {
    const r = this.raw(out, 4);
    if (r.used !== 4) throw new Error(`request returned used length ${r.used}`);
    return r.data[0]!;
  }

  attach(domain: number, endpoint: number, flags = 0, reserved = new Uint8Array(4)): number {
    return this.status(VIRTIO_IOMMU_REQ_ATTACH.serialize({ type: VIRTIO_IOMMU_T_ATTACH, domain, endpoint, flags, reserved }));
  }

  detach(domain: number, endpoint: number, reserved = new Uint8Array(8)): number {
    return this.status(VIRTIO_IOMMU_REQ_DETACH.serialize({ type: VIRTIO_IOMMU_T_DETACH, domain, endpoint, reserved }));
  }

  map(domain: number, virtStart: bigint, virtEnd: bigint, physStart: bigint, flags = 3): number {
    return this.status(
      VIRTIO_IOMMU_REQ_MAP.serialize({ type: VIRTIO_IOMMU_T_MAP, domain, virt_start: virtStart, virt_end: virtEnd, phys_start: physStart, flags }),
    );
  }

  unmap(domain: number, virtStart: bigint, virtEnd: bigint, reserved = new Uint8Array(4)): number {
    return this.status(
      VIRTIO_IOMMU_REQ_UNMAP.serialize({ type: VIRTIO_IOMMU_T_UNMAP, domain, virt_start: virtStart, virt_end: virtEnd, reserved }),
    );
  }

  probe(endpoint: number, inLen?: number): { used: number; status: number; properties: Uint8Array } {
    const len = inLen ?? this.device.probeSize + 4;
    const r = this.raw(VIRTIO_IOMMU_REQ_PROBE.serialize({ type: VIRTIO_IOMMU_T_PROBE, endpoint }), len);
    return { used: r.used, status: r.data[len - 4]!, properties: r.data.subarray(0, len - 4) };
  }

  /** Give the device `n` empty 24-byte event buffers. */
  postEventBuffers(n: number): void {
    for (let i = 0; i < n; i++) this.driver.submit(1, new Uint8Array(0), VIRTIO_IOMMU_FAULT.size);
    this.driver.kick(1);
  }

  /** Fault records the device returned on the event queue since the last call. */
  takeFaults(): ReturnType<typeof VIRTIO_IOMMU_FAULT.parse>[] {
    return this.driver.reap(1).map((u) => {
      const q = this.driver.queues[1]!;
      const buf = this.memory.read(BigInt(this.memory.readU32n(q.desc + 16 * u.id)), VIRTIO_IOMMU_FAULT.size);
      return VIRTIO_IOMMU_FAULT.parse(buf);
    });
  }
}
