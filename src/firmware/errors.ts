import { ViommuError } from '../errors.js';

/** A machine description that cannot be built, or firmware bytes that cannot be parsed. */
export class FirmwareError extends ViommuError {}
