/**
 * The one error base class of viommu. Every layer may import this file (it imports nothing).
 *
 * Model bugs and misuse of a programming interface throw a subclass of `ViommuError` carrying a stable
 * `code` (machine-readable, never reworded) and structured `details`. Guest-visible outcomes are never
 * thrown: they are values (a virtio status, a VT-d fault reason).
 */
export class ViommuError extends Error {
  readonly code: string;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }

  toJSON(): { name: string; code: string; message: string; details: Record<string, unknown> } {
    const details: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(this.details)) details[k] = typeof v === 'bigint' ? hex(v) : v;
    return { name: this.name, code: this.code, message: this.message, details };
  }
}

/** `0x`-prefixed lowercase hex of a non-negative integer; the one spelling used in messages and renders. */
export function hex(v: bigint | number): string {
  return v < 0 ? `-0x${(-BigInt(v)).toString(16)}` : `0x${v.toString(16)}`;
}
