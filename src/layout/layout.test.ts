import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LayoutError, addr, ascii, bit, bits, bytes, defineLayout, u16, u32, u64, u8, wide } from './index.js';

// The ACPI table header (ACPI spec 5.2.6), a byte-offset layout.
const ACPI_HEADER = defineLayout('acpi_header', 36, {
  Signature: ascii(0, 4),
  Length: u32(4),
  Revision: u8(8),
  Checksum: u8(9),
  OemId: ascii(10, 6),
  OemTableId: ascii(16, 8),
  OemRevision: u32(24),
  CreatorId: ascii(28, 4),
  CreatorRevision: u32(32),
});

// The VT-d scalable-mode context entry's first 128 bits (bit ranges across the entry, as the spec writes them).
const SM_CONTEXT = defineLayout('vtd_sm_context_entry', 32, {
  P: bit(0),
  FPD: bit(1),
  DTE: bit(2),
  PASIDE: bit(3),
  PRE: bit(4),
  PDTS: bits(11, 9),
  PASIDDIRPTR: addr(63, 12),
  RID_PASID: bits(83, 64),
  RID_PRIV: bit(84),
});

describe('layout', () => {
  it('serialises the ACPI header to golden bytes and parses them back', () => {
    const values = {
      Signature: 'DMAR',
      Length: 0x50,
      Revision: 1,
      Checksum: 0x9c,
      OemId: 'VIOMMU',
      OemTableId: 'VIOMMUTB',
      OemRevision: 1,
      CreatorId: 'VIOM',
      CreatorRevision: 0x20261123,
    };
    const buf = ACPI_HEADER.serialize(values);
    const golden = Uint8Array.from([
      0x44, 0x4d, 0x41, 0x52, 0x50, 0, 0, 0, 1, 0x9c, 0x56, 0x49, 0x4f, 0x4d, 0x4d, 0x55, 0x56, 0x49, 0x4f, 0x4d, 0x4d, 0x55, 0x54,
      0x42, 1, 0, 0, 0, 0x56, 0x49, 0x4f, 0x4d, 0x23, 0x11, 0x26, 0x20,
    ]);
    assert.deepEqual(buf, golden);
    assert.deepEqual(ACPI_HEADER.parse(golden), values);
  });

  it('pads short text fields and strips the padding on parse', () => {
    const buf = ACPI_HEADER.serialize({ OemId: 'AB' });
    assert.deepEqual(buf.subarray(10, 16), Uint8Array.from([0x41, 0x42, 0x20, 0x20, 0x20, 0x20]));
    assert.equal(ACPI_HEADER.parse(buf).OemId, 'AB');
  });

  it('places bit fields across 64-bit words exactly where the spec puts them', () => {
    const buf = SM_CONTEXT.serialize({ P: 1, PASIDE: 1, PDTS: 5, PASIDDIRPTR: 0xabcdef000n, RID_PASID: 0xfffff, RID_PRIV: 1 });
    assert.deepEqual(
      buf.subarray(0, 16),
      Uint8Array.from([0x09, 0xfa, 0xde, 0xbc, 0x0a, 0, 0, 0, 0xff, 0xff, 0x1f, 0, 0, 0, 0, 0]),
    );
    const parsed = SM_CONTEXT.parse(buf);
    assert.equal(parsed.PDTS, 5);
    assert.equal(parsed.PASIDDIRPTR, 0xabcdef000n);
    assert.equal(parsed.RID_PASID, 0xfffff);
    assert.equal(SM_CONTEXT.get(buf, 'RID_PRIV'), 1);
  });

  it('handles 512-bit entries and fields wider than 64 bits as bigint', () => {
    const L = defineLayout('wide', 64, { low: u64(0), mid: wide(191, 64), top: bits(511, 500), tail: bytes(60, 1) });
    const buf = L.serialize({ low: 0xffffffffffffffffn, mid: (1n << 128n) - 1n, top: 0xabc });
    const p = L.parse(buf);
    assert.equal(p.low, 0xffffffffffffffffn);
    assert.equal(p.mid, (1n << 128n) - 1n);
    assert.equal(p.top, 0xabc);
    assert.deepEqual(L.parse(L.serialize(p)), p);
  });

  it('keeps bits no field names from a base buffer', () => {
    const L = defineLayout('pte', 8, { R: bit(0), W: bit(1) });
    const base = Uint8Array.from([0, 0xff, 0, 0, 0, 0, 0, 0x80]);
    assert.deepEqual(L.serialize({ R: 1 }, base), Uint8Array.from([1, 0xff, 0, 0, 0, 0, 0, 0x80]));
  });

  it('renders one field per line', () => {
    const text = SM_CONTEXT.render(SM_CONTEXT.serialize({ P: 1, PASIDDIRPTR: 0x1000n }));
    assert.match(text, /^vtd_sm_context_entry \(32 bytes\)/);
    assert.match(text, /PASIDDIRPTR +0x1000/);
    assert.match(text, /\bP +1\b/);
  });

  it('refuses values that do not fit and declarations that overlap or overflow', () => {
    const err = (fn: () => unknown, c: string) => assert.throws(fn, (e: unknown) => e instanceof LayoutError && e.code === c);
    err(() => SM_CONTEXT.serialize({ PDTS: 8 }), 'LAYOUT_VALUE_RANGE');
    err(() => SM_CONTEXT.serialize({ PASIDDIRPTR: 0x1234n }), 'LAYOUT_VALUE_ALIGN');
    err(() => SM_CONTEXT.serialize({ PASIDDIRPTR: 1n << 64n }), 'LAYOUT_VALUE_RANGE');
    err(() => ACPI_HEADER.serialize({ Signature: 'TOOLONG' }), 'LAYOUT_VALUE_RANGE');
    err(() => ACPI_HEADER.serialize({ Length: 2 ** 32 }), 'LAYOUT_VALUE_RANGE');
    err(() => ACPI_HEADER.parse(new Uint8Array(35)), 'LAYOUT_SHORT');
    err(() => defineLayout('x', 4, { a: bits(7, 0), b: bits(7, 7) }), 'LAYOUT_BAD_DECL');
    err(() => defineLayout('x', 4, { a: bits(32, 0) }), 'LAYOUT_BAD_DECL');
    err(() => defineLayout('x', 4, { a: u16(3) }), 'LAYOUT_BAD_DECL');
    err(() => defineLayout('x', 8, { a: wide(15, 0) }), 'LAYOUT_BAD_DECL');
  });
});
