/**
 * The ACPI system description table header (ACPI 6.5, 5.2.6) shared by VIOT, DMAR and IORT: build a table
 * from its body with a correct length and checksum, and check a table before parsing it.
 */
import { ascii, defineLayout, u32, u8 } from '../layout/layout.js';
import { FirmwareError } from './errors.js';

export const ACPI_HEADER = defineLayout('acpi_table_header', 36, {
  signature: ascii(0, 4),
  length: u32(4),
  revision: u8(8),
  checksum: u8(9),
  oem_id: ascii(10, 6),
  oem_table_id: ascii(16, 8),
  oem_revision: u32(24),
  creator_id: ascii(28, 4),
  creator_revision: u32(32),
});

export interface AcpiOem {
  oemId?: string;
  oemTableId?: string;
  oemRevision?: number;
  creatorId?: string;
  creatorRevision?: number;
}

export const DEFAULT_OEM: Required<AcpiOem> = {
  oemId: 'VIOMMU',
  oemTableId: 'VIOMMUTB',
  oemRevision: 1,
  creatorId: 'VIOM',
  creatorRevision: 1,
};

/** Sum of all bytes modulo 256 (a valid table sums to zero). */
export function acpiSum(bytes: Uint8Array): number {
  let s = 0;
  for (const b of bytes) s = (s + b) & 0xff;
  return s;
}

/** Header + body with length and checksum filled in. */
export function buildAcpiTable(signature: string, revision: number, oem: AcpiOem, body: Uint8Array): Uint8Array {
  const o = { ...DEFAULT_OEM, ...oem };
  const table = new Uint8Array(ACPI_HEADER.size + body.length);
  table.set(
    ACPI_HEADER.serialize({
      signature,
      length: table.length,
      revision,
      checksum: 0,
      oem_id: o.oemId,
      oem_table_id: o.oemTableId,
      oem_revision: o.oemRevision,
      creator_id: o.creatorId,
      creator_revision: o.creatorRevision,
    }),
  );
  table.set(body, ACPI_HEADER.size);
  table[9] = (256 - acpiSum(table)) & 0xff;
  return table;
}

export type AcpiHeader = ReturnType<typeof ACPI_HEADER.parse>;

/** A table from a parsed header and a body (length and checksum recomputed). */
export function rebuildWithHeader(h: AcpiHeader, body: Uint8Array): Uint8Array {
  return buildAcpiTable(h.signature, h.revision, { oemId: h.oem_id, oemTableId: h.oem_table_id, oemRevision: h.oem_revision, creatorId: h.creator_id, creatorRevision: h.creator_revision }, body);
}


/** Parse and check a table's header: signature, length within the buffer, checksum. */
export function checkAcpiTable(bytes: Uint8Array, signature: string): AcpiHeader {
  if (bytes.length < ACPI_HEADER.size) {
    throw new FirmwareError('ACPI_TRUNCATED', `${signature}: ${bytes.length} bytes cannot hold a 36-byte header`);
  }
  const h = ACPI_HEADER.parse(bytes);
  if (h.signature !== signature) throw new FirmwareError('ACPI_SIGNATURE', `expected ${signature}, found ${JSON.stringify(h.signature)}`);
  if (h.length < ACPI_HEADER.size || h.length > bytes.length) {
    throw new FirmwareError('ACPI_LENGTH', `${signature}: header length ${h.length} outside 36..${bytes.length}`, { length: h.length });
  }
  if (acpiSum(bytes.subarray(0, h.length)) !== 0) throw new FirmwareError('ACPI_CHECKSUM', `${signature}: checksum does not sum to zero`);
  return h;
}

/** Bounds-checked cursor over a table body: every read past the end is a typed error, never a wrap. */
export class Reader {
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(off: number, len: number, field: string): void {
    if (!Number.isInteger(off) || off < 0 || off + len > this.bytes.length) {
      throw new FirmwareError('ACPI_OUT_OF_BOUNDS', `${this.what}: ${field} at ${off} (+${len}) is outside ${this.bytes.length} bytes`, { offset: off });
    }
  }
  u8(off: number, field: string): number {
    this.need(off, 1, field);
    return this.view.getUint8(off);
  }
  u16(off: number, field: string): number {
    this.need(off, 2, field);
    return this.view.getUint16(off, true);
  }
  u32(off: number, field: string): number {
    this.need(off, 4, field);
    return this.view.getUint32(off, true);
  }
  u64(off: number, field: string): bigint {
    this.need(off, 8, field);
    return this.view.getBigUint64(off, true);
  }
}

/** Little-endian writer that grows as needed. */
export class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf);
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): this {
    this.ensure(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
    return this;
  }
  u16(v: number): this {
    this.ensure(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
    return this;
  }
  u32(v: number): this {
    this.ensure(4);
    this.view.setUint32(this.length, v >>> 0, true);
    this.length += 4;
    return this;
  }
  u64(v: bigint): this {
    this.ensure(8);
    this.view.setBigUint64(this.length, v, true);
    this.length += 8;
    return this;
  }
  zeros(n: number): this {
    this.ensure(n);
    this.length += n;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }
  /** Overwrite a u16 already written (lengths known only later). */
  patchU16(at: number, v: number): void {
    this.view.setUint16(at, v, true);
  }
  patchU32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0, true);
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}
