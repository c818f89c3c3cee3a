/**
 * The API's two encodings. CBOR carries byte strings as they are; JSON carries them as
 * unpadded base64url strings. Everything else is the same document.
 */
import { encode, decode } from 'cborg';

export type Format = 'json' | 'cbor';
export const CBOR_TYPE = 'application/cbor';
export const JSON_TYPE = 'application/json';
export const PROBLEM_TYPE = 'application/problem+json';
export const JOSE_TYPE = 'application/jose';

export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

/** The response format an Accept header asks for: CBOR only when it ranks CBOR above JSON. */
export function negotiate(accept: string | undefined): Format {
  if (!accept) return 'json';
  let best: { format: Format; q: number } = { format: 'json', q: -1 };
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const qp = params.find((p) => p.startsWith('q='));
    const q = qp ? Number(qp.slice(2)) : 1;
    const format: Format | undefined = type === CBOR_TYPE ? 'cbor' : type === JSON_TYPE || type === '*/*' || type === 'application/*' ? 'json' : undefined;
    if (format && Number.isFinite(q) && q > best.q) best = { format, q };
  }
  return best.format;
}

function toJsonValue(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64url');
  if (Array.isArray(v)) return v.map(toJsonValue);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = toJsonValue(x);
    return out;
  }
  return v;
}

function toCborValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toCborValue);
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = toCborValue(x);
    return out;
  }
  return v;
}

export function encodeBody(value: unknown, format: Format): Uint8Array {
  return format === 'cbor' ? encode(toCborValue(value)) : Buffer.from(`${JSON.stringify(toJsonValue(value))}\n`);
}

export function decodeBody(bytes: Uint8Array, format: Format): unknown {
  if (format === 'cbor') return decode(bytes);
  return JSON.parse(Buffer.from(bytes).toString('utf8'));
}

/** Reads a byte field from a decoded request: bytes in CBOR, base64url text in JSON. */
export function bytesField(body: Record<string, unknown>, name: string, format: Format): Uint8Array | undefined {
  const v = body[name];
  if (v === undefined) return undefined;
  if (format === 'cbor') return v instanceof Uint8Array ? v : undefined;
  if (typeof v !== 'string' || !/^[A-Za-z0-9_-]*$/.test(v)) return undefined;
  return new Uint8Array(Buffer.from(v, 'base64url'));
}

/** Reads a byte field from a decoded response, whichever encoding it came in. */
export function responseBytes(v: unknown): Uint8Array | null {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return new Uint8Array(Buffer.from(v, 'base64url'));
  return null;
}
