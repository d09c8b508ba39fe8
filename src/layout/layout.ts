/**
 * Binary structures declared once, as data, and parsed, serialised and rendered from that declaration.
 *
 * A layout is a name, a size in bytes and named fields. Bit positions count from bit 0 of byte 0 across the
 * whole structure (so a 256-bit context entry's DID is `bits(87, 72)` exactly as the spec writes it), and a
 * structure can be up to 512 bits or any number of bytes wide.
 *
 * Field kinds and the JavaScript type of their value:
 * - `bits(hi, lo)`, `u8/u16/u32(offset)`: at most 32 bits wide -> `number`;
 * - `wide(hi, lo)`, `u64(offset)`: 33 bits or wider -> `bigint` (never a float path);
 * - `addr(hi, lo)`: an address field kept in place (the value is the address, with bits below `lo` zero), as
 *   the spec's "63:12 pointer" fields read -> `bigint`;
 * - `ascii(offset, length)`: a fixed-width text field (ACPI signatures and OEM ids) -> `string`;
 * - `bytes(offset, length)`: opaque bytes -> `Uint8Array`.
 *
 * Declarations are checked when made: fields must lie inside the structure and must not overlap.
 */
import { ViommuError, hex } from '../errors.js';

export class LayoutError extends ViommuError {}

export interface NumField {
  readonly kind: 'num';
  readonly hi: number;
  readonly lo: number;
}
export interface BigField {
  readonly kind: 'big';
  readonly hi: number;
  readonly lo: number;
  /** Value is kept at its bit position (address fields). */
  readonly inPlace: boolean;
}
export interface AsciiField {
  readonly kind: 'ascii';
  readonly offset: number;
  readonly length: number;
  /** Byte that pads a shorter string on serialisation and is stripped from the end on parse. */
  readonly pad: number;
}
export interface BytesField {
  readonly kind: 'bytes';
  readonly offset: number;
  readonly length: number;
}
export type Field = NumField | BigField | AsciiField | BytesField;
export type FieldSet = Readonly<Record<string, Field>>;

export type ValueOf<F extends Field> = F extends NumField
  ? number
  : F extends BigField
    ? bigint
    : F extends AsciiField
      ? string
      : Uint8Array;
export type Values<S extends FieldSet> = { -readonly [K in keyof S]: ValueOf<S[K]> };

export function bits(hi: number, lo: number): NumField {
  return { kind: 'num', hi, lo };
}
export function bit(n: number): NumField {
  return { kind: 'num', hi: n, lo: n };
}
export function wide(hi: number, lo: number): BigField {
  return { kind: 'big', hi, lo, inPlace: false };
}
export function addr(hi: number, lo: number): BigField {
  return { kind: 'big', hi, lo, inPlace: true };
}
export function u8(offset: number): NumField {
  return bits(offset * 8 + 7, offset * 8);
}
export function u16(offset: number): NumField {
  return bits(offset * 8 + 15, offset * 8);
}
export function u32(offset: number): NumField {
  return bits(offset * 8 + 31, offset * 8);
}
export function u64(offset: number): BigField {
  return wide(offset * 8 + 63, offset * 8);
}
export function ascii(offset: number, length: number, pad: ' ' | '\0' = ' '): AsciiField {
  return { kind: 'ascii', offset, length, pad: pad.charCodeAt(0) };
}
export function bytes(offset: number, length: number): BytesField {
  return { kind: 'bytes', offset, length };
}

function fieldBitRange(f: Field): [lo: number, hi: number] {
  switch (f.kind) {
    case 'num':
    case 'big':
      return [f.lo, f.hi];
    case 'ascii':
    case 'bytes':
      return [f.offset * 8, (f.offset + f.length) * 8 - 1];
  }
}

export class Layout<S extends FieldSet> {
  readonly fieldNames: readonly (keyof S & string)[];

