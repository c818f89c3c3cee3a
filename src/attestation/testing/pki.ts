/**
 * A tiny local PKI for tests and for the software Keep backend: keys, certificates and CRLs made with
 * WebCrypto. Everything it makes is signed by locally generated keys; nothing here can imitate a
 * vendor, and a verifier trusts such a root only when it is passed explicitly (trustedTestRoots).
 */
import { concatBytes, fromHex } from '../bytes.ts';
import { TAG, encodeOid, encodeTlv } from '../der.ts';
import { type Certificate, type Crl, OID, type SignatureAlgorithm, parseCertificate, parseCrl } from '../x509.ts';

export type KeyKind = 'rsa-pss' | 'ec-p256' | 'ec-p384';

export interface TestKeyPair {
  kind: KeyKind;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** DER SubjectPublicKeyInfo. */
  spki: Uint8Array;
  /** How this key signs certificates and CRLs. RSA keys sign RSASSA-PSS SHA-384 salt 48, as AMD's do. */
  signatureAlgorithm: SignatureAlgorithm;
}

export async function generateKeyPair(kind: KeyKind, options: { modulusLength?: number } = {}): Promise<TestKeyPair> {
  let pair: CryptoKeyPair;
  let signatureAlgorithm: SignatureAlgorithm;
  if (kind === 'rsa-pss') {
    pair = (await crypto.subtle.generateKey(
      { name: 'RSA-PSS', modulusLength: options.modulusLength ?? 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-384' },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair;
    signatureAlgorithm = { kind: 'rsa-pss', hash: 'SHA-384', saltLength: 48 };
  } else {
    const namedCurve = kind === 'ec-p256' ? 'P-256' : 'P-384';
    pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve }, true, ['sign', 'verify'])) as CryptoKeyPair;
    signatureAlgorithm = { kind: 'ecdsa', hash: kind === 'ec-p256' ? 'SHA-256' : 'SHA-384' };
  }
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey));
  return { kind, privateKey: pair.privateKey, publicKey: pair.publicKey, spki, signatureAlgorithm };
}

// ---------------------------------------------------------------------------------------------
// DER encoding

const seq = (...parts: Uint8Array[]): Uint8Array => encodeTlv(TAG.SEQUENCE, concatBytes(...parts));
const set = (...parts: Uint8Array[]): Uint8Array => encodeTlv(TAG.SET, concatBytes(...parts));
const explicit = (n: number, inner: Uint8Array): Uint8Array => encodeTlv(0xa0 + n, inner);
const NULL = Uint8Array.of(TAG.NULL, 0);

export function derInteger(value: number | bigint | Uint8Array): Uint8Array {
  let bytes: Uint8Array;
  if (value instanceof Uint8Array) {
    bytes = value;
  } else {
    let hex = BigInt(value).toString(16);
    if (hex.length % 2) hex = `0${hex}`;
    bytes = fromHex(hex);
  }
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0 && (bytes[start + 1]! & 0x80) === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0) bytes = Uint8Array.of(0);
  if (bytes[0]! & 0x80) bytes = concatBytes(Uint8Array.of(0), bytes);
  return encodeTlv(TAG.INTEGER, bytes);
}

export const derOctetString = (bytes: Uint8Array): Uint8Array => encodeTlv(TAG.OCTET_STRING, bytes);
export const derIa5String = (text: string): Uint8Array => encodeTlv(TAG.IA5_STRING, new TextEncoder().encode(text));
const utf8String = (text: string): Uint8Array => encodeTlv(TAG.UTF8_STRING, new TextEncoder().encode(text));
const bitString = (bytes: Uint8Array): Uint8Array => encodeTlv(TAG.BIT_STRING, concatBytes(Uint8Array.of(0), bytes));

function derTime(date: Date): Uint8Array {
  const iso = date.toISOString();
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return encodeTlv(TAG.UTC_TIME, new TextEncoder().encode(`${digits.slice(2)}Z`));
  return encodeTlv(TAG.GENERALIZED_TIME, new TextEncoder().encode(`${digits}Z`));
}

const NAME_OIDS: Record<string, string> = { CN: '2.5.4.3', O: '2.5.4.10', OU: '2.5.4.11', C: '2.5.4.6', L: '2.5.4.7', ST: '2.5.4.8' };

/** A Name from attribute pairs in encoding order, e.g. [['O', 'Test'], ['CN', 'Test ARK']]. */
export function derName(attributes: ReadonlyArray<readonly [string, string]>): Uint8Array {
  return seq(
    ...attributes.map(([type, value]) => {
      const oid = NAME_OIDS[type] ?? type;
      const encoded = type === 'C' ? encodeTlv(TAG.PRINTABLE_STRING, new TextEncoder().encode(value)) : utf8String(value);
      return set(seq(encodeOid(oid), encoded));
    }),
  );
}

const HASH_OID: Record<string, string> = { 'SHA-256': OID.sha256, 'SHA-384': OID.sha384, 'SHA-512': OID.sha512 };

