/**
 * Non-overlapping closed intervals [start, end] over the 64-bit address space, each carrying a value: the
 * store behind virtio-iommu domains (one interval per MAP request) and any other "mapping" table a device
 * keeps.
 *
 * A B+tree ordered by start: lookups, inserts and range removals are O(log n), and a lookup touches a
 * handful of nodes whose keys sit in one contiguous typed array per node, which is what keeps it fast at
 * 100k+ entries (a binary tree of objects chases a pointer, and misses the cache, per level). Keys are kept
 * as 32-bit halves so comparisons never allocate or call into bigint code. Removal is lazy: nodes are not
 * merged, but an empty node is unlinked at once, so the tree never holds more nodes than its entries need.
 *
 * Every operation validates before it changes anything: `insert` refuses an overlap and `removeRange`
 * refuses to split an interval, in both cases leaving the map untouched.
 */

import { U64_MAX, splitHi, splitLo, splitU64 } from '../../mem/addr.js';

export interface Interval<V> {
  readonly start: bigint;
  /** Inclusive. */
  readonly end: bigint;
  readonly value: V;
}

/** What `removeRange` found. */
export type RemoveResult<V> =
  /** `removed` lists the intervals only when asked to collect them; `count` is always right. */
  | { ok: true; count: number; removed: readonly Interval<V>[] }
  /** An interval crosses the range's edge: removing it would split it. Nothing was removed. */
  | { ok: false; splits: Interval<V> };

/** Entries per leaf and children per inner node. */
const ORDER = 64;
const TWO32 = 4294967296;

/**
 * Leaf words per entry: [start hi, start lo, end hi, end lo, aux0, aux1, aux2, -]. The three aux words carry
 * a caller's small numeric payload in the same cache lines as the keys, so the hottest lookups touch
 * nothing else.
 */
const STRIDE = 8;
const SH = 0;
const SL = 1;
const EH = 2;
const EL = 3;
const AUX = 4;

class Leaf<V> {
  count = 0;
  readonly keys = new Uint32Array(ORDER * STRIDE);
  /** Values, by entry; intervals are rebuilt from the keys only on cold paths. */
  readonly items: (V | undefined)[] = new Array<V | undefined>(ORDER).fill(undefined);
  parent: Inner<V> | null = null;
  prev: Leaf<V> | null = null;
  next: Leaf<V> | null = null;
}

class Inner<V> {
  count = 0;
  /** Per child [hi, lo] of the smallest start it may hold (child 0's is unused). */
  readonly keys = new Uint32Array(ORDER * 2);
  readonly children: (Node<V> | undefined)[] = new Array<Node<V> | undefined>(ORDER).fill(undefined);
  parent: Inner<V> | null = null;
}

type Node<V> = Leaf<V> | Inner<V>;

function join(h: number, l: number): bigint {
  return h < 0x200000 ? BigInt(h * TWO32 + l) : (BigInt(h) << 32n) | BigInt(l);
}

/** (ah, al) <= (bh, bl) as unsigned 64-bit values. */
function le(ah: number, al: number, bh: number, bl: number): boolean {
  return ah < bh || (ah === bh && al <= bl);
}

/**
 * Emptied leaves kept for reuse, shared by every map: allocating (and later collecting) a leaf's typed
 * array costs more than the operation that needs it, and map/unmap churn empties and refills leaves all
 * the time. Bounded: at most 4096 leaves (about 2.5 KiB each, 10 MiB in all) are ever kept.
 */
const POOL_SIZE = 4096;
const pool: Leaf<unknown>[] = [];

/** `removed` when nothing was collected. */
const NONE: readonly never[] = Object.freeze([]);

/** [start hi, start lo, end hi, end lo] of the range `splitRange` took apart. */
const RANGE = new Uint32Array(4);

/** Split [start, end] into halves in RANGE. Keys are u64: the halves would silently wrap anything outside. */
function splitRange(start: bigint, end: bigint): void {
  if (start < 0n || end > U64_MAX) throw new RangeError(`interval [${start}, ${end}] lies outside the 64-bit space`);
  splitU64(start);
  RANGE[0] = splitHi();
  RANGE[1] = splitLo();
  splitU64(end);
  RANGE[2] = splitHi();
  RANGE[3] = splitLo();
}

