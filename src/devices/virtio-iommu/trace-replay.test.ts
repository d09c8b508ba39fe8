/**
 * A real Linux 6.12 guest against QEMU's virtio-iommu (fixtures/traces): replay every ATTACH, DETACH, MAP
 * and UNMAP through our device's request queue in the order the driver sent them, and check each
 * translation QEMU performed — the traced output address, or the untranslated MSI doorbell — with
 * `translate()` at the same point of the sequence.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { parseQemuTraceLog, type TraceEvent } from '../../trace/index.js';
import { Rig } from './test-support.js';
import { VIRTIO_IOMMU_S_OK } from './wire.js';

const FIXTURE = fileURLToPath(new URL('../../../../fixtures/traces/linux-6.12-virtio-iommu-lazy-blk.log.gz', import.meta.url));

describe('replay of a real Linux guest trace (QEMU 7.2 virtio-iommu, lazy mode, block I/O)', () => {
  const trace = parseQemuTraceLog(gunzipSync(readFileSync(FIXTURE)).toString('utf8'));
  const config = trace.events.find((e) => e.event.name === 'virtio_iommu_get_config')!.event;
  assert.equal(config.name, 'virtio_iommu_get_config');

  for (const profile of ['qemu-7.2', 'spec'] as const) {
    it(`agrees with every traced translation (${profile} profile)`, () => {
      const rig = new Rig({
        profile,
        endpoints: [0, 8, 16, 24, 32, 40, 248, 250, 251],
        pageSizeMask: config.args.page_size_mask,
        inputRange: { start: config.args.input_start, end: config.args.input_end },
        domainRange: { start: config.args.domain_start, end: config.args.domain_end },
        probeSize: config.args.probe_size,
        bypass: config.args.bypass === 1,
        reservedRegions: [{ subtype: 'msi', start: 0xfee00000n, end: 0xfeefffffn }],
      });
      const counts = { attach: 0, map: 0, unmap: 0, translated: 0, msi: 0, unmapDone: 0 };
      const ours: TraceEvent[] = rig.events;
      let pending: { rid: number; addr: bigint; flag: number } | undefined;
      const checkPendingAsUntranslated = (): void => {
        if (pending === undefined) return;
        // QEMU traces no output for accesses it let through untranslated (the MSI doorbell).
        const r = rig.device.translate(pending.rid, pending.addr, { read: (pending.flag & 1) !== 0, write: (pending.flag & 2) !== 0 });
        assert.ok(r.ok && r.bypass && r.addr === pending.addr, `untranslated access 0x${pending.addr.toString(16)}`);
        counts.msi++;
        pending = undefined;
      };
      for (const { event, line } of trace.events) {
        switch (event.name) {
          case 'virtio_iommu_attach':
            checkPendingAsUntranslated();
            assert.equal(rig.attach(event.args.domain, event.args.endpoint), VIRTIO_IOMMU_S_OK, `line ${line}`);
            counts.attach++;
            break;
          case 'virtio_iommu_detach':
            checkPendingAsUntranslated();
            assert.equal(rig.detach(event.args.domain, event.args.endpoint), VIRTIO_IOMMU_S_OK, `line ${line}`);
            break;
          case 'virtio_iommu_map': {
            checkPendingAsUntranslated();
            const a = event.args;
            assert.equal(rig.map(a.domain, a.virt_start, a.virt_end, a.phys_start, a.flags), VIRTIO_IOMMU_S_OK, `line ${line}`);
            counts.map++;
            break;
          }
          case 'virtio_iommu_unmap': {
            checkPendingAsUntranslated();
            const a = event.args;
            const before = ours.filter((e) => e.name === 'virtio_iommu_unmap_done').length;
            assert.equal(rig.unmap(a.domain, a.virt_start, a.virt_end), VIRTIO_IOMMU_S_OK, `line ${line}`);
            counts.unmapDone += ours.filter((e) => e.name === 'virtio_iommu_unmap_done').length - before;
            counts.unmap++;
            break;
          }
          case 'virtio_iommu_translate':
            checkPendingAsUntranslated();
            pending = { rid: event.args.rid, addr: event.args.addr, flag: event.args.flag };
            break;
          case 'virtio_iommu_translate_out': {
            assert.ok(pending && pending.addr === event.args.virt_addr, `line ${line}: output without request`);
            const r = rig.device.translate(event.args.sid, pending.addr, { read: (pending.flag & 1) !== 0, write: (pending.flag & 2) !== 0 });
            assert.ok(r.ok, `line ${line}: we faulted where QEMU translated`);
            assert.equal(r.addr, event.args.phys_addr, `line ${line}`);
            counts.translated++;
            pending = undefined;
            break;
          }
          default:
            break;
        }
      }
      checkPendingAsUntranslated();
      const traced = (name: string): number => trace.events.filter((e) => e.event.name === name).length;
      assert.equal(counts.translated, traced('virtio_iommu_translate_out'));
      assert.equal(counts.translated + counts.msi, traced('virtio_iommu_translate'));
      assert.equal(counts.map, traced('virtio_iommu_map'));
      assert.equal(counts.unmapDone, traced('virtio_iommu_unmap_done'));
      assert.equal(rig.device.stats.faults, 0);
    });
  }
});
