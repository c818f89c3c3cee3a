// Bounds-checked little-endian reading for the Intel quote parser.
import { VerificationError } from '../types.ts';

/**
 * A bounds-checked little-endian cursor over a quote. Every read that would pass the end of its
 * window throws a 'parse' VerificationError naming the field, so truncated input never reads garbage.
 */
export class Reader {
  readonly bytes: Uint8Array;
  readonly end: number;
  pos: number;
  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    this.bytes = bytes;
    this.pos = start;
    this.end = end;
  }
  get remaining(): number {
    return this.end - this.pos;
  }
  take(n: number, what: string): Uint8Array {
    if (n < 0 || n > this.remaining) {
      throw new VerificationError('parse', `quote is truncated: ${what} needs ${n} bytes at offset ${this.pos}, ${this.remaining} left`);
    }
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u16(what: string): number {
    const b = this.take(2, what);
    return b[0]! | (b[1]! << 8);
  }
  u32(what: string): number {
    const b = this.take(4, what);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }
}

export function u16le(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

export function u32le(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/** Little-endian u64 as a bigint (attribute and XFAM words). */
export function u64le(b: Uint8Array, at: number): bigint {
  return BigInt(u32le(b, at)) | (BigInt(u32le(b, at + 4)) << 32n);
}
