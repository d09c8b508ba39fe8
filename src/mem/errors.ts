import { ViommuError } from '../errors.js';

/** Misuse of physical memory: an access outside it, a value that does not fit, an overlapping MMIO claim. */
export class MemoryError extends ViommuError {}

/** The page allocator cannot satisfy or accept a request (exhausted, double free, foreign page). */
export class AllocatorError extends ViommuError {}
