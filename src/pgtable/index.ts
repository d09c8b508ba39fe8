/**
 * IO page-table formats behind one interface. `createPgtable` picks the format; the format narrows the
 * config (page sizes it supports, the widths its levels give) and the engine lays the tables in memory.
 */
import type { PageAllocator } from '../mem/page-allocator.js';
import type { PhysMemory } from '../mem/phys-memory.js';
import { ArmLpaeFormat } from './arm-lpae.js';
import type { PteFormat } from './format.js';
import { RadixPgtable } from './radix.js';
import { PgtableError, type IoPgtableCfg, type PgtableFormatName } from './types.js';
import { VtdSecondStageFormat } from './vtd-ss.js';
import { X86FirstStageFormat } from './x86-fs.js';

export * from './types.js';
export * from './format.js';
export * from './hw-walk.js';
export { RadixPgtable } from './radix.js';
export { VtdSecondStageFormat, VTD_SL_PTE } from './vtd-ss.js';
export { X86FirstStageFormat, X86_FS_PTE } from './x86-fs.js';
export { ArmLpaeFormat, ARM_LPAE_S1_PTE, ARM_LPAE_S2_PTE } from './arm-lpae.js';

export const PGTABLE_FORMATS: readonly PgtableFormatName[] = ['vtd-ss', 'x86-fs', 'arm-lpae-s1', 'arm-lpae-s2'];

/** The format descriptor alone (for hardware walkers over tables someone else built). */
export function createPteFormat(format: PgtableFormatName, cfg: IoPgtableCfg): PteFormat {
  switch (format) {
    case 'vtd-ss':
      return new VtdSecondStageFormat(cfg);
    case 'x86-fs':
      return new X86FirstStageFormat(cfg);
    case 'arm-lpae-s1':
      return new ArmLpaeFormat(1, cfg);
    case 'arm-lpae-s2':
      return new ArmLpaeFormat(2, cfg);
    default:
      throw new PgtableError('EINVAL', 'PGTABLE_BAD_FORMAT', `unknown page-table format ${String(format)}`);
  }
}

export function createPgtable(
  format: PgtableFormatName,
  cfg: IoPgtableCfg,
  memory: PhysMemory,
  allocator: PageAllocator,
): RadixPgtable {
  return new RadixPgtable(createPteFormat(format, cfg), memory, allocator, cfg.tlb);
}

/** A read-only view of a table someone else built (a guest, a device model's tables): walk and look up. */
export function pgtableView(format: PgtableFormatName, cfg: IoPgtableCfg, memory: PhysMemory, root: bigint): RadixPgtable {
  return new RadixPgtable(createPteFormat(format, cfg), memory, undefined, undefined, Number(root));
}
