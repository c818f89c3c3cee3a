/**
 * A strict, bounds-checked DER TLV reader. The verifiers need exact byte slices (the signed
 * tbsCertificate, a name's encoding, an extension's value), which a decode-and-re-encode library
 * cannot promise, and they read vendor extensions (AMD VCEK, Intel PCK) that no library models.
 * Only definite lengths in minimal form are accepted: this is DER, not BER.
 */

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export interface Tlv {
  /** The identifier octet (only single-octet tags are supported, which covers X.509). */
  tag: number;
  /** Offset of the identifier octet in the buffer. */
  start: number;
  /** Offset of the first content octet. */
  contentStart: number;
  /** Offset just past the last content octet. */
  end: number;
  /** The whole TLV (header + content). */
  raw: Uint8Array;
  /** The content octets. */
  content: Uint8Array;
}

/** Reads one TLV at `offset`, which must lie entirely inside `buf`. */
export function readTlv(buf: Uint8Array, offset = 0): Tlv {
  if (offset + 2 > buf.length) throw new DerError('truncated DER header');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte DER tags are not supported');
  let length = buf[offset + 1]!;
  let contentStart = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0) throw new DerError('indefinite length is not DER');
    if (count > 4) throw new DerError('DER length too large');
    if (offset + 2 + count > buf.length) throw new DerError('truncated DER length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buf[offset + 2 + i]!;
    if (buf[offset + 2] === 0 || length < 0x80) throw new DerError('non-minimal DER length');
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > buf.length) throw new DerError('DER value runs past the end of its container');
  return {
    tag,
    start: offset,
    contentStart,
    end,
    raw: buf.subarray(offset, end),
    content: buf.subarray(contentStart, end),
  };
}

/** Reads a TLV that must span the whole buffer exactly. */
export function readWhole(buf: Uint8Array, expectedTag?: number): Tlv {
  const tlv = readTlv(buf, 0);
  if (tlv.end !== buf.length) throw new DerError(`${buf.length - tlv.end} bytes after the DER value`);
  if (expectedTag !== undefined) expectTag(tlv, expectedTag);
  return tlv;
}

/** The TLVs inside a constructed value's content. */
export function children(tlv: Tlv): Tlv[] {
  if ((tlv.tag & 0x20) === 0) throw new DerError(`tag 0x${tlv.tag.toString(16)} is not constructed`);
  const out: Tlv[] = [];
  const content = tlv.content;
  let at = 0;
  while (at < content.length) {
    const child = readTlv(content, at);
    out.push(child);
    at = child.end;
  }
  return out;
}

export function expectTag(tlv: Tlv, tag: number): Tlv {
  if (tlv.tag !== tag) throw new DerError(`expected DER tag 0x${tag.toString(16)}, found 0x${tlv.tag.toString(16)}`);
  return tlv;
}

/** Decodes an OBJECT IDENTIFIER's content into dotted form. */
export function decodeOid(tlv: Tlv): string {
  expectTag(tlv, TAG.OID);
  const c = tlv.content;
  if (c.length === 0) throw new DerError('empty OID');
  const arcs: number[] = [];
  let value = 0;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    if (value === 0 && b === 0x80) throw new DerError('non-minimal OID arc');
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 128) throw new DerError('OID arc too large');
    if ((b & 0x80) === 0) {
      arcs.push(value);
      value = 0;
    } else if (i === c.length - 1) {
      throw new DerError('truncated OID');
    }
  }
  const first = arcs.shift()!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs].join('.');
}

/** A non-negative INTEGER that fits a JS number (SPLs, versions, SVNs). */
export function decodeSmallUint(tlv: Tlv): number {
  expectTag(tlv, TAG.INTEGER);
  const c = tlv.content;
  if (c.length === 0) throw new DerError('empty INTEGER');
  if (c[0]! & 0x80) throw new DerError('negative INTEGER where a non-negative one is required');
  if (c.length > 1 && c[0] === 0 && (c[1]! & 0x80) === 0) throw new DerError('non-minimal INTEGER');
  if (c.length > 7) throw new DerError('INTEGER too large');
  let value = 0;
  for (const b of c) value = value * 256 + b;
  return value;
}

/** The magnitude of an INTEGER as lowercase hex without leading zeros ("0" for zero), e.g. a serial number. */
export function integerHex(content: Uint8Array): string {
  let i = 0;
  while (i < content.length - 1 && content[i] === 0) i++;
  let hex = '';
  for (; i < content.length; i++) hex += content[i]!.toString(16).padStart(2, '0');
  hex = hex.replace(/^0+/, '');
  return hex === '' ? '0' : hex;
}

export function decodeBoolean(tlv: Tlv): boolean {
  expectTag(tlv, TAG.BOOLEAN);
  if (tlv.content.length !== 1) throw new DerError('BOOLEAN must be one byte');
  const v = tlv.content[0]!;
  if (v !== 0 && v !== 0xff) throw new DerError('BOOLEAN must be 0x00 or 0xff in DER');
  return v === 0xff;
}

export function decodeString(tlv: Tlv): string {
  return new TextDecoder('utf-8', { fatal: false }).decode(tlv.content);
}

/** BIT STRING content without its unused-bits octet (which must be 0 for keys and signatures). */
export function bitStringBytes(tlv: Tlv): Uint8Array {
  expectTag(tlv, TAG.BIT_STRING);
  if (tlv.content.length === 0) throw new DerError('empty BIT STRING');
  if (tlv.content[0] !== 0) throw new DerError('BIT STRING with unused bits where whole bytes are expected');
  return tlv.content.subarray(1);
}

/** Encodes a TLV (used to rebuild an SPKI and by the test-chain generator). */
export function encodeTlv(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  let header: number[];
  if (n < 0x80) header = [tag, n];
  else if (n < 0x100) header = [tag, 0x81, n];
  else if (n < 0x10000) header = [tag, 0x82, n >> 8, n & 0xff];
  else if (n < 0x1000000) header = [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  else header = [tag, 0x84, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  const out = new Uint8Array(header.length + n);
  out.set(header, 0);
  out.set(content, header.length);
  return out;
}

export function encodeOid(oid: string): Uint8Array {
  const arcs = oid.split('.').map((a) => Number(a));
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new DerError(`bad OID ${oid}`);
  const values = [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)];
  const bytes: number[] = [];
  for (const v of values) {
    const group: number[] = [];
    let x = v;
    do {
      group.unshift(x % 128);
      x = Math.floor(x / 128);
    } while (x > 0);
    for (let i = 0; i < group.length - 1; i++) group[i] = group[i]! | 0x80;
    bytes.push(...group);
  }
  return encodeTlv(TAG.OID, Uint8Array.from(bytes));
}
