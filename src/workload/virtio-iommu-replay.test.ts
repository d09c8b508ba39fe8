/**
 * A real Linux 6.12 guest against QEMU's virtio-iommu (fixtures/traces): every request replayed through our
 * request queue succeeds, every traced translation agrees, every untranslated access passes through, and
 * we remove exactly the mappings QEMU removed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { parseQemuTraceLog } from '../trace/index.js';
import { replayVirtioIommuTrace } from './virtio-iommu-replay.js';

const FIXTURE = fileURLToPath(new URL('../../../fixtures/traces/linux-6.12-virtio-iommu-lazy-blk.log.gz', import.meta.url));

describe('replay of a real Linux guest trace (QEMU 7.2 virtio-iommu, lazy mode, block I/O)', () => {
  const trace = parseQemuTraceLog(gunzipSync(readFileSync(FIXTURE)).toString('utf8'));

  for (const profile of ['qemu-7.2', 'spec'] as const) {
    it(`agrees with every traced request and translation (${profile} profile)`, () => {
      const r = replayVirtioIommuTrace(trace.events, profile);
      assert.deepEqual(r.mismatches, []);
      assert.deepEqual(r.requests, { attach: 2, detach: 0, map: 3182, unmap: 3180 });
      assert.deepEqual(r.statuses, { OK: 2 + 3182 + 3180 });
      assert.deepEqual(r.translations, { traced: 8626, matched: 8626, passThrough: 8694 - 8626 });
      assert.deepEqual(r.unmapDone, { traced: 3180, ours: 3180 });
    });
  }

  it('agrees with a second recording (strict mode, timestamped log)', () => {
    const strict = parseQemuTraceLog(gunzipSync(readFileSync(fileURLToPath(new URL('../../../fixtures/traces/linux-6.12-virtio-iommu-strict-blk.log.gz', import.meta.url)))).toString('utf8'));
    assert.ok(strict.events.every((e) => e.time !== undefined), 'timestamps parsed');
    const r = replayVirtioIommuTrace(strict.events, 'spec');
    const traced = (name: string): number => strict.events.filter((e) => e.event.name === name).length;
    assert.deepEqual(r.mismatches, []);
    assert.equal(r.translations.matched, traced('virtio_iommu_translate_out'));
    assert.equal(r.translations.matched + r.translations.passThrough, traced('virtio_iommu_translate'));
    assert.equal(r.requests.map, traced('virtio_iommu_map'));
    assert.equal(r.unmapDone.ours, traced('virtio_iommu_unmap_done'));
  });

  it('reports disagreement instead of hiding it', () => {
    const tampered = trace.events.map((e) =>
      e.event.name === 'virtio_iommu_translate_out' && e.line === trace.events.find((x) => x.event.name === 'virtio_iommu_translate_out')!.line
        ? { ...e, event: { ...e.event, args: { ...e.event.args, phys_addr: e.event.args.phys_addr + 0x1000n } } }
        : e,
    );
    const r = replayVirtioIommuTrace(tampered);
    assert.equal(r.mismatchCount, 1);
    assert.equal(r.translations.matched, 8625);
  });
});
