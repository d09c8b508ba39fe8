import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IntervalMap } from './interval-map.js';

/** The reference: a plain list. */
class ListMap {
  items: { start: bigint; end: bigint; value: number }[] = [];
  insert(start: bigint, end: bigint, value: number): boolean {
    if (this.items.some((i) => i.start <= end && start <= i.end)) return false;
    this.items.push({ start, end, value });
    return true;
  }
  removeRange(start: bigint, end: bigint): bigint[] | 'split' {
    if (this.items.some((i) => i.start <= end && start <= i.end && (i.start < start || i.end > end))) return 'split';
    const gone = this.items.filter((i) => i.start >= start && i.end <= end);
    this.items = this.items.filter((i) => !(i.start >= start && i.end <= end));
    return gone.map((i) => i.start).sort((a, b) => (a < b ? -1 : 1));
  }
  lookup(addr: bigint): number | undefined {
    return this.items.find((i) => i.start <= addr && addr <= i.end)?.value;
  }
}

const MAX = (1n << 64n) - 1n;

describe('IntervalMap', () => {
  it('agrees with a list under random insert / remove-range / lookup, including the ends of the 64-bit space', () => {
    const addr = fc.oneof(fc.bigInt({ min: 0n, max: 200n }), fc.bigInt({ min: MAX - 200n, max: MAX }));
    const op = fc.oneof(
      fc.record({ kind: fc.constant('ins' as const), a: addr, len: fc.bigInt({ min: 0n, max: 20n }) }),
      fc.record({ kind: fc.constant('rm' as const), a: addr, len: fc.bigInt({ min: 0n, max: 60n }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), fc.array(addr, { minLength: 10, maxLength: 10 }), (ops, probes) => {
        const m = new IntervalMap<number>();
        const ref = new ListMap();
        ops.forEach((o, i) => {
          const end = o.a + o.len > MAX ? MAX : o.a + o.len;
          if (o.kind === 'ins') {
            assert.equal(m.insert(o.a, end, i), ref.insert(o.a, end, i));
          } else {
            const got = m.removeRange(o.a, end);
            const want = ref.removeRange(o.a, end);
            if (want === 'split') assert.equal(got.ok, false);
            else {
              assert.ok(got.ok);
              assert.deepEqual(got.removed.map((r) => r.start), want);
            }
          }
          assert.equal(m.size, ref.items.length);
          for (const p of probes) assert.equal(m.lookup(p)?.value, ref.lookup(p));
        });
        const starts = [...m].map((i) => i.start);
        assert.deepEqual(starts, ref.items.map((i) => i.start).sort((a, b) => (a < b ? -1 : 1)));
      }),
      { numRuns: 300 },
    );
  });

  it('stays shallow with 100k ascending inserts (balanced whatever the order)', () => {
    const m = new IntervalMap<number>();
    for (let i = 0; i < 100_000; i++) m.insert(BigInt(i) * 4096n, BigInt(i) * 4096n + 4095n, i);
    assert.equal(m.size, 100_000);
    assert.equal(m.lookup(4096n * 99_999n + 5n)?.value, 99_999);
    const r = m.removeRange(0n, 4096n * 50_000n - 1n);
    assert.ok(r.ok && r.removed.length === 50_000);
    assert.equal(m.lookup(0n), undefined);
  });
});
