import { ViommuError } from '../errors.js';

/** A command-line mistake: printed with the usage, exit status 2. */
export class CliError extends ViommuError {
  constructor(message: string) {
    super('CLI_USAGE', message);
  }
}

const UNITS: Record<string, bigint> = { K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n };

/** Decimal, 0x-hex, or a size with a K/M/G/T suffix ("4K", "2M"). */
export function parseBigint(text: string, what: string): bigint {
  const m = /^(0x[0-9a-f_]+|\d+)([KMGT])?$/i.exec(text.trim());
  if (!m) throw new CliError(`${what}: '${text}' is not a number (decimal, 0x-hex, or with K/M/G/T)`);
  const n = BigInt(m[1]!.replaceAll('_', ''));
  return m[2] ? n * UNITS[m[2].toUpperCase()]! : n;
}
