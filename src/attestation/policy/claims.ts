import type { VerificationResult } from '../types.ts';

/**
 * Reads the claims a policy needs from a verification result, by the names the verifiers give them
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

  /** The value at a dotted path, or undefined. */
  private find(path: string): unknown {
    let value: unknown = this.claims;
    for (const part of path.split('.')) {
      value = isRecord(value) ? value[part] : undefined;
    }
    return value ?? undefined;
  }

  /** Lower-case hex of a byte field. */
  hex(path: string): string {
    const value = this.find(path);
    if (typeof value === 'string' && /^[0-9a-fA-F]*$/.test(value)) return value.toLowerCase();
    throw new MissingClaim(path);
  }

  /** An unsigned integer given as a number, bigint, or 0x-hex string (the verifiers' u64 fields). */
  uint(path: string): bigint {
    const value = this.find(path);
    if (typeof value === 'bigint') return value;
    if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return BigInt(value);
    if (typeof value === 'string' && /^0x[0-9a-fA-F]+$/.test(value)) return BigInt(value);
    throw new MissingClaim(path);
  }

  num(path: string): number {
    return Number(this.uint(path));
  }

  bool(path: string): boolean {
    const value = this.find(path);
    if (typeof value === 'boolean') return value;
    throw new MissingClaim(path);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
