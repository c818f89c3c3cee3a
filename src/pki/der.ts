/**
 * DER helpers for src/pki. The strict TLV reader is the verifier's (src/attestation/der.ts); this
 * adds what PKI objects need beyond it: OBJECT IDENTIFIERs with arcs of any size (ours live under
 * the 2.25 UUID arc, whose arcs exceed 2^53), SET OF ordering and multi-part encoding.
 */
import { concatBytes } from '../attestation/bytes.ts';
import { DerError, encodeTlv, readWhole, TAG, type Tlv } from '../attestation/der.ts';

export { children, DerError, readTlv, readWhole, TAG, type Tlv } from '../attestation/der.ts';
export { concatBytes as concat } from '../attestation/bytes.ts';

/** Decodes an OBJECT IDENTIFIER element to dotted decimal, whatever the size of its arcs. */
export function decodeAnyOid(tlv: Tlv): string {
  if (tlv.tag !== TAG.OID) throw new DerError(`expected an OBJECT IDENTIFIER, found tag 0x${tlv.tag.toString(16)}`);
  const body = tlv.content;
  if (body.length === 0) throw new DerError('empty OBJECT IDENTIFIER');
  const arcs: bigint[] = [];
  let value = 0n;
  let fresh = true;
  for (let i = 0; i < body.length; i++) {
    const b = body[i]!;
    if (fresh && b === 0x80) throw new DerError('non-minimal OBJECT IDENTIFIER arc');
    fresh = false;
    value = (value << 7n) | BigInt(b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(value);
      value = 0n;
      fresh = true;
    } else if (i === body.length - 1) {
      throw new DerError('truncated OBJECT IDENTIFIER');
    }
  }
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

/** Reads a buffer that holds exactly one OBJECT IDENTIFIER element. */
export function readAnyOid(der: Uint8Array): string {
  return decodeAnyOid(readWhole(der, TAG.OID));
}

/** Encodes dotted decimal (arcs of any size) to a complete DER OBJECT IDENTIFIER element. */
export function encodeAnyOid(oid: string): Uint8Array {
  if (!/^[0-2](\.(0|[1-9][0-9]*))+$/.test(oid)) throw new DerError(`not an OBJECT IDENTIFIER: ${oid}`);
  const arcs = oid.split('.').map((a) => BigInt(a));
  const body: number[] = [];
  for (const arc of [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)]) {
    const groups: number[] = [];
    let v = arc;
    do {
      groups.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    for (let i = 0; i < groups.length - 1; i++) groups[i]! |= 0x80;
    body.push(...groups);
  }
  return encodeTlv(TAG.OID, Uint8Array.from(body));
}

/** Encodes one DER element from its tag and content parts. */
export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  return encodeTlv(tag, concatBytes(...parts));
}

/** A DER SET OF: elements sorted by their encodings, as X.690 11.6 requires. */
export function setOf(elements: Uint8Array[], tag: number = TAG.SET): Uint8Array {
  const sorted = [...elements].sort((a, b) => {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
    return a.length - b.length;
  });
  return tlv(tag, ...sorted);
}
