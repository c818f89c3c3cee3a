import type { VerificationResult } from '../types.ts';

/**
 * Reads the claims a policy needs from a verification result, by the names the verifiers use
 * (docs/attestation.md). A claim that is absent makes the policy fail closed: the evaluator reports
 * it as a reason instead of guessing.
 */
export class MissingClaim extends Error {
  constructor(name: string) {
    super(`the verification result has no '${name}' claim`);
    this.name = 'MissingClaim';
  }
}

export class Claims {
  private readonly claims: Record<string, unknown>;

  constructor(result: VerificationResult) {
    this.claims = result.claims ?? {};
  }

  /** The first path (dotted) that is present. */
  private find(paths: readonly string[]): unknown {
    for (const path of paths) {
      let value: unknown = this.claims;
      for (const part of path.split('.')) {
        value = isRecord(value) ? value[part] : undefined;
      }
      if (value !== undefined && value !== null) return value;
    }
    return undefined;
  }

  has(...paths: string[]): boolean {
    return this.find(paths) !== undefined;
  }

  /** Lower-case hex of a byte field given as hex (with or without 0x) or as bytes. */
  hex(...paths: string[]): string {
    const value = this.find(paths);
    if (typeof value === 'string' && /^(0x)?[0-9a-fA-F]*$/.test(value)) return value.replace(/^0x/, '').toLowerCase();
    if (value instanceof Uint8Array) return Array.from(value, (b) => b.toString(16).padStart(2, '0')).join('');
    throw new MissingClaim(paths[0]!);
  }

  /** An unsigned integer given as a number, bigint, decimal string or 0x-hex string. */
  uint(...paths: string[]): bigint {
    const value = this.find(paths);
    if (typeof value === 'bigint') return value;
    if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
    if (typeof value === 'boolean') return value ? 1n : 0n;
    if (typeof value === 'string' && /^(0x[0-9a-fA-F]+|\d+)$/.test(value)) return BigInt(value);
    throw new MissingClaim(paths[0]!);
  }

  num(...paths: string[]): number {
    return Number(this.uint(...paths));
  }

  bool(...paths: string[]): boolean {
    const value = this.find(paths);
    if (typeof value === 'boolean') return value;
    if (typeof value === 'number') return value !== 0;
    throw new MissingClaim(paths[0]!);
  }

  /** Booleans named in `names` folded into bits, for results that give flags as objects. */
  flags(path: string, names: Record<string, number>): number {
    const value = this.find([path]);
    if (!isRecord(value)) throw new MissingClaim(path);
    let out = 0;
    for (const [name, bit] of Object.entries(names)) {
      if (value[name] === true) out |= bit;
    }
    return out;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
