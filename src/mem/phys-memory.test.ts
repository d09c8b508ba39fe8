import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryError, PhysMemory, CHUNK_SIZE } from './index.js';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof MemoryError) return e.code;
    throw e;
  }
  return 'no error';
}

describe('PhysMemory', () => {
  it('a 64 GiB memory costs nothing until touched and reads zero', () => {
    const m = new PhysMemory(64n << 30n);
    assert.equal(m.readU64(0x8_0000_0000n), 0n);
    assert.deepEqual(m.read((64n << 30n) - 16n, 16), new Uint8Array(16));
    assert.equal(m.residentBytes, 0);
    m.writeU8(0xf_ffff_ffffn, 0xab);
    assert.equal(m.residentBytes, CHUNK_SIZE);
  });

  it('is little-endian, with 64-bit values as bigint and no truncation', () => {
    const m = new PhysMemory(1n << 20n);
    m.writeU64(0x100n, 0x0123456789abcdefn);
    assert.deepEqual(m.read(0x100n, 8), Uint8Array.from([0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01]));
    assert.equal(m.readU32(0x104n), 0x01234567);
    assert.equal(m.readU16(0x100n), 0xcdef);
    m.writeU64(0x200n, 0xffffffffffffffffn);
    assert.equal(m.readU64(0x200n), 0xffffffffffffffffn);
  });

  it('accesses that cross a chunk boundary read back what was written', () => {
    const m = new PhysMemory(1n << 20n);
    const at = BigInt(CHUNK_SIZE - 3);
    m.writeU64(at, 0x1122334455667788n);
    assert.equal(m.readU64(at), 0x1122334455667788n);
    const data = Uint8Array.from({ length: 3 * CHUNK_SIZE }, (_, i) => i & 0xff);
    m.write(5n, data);
    assert.deepEqual(m.read(5n, data.length), data);
  });

  it('refuses out-of-range and wrapping accesses with a typed error carrying the address', () => {
    const m = new PhysMemory(0x10000n);
    assert.equal(code(() => m.readU32(0xfffdn)), 'MEM_OUT_OF_RANGE');
    assert.equal(code(() => m.readU8(-1n)), 'MEM_OUT_OF_RANGE');
    assert.equal(code(() => m.write(0xffffn, new Uint8Array(2))), 'MEM_OUT_OF_RANGE');
    assert.equal(code(() => m.read((1n << 64n) - 1n, 2)), 'MEM_OUT_OF_RANGE');
    try {
      m.readU64(0x10000n);
      assert.fail('expected an error');
    } catch (e) {
      assert.ok(e instanceof MemoryError);
      assert.equal(e.details['addr'], 0x10000n);
      assert.equal(e.toJSON().details['addr'], '0x10000');
    }
  });

  it('refuses values that do not fit instead of truncating them', () => {
    const m = new PhysMemory(0x10000n);
    assert.equal(code(() => m.writeU8(0n, 256)), 'MEM_VALUE_RANGE');
    assert.equal(code(() => m.writeU32(0n, 2 ** 32)), 'MEM_VALUE_RANGE');
    assert.equal(code(() => m.writeU32(0n, -1)), 'MEM_VALUE_RANGE');
    assert.equal(code(() => m.writeU32(0n, 1.5)), 'MEM_VALUE_RANGE');
    assert.equal(code(() => m.writeU64(0n, 1n << 64n)), 'MEM_VALUE_RANGE');
    assert.equal(code(() => m.readU8(1 as unknown as bigint)), 'MEM_BAD_ADDRESS');
    assert.equal(m.residentBytes, 0);
  });

  it('refuses sizes beyond 2^52 or zero', () => {
    assert.equal(code(() => new PhysMemory(0n)), 'MEM_BAD_SIZE');
    assert.equal(code(() => new PhysMemory((1n << 52n) + 1n)), 'MEM_BAD_SIZE');
    const top = new PhysMemory(1n << 52n);
    top.writeU64((1n << 52n) - 8n, 42n);
    assert.equal(top.readU64((1n << 52n) - 8n), 42n);
  });

  it('fills and copies, including overlapping copies', () => {
    const m = new PhysMemory(1n << 20n);
    m.fill(0x10n, 8, 0xaa);
    assert.deepEqual(m.read(0xfn, 10), Uint8Array.from([0, ...Array(8).fill(0xaa), 0]));
    m.fill(0x100000n - 0x10n, 0x10n, 0);
    assert.equal(m.residentBytes, CHUNK_SIZE, 'zero-filling untouched memory allocates nothing');
    m.write(0x20n, Uint8Array.from([1, 2, 3, 4]));
    m.copy(0x22n, 0x20n, 4);
    assert.deepEqual(m.read(0x20n, 6), Uint8Array.from([1, 2, 1, 2, 3, 4]));
  });

  it('routes accesses inside a claimed MMIO range to its handler and refuses straddling ones', () => {
    const m = new PhysMemory(1n << 32n);
    const log: string[] = [];
    m.claimMmio(0xfed90000n, 0x1000n, 'vtd', {
      read: (off, size) => (log.push(`r ${off} ${size}`), 0x1234n),
      write: (off, size, v) => void log.push(`w ${off} ${size} ${v}`),
    });
    assert.equal(m.readU32(0xfed90010n), 0x1234);
    m.writeU64(0xfed90018n, 7n);
    assert.deepEqual(log, ['r 16 4', 'w 24 8 7']);
    assert.equal(code(() => m.readU64(0xfed8fffcn)), 'MEM_MMIO_STRADDLE');
    assert.equal(code(() => m.claimMmio(0xfed90800n, 0x1000n, 'other', { read: () => 0n, write: () => {} })), 'MEM_MMIO_OVERLAP');
    assert.equal(m.residentBytes, 0);
  });
});
