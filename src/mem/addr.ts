/**
 * Address helpers shared by every layer. Interfaces carry addresses as `bigint`; hot paths carry physical
 * addresses and page frame numbers as `number`, which is exact up to 2^53. Conversions here refuse any value
 * that would lose bits instead of wrapping.
 */
import { MemoryError } from './errors.js';
import { hex } from '../errors.js';

export const SZ_4K = 0x1000n;
export const SZ_16K = 0x4000n;
export const SZ_64K = 0x10000n;
export const SZ_2M = 0x200000n;
export const SZ_32M = 0x2000000n;
export const SZ_512M = 0x20000000n;
export const SZ_1G = 0x40000000n;
export const U64_MAX = (1n << 64n) - 1n;

/** Largest integer a `number` holds exactly; hot-path addresses stay below it. */
export const MAX_EXACT = 2 ** 53;

export function isPow2(v: bigint): boolean {
  return v > 0n && (v & (v - 1n)) === 0n;
}

export function isAligned(v: bigint, align: bigint): boolean {
  return (v & (align - 1n)) === 0n;
}

export function alignDown(v: bigint, align: bigint): bigint {
  return v & ~(align - 1n);
}

export function alignUp(v: bigint, align: bigint): bigint {
  return (v + align - 1n) & ~(align - 1n);
}

/** log2 of a power of two. */
export function log2(v: bigint): number {
  let n = 0;
  while (v > 1n) {
    v >>= 1n;
    n++;
  }
  return n;
}

/** Mask of the low `bits` bits. */
export function mask(bits: number): bigint {
  return (1n << BigInt(bits)) - 1n;
}

/** A bigint address as an exact `number`, or a typed error if it cannot be one. */
export function addrToNumber(addr: bigint, what = 'address'): number {
  if (addr < 0n || addr >= BigInt(MAX_EXACT)) {
    throw new MemoryError('MEM_ADDR_UNREPRESENTABLE', `${what} ${hex(addr)} does not fit the 53-bit fast path`, {
      addr,
    });
  }
  return Number(addr);
}

// One u64 split into 32-bit halves without allocating: a store into a BigUint64Array compiles to a few
// instructions, while `Number(bigint)` and bigint comparisons are calls (~250 instructions for the
// compare-convert-divide it replaces, measured with callgrind). The scratch words are read back with
// `splitHi` / `splitLo` before the next `splitU64`.
const u64Scratch = new BigUint64Array(1);
const u64Words = new Uint32Array(u64Scratch.buffer);
const LO_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;
const HI_WORD = 1 - LO_WORD;

/** Split the low 64 bits of `v` (taken modulo 2^64, as hardware registers do) into halves. */
export function splitU64(v: bigint): void {
  u64Scratch[0] = v;
}

/** Bits 63:32 of the last `splitU64`. */
export function splitHi(): number {
  return u64Words[HI_WORD]!;
}

/** Bits 31:0 of the last `splitU64`. */
export function splitLo(): number {
  return u64Words[LO_WORD]!;
}