function newLeaf<V>(): Leaf<V> {
  return (pool.pop() as Leaf<V> | undefined) ?? new Leaf<V>();
}

export class IntervalMap<V> {
  private root: Node<V> = new Leaf<V>();
  private size_ = 0;
  /** Position found by `floor` / `locate`: a leaf and an entry index (-1: before the leaf's first). */
  private leaf: Leaf<V> = this.root as Leaf<V>;
  private index = -1;
  /**
   * The leaf the last search ended in, while it is in the tree: map/unmap/translate streams come in
   * address order, so the next key usually belongs to the same leaf and skips the descent.
   */
  private finger: Leaf<V> | null = null;

  get size(): number {
    return this.size_;
  }

  /** The interval containing `addr`, if any. */
  lookup(addr: bigint): Interval<V> | undefined {
    return this.find(addr) ? this.intervalHere() : undefined;
  }

  /**
   * The hot form of `lookup`: the value of the interval containing `addr`, with its start available from
   * `foundStart` until the next call. Allocates nothing for addresses below 2^53.
   */
  lookupValue(addr: bigint): V | undefined {
    return this.find(addr) ? this.leaf.items[this.index] : undefined;
  }

  /** Start of the interval the last `lookupValue` found, as a number (exact below 2^53, else NaN). */
  foundStartNumber(): number {
    const h = this.leaf.keys[this.index * STRIDE + SH]!;
    return h < 0x200000 ? h * TWO32 + this.leaf.keys[this.index * STRIDE + SL]! : NaN;
  }

  /** Start of the interval the last `lookupValue` found. */
  foundStart(): bigint {
    return join(this.leaf.keys[this.index * STRIDE + SH]!, this.leaf.keys[this.index * STRIDE + SL]!);
  }

  /** Aux word i (0..2) of the interval the last `lookupValue` / `contains` found. */
  foundAux(i: number): number {
    return this.leaf.keys[this.index * STRIDE + AUX + i]!;
  }

  /** Whether an interval contains `addr`; positions `foundAux` / `foundStart*` on it. Allocates nothing. */
  contains(addr: bigint): boolean {
    return this.find(addr);
  }

  private find(addr: bigint): boolean {
    splitU64(addr);
    const h = splitHi();
    const l = splitLo();
    if (!this.floor(h, l)) return false;
    const i = this.index * STRIDE;
    return le(h, l, this.leaf.keys[i + EH]!, this.leaf.keys[i + EL]!);
  }

  private intervalHere(): Interval<V> {
    const k = this.leaf.keys;
    const i = this.index * STRIDE;
    return { start: join(k[i + SH]!, k[i + SL]!), end: join(k[i + EH]!, k[i + EL]!), value: this.leaf.items[this.index]! };
  }

  /** The first interval that overlaps [start, end], if any. */
  firstOverlap(start: bigint, end: bigint): Interval<V> | undefined {
    splitU64(start);
    const sh = splitHi();
    const sl = splitLo();
    if (this.floor(sh, sl)) {
      const i = this.index * STRIDE;
      if (le(sh, sl, this.leaf.keys[i + EH]!, this.leaf.keys[i + EL]!)) return this.intervalHere();
    }
    // Otherwise the first interval starting after `start` overlaps if it starts at or before `end`.
    if (!this.step()) return undefined;
    splitU64(end);
    const i = this.index * STRIDE;
    return le(this.leaf.keys[i + SH]!, this.leaf.keys[i + SL]!, splitHi(), splitLo()) ? this.intervalHere() : undefined;
  }

