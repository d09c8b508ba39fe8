/**
 * Non-overlapping closed intervals [start, end] over the 64-bit address space, each carrying a value: the
 * store behind virtio-iommu domains (one interval per MAP request) and any other "mapping" table a device
 * keeps.
 *
 * A treap (a binary search tree kept balanced by random priorities), so insert, remove-range and lookup are
 * O(log n) expected, whatever order the intervals arrive in. Range removal splits the tree around the range,
 * inspects the middle part and either drops it or glues everything back — nothing is changed unless the
 * whole request succeeds.
 */

export interface Interval<V> {
  readonly start: bigint;
  /** Inclusive. */
  readonly end: bigint;
  readonly value: V;
}

class Node<V> implements Interval<V> {
  left: Node<V> | null = null;
  right: Node<V> | null = null;
  constructor(
    readonly start: bigint,
    readonly end: bigint,
    readonly value: V,
    readonly prio: number,
  ) {}
}

/** What `removeRange` found. */
export type RemoveResult<V> =
  | { ok: true; removed: Interval<V>[] }
  /** An interval crosses the range's edge: removing it would split it. Nothing was removed. */
  | { ok: false; splits: Interval<V> };

export class IntervalMap<V> {
  private root: Node<V> | null = null;
  private count = 0;
  private seed = 0x9e3779b9;

  get size(): number {
    return this.count;
  }

  /** The interval containing `addr`, if any. */
  lookup(addr: bigint): Interval<V> | undefined {
    let n = this.root;
    let best: Node<V> | null = null;
    while (n !== null) {
      if (n.start <= addr) {
        best = n;
        n = n.right;
      } else {
        n = n.left;
      }
    }
    return best !== null && best.end >= addr ? best : undefined;
  }

  /** The first interval that overlaps [start, end], if any. */
  firstOverlap(start: bigint, end: bigint): Interval<V> | undefined {
    // The interval starting at or before `start` may reach into the range; otherwise the first one after.
    let n = this.root;
    let floor: Node<V> | null = null;
    let ceil: Node<V> | null = null;
    while (n !== null) {
      if (n.start <= start) {
        floor = n;
        n = n.right;
      } else {
        ceil = n;
        n = n.left;
      }
    }
    if (floor !== null && floor.end >= start) return floor;
    if (ceil !== null && ceil.start <= end) return ceil;
    return undefined;
  }

  /** Add [start, end] unless it overlaps an interval already present (then returns false, changes nothing). */
  insert(start: bigint, end: bigint, value: V): boolean {
    if (end < start) throw new RangeError('interval end before start');
    if (this.firstOverlap(start, end) !== undefined) return false;
    const node = new Node(start, end, value, this.nextPrio());
    const [l, r] = split(this.root, start);
    this.root = merge(merge(l, node), r);
    this.count++;
    return true;
  }

  /**
   * Remove every interval lying entirely inside [start, end]. If an interval crosses either edge the
   * request is refused and nothing is removed.
   */
  removeRange(start: bigint, end: bigint): RemoveResult<V> {
    // An interval starting before the range but reaching into it would be split.
    const before = this.floorNode(start - 1n);
    if (start > 0n && before !== null && before.end >= start) return { ok: false, splits: before };
    const [left, rest] = split(this.root, start);
    const [middle, right] = end === (1n << 64n) - 1n ? [rest, null] : split(rest, end + 1n);
    // Only the last interval inside can reach past `end`.
    const last = maxNode(middle);
    if (last !== null && last.end > end) {
      this.root = merge(merge(left, middle), right);
      return { ok: false, splits: last };
    }
    const removed: Interval<V>[] = [];
    collect(middle, removed);
    this.count -= removed.length;
    this.root = merge(left, right);
    return { ok: true, removed };
  }

  clear(): void {
    this.root = null;
    this.count = 0;
  }

  /** Every interval, in address order. */
  *[Symbol.iterator](): IterableIterator<Interval<V>> {
    const stack: Node<V>[] = [];
    let n = this.root;
    while (n !== null || stack.length > 0) {
      while (n !== null) {
        stack.push(n);
        n = n.left;
      }
      const top = stack.pop()!;
      yield top;
      n = top.right;
    }
  }

  private floorNode(addr: bigint): Node<V> | null {
    let n = this.root;
    let best: Node<V> | null = null;
    while (n !== null) {
      if (n.start <= addr) {
        best = n;
        n = n.right;
      } else {
        n = n.left;
      }
    }
    return best;
  }

  /** xorshift32: deterministic priorities, so runs are reproducible. */
  private nextPrio(): number {
    let s = this.seed;
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    this.seed = s >>> 0;
    return this.seed;
  }
}

/** Split into (start < key, start >= key). Iterative, so deep trees cannot overflow the stack. */
function split<V>(t: Node<V> | null, key: bigint): [Node<V> | null, Node<V> | null] {
  // Build the two result trees by threading down the search path.
  let leftRoot: Node<V> | null = null;
  let rightRoot: Node<V> | null = null;
  let leftTail: Node<V> | null = null; // rightmost spine of the left result, where the next piece hangs
  let rightTail: Node<V> | null = null; // leftmost spine of the right result
  let n = t;
  while (n !== null) {
    if (n.start < key) {
      const next: Node<V> | null = n.right;
      if (leftTail === null) leftRoot = n;
      else leftTail.right = n;
      leftTail = n;
      n.right = null;
      n = next;
    } else {
      const next: Node<V> | null = n.left;
      if (rightTail === null) rightRoot = n;
      else rightTail.left = n;
      rightTail = n;
      n.left = null;
      n = next;
    }
  }
  return [leftRoot, rightRoot];
}

/** Merge two treaps where every start in `a` is below every start in `b`. Iterative. */
function merge<V>(a: Node<V> | null, b: Node<V> | null): Node<V> | null {
  let root: Node<V> | null = null;
  let parent: Node<V> | null = null;
  let rightSide = false; // which child slot of `parent` the next piece fills
  let x = a;
  let y = b;
  for (;;) {
    const pick: Node<V> | null = x === null ? y : y === null ? x : x.prio >= y.prio ? x : y;
    if (parent === null) root = pick;
    else if (rightSide) parent.right = pick;
    else parent.left = pick;
    if (x === null || y === null || pick === null) return root;
    parent = pick;
    if (pick === x) {
      // x stays on top; its right subtree merges with y.
      rightSide = true;
      x = x.right;
    } else {
      // y stays on top; x merges with its left subtree.
      rightSide = false;
      y = y.left;
    }
  }
}

function maxNode<V>(t: Node<V> | null): Node<V> | null {
  if (t === null) return null;
  while (t.right !== null) t = t.right;
  return t;
}

function collect<V>(t: Node<V> | null, out: Interval<V>[]): void {
  const stack: Node<V>[] = [];
  let n = t;
  while (n !== null || stack.length > 0) {
    while (n !== null) {
      stack.push(n);
      n = n.left;
    }
    const top = stack.pop()!;
    out.push(top);
    n = top.right;
  }
}
