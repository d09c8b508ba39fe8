/**
 * `viommu pgtable`: build an IO page table in memory from a list of mappings, then show every entry a
 * walk of each requested address visits, as the hardware walker sees it (or why it faults).
 */
import { hex } from '../errors.js';
import { PageAllocator } from '../mem/page-allocator.js';
import { PhysMemory } from '../mem/phys-memory.js';
import {
  ACCESS_READ,
  ACCESS_WRITE,
  HwWalker,
  IOMMU_CACHE,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  PGTABLE_FORMATS,
  createPgtable,
  walkFaultName,
  type FlushOps,
  type IotlbGather,
  type PgtableFormatName,
} from '../pgtable/index.js';
import { CliError, parseBigint } from './args.js';

export const PGTABLE_HELP = `viommu pgtable [options]

Build an IO page table in simulated physical memory and walk it as the IOMMU would.

Options:
  --format F        ${PGTABLE_FORMATS.join(' | ')} (default vtd-ss)
  --ias N           input address bits (default 48)
  --oas N           output address bits (default 48)
  --pgsizes LIST    page sizes, e.g. 4K,2M,1G (default: all the format supports)
  --map IOVA:PA:SIZE[:PROT]   add a mapping; PROT letters r w x(exec) p(privileged) c(cacheable);
                    default rw. Repeatable.
  --unmap IOVA:SIZE remove mappings after the maps. Repeatable.
  --walk IOVA[:w]   walk this address (":w" for a write). Repeatable.
  --json            print one JSON document instead of text

With no --map, builds a small example (a 4K page, a 2M block, an unmap) and walks three addresses.`;

interface PgtableArgs {
  format: PgtableFormatName;
  ias: number;
  oas: number;
  pgsizes: bigint | undefined;
  maps: { iova: bigint; pa: bigint; size: bigint; prot: number }[];
  unmaps: { iova: bigint; size: bigint }[];
  walks: { iova: bigint; write: boolean }[];
  json: boolean;
}

const ALL_SIZES = (1n << 12n) | (1n << 14n) | (1n << 16n) | (1n << 21n) | (1n << 25n) | (1n << 29n) | (1n << 30n) | (1n << 42n);

function parseProt(s: string): number {
  let prot = 0;
  for (const ch of s) {
    switch (ch) {
      case 'r':
        prot |= IOMMU_READ;
        break;
      case 'w':
        prot |= IOMMU_WRITE;
        break;
      case 'x':
        break;
      case 'p':
        prot |= IOMMU_PRIV;
        break;
      case 'c':
        prot |= IOMMU_CACHE;
        break;
      default:
        throw new CliError(`unknown protection letter '${ch}' in '${s}' (use r, w, x, p, c)`);
    }
  }
  return s.includes('x') ? prot : prot | IOMMU_NOEXEC;
}

function parseSizes(list: string): bigint {
  let bitmap = 0n;
  for (const item of list.split(',')) bitmap |= parseBigint(item, '--pgsizes');
  return bitmap;
}

export function parsePgtableArgs(argv: string[]): PgtableArgs {
  const a: PgtableArgs = { format: 'vtd-ss', ias: 48, oas: 48, pgsizes: undefined, maps: [], unmaps: [], walks: [], json: false };
  for (let i = 0; i < argv.length; i++) {
    const opt = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new CliError(`${opt} needs a value`);
      return v;
    };
    switch (opt) {
      case '--format': {
        const f = value();
        if (!(PGTABLE_FORMATS as readonly string[]).includes(f)) throw new CliError(`--format must be one of ${PGTABLE_FORMATS.join(', ')}`);
        a.format = f as PgtableFormatName;
        break;
      }
      case '--ias':
        a.ias = Number(parseBigint(value(), '--ias'));
        break;
      case '--oas':
        a.oas = Number(parseBigint(value(), '--oas'));
        break;
      case '--pgsizes':
        a.pgsizes = parseSizes(value());
        break;
      case '--map': {
        const [iova, pa, size, prot] = value().split(':');
        if (iova === undefined || pa === undefined || size === undefined) throw new CliError('--map needs IOVA:PA:SIZE[:PROT]');
        a.maps.push({
          iova: parseBigint(iova, '--map IOVA'),
          pa: parseBigint(pa, '--map PA'),
          size: parseBigint(size, '--map SIZE'),
          prot: parseProt(prot ?? 'rw'),
        });
        break;
      }
      case '--unmap': {
        const [iova, size] = value().split(':');
        if (iova === undefined || size === undefined) throw new CliError('--unmap needs IOVA:SIZE');
        a.unmaps.push({ iova: parseBigint(iova, '--unmap IOVA'), size: parseBigint(size, '--unmap SIZE') });
        break;
      }
      case '--walk': {
        const [iova, mode] = value().split(':');
        a.walks.push({ iova: parseBigint(iova ?? '', '--walk IOVA'), write: mode === 'w' });
        break;
      }
      case '--json':
        a.json = true;
        break;
      default:
        throw new CliError(`unknown option ${opt}`);
    }
  }
  if (a.maps.length === 0) {
    a.maps.push({ iova: 0x1000n, pa: 0x7f000n, size: 0x1000n, prot: IOMMU_READ });
    a.maps.push({ iova: 0x200000n, pa: 0x40000000n, size: 0x200000n, prot: IOMMU_READ | IOMMU_WRITE });
    a.maps.push({ iova: 0x400000n, pa: 0x80000n, size: 0x2000n, prot: IOMMU_READ | IOMMU_WRITE });
    a.unmaps.push({ iova: 0x401000n, size: 0x1000n });
    if (a.walks.length === 0) {
      a.walks.push({ iova: 0x1234n, write: false }, { iova: 0x1234n, write: true }, { iova: 0x2abcdefn, write: true }, { iova: 0x401000n, write: false });
    }
  }
  return a;
}