  constructor(
    readonly name: string,
    /** Size in bytes. */
    readonly size: number,
    readonly fields: S,
  ) {
    if (!Number.isInteger(size) || size <= 0) {
      throw new LayoutError('LAYOUT_BAD_DECL', `${name}: size ${size} is not a positive integer`);
    }
    const used = new Uint8Array(size * 8);
    for (const [fname, f] of Object.entries(fields)) {
      const [lo, hi] = fieldBitRange(f);
      const where = `${name}.${fname}`;
      if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || hi < lo || hi >= size * 8) {
        throw new LayoutError('LAYOUT_BAD_DECL', `${where}: bits ${hi}:${lo} do not fit ${size} bytes`);
      }
      if (f.kind === 'num' && hi - lo + 1 > 32) {
        throw new LayoutError('LAYOUT_BAD_DECL', `${where}: ${hi - lo + 1}-bit field must be declared wide()`);
      }
      if (f.kind === 'big' && !f.inPlace && hi - lo + 1 <= 32) {
        throw new LayoutError('LAYOUT_BAD_DECL', `${where}: ${hi - lo + 1}-bit field must be declared bits()`);
      }
      for (let b = lo; b <= hi; b++) {
        if (used[b]) throw new LayoutError('LAYOUT_BAD_DECL', `${where}: bit ${b} overlaps another field`);
        used[b] = 1;
      }
    }
    this.fieldNames = Object.keys(fields) as (keyof S & string)[];
  }

  /**
   * Byte offset of a byte-aligned field, for hot paths that read one field straight from memory while the
   * layout stays the single declaration of where it is.
   */
  byteOffset(name: keyof S & string): number {
    const [lo] = fieldBitRange(this.fields[name]!);
    if (lo % 8 !== 0) throw new LayoutError('LAYOUT_NOT_BYTE_ALIGNED', `${this.name}.${name} does not start on a byte`);
    return lo / 8;
  }

  /** Decode every field from `buf` starting at `offset`. */
  parse(buf: Uint8Array, offset = 0): Values<S> {
    if (offset < 0 || offset + this.size > buf.length) {
      throw new LayoutError('LAYOUT_SHORT', `${this.name}: needs ${this.size} bytes at ${offset}, have ${buf.length}`, {
        offset,
        length: buf.length,
      });
    }
    const out: Record<string, unknown> = {};
    for (const name of this.fieldNames) out[name] = readField(buf, offset, this.fields[name]!);
    return out as Values<S>;
  }

  /** Read one field without decoding the rest. */
  get<K extends keyof S & string>(buf: Uint8Array, name: K, offset = 0): ValueOf<S[K]> {
    if (offset < 0 || offset + this.size > buf.length) {
      throw new LayoutError('LAYOUT_SHORT', `${this.name}: needs ${this.size} bytes at ${offset}, have ${buf.length}`);
    }
    return readField(buf, offset, this.fields[name]!) as ValueOf<S[K]>;
  }

  /**
   * Encode `values` into a fresh buffer (or over a copy of `base`, so bits no field names survive). Missing
   * fields are zero (or `base`'s). A value that does not fit its field is an error, never a truncation.
   */
  serialize(values: Partial<Values<S>>, base?: Uint8Array): Uint8Array {
    const out = new Uint8Array(this.size);
    if (base) {
      if (base.length < this.size) throw new LayoutError('LAYOUT_SHORT', `${this.name}: base is too short`);
      out.set(base.subarray(0, this.size));
    }
    for (const name of this.fieldNames) {
      const v = (values as Record<string, unknown>)[name];
      if (v !== undefined) writeField(out, 0, this.fields[name]!, v, `${this.name}.${name}`);
    }
    return out;
  }

  /** A readable, one-field-per-line rendering. */
  render(valuesOrBytes: Values<S> | Uint8Array): string {
    const v = valuesOrBytes instanceof Uint8Array ? this.parse(valuesOrBytes) : valuesOrBytes;
    const width = Math.max(...this.fieldNames.map((n) => n.length));
    const lines = [`${this.name} (${this.size} bytes)`];
    for (const name of this.fieldNames) {
      lines.push(`  ${name.padEnd(width)}  ${renderValue(this.fields[name]!, (v as Record<string, unknown>)[name])}`);
    }
    return lines.join('\n');
  }
}

export function defineLayout<S extends FieldSet>(name: string, size: number, fields: S): Layout<S> {
  return new Layout(name, size, fields);
}

function readBitsBig(buf: Uint8Array, offset: number, lo: number, hi: number): bigint {
  const first = offset + (lo >> 3);
  const last = offset + (hi >> 3);
  let v = 0n;
  for (let i = last; i >= first; i--) v = (v << 8n) | BigInt(buf[i]!);
  return (v >> BigInt(lo & 7)) & ((1n << BigInt(hi - lo + 1)) - 1n);
}

