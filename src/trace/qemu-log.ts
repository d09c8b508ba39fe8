/**
 * Parser for QEMU's "log" trace backend output (`-trace 'virtio_iommu_*' -D trace.log`), with or without
 * `-msg timestamp=on` prefixes (`PID@SECONDS.MICROS:event args`). Lines of events in the catalog become
 * typed `TraceEvent`s; anything else (other events, guest console noise) is counted and skipped, never an
 * error: recordings are messy.
 */
import { ViommuError } from '../errors.js';
import type { IommuAccessFlag, TraceEvent, TraceEventMap, TraceEventName } from './catalog.js';

export class TraceParseError extends ViommuError {}

export interface ParsedTraceLine {
  /** 1-based line number in the log. */
  line: number;
  /** Seconds since the epoch, when the log carried timestamps. */
  time?: number;
  event: TraceEvent;
}

export interface ParsedTrace {
  events: ParsedTraceLine[];
  /** Lines skipped, by event name ('' for lines that were not trace events at all). */
  skipped: Map<string, number>;
}

const PREFIX = /^(?:(\d+)@(\d+\.\d+):)?([a-z][a-z0-9_]*) ?(.*)$/;
const NUM = '(-?0x[0-9a-fA-F]+|-?\\d+)';

function big(text: string): bigint {
  return text.startsWith('-') ? -BigInt(text.slice(1)) : BigInt(text);
}
/** A 32-bit id QEMU printed with %d (so 0xffffffff shows as -1). */
function u32(text: string): number {
  return Number(BigInt.asUintN(32, big(text)));
}

function fields(rest: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of rest.matchAll(new RegExp(`([A-Za-z_]+)\\s*=\\s*${NUM}`, 'g'))) out.set(m[1]!, m[2]!);
  return out;
}

type ArgParser<K extends TraceEventName> = (rest: string) => TraceEventMap[K] | undefined;

function need(f: Map<string, string>, ...keys: string[]): string[] | undefined {
  const vals = keys.map((k) => f.get(k));
  return vals.every((v) => v !== undefined) ? (vals as string[]) : undefined;
}

const PARSERS: { [K in TraceEventName]?: ArgParser<K> } = {
  virtio_iommu_device_reset: () => ({}),
  virtio_iommu_system_reset: () => ({}),
  virtio_iommu_device_status: (rest) => {
    const m = /status = (\d+)/.exec(rest);
    return m ? { status: Number(m[1]) } : undefined;
  },
  virtio_iommu_get_config: (rest) => {
    const m = new RegExp(
      `page_size_mask=${NUM} input range start=${NUM} input range end=${NUM} domain range start=${NUM} domain range end=${NUM} probe_size=${NUM} bypass=${NUM}`,
    ).exec(rest);
    if (!m) return undefined;
    return {
      page_size_mask: BigInt.asUintN(64, big(m[1]!)),
      input_start: BigInt.asUintN(64, big(m[2]!)),
      input_end: BigInt.asUintN(64, big(m[3]!)),
      domain_start: u32(m[4]!),
      domain_end: u32(m[5]!),
      probe_size: Number(big(m[6]!)),
      bypass: Number(big(m[7]!)),
    };
  },
  virtio_iommu_attach: (rest) => {
    const v = need(fields(rest), 'domain', 'endpoint');
    return v && { domain: u32(v[0]!), endpoint: u32(v[1]!) };
  },
  virtio_iommu_detach: (rest) => {
    const v = need(fields(rest), 'domain', 'endpoint');
    return v && { domain: u32(v[0]!), endpoint: u32(v[1]!) };
  },
  virtio_iommu_map: (rest) => {
    const v = need(fields(rest), 'domain', 'virt_start', 'virt_end', 'phys_start', 'flags');
    return v && { domain: u32(v[0]!), virt_start: big(v[1]!), virt_end: big(v[2]!), phys_start: big(v[3]!), flags: Number(v[4]) };
  },
  virtio_iommu_unmap: (rest) => {
    const v = need(fields(rest), 'domain', 'virt_start', 'virt_end');
    return v && { domain: u32(v[0]!), virt_start: big(v[1]!), virt_end: big(v[2]!) };
  },
  virtio_iommu_unmap_done: (rest) => {
    const v = need(fields(rest), 'domain', 'virt_start', 'virt_end');
    return v && { domain: u32(v[0]!), virt_start: big(v[1]!), virt_end: big(v[2]!) };
  },
  virtio_iommu_fill_resv_property: (rest) => {
    const v = need(fields(rest), 'dev', 'type', 'start', 'end');
    return v && { endpoint: u32(v[0]!), subtype: Number(v[1]), start: big(v[2]!), end: big(v[3]!) };
  },
  virtio_iommu_get_domain: (rest) => {
    const v = need(fields(rest), 'domain');
    return v && { domain: u32(v[0]!) };
  },
  virtio_iommu_put_domain: (rest) => {
    const v = need(fields(rest), 'domain');
    return v && { domain: u32(v[0]!) };
  },
  virtio_iommu_get_endpoint: (rest) => {
    const v = need(fields(rest), 'endpoint');
    return v && { endpoint: u32(v[0]!) };
  },
  virtio_iommu_put_endpoint: (rest) => {
    const v = need(fields(rest), 'endpoint');
    return v && { endpoint: u32(v[0]!) };
  },
  virtio_iommu_translate: (rest) => {
    const m = new RegExp(`^mr=(\\S*) rid=${NUM} addr=${NUM} flag=${NUM}`).exec(rest);
    return m ? { mr: m[1]!, rid: u32(m[2]!), addr: big(m[3]!), flag: (Number(m[4]) & 3) as IommuAccessFlag } : undefined;
  },
  virtio_iommu_translate_out: (rest) => {
    const m = new RegExp(`^${NUM} -> ${NUM} for sid=${NUM}`).exec(rest);
    return m ? { virt_addr: big(m[1]!), phys_addr: big(m[2]!), sid: u32(m[3]!) } : undefined;
  },
  virtio_iommu_report_fault: (rest) => {
    const m = new RegExp(`reason=${NUM} flags=${NUM} endpoint=${NUM} address\\s*=\\s*${NUM}`).exec(rest);
    return m ? { reason: Number(m[1]), flags: Number(m[2]), endpoint: u32(m[3]!), address: big(m[4]!) } : undefined;
  },
};

/** Parse a whole log. Malformed lines of known events are skipped and counted under their name. */
export function parseQemuTraceLog(text: string): ParsedTrace {
  const events: ParsedTraceLine[] = [];
  const skipped = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw === '') continue;
    const m = PREFIX.exec(raw);
    const name = m?.[3] ?? '';
    const parser = m ? (PARSERS as Record<string, ArgParser<TraceEventName> | undefined>)[name] : undefined;
    const args = parser?.(m![4] ?? '');
    if (!m || args === undefined) {
      skipped.set(name, (skipped.get(name) ?? 0) + 1);
      continue;
    }
    const entry: ParsedTraceLine = { line: i + 1, event: { name, args } as TraceEvent };
    if (m[2] !== undefined) entry.time = Number(m[2]);
    events.push(entry);
  }
  return { events, skipped };
}
