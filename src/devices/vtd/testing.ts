/**
 * A rig for VT-d tests: memory, a table-page allocator, and helpers that build root, context and PASID
 * tables in memory the way a driver does, then program the unit only through its registers.
 */
import { PageAllocator } from '../../mem/page-allocator.js';
import { PhysMemory } from '../../mem/phys-memory.js';
import { createPgtable } from '../../pgtable/index.js';
import type { RadixPgtable } from '../../pgtable/radix.js';
import { VtdIommu, type PageGroupResponse, type VtdOptions, type VtdRequest, type VtdTranslation } from './device.js';
import * as R from './regs.js';

export class VtdRig {
  readonly memory = new PhysMemory(1n << 34n);
  readonly alloc = new PageAllocator(this.memory, { base: 0x10000000n, size: 0x4000000n });
  readonly msis: { address: bigint; data: number }[] = [];
  readonly unit: VtdIommu;
  readonly root: bigint;
  private readonly contextTables = new Map<number, bigint>();

  readonly responses: PageGroupResponse[] = [];

  constructor(opts: Omit<VtdOptions, 'memory' | 'onInterrupt' | 'onPageResponse'> = {}) {
    // (observer and devices pass through)
    this.unit = new VtdIommu({
      ...opts,
      memory: this.memory,
      onInterrupt: (address, data) => void this.msis.push({ address, data }),
      onPageResponse: (r) => void this.responses.push(r),
    });
    this.root = this.alloc.alloc();
  }

  /** The last request `translate` sent (to check fault records against). */
  lastRequest: VtdRequest | undefined;

  translate(req: VtdRequest): VtdTranslation {
    this.lastRequest = req;
    return this.unit.translate(req);
  }

  reg(off: number, size: 4 | 8 = 4): bigint {
    return this.unit.mmioRead(off, size);
  }
  wr(off: number, value: bigint, size: 4 | 8 = 4): void {
    this.unit.mmioWrite(off, size, value);
  }

  /** GCMD the way drivers do it: current status bits plus one command. */
  command(bit: number, on = true): void {
    const persistent = Number(this.reg(R.DMAR_GSTS_REG)) & (R.GCMD_TE | R.GCMD_QIE | R.GCMD_IRE | R.GCMD_CFI);
    this.wr(R.DMAR_GCMD_REG, BigInt(on ? (persistent | bit) >>> 0 : persistent & ~bit));
  }

  /** Point RTADDR at the root table (legacy or scalable), latch it with SRTP, enable translation. */
  enable(scalable = false): void {
    this.wr(R.DMAR_RTADDR_REG, this.root | (scalable ? 0x400n : 0n), 8);
    this.command(R.GCMD_SRTP);
    this.command(R.GCMD_TE);
  }

  /** A second-stage table (the engine writes real VT-d entries into the rig's memory). */
  ssTable(awBits: 39 | 48 | 57 = 48): RadixPgtable {
    return createPgtable('vtd-ss', { pgsizeBitmap: (1n << 12n) | (1n << 21n) | (1n << 30n), ias: awBits, oas: 48 }, this.memory, this.alloc);
  }

  fsTable(levels: 4 | 5 = 4, presetAccessDirty = false): RadixPgtable {
    return createPgtable('x86-fs', { pgsizeBitmap: (1n << 12n) | (1n << 21n), ias: levels === 4 ? 48 : 57, oas: 48, quirks: { presetAccessDirty } }, this.memory, this.alloc);
  }

  /** Legacy context entry for `sid`: TT, AW (1: 39, 2: 48, 3: 57), DID, table. */
  legacyContext(sid: number, e: { tt?: number; aw?: number; did?: number; table?: bigint; fpd?: boolean; raw?: [bigint, bigint] }): void {
    const bus = sid >> 8;
    let ctp = this.contextTables.get(bus);
    if (ctp === undefined) {
      ctp = this.alloc.alloc();
      this.contextTables.set(bus, ctp);
      this.memory.writeU64(this.root + BigInt(16 * bus), ctp | 1n);
    }
    const at = ctp + BigInt(16 * (sid & 0xff));
    const [lo, hi] = e.raw ?? [(e.table ?? 0n) | (BigInt(e.tt ?? 0) << 2n) | (e.fpd ? 2n : 0n) | 1n, BigInt(e.aw ?? 2) | (BigInt(e.did ?? 1) << 8n)];
    this.memory.writeU64(at, lo);
    this.memory.writeU64(at + 8n, hi);
  }

  /** Scalable context entry for `sid`; returns the PASID directory it points to. */
  scalableContext(sid: number, e: { pdts?: number; paside?: boolean; ridPasid?: number; fpd?: boolean; pre?: boolean } = {}): bigint {
    const bus = sid >> 8;
    const devfn = sid & 0xff;
    let ctp = this.contextTables.get(bus * 2 + (devfn >= 128 ? 1 : 0));
    if (ctp === undefined) {
      ctp = this.alloc.alloc();
      this.contextTables.set(bus * 2 + (devfn >= 128 ? 1 : 0), ctp);
      this.memory.writeU64(this.root + BigInt(16 * bus + (devfn >= 128 ? 8 : 0)), ctp | 1n);
    }
    const dir = this.alloc.alloc();
    const at = ctp + BigInt(32 * (devfn & 0x7f));
    this.memory.writeU64(at, dir | (BigInt(e.pdts ?? 0) << 9n) | (e.pre ? 0x10n : 0n) | (e.paside ? 8n : 0n) | (e.fpd ? 2n : 0n) | 1n);
    this.memory.writeU64(at + 8n, BigInt(e.ridPasid ?? 0));
    return dir;
  }

  /** PASID table entry (allocating the directory entry's table on first use). */
  pasidEntry(
    dir: bigint,
    pasid: number,
    e: { pgtt: number; did?: number; aw?: number; ss?: bigint; fs?: bigint; fspm?: number; sre?: boolean; ere?: boolean; wpe?: boolean; fpd?: boolean },
  ): void {
    const de = dir + BigInt(8 * (pasid >> 6));
    let table = this.memory.readU64(de) & ~0xfffn;
    if (table === 0n) {
      table = this.alloc.alloc();
      this.memory.writeU64(de, table | 1n);
    }
    const at = table + BigInt(64 * (pasid & 63));
    this.memory.writeU64(at, (e.ss ?? 0n) | (BigInt(e.pgtt) << 6n) | (BigInt(e.aw ?? 2) << 2n) | (e.fpd ? 2n : 0n) | 1n);
    this.memory.writeU64(at + 8n, BigInt(e.did ?? 1));
    this.memory.writeU64(at + 16n, (e.fs ?? 0n) | (BigInt(e.fspm ?? 0) << 2n) | (e.sre ? 1n : 0n) | (e.ere ? 2n : 0n) | (e.wpe ? 0x10n : 0n));
  }

  /** The fault record at index i: [lo, hi]. */
  faultRecord(i = 0): [bigint, bigint] {
    return [this.reg(R.FRO_OFFSET + 16 * i, 8), this.reg(R.FRO_OFFSET + 16 * i + 8, 8)];
  }
}
