/**
 * Declaring @peculiar/asn1-schema types without decorator syntax (Node runs our TypeScript by
 * type stripping, which has no decorators): `fields(Class, {...})` applies AsnProp in order.
 */
import { AsnParser, AsnProp, AsnSerializer } from '@peculiar/asn1-schema';

type IAsn1PropOptions = Parameters<typeof AsnProp>[0];
import { DerError, readWhole } from './der.ts';

export function fields(cls: abstract new () => object, spec: Record<string, IAsn1PropOptions>): void {
  for (const [name, options] of Object.entries(spec)) AsnProp(options)(cls.prototype, name);
}

/** Parses exactly one DER element of type T, with clear errors and no trailing bytes. */
export function decode<T>(bytes: Uint8Array, type: new () => T, what: string): T {
  try {
    readWhole(bytes);
    return AsnParser.parse(bytes, type);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new DerError(`malformed ${what}: ${reason}`);
  }
}

export function encode(value: object): Uint8Array {
  return new Uint8Array(AsnSerializer.serialize(value));
}

export function bytes(buffer: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (buffer instanceof Uint8Array) return buffer;
  if (ArrayBuffer.isView(buffer)) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  return new Uint8Array(buffer);
}

/** A copy in a fresh ArrayBuffer of exactly its length, as asn1-schema and WebCrypto want (a Buffer's slice() would share its pool). */
export function buffer(view: Uint8Array): ArrayBuffer {
  const out = new Uint8Array(view.length);
  out.set(view);
  return out.buffer;
}

export function requireSequence(der: Uint8Array, what: string): Uint8Array {
  if (der[0] !== 0x30) throw new DerError(`${what} is not a DER SEQUENCE`);
  return der;
}


export { toHex } from '../attestation/bytes.ts';