export function derSignatureAlgorithm(alg: SignatureAlgorithm): Uint8Array {
  switch (alg.kind) {
    case 'ecdsa':
      return seq(encodeOid({ 'SHA-256': '1.2.840.10045.4.3.2', 'SHA-384': '1.2.840.10045.4.3.3', 'SHA-512': '1.2.840.10045.4.3.4' }[alg.hash]));
    case 'rsa-pkcs1':
      return seq(encodeOid({ 'SHA-256': '1.2.840.113549.1.1.11', 'SHA-384': '1.2.840.113549.1.1.12', 'SHA-512': '1.2.840.113549.1.1.13' }[alg.hash]), NULL);
    case 'ed25519':
      return seq(encodeOid(OID.ed25519));
    case 'rsa-pss': {
      const hash = seq(encodeOid(HASH_OID[alg.hash]!), NULL);
      return seq(
        encodeOid(OID.rsassaPss),
        seq(explicit(0, hash), explicit(1, seq(encodeOid(OID.mgf1), hash)), explicit(2, derInteger(alg.saltLength)), explicit(3, derInteger(1))),
      );
    }
  }
}

function p1363ToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return seq(derInteger(raw.subarray(0, half)), derInteger(raw.subarray(half)));
}

/** Signs `data` as X.509 does with `key` (ECDSA signatures DER-encoded). */
export async function signX509(key: TestKeyPair, data: Uint8Array): Promise<Uint8Array> {
  const alg = key.signatureAlgorithm;
  const buf = new Uint8Array(data);
  if (alg.kind === 'ecdsa') {
    return p1363ToDer(new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: alg.hash }, key.privateKey, buf)));
  }
  if (alg.kind === 'rsa-pss') {
    return new Uint8Array(await crypto.subtle.sign({ name: 'RSA-PSS', saltLength: alg.saltLength }, key.privateKey, buf));
  }
  throw new Error(`signing with ${alg.kind} is not supported by the test PKI`);
}

export interface TestExtension {
  oid: string;
  critical?: boolean;
  /** The DER of the extension's value (placed inside extnValue). */
  value: Uint8Array;
}

export interface IssueOptions {
  subject: ReadonlyArray<readonly [string, string]>;
  subjectKey: TestKeyPair;
  /** The issuing certificate and its key; omitted for a self-signed root. */
  issuer?: { certificate: Certificate; key: TestKeyPair };
  serial?: number | bigint | Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** Makes a CA certificate (basicConstraints cA, keyUsage keyCertSign + cRLSign). */
  ca?: { pathLength?: number };
  extensions?: TestExtension[];
}

function derExtensions(extensions: TestExtension[]): Uint8Array {
  return seq(
    ...extensions.map((e) =>
      seq(encodeOid(e.oid), ...(e.critical ? [Uint8Array.of(TAG.BOOLEAN, 1, 0xff)] : []), derOctetString(e.value)),
    ),
  );
}

/** Issues (signs) a certificate. */
export async function issueCertificate(options: IssueOptions): Promise<Certificate> {
  const signer = options.issuer?.key ?? options.subjectKey;
  const issuerName = options.issuer ? options.issuer.certificate.subject.der : derName(options.subject);
  const alg = derSignatureAlgorithm(signer.signatureAlgorithm);
  const extensions = [...(options.extensions ?? [])];
  if (options.ca) {
    const bc = options.ca.pathLength === undefined ? seq(Uint8Array.of(TAG.BOOLEAN, 1, 0xff)) : seq(Uint8Array.of(TAG.BOOLEAN, 1, 0xff), derInteger(options.ca.pathLength));
    extensions.unshift(
      { oid: OID.basicConstraints, critical: true, value: bc },
      { oid: OID.keyUsage, critical: true, value: Uint8Array.of(TAG.BIT_STRING, 2, 1, 0x06) }, // keyCertSign, cRLSign
    );
  }
  const tbs = seq(
    explicit(0, derInteger(2)),
    derInteger(options.serial ?? 1),
    alg,
    issuerName,
    seq(derTime(options.notBefore), derTime(options.notAfter)),
    derName(options.subject),
    options.subjectKey.spki,
    ...(extensions.length ? [explicit(3, derExtensions(extensions))] : []),
  );
  const signature = await signX509(signer, tbs);
  return parseCertificate(seq(tbs, alg, bitString(signature)));
}

export interface CrlOptions {
  issuer: { certificate: Certificate; key: TestKeyPair };
  thisUpdate: Date;
  nextUpdate: Date;
  /** Revoked entries; `extensions` are CRL entry extensions (reasonCode, certificateIssuer, ...). */
  revoked?: Array<{ serial: number | bigint | Uint8Array; date: Date; extensions?: TestExtension[] }>;
  crlNumber?: number;
}

/** Issues (signs) a v2 CRL. */
export async function issueCrl(options: CrlOptions): Promise<Crl> {
  const alg = derSignatureAlgorithm(options.issuer.key.signatureAlgorithm);
  const revoked = options.revoked ?? [];
  const tbs = seq(
    derInteger(1),
    alg,
    options.issuer.certificate.subject.der,
    derTime(options.thisUpdate),
    derTime(options.nextUpdate),
    ...(revoked.length ? [seq(...revoked.map((r) => seq(derInteger(r.serial), derTime(r.date), ...(r.extensions?.length ? [derExtensions(r.extensions)] : []))))] : []),
    explicit(0, derExtensions([{ oid: OID.crlNumber, value: derInteger(options.crlNumber ?? 1) }])),
  );
  const signature = await signX509(options.issuer.key, tbs);
  return parseCrl(seq(tbs, alg, bitString(signature)));
}