function writeBitsBig(buf: Uint8Array, offset: number, lo: number, hi: number, value: bigint): void {
  const first = offset + (lo >> 3);
  const last = offset + (hi >> 3);
  const width = BigInt(hi - lo + 1);
  const shift = BigInt(lo & 7);
  let cur = 0n;
  for (let i = last; i >= first; i--) cur = (cur << 8n) | BigInt(buf[i]!);
  const fieldMask = ((1n << width) - 1n) << shift;
  cur = (cur & ~fieldMask) | (value << shift);
  for (let i = first; i <= last; i++) {
    buf[i] = Number(cur & 0xffn);
    cur >>= 8n;
  }
}

function readField(buf: Uint8Array, offset: number, f: Field): unknown {
  switch (f.kind) {
    case 'num': {
      if ((f.lo & 7) === 0 && (f.hi & 7) === 7 && f.hi - f.lo < 32) {
        let v = 0;
        for (let i = (f.hi >> 3); i >= (f.lo >> 3); i--) v = v * 256 + buf[offset + i]!;
        return v;
      }
      return Number(readBitsBig(buf, offset, f.lo, f.hi));
    }
    case 'big': {
      const v = readBitsBig(buf, offset, f.lo, f.hi);
      return f.inPlace ? v << BigInt(f.lo) : v;
    }
    case 'ascii': {
      let end = f.length;
      while (end > 0 && (buf[offset + f.offset + end - 1] === f.pad || buf[offset + f.offset + end - 1] === 0)) end--;
      let s = '';
      for (let i = 0; i < end; i++) s += String.fromCharCode(buf[offset + f.offset + i]!);
      return s;
    }
    case 'bytes':
      return buf.slice(offset + f.offset, offset + f.offset + f.length);
  }
}

function writeField(buf: Uint8Array, offset: number, f: Field, v: unknown, where: string): void {
  switch (f.kind) {
    case 'num': {
      const width = f.hi - f.lo + 1;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= 2 ** width) {
        throw new LayoutError('LAYOUT_VALUE_RANGE', `${where}: ${String(v)} does not fit ${width} bits`, { value: v });
      }
      writeBitsBig(buf, offset, f.lo, f.hi, BigInt(v));
      return;
    }
    case 'big': {
      const width = f.hi - f.lo + 1;
      if (typeof v !== 'bigint' || v < 0n) {
        throw new LayoutError('LAYOUT_VALUE_RANGE', `${where}: ${String(v)} is not a non-negative bigint`);
      }
      let raw = v;
      if (f.inPlace) {
        if ((v & ((1n << BigInt(f.lo)) - 1n)) !== 0n) {
          throw new LayoutError('LAYOUT_VALUE_ALIGN', `${where}: ${hex(v)} has bits below bit ${f.lo}`, { value: v });
        }
        raw = v >> BigInt(f.lo);
      }
      if (raw >> BigInt(width) !== 0n) {
        throw new LayoutError('LAYOUT_VALUE_RANGE', `${where}: ${hex(v)} does not fit bits ${f.hi}:${f.lo}`, { value: v });
      }
      writeBitsBig(buf, offset, f.lo, f.hi, raw);
      return;
    }
    case 'ascii': {
      if (typeof v !== 'string' || v.length > f.length || !/^[\x20-\x7e]*$/.test(v)) {
        throw new LayoutError('LAYOUT_VALUE_RANGE', `${where}: ${JSON.stringify(v)} is not printable ASCII of <= ${f.length} chars`);
      }
      for (let i = 0; i < f.length; i++) buf[offset + f.offset + i] = i < v.length ? v.charCodeAt(i) : f.pad;
      return;
    }
    case 'bytes': {
      if (!(v instanceof Uint8Array) || v.length !== f.length) {
        throw new LayoutError('LAYOUT_VALUE_RANGE', `${where}: expected ${f.length} bytes`);
      }
      buf.set(v, offset + f.offset);
      return;
    }
  }
}

function renderValue(f: Field, v: unknown): string {
  switch (f.kind) {
    case 'num':
      return f.hi === f.lo ? String(v) : hex(v as number);
    case 'big':
      return hex(v as bigint);
    case 'ascii':
      return JSON.stringify(v);
    case 'bytes':
      return Array.from(v as Uint8Array, (b) => b.toString(16).padStart(2, '0')).join(' ');
  }
}