  /** Add [start, end] unless it overlaps an interval already present (then returns false, changes nothing). */
  insert(start: bigint, end: bigint, value: V, aux?: readonly [number, number, number]): boolean {
    if (end < start) throw new RangeError('interval end before start');
    splitRange(start, end);
    const sh = RANGE[0]!;
    const sl = RANGE[1]!;
    const eh = RANGE[2]!;
    const el = RANGE[3]!;
    this.locate(sh, sl);
    let leaf = this.leaf;
    let at = this.index + 1;
    // The interval before must end below `start`; the one after must start above `end`.
    const prevLeaf = at > 0 ? leaf : leaf.prev;
    const prevAt = at > 0 ? at - 1 : (prevLeaf?.count ?? 0) - 1;
    if (prevLeaf !== null && prevAt >= 0 && le(sh, sl, prevLeaf.keys[prevAt * STRIDE + EH]!, prevLeaf.keys[prevAt * STRIDE + EL]!)) return false;
    const nextLeaf = at < leaf.count ? leaf : leaf.next;
    const nextAt = at < leaf.count ? at : 0;
    if (nextLeaf !== null && nextAt < nextLeaf.count && le(nextLeaf.keys[nextAt * STRIDE + SH]!, nextLeaf.keys[nextAt * STRIDE + SL]!, eh, el)) return false;
    if (leaf.count === ORDER) {
      // Split in half, except at either end: addresses handed out in order (an IOVA allocator going up
      // or down) then fill whole leaves instead of leaving a trail of half-empty ones.
      const keep = at === ORDER ? ORDER : at === 0 ? 0 : ORDER >> 1;
      const right = this.splitLeaf(leaf, keep, sh, sl);
      if (at > keep || at === ORDER) {
        at -= keep;
        leaf = right;
      }
    }
    const c = leaf.count;
    const k = leaf.keys;
    if (at < c) {
      // copyWithin is a call into C++: worth it for a block, wasted on nothing (the append case).
      k.copyWithin((at + 1) * STRIDE, at * STRIDE, c * STRIDE);
      for (let i = c; i > at; i--) leaf.items[i] = leaf.items[i - 1];
    }
    const o = at * STRIDE;
    k[o + SH] = sh;
    k[o + SL] = sl;
    k[o + EH] = eh;
    k[o + EL] = el;
    k[o + AUX] = aux?.[0] ?? 0;
    k[o + AUX + 1] = aux?.[1] ?? 0;
    k[o + AUX + 2] = aux?.[2] ?? 0;
    leaf.items[at] = value;
    leaf.count = c + 1;
    this.size_++;
    return true;
  }

  /**
   * Remove every interval lying entirely inside [start, end]. If an interval crosses either edge the
   * request is refused and nothing is removed.
   */
  removeRange(start: bigint, end: bigint, collect = true): RemoveResult<V> {
    if (end < start) return { ok: true, count: 0, removed: NONE };
    splitRange(start, end);
    const sh = RANGE[0]!;
    const sl = RANGE[1]!;
    const eh = RANGE[2]!;
    const el = RANGE[3]!;
    // Only the last interval starting inside the range can reach past its end.
    if (this.floor(eh, el)) {
      const k = this.leaf.keys;
      const i = this.index * STRIDE;
      if (k[i + SH] === sh && k[i + SL] === sl && k[i + EH] === eh && k[i + EL] === el) {
        // The common case: the range is exactly one interval. Nothing else can lie inside it.
        const removed = collect ? [this.intervalHere()] : NONE;
        this.removeFromLeaf(this.leaf, this.index, this.index + 1);
        this.size_--;
        return { ok: true, count: 1, removed };
      }
      if (le(sh, sl, k[i + SH]!, k[i + SL]!) && !le(k[i + EH]!, k[i + EL]!, eh, el)) return { ok: false, splits: this.intervalHere() };
    }
    // An interval starting before the range but reaching into it would be split.
    let any = this.floor(sh, sl);
    if (any) {
      const k = this.leaf.keys;
      const i = this.index * STRIDE;
      if (!le(sh, sl, k[i + SH]!, k[i + SL]!)) {
        if (le(sh, sl, k[i + EH]!, k[i + EL]!)) return { ok: false, splits: this.intervalHere() };
        any = this.step();
      }
    } else {
      any = this.first();
    }
    const removed: Interval<V>[] = [];
    let count = 0;
    // From the first interval starting at or after `start`, take every one starting at or before `end`.
    while (any) {
      const leaf = this.leaf;
      const from = this.index;
      let to = from;
      while (to < leaf.count && le(leaf.keys[to * STRIDE + SH]!, leaf.keys[to * STRIDE + SL]!, eh, el)) {
        this.index = to;
        if (collect) removed.push(this.intervalHere());
        count++;
        to++;
      }
      const next = to === leaf.count ? leaf.next : null;
      if (to > from) this.removeFromLeaf(leaf, from, to);
      if (next === null) break;
      this.leaf = next;
      this.index = 0;
    }
    this.size_ -= count;
    return { ok: true, count, removed };
  }

