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

  it('agrees with a list across many leaves: ascending, descending and scattered runs, two maps sharing emptied leaves', () => {
    // Runs of page-sized mappings the way IOVA allocators hand them out (up, down, scattered), removals of
    // single pages and of wide ranges, on two maps at once so leaves emptied by one are reused by the other.
    const run = fc.record({
      kind: fc.constantFrom('up' as const, 'down' as const, 'scatter' as const, 'rm' as const, 'rmWide' as const),
      map: fc.integer({ min: 0, max: 1 }),
      base: fc.integer({ min: 0, max: 4000 }),
      count: fc.integer({ min: 1, max: 300 }),
      seed: fc.integer({ min: 1, max: 0x7fffffff }),
    });
    fc.assert(
      fc.property(fc.array(run, { minLength: 1, maxLength: 30 }), (runs) => {
        const maps = [new IntervalMap<number>(), new IntervalMap<number>()];
        const refs = [new ListMap(), new ListMap()];
        let value = 0;
        for (const r of runs) {
          const m = maps[r.map]!;
          const ref = refs[r.map]!;
          let x = r.seed;
          const page = (i: number): number => {
            if (r.kind === 'up') return r.base + i;
            if (r.kind === 'down') return r.base + r.count - i;
            x = (x * 48271) % 0x7fffffff;
            return x % 4400;
          };
          for (let i = 0; i < r.count; i++) {
            const start = BigInt(page(i)) * 4096n;
            if (r.kind === 'rm' || r.kind === 'rmWide') {
              const end = start + (r.kind === 'rm' ? 4095n : BigInt(1 + (i % 64)) * 4096n - 1n);
              const got = m.removeRange(start, end);
              const want = ref.removeRange(start, end);
              if (want === 'split') assert.equal(got.ok, false);
              else {
                assert.ok(got.ok);
                assert.deepEqual(got.removed.map((g) => g.start), want);
              }
            } else {
              value++;
              assert.equal(m.insert(start, start + 4095n, value), ref.insert(start, start + 4095n, value));
            }
          }
        }
        maps.forEach((m, i) => {
          const ref = refs[i]!;
          assert.equal(m.size, ref.items.length);
          assert.deepEqual([...m].map((e) => [e.start, e.value]), [...ref.items].sort((a, b) => (a.start < b.start ? -1 : 1)).map((e) => [e.start, e.value]));
          for (let p = 0; p < 4400; p += 7) assert.equal(m.lookup(BigInt(p) * 4096n + 9n)?.value, ref.lookup(BigInt(p) * 4096n + 9n));
        });
      }),
      { numRuns: 60 },
    );
  });

  it('forgets a leaf it emptied, even when another map reuses that leaf', () => {
    const a = new IntervalMap<number>();
    const b = new IntervalMap<number>();
    const page = (p: number): bigint => BigInt(p) * 4096n;
    for (let p = 0; p < 1000; p++) a.insert(page(p), page(p) + 4095n, p);
    // Empty whole leaves one page at a time, so the last search ends in a leaf that is then unlinked.
    for (let p = 448; p < 576; p++) assert.ok(a.removeRange(page(p), page(p) + 4095n).ok);
    // b fills, splitting leaves and taking a's emptied ones, with entries over the same addresses.
    for (let p = 0; p < 1000; p++) b.insert(page(p), page(p) + 4095n, -p);
    // Probe first where b's first split put the leaf a emptied last (pages 64..127), then everywhere.
    const probes = [...Array.from({ length: 64 }, (_, i) => 64 + i), ...Array.from({ length: 1000 }, (_, i) => i)];
    for (const p of probes) assert.equal(a.lookup(page(p) + 1n)?.value, p >= 448 && p < 576 ? undefined : p);
    assert.equal(b.lookup(page(500))?.value, -500);
  });

  it('takes keys only from the 64-bit space and treats an inverted range as empty', () => {
    const m = new IntervalMap<number>();
    assert.ok(m.insert(MAX - 4095n, MAX, 1));
    assert.ok(m.insert(0n, 4095n, 2));
    // An inverted range removes nothing (it must not wrap to [start, 2^64 - 1]).
    assert.deepEqual(m.removeRange(4096n, -1n), { ok: true, count: 0, removed: [] });
    assert.throws(() => m.insert(-4096n, -1n + 4096n, 3), RangeError);
    assert.throws(() => m.insert(MAX + 1n, MAX + 4096n, 3), RangeError);
    assert.throws(() => m.removeRange(-1n, 10n), RangeError);
    assert.throws(() => m.removeRange(0n, MAX + 1n), RangeError);
    assert.throws(() => m.insert(10n, 9n, 3), RangeError);
    assert.equal(m.size, 2);
    assert.equal(m.lookup(MAX)?.value, 1);
    assert.equal(m.lookup(4095n)?.value, 2);
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
