/**
 * Split virtqueues against hostile drivers: every malformed ring is a typed device error (never an
 * exception escaping, never a hang), and EVENT_IDX / NO_INTERRUPT suppression behave as the spec says.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PhysMemory } from '../mem/phys-memory.js';
import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from './constants.js';
import { Virtqueue, VirtqueueError, type VirtqueueFault } from './virtqueue.js';

const SIZE = 8;
const DESC = 0x1000;
const AVAIL = 0x2000;
const USED = 0x3000;

function setup(opts: { eventIdx?: boolean; indirect?: boolean; memory?: bigint } = {}) {
  const memory = new PhysMemory(opts.memory ?? 1n << 20n);
  const vq = new Virtqueue(memory, {
    size: SIZE,
    desc: BigInt(DESC),
    driver: BigInt(AVAIL),
    device: BigInt(USED),
    eventIdx: opts.eventIdx ?? false,
    indirect: opts.indirect ?? true,
  });
  let availIdx = 0;
  const desc = (i: number, addr: number, len: number, flags: number, next = 0, table = DESC): void => {
    const d = table + 16 * i;
    memory.writeU64(BigInt(d), BigInt(addr));
    memory.writeU32(BigInt(d + 8), len);
    memory.writeU16(BigInt(d + 12), flags);
    memory.writeU16(BigInt(d + 14), next);
  };
  const offer = (head: number): void => {
    memory.writeU16(BigInt(AVAIL + 4 + 2 * (availIdx % SIZE)), head);
    availIdx = (availIdx + 1) & 0xffff;
    memory.writeU16(BigInt(AVAIL + 2), availIdx);
  };
  return { memory, vq, desc, offer };
}

function fault(fn: () => unknown): VirtqueueFault | 'none' {
  try {
    fn();
  } catch (e) {
    if (e instanceof VirtqueueError) return e.fault;
    throw e;
  }
  return 'none';
}

describe('split virtqueue (device side)', () => {
  it('pops a readable+writable chain and gathers/scatters across buffers', () => {
    const { memory, vq, desc, offer } = setup();
    memory.write(0x8000n, Uint8Array.of(1, 2, 3));
    memory.write(0x9000n, Uint8Array.of(4, 5));
    desc(0, 0x8000, 3, VIRTQ_DESC_F_NEXT, 3);
    desc(3, 0x9000, 2, VIRTQ_DESC_F_NEXT, 5);
    desc(5, 0xa000, 4, VIRTQ_DESC_F_WRITE);
    offer(0);
    const c = vq.pop()!;
    assert.deepEqual([c.head, c.count, c.readableCount, c.readableBytes, c.writableBytes], [0, 3, 2, 5, 4]);
    const buf = new Uint8Array(5);
    assert.equal(c.read(0, buf), 5);
    assert.deepEqual(buf, Uint8Array.of(1, 2, 3, 4, 5));
    c.write(1, Uint8Array.of(9, 9));
    assert.deepEqual(memory.read(0xa000n, 4), Uint8Array.of(0, 9, 9, 0));
    vq.push(c.head, 4);
    assert.equal(memory.readU16(BigInt(USED + 2)), 1);
    assert.deepEqual([memory.readU32(BigInt(USED + 4)), memory.readU32(BigInt(USED + 8))], [0, 4]);
    assert.equal(vq.pop(), null);
  });

  it('follows indirect tables', () => {
    const { vq, desc, offer } = setup();
    desc(0, 0x5000, 0x10, 0, 0, 0x6000);
    desc(0, 0x6000, 32, VIRTQ_DESC_F_INDIRECT);
    desc(0, 0x8000, 8, VIRTQ_DESC_F_NEXT, 1, 0x6000);
    desc(1, 0x9000, 4, VIRTQ_DESC_F_WRITE, 0, 0x6000);
    offer(0);
    const c = vq.pop()!;
    assert.deepEqual([c.count, c.readableBytes, c.writableBytes], [2, 8, 4]);
  });

  // spec: descriptor chains are bounded by the table size; a loop is a driver error.
  it('reports a descriptor loop', () => {
    const { vq, desc, offer } = setup();
    desc(0, 0x8000, 4, VIRTQ_DESC_F_NEXT, 1);
    desc(1, 0x8000, 4, VIRTQ_DESC_F_NEXT, 0);
    offer(0);
    assert.equal(fault(() => vq.pop()), 'LOOP');
  });

  it('reports a loop inside an indirect table', () => {
    const { vq, desc, offer } = setup();
    desc(0, 0x6000, 32, VIRTQ_DESC_F_INDIRECT);
    desc(0, 0x8000, 4, VIRTQ_DESC_F_NEXT, 1, 0x6000);
    desc(1, 0x8000, 4, VIRTQ_DESC_F_NEXT, 0, 0x6000);
    offer(0);
    assert.equal(fault(() => vq.pop()), 'LOOP');
  });

  // spec: the driver MUST NOT set INDIRECT inside an indirect table, nor INDIRECT with NEXT.
  it('reports nested indirect, indirect with NEXT, and bad indirect lengths', () => {
    const a = setup();
    a.desc(0, 0x6000, 16, VIRTQ_DESC_F_INDIRECT);
    a.desc(0, 0x7000, 16, VIRTQ_DESC_F_INDIRECT, 0, 0x6000);
    a.offer(0);
    assert.equal(fault(() => a.vq.pop()), 'NESTED_INDIRECT');
    const b = setup();
    b.desc(0, 0x6000, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    b.offer(0);
    assert.equal(fault(() => b.vq.pop()), 'INDIRECT_WITH_NEXT');
    const c = setup();
    c.desc(0, 0x6000, 17, VIRTQ_DESC_F_INDIRECT);
    c.offer(0);
    assert.equal(fault(() => c.vq.pop()), 'INDIRECT_LEN');
    const d = setup({ indirect: false });
    d.desc(0, 0x6000, 16, VIRTQ_DESC_F_INDIRECT);
    d.offer(0);
    assert.equal(fault(() => d.vq.pop()), 'NESTED_INDIRECT');
  });

  it('reports buffers and tables outside memory, bad indices and an avail index racing ahead', () => {
    const a = setup();
    a.desc(0, 0xfffff, 4, 0);
    a.offer(0);
    assert.equal(fault(() => a.vq.pop()), 'OUT_OF_MEMORY');
    const b = setup();
    b.desc(0, 0x8000, 4, VIRTQ_DESC_F_NEXT, 99);
    b.offer(0);
    assert.equal(fault(() => b.vq.pop()), 'DESC_INDEX');
    const c = setup();
    c.offer(200);
    assert.equal(fault(() => c.vq.pop()), 'DESC_INDEX');
    const d = setup();
    d.memory.writeU16(BigInt(AVAIL + 2), SIZE + 1);
    assert.equal(fault(() => d.vq.pop()), 'AVAIL_IDX');
    assert.throws(
      () => new Virtqueue(new PhysMemory(0x2000n), { size: 8, desc: 0x1f90n, driver: 0n, device: 0x100n, eventIdx: false, indirect: false }),
      (e: unknown) => e instanceof VirtqueueError && e.fault === 'OUT_OF_MEMORY',
    );
  });

  // spec: device-readable descriptors come before device-writable ones.
  it('reports a readable descriptor after a writable one', () => {
    const { vq, desc, offer } = setup();
    desc(0, 0x8000, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    desc(1, 0x9000, 4, 0);
    offer(0);
    assert.equal(fault(() => vq.pop()), 'WRITE_BEFORE_READ');
  });

  it('reports chains whose lengths add up past 4 GiB', () => {
    const { vq, desc, offer } = setup({ memory: 1n << 34n });
    desc(0, 0x10000, 0xffffffff, VIRTQ_DESC_F_NEXT, 1);
    desc(1, 0x10000, 0x10, 0);
    offer(0);
    assert.equal(fault(() => vq.pop()), 'LENGTH_OVERFLOW');
  });

  // spec: without EVENT_IDX the device interrupts unless avail.flags has NO_INTERRUPT.
  it('honours NO_INTERRUPT', () => {
    const { memory, vq, desc, offer } = setup();
    desc(0, 0x8000, 4, VIRTQ_DESC_F_WRITE);
    offer(0);
    vq.push(vq.pop()!.head, 4);
    assert.equal(vq.shouldInterrupt(), true);
    memory.writeU16(BigInt(AVAIL), VIRTQ_AVAIL_F_NO_INTERRUPT);
    offer(0);
    vq.push(vq.pop()!.head, 4);
    assert.equal(vq.shouldInterrupt(), false);
  });

  // spec: with EVENT_IDX the device interrupts when used.idx passes used_event, and publishes avail_event.
  it('honours used_event and publishes avail_event', () => {
    const { memory, vq, desc, offer } = setup({ eventIdx: true });
    desc(0, 0x8000, 4, VIRTQ_DESC_F_WRITE);
    memory.writeU16(BigInt(AVAIL + 4 + 2 * SIZE), 1); // interrupt when used.idx moves past 1
    offer(0);
    vq.push(vq.pop()!.head, 4);
    assert.equal(memory.readU16(BigInt(USED + 4 + 8 * SIZE)), 1, 'avail_event');
    assert.equal(vq.shouldInterrupt(), false, 'used.idx 1 has not passed used_event 1');
    offer(0);
    vq.push(vq.pop()!.head, 4);
    assert.equal(vq.shouldInterrupt(), true);
  });
});