  clear(): void {
    this.root = new Leaf<V>();
    this.size_ = 0;
    this.finger = null;
  }

  /** Every interval, in address order. */
  *[Symbol.iterator](): IterableIterator<Interval<V>> {
    let leaf: Leaf<V> | null = this.firstLeaf();
    while (leaf !== null) {
      const k = leaf.keys;
      for (let i = 0; i < leaf.count; i++) {
        yield { start: join(k[i * STRIDE + SH]!, k[i * STRIDE + SL]!), end: join(k[i * STRIDE + EH]!, k[i * STRIDE + EL]!), value: leaf.items[i]! };
      }
      leaf = leaf.next;
    }
  }

  // ---- search ---------------------------------------------------------------------------------

  /** Set leaf / index to the last entry with start <= key in the leaf the key belongs to (-1: none). */
  private locate(kh: number, kl: number): void {
    // The finger's leaf is the one a descent would reach when its first start is <= key and the key lies
    // below its last start (entries stay below the next leaf's separator) or no leaf follows.
    const f = this.finger;
    if (f !== null && f.count !== 0) {
      const k = f.keys;
      const last = (f.count - 1) * STRIDE;
      if (le(k[SH]!, k[SL]!, kh, kl) && (f.next === null || !le(k[last + SH]!, k[last + SL]!, kh, kl))) {
        this.searchLeaf(f, kh, kl);
        return;
      }
    }
    let node = this.root;
    while (node instanceof Inner) {
      // Last child whose separator is <= key (child 0 has none).
      const k = node.keys;
      let lo = 1;
      let hi = node.count - 1;
      let pick = 0;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (le(k[mid * 2]!, k[mid * 2 + 1]!, kh, kl)) {
          pick = mid;
          lo = mid + 1;
        } else {
          hi = mid - 1;
        }
      }
      node = node.children[pick]!;
    }
    if (node.count !== 0) this.finger = node;
    this.searchLeaf(node, kh, kl);
  }

  /** Set leaf / index to the last entry of `leaf` with start <= key (-1: none). */
  private searchLeaf(leaf: Leaf<V>, kh: number, kl: number): void {
    const k = leaf.keys;
    let lo = 0;
    let hi = leaf.count - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (le(k[mid * STRIDE + SH]!, k[mid * STRIDE + SL]!, kh, kl)) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    this.leaf = leaf;
    this.index = found;
  }

  /** Position on the entry with the largest start <= key; false if there is none. */
  private floor(kh: number, kl: number): boolean {
    this.locate(kh, kl);
    if (this.index >= 0) return true;
    // Everything in this leaf starts after the key; the previous leaf's entries all lie below it.
    const prev = this.leaf.prev;
    if (prev === null || prev.count === 0) return false;
    this.leaf = prev;
    this.index = prev.count - 1;
    return true;
  }

  /** Move to the next entry; false at the end (the position is then meaningless). */
  private step(): boolean {
    if (this.index + 1 < this.leaf.count) {
      this.index++;
      return true;
    }
    const next = this.leaf.next;
    if (next === null || next.count === 0) return false;
    this.leaf = next;
    this.index = 0;
    return true;
  }

  /** Position on the first entry; false if the map is empty. */
  private first(): boolean {
    this.leaf = this.firstLeaf();
    this.index = 0;
    return this.leaf.count > 0;
  }

  private firstLeaf(): Leaf<V> {
    let node = this.root;
    while (node instanceof Inner) node = node.children[0]!;
    return node;
  }

  // ---- structure ------------------------------------------------------------------------------

  /**
   * Move a full leaf's entries from `keep` on into a new right sibling and return it. When nothing moves
   * the sibling starts empty and (kh, kl), the start about to be inserted into it, separates the two.
   */
  private splitLeaf(leaf: Leaf<V>, keep: number, kh: number, kl: number): Leaf<V> {
    const right = newLeaf<V>();
    const moved = leaf.count - keep;
    right.keys.set(leaf.keys.subarray(keep * STRIDE, leaf.count * STRIDE));
    for (let i = 0; i < moved; i++) {
      right.items[i] = leaf.items[keep + i];
      leaf.items[keep + i] = undefined;
    }
    right.count = moved;
    leaf.count = keep;
    right.next = leaf.next;
    if (right.next !== null) right.next.prev = right;
    right.prev = leaf;
    leaf.next = right;
    if (moved === 0) this.insertChild(leaf, right, kh, kl);
    else this.insertChild(leaf, right, right.keys[SH]!, right.keys[SL]!);
    return right;
  }

  /** Hang `right` just after `left` in their parent, with separator (kh, kl); split upward as needed. */
  private insertChild(left: Node<V>, right: Node<V>, kh: number, kl: number): void {
    let parent = left.parent;
    if (parent === null) {
      parent = new Inner<V>();
      parent.children[0] = left;
      parent.count = 1;
      left.parent = parent;
      this.root = parent;
    }
    let at = parent.children.indexOf(left) + 1;
    if (parent.count === ORDER) {
      const sibling = this.splitInner(parent);
      if (at > parent.count) {
        at -= parent.count;
        parent = sibling;
      }
    }
    parent.keys.copyWithin(at * 2 + 2, at * 2, parent.count * 2);
    for (let i = parent.count; i > at; i--) parent.children[i] = parent.children[i - 1];
    parent.keys[at * 2] = kh;
    parent.keys[at * 2 + 1] = kl;
    parent.children[at] = right;
    parent.count++;
    right.parent = parent;
  }

  private splitInner(node: Inner<V>): Inner<V> {
    const right = new Inner<V>();
    const half = ORDER >> 1;
    const moved = node.count - half;
    right.keys.set(node.keys.subarray(half * 2, node.count * 2));
    for (let i = 0; i < moved; i++) {
      const child = node.children[half + i]!;
      right.children[i] = child;
      child.parent = right;
      node.children[half + i] = undefined;
    }
    right.count = moved;
    node.count = half;
    this.insertChild(node, right, right.keys[0]!, right.keys[1]!);
    return right;
  }

  /** Drop entries [from, to) of a leaf; unlink the leaf if it empties. */
  private removeFromLeaf(leaf: Leaf<V>, from: number, to: number): void {
    const n = to - from;
    if (to < leaf.count) {
      leaf.keys.copyWithin(from * STRIDE, to * STRIDE, leaf.count * STRIDE);
      for (let i = from; i < leaf.count - n; i++) leaf.items[i] = leaf.items[i + n];
    }
    for (let i = leaf.count - n; i < leaf.count; i++) leaf.items[i] = undefined;
    leaf.count -= n;
    if (leaf.count === 0 && leaf.parent !== null) {
      if (leaf.prev !== null) leaf.prev.next = leaf.next;
      if (leaf.next !== null) leaf.next.prev = leaf.prev;
      this.removeChild(leaf.parent, leaf);
      if (this.finger === leaf) this.finger = null;
      if (pool.length < POOL_SIZE) {
        leaf.parent = leaf.prev = leaf.next = null;
        pool.push(leaf as Leaf<unknown>);
      }
    }
  }

  private removeChild(parent: Inner<V>, child: Node<V>): void {
    const at = parent.children.indexOf(child);
    parent.keys.copyWithin(at * 2, at * 2 + 2, parent.count * 2);
    for (let i = at; i < parent.count - 1; i++) parent.children[i] = parent.children[i + 1];
    parent.children[parent.count - 1] = undefined;
    parent.count--;
    if (parent.count === 0) {
      if (parent.parent !== null) this.removeChild(parent.parent, parent);
      else this.clear();
    } else if (parent.parent === null && parent.count === 1) {
      // A root with one child hands the root over.
      this.root = parent.children[0]!;
      this.root.parent = null;
    }
  }
}
