/**
 * `viommu replay-trace`: replay a QEMU virtio-iommu trace log against our device and report agreement.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { parseQemuTraceLog } from '../trace/qemu-log.js';
import { replayVirtioIommuTrace } from '../workload/virtio-iommu-replay.js';
import { CliError } from './args.js';

export const DEFAULT_TRACE = fileURLToPath(new URL('../../../fixtures/traces/linux-6.12-virtio-iommu-lazy-blk.log.gz', import.meta.url));

export const REPLAY_HELP = `viommu replay-trace [file] [--profile spec|qemu-7.2] [--json]

Replay a QEMU virtio-iommu trace log (-trace 'virtio_iommu_*', plain or .gz) against viommu's device:
every ATTACH/DETACH/MAP/UNMAP through the request queue, every traced translation repeated and compared.
Without a file, replays the bundled trace of a real Linux 6.12 guest doing block I/O.`;

export function runReplay(argv: string[]): string {
  let file = DEFAULT_TRACE;
  let profile: 'spec' | 'qemu-7.2' = 'qemu-7.2';
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') json = true;
    else if (a === '--profile') {
      const p = argv[++i];
      if (p !== 'spec' && p !== 'qemu-7.2') throw new CliError('--profile must be spec or qemu-7.2');
      profile = p;
    } else if (a.startsWith('--')) throw new CliError(`unknown option ${a}`);
    else file = a;
  }
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const text = (file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
  const trace = parseQemuTraceLog(text);
  const r = replayVirtioIommuTrace(trace.events, profile);
  if (json) return JSON.stringify(r, null, 2);
  const lines = [
    `replayed ${file}`,
    `  profile ${r.profile}; ${trace.events.length} trace events understood, ${[...trace.skipped.values()].reduce((a, b) => a + b, 0)} lines skipped`,
    `  requests through the queue: ${r.requests.attach} ATTACH, ${r.requests.detach} DETACH, ${r.requests.map} MAP, ${r.requests.unmap} UNMAP -> ${Object.entries(r.statuses).map(([k, v]) => `${v} ${k}`).join(', ')}`,
    `  translations: ${r.translations.matched}/${r.translations.traced} traced outputs matched, ${r.translations.passThrough} untranslated accesses passed through`,
    `  mappings removed: ${r.unmapDone.ours} (QEMU ${r.unmapDone.traced})`,
    r.mismatchCount === 0 ? '  agreement: complete' : `  DISAGREEMENTS: ${r.mismatchCount}`,
    ...r.mismatches.slice(0, 10).map((m) => `    line ${m.line}: ${m.what}`),
  ];
  return lines.join('\n');
}
