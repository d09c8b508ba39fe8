/**
 * VT-d fault reasons (VT-d spec chapter 7 and Appendix A; ../shared/reference/vtd.md), legacy and scalable,
 * and the 128-bit fault record.
 */
import { bit, bits, defineLayout, wide } from '../../layout/layout.js';

// Legacy mode.
export const VTD_FR_ROOT_ENTRY_P = 0x1;
export const VTD_FR_CONTEXT_ENTRY_P = 0x2;
export const VTD_FR_CONTEXT_ENTRY_INV = 0x3;
export const VTD_FR_ADDR_BEYOND_MGAW = 0x4;
export const VTD_FR_WRITE = 0x5;
export const VTD_FR_READ = 0x6;
export const VTD_FR_PAGING_ENTRY_INV = 0x7;
export const VTD_FR_ROOT_TABLE_INV = 0x8;
export const VTD_FR_CONTEXT_TABLE_INV = 0x9;
export const VTD_FR_ROOT_ENTRY_RSVD = 0xa;
export const VTD_FR_CONTEXT_ENTRY_RSVD = 0xb;
export const VTD_FR_PAGING_ENTRY_RSVD = 0xc;
export const VTD_FR_CONTEXT_ENTRY_TT = 0xd;
/** QEMU's reason for a second-stage output in the interrupt address range (legacy mode). */
export const VTD_FR_INTERRUPT_ADDR = 0xe;
// Scalable mode.
export const VTD_FR_RTADDR_INV_TTM = 0x31;
export const VTD_FR_SM_ROOT_ACCESS = 0x38;
export const VTD_FR_SM_ROOT_P = 0x39;
export const VTD_FR_SM_ROOT_RSVD = 0x3a;
export const VTD_FR_SM_CTX_ACCESS = 0x40;
export const VTD_FR_SM_CTX_P = 0x41;
export const VTD_FR_SM_CTX_RSVD = 0x42;
export const VTD_FR_SM_CTX_INV = 0x43;
export const VTD_FR_SM_CTX_DTE = 0x44;
export const VTD_FR_SM_CTX_PASIDE = 0x45;
export const VTD_FR_SM_PASID_OVER_PDTS = 0x46;
export const VTD_FR_SM_CTX_PRE = 0x47;
export const VTD_FR_SM_RID_PASID = 0x48;
export const VTD_FR_SM_PASID_DIR_ACCESS = 0x50;
export const VTD_FR_SM_PASID_DIR_P = 0x51;
export const VTD_FR_SM_PASID_DIR_RSVD = 0x52;
export const VTD_FR_SM_PASID_TABLE_ACCESS = 0x58;
export const VTD_FR_SM_PASID_TABLE_P = 0x59;
export const VTD_FR_SM_PASID_TABLE_RSVD = 0x5a;
export const VTD_FR_SM_PASID_ENTRY_INV = 0x5b;
export const VTD_FR_SM_ERE_0 = 0x5c;
export const VTD_FR_SM_SRE_0 = 0x5d;
export const VTD_FR_FS_ACCESS = 0x70;
export const VTD_FR_FS_NOT_PRESENT = 0x71;
export const VTD_FR_FS_RSVD = 0x72;
export const VTD_FR_NESTED_BEYOND_MGAW = 0x74;
export const VTD_FR_NESTED_FS_READ = 0x75;
export const VTD_FR_NESTED_FS_WRITE = 0x77;
export const VTD_FR_SS_ACCESS = 0x78;
export const VTD_FR_SS_RW = 0x79;
export const VTD_FR_SS_RSVD = 0x7a;
export const VTD_FR_SS_INV_PTR = 0x7b;
export const VTD_FR_NON_CANONICAL = 0x80;
export const VTD_FR_FS_USER = 0x81;
export const VTD_FR_FS_EXEC = 0x82;
export const VTD_FR_FS_WRITE = 0x85;
export const VTD_FR_FS_READ = 0x86;
/** Second-stage output in the interrupt address range (scalable mode). */
export const VTD_FR_SM_INTERRUPT_ADDR = 0x87;

/** Fault record (128 bits): FI 63:12, SID 79:64, PRIV 93, EXE 94, PP 95, FR 103:96, PASID 123:104, AT 125:124, T 126, F 127. */
export const VTD_FAULT_RECORD = defineLayout('vtd_fault_record', 16, {
  FI: wide(63, 12),
  SID: bits(79, 64),
  PRIV: bit(93),
  EXE: bit(94),
  PP: bit(95),
  FR: bits(103, 96),
  PASID: bits(123, 104),
  AT: bits(125, 124),
  T: bit(126),
  F: bit(127),
});