type FlushRecord = { op: string; iova?: string; size?: string; granule?: string };

export function runPgtable(argv: string[]): string {
  const a = parsePgtableArgs(argv);
  const memory = new PhysMemory(1n << 52n);
  const flushes: FlushRecord[] = [];
  const tlb: FlushOps = {
    tlbFlushAll: () => void flushes.push({ op: 'flush_all' }),
    tlbFlushWalk: (iova, size, granule) => void flushes.push({ op: 'flush_walk', iova: hex(iova), size: hex(size), granule: hex(granule) }),
    tlbAddPage: (gather: IotlbGather, iova, granule) => {
      flushes.push({ op: 'add_page', iova: hex(iova), granule: hex(granule) });
      gather.add(iova, granule);
    },
  };
  const pgsizes = a.pgsizes ?? ALL_SIZES;
  const granule = [4096, 16384, 65536].find((g) => (pgsizes & BigInt(g)) !== 0n) ?? 4096;
  const allocator = new PageAllocator(memory, { base: 0x10000000n, size: 0x10000000n, granule: granule as 4096 | 16384 | 65536 });
  const pt = createPgtable(a.format, { pgsizeBitmap: pgsizes, ias: a.ias, oas: a.oas, tlb, granule: granule as 4096 | 16384 | 65536 }, memory, allocator);
  const steps: string[] = [];
  for (const m of a.maps) {
    pt.map(m.iova, m.pa, m.size, m.prot);
    steps.push(`map   ${hex(m.iova)} -> ${hex(m.pa)} size ${hex(m.size)}`);
  }
  for (const u of a.unmaps) steps.push(`unmap ${hex(u.iova)} size ${hex(u.size)}: ${hex(pt.unmap(u.iova, u.size))} bytes`);
  const walker = new HwWalker(pt.pteFormat, memory);
  const walks = a.walks.map((w) => {
    const path: { level: number; table: string; index: number; pte: string; kind: string }[] = [];
    pt.walk(w.iova, (e) => void path.push({ level: e.level, table: hex(e.tableAddr), index: e.index, pte: `0x${e.pte.toString(16).padStart(16, '0')}`, kind: e.kind }));
    const r = walker.walk(pt.root, w.iova, w.write ? ACCESS_WRITE : ACCESS_READ);
    return {
      iova: hex(w.iova),
      access: w.write ? 'write' : 'read',
      result: r.ok ? { pa: hex(r.pa), pageSize: hex(r.pageSize), level: r.level } : { fault: walkFaultName(r.fault), level: r.level },
      memoryReads: r.reads,
      path,
    };
  });
  const summary = {
    format: pt.format,
    levels: pt.levels,
    cfg: { ias: pt.cfg.ias, oas: pt.cfg.oas, granule: pt.cfg.granule, pgsizeBitmap: hex(pt.cfg.pgsizeBitmap) },
    root: hex(pt.root),
    tablePages: allocator.pagesInUse,
    steps,
    flushes,
    walks,
  };
  if (a.json) return JSON.stringify(summary, null, 2);
  const lines = [
    `${summary.format}: ${summary.levels} levels, ias ${summary.cfg.ias}, oas ${summary.cfg.oas}, granule ${hex(summary.cfg.granule)}, page sizes ${summary.cfg.pgsizeBitmap}`,
    `root table ${summary.root}; ${summary.tablePages} table pages in use`,
    ...steps.map((s) => `  ${s}`),
    `flush ops called: ${flushes.length === 0 ? 'none' : flushes.map((f) => `${f.op}(${[f.iova, f.size, f.granule].filter(Boolean).join(', ')})`).join(' ')}`,
  ];
  for (const w of walks) {
    lines.push('', `walk ${w.iova} (${w.access}): ${'pa' in w.result ? `-> ${w.result.pa} (page ${w.result.pageSize}, level ${w.result.level})` : `FAULT ${w.result.fault} at level ${w.result.level}`}, ${w.memoryReads} memory reads`);
    for (const p of w.path) lines.push(`  L${p.level} table ${p.table}[${p.index}] = ${p.pte} ${p.kind}`);
  }
  return lines.join('\n');
}
