/**
 * Content-Digest (RFC 9530) as Drawbridge uses it: a structured-field dictionary whose members are
 * `sha-224`, `sha-256`, `sha-384` and `sha-512`, each a byte sequence in padded standard base64,
 * e.g. `sha-256=:LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=:`.
 */
import { createHash, type Hash } from 'node:crypto';

export const ALGORITHMS = ['sha-224', 'sha-256', 'sha-384', 'sha-512'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

const NODE_NAME: Record<Algorithm, string> = { 'sha-224': 'sha224', 'sha-256': 'sha256', 'sha-384': 'sha384', 'sha-512': 'sha512' };
const SIZE: Record<Algorithm, number> = { 'sha-224': 28, 'sha-256': 32, 'sha-384': 48, 'sha-512': 64 };

/** Algorithm name to standard padded base64 value; only the algorithms present. */
export type Digests = Partial<Record<Algorithm, string>>;

export class DigestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DigestError';
  }
}

export function isAlgorithm(name: string): name is Algorithm {
  return (ALGORITHMS as readonly string[]).includes(name);
}

// RFC 8941 sf-key and the base64 alphabet of a byte sequence.
const KEY = /^[a-z*][a-z0-9_.*-]*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_HEADER = 4096;

/**
 * Parses a Content-Digest header value. Unknown algorithms are ignored (RFC 9530 section 2), as are
 * member parameters; a known algorithm whose value is not a byte sequence of the right length is an
 * error, and so is a header naming no known algorithm. Keys compare case-insensitively, as Enarx's do.
 */
export function parseContentDigest(header: string): Digests {
  if (header.length > MAX_HEADER) throw new DigestError(`Content-Digest is longer than ${MAX_HEADER} characters`);
  const out: Digests = {};
  for (const rawMember of splitMembers(header)) {
    const member = rawMember.trim();
    if (member === '') throw new DigestError('Content-Digest has an empty member');
    const eq = member.indexOf('=');
    if (eq < 0) throw new DigestError(`Content-Digest member '${clip(member)}' has no '='`);
    const key = member.slice(0, eq).toLowerCase();
    if (!KEY.test(key)) throw new DigestError(`Content-Digest key '${clip(key)}' is not a valid structured-field key`);
    let value = member.slice(eq + 1);
    const semicolon = value.indexOf(';');
    if (semicolon >= 0) value = value.slice(0, semicolon); // parameters carry nothing Drawbridge uses
    if (!isAlgorithm(key)) continue;
    if (value.length < 2 || !value.startsWith(':') || !value.endsWith(':')) {
      throw new DigestError(`Content-Digest value for ${key} must be a byte sequence ':base64:'`);
    }
    out[key] = normaliseBase64(key, value.slice(1, -1));
  }
  if (Object.keys(out).length === 0) {
    throw new DigestError(`Content-Digest names none of ${ALGORITHMS.join(', ')}`);
  }
  return out;
}

function splitMembers(header: string): string[] {
  // Byte sequences cannot contain ',' so a plain split is exact.
  return header.split(',');
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

/** Checks a base64 digest value for `algorithm` and returns it padded, as Enarx prints it. */
export function normaliseBase64(algorithm: Algorithm, value: string): string {
  if (!BASE64.test(value)) throw new DigestError(`${algorithm} digest is not standard base64`);
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length !== SIZE[algorithm]) {
    throw new DigestError(`${algorithm} digest has ${bytes.length} bytes, expected ${SIZE[algorithm]}`);
  }
  const canonical = bytes.toString('base64');
  if (canonical.replace(/=+$/, '') !== value.replace(/=+$/, '')) {
    throw new DigestError(`${algorithm} digest is not canonical base64`);
  }
  return canonical;
}

/** Formats digests in Enarx's order: `sha-224=:...:,sha-256=:...:`. */
export function formatContentDigest(digests: Digests): string {
  return ALGORITHMS.filter((a) => digests[a] !== undefined)
    .map((a) => `${a}=:${digests[a]}:`)
    .join(',');
}

/**
 * Validates a `digest` object from a tree entry (`{"sha-256": "..."}`): known algorithms only,
 * at least one, each of the right length.
 */
export function parseDigestObject(value: unknown, what = 'digest'): Digests {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DigestError(`${what} must be an object of algorithm to base64 value`);
  }
  const out: Digests = {};
  for (const [key, v] of Object.entries(value)) {
    if (!isAlgorithm(key)) throw new DigestError(`${what} names unknown algorithm '${clip(key)}'`);
    if (typeof v !== 'string') throw new DigestError(`${what}.${key} must be a string`);
    out[key] = normaliseBase64(key, v);
  }
  if (Object.keys(out).length === 0) throw new DigestError(`${what} names no algorithm`);
  return out;
}

/** The digest object in Enarx's key order, for serialising a tree entry. */
export function orderedDigests(digests: Digests): Digests {
  const out: Digests = {};
  for (const a of ALGORITHMS) if (digests[a] !== undefined) out[a] = digests[a];
  return out;
}

/**
 * Every algorithm in `claimed` must equal `actual`'s value; `actual` normally holds all four.
 * Returns the first algorithm that differs, or undefined.
 */
export function firstMismatch(claimed: Digests, actual: Digests): Algorithm | undefined {
  for (const a of ALGORITHMS) {
    const c = claimed[a];
    if (c !== undefined && actual[a] !== undefined && c !== actual[a]) return a;
  }
  return undefined;
}

/** True when both name a common algorithm and agree on every common one. */
export function digestsAgree(a: Digests, b: Digests): boolean {
  let common = 0;
  for (const alg of ALGORITHMS) {
    if (a[alg] !== undefined && b[alg] !== undefined) {
      if (a[alg] !== b[alg]) return false;
      common++;
    }
  }
  return common > 0;
}

/** Hashes a stream incrementally with all four algorithms. */
export class MultiHasher {
  #hashes: [Algorithm, Hash][] = ALGORITHMS.map((a) => [a, createHash(NODE_NAME[a])]);
  #length = 0;

  update(chunk: Uint8Array): void {
    this.#length += chunk.byteLength;
    for (const [, h] of this.#hashes) h.update(chunk);
  }

  get length(): number {
    return this.#length;
  }

  digest(): Digests {
    const out: Digests = {};
    for (const [a, h] of this.#hashes) out[a] = h.digest('base64');
    return out;
  }
}

export function digestBytes(bytes: Uint8Array): Digests {
  const h = new MultiHasher();
  h.update(bytes);
  return h.digest();
}

/** The lowercase hex SHA-256, which names a blob in the store. */
export function sha256Hex(digests: Digests): string {
  const b64 = digests['sha-256'];
  if (b64 === undefined) throw new DigestError('sha-256 digest missing');
  return Buffer.from(b64, 'base64').toString('hex');
}
