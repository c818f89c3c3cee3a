/**
 * Builds and signs the certificates the Steward issues. Hand-built DER (not a generic X.509
 * builder): the issuer name, subject and SubjectPublicKeyInfo are copied byte for byte, and the
 * profile is fixed, so there is nothing a CSR can smuggle in.
 */
import { ownBytes } from '../attestation/bytes.ts';
import { bitStringBytes, children, readWhole } from '../attestation/der.ts';
import { type Certificate } from '../attestation/x509.ts';
import { certificateOriginExtension, type CertificateExtension, type CertificateOrigin, ecdsaRawToDer, OID_ENARX_KVM } from '../pki/index.ts';
import { encodeAnyOid, TAG, tlv } from '../pki/der.ts';

/** A SAN from configuration or from a verified identity. */
export type SubjectAltName = { type: 'dns'; value: string } | { type: 'ip'; value: string } | { type: 'uri'; value: string };

export interface SigningKey {
  key: CryptoKey;
  /** The AlgorithmIdentifier DER and the WebCrypto parameters matching the key. */
  algorithm: Uint8Array;
  params: EcdsaParams | AlgorithmIdentifier;
  ecdsa: boolean;
}

const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  sha256WithRsa: '1.2.840.113549.1.1.11',
};

/** The signature algorithm for a CA key: ECDSA P-256/P-384 (SHA-256/384) or RSA PKCS#1 v1.5 SHA-256. */
export function signingKey(key: CryptoKey): SigningKey {
  const alg = key.algorithm as EcKeyAlgorithm & RsaHashedKeyAlgorithm;
  if (alg.name === 'ECDSA' && (alg.namedCurve === 'P-256' || alg.namedCurve === 'P-384')) {
    const sha384 = alg.namedCurve === 'P-384';
    return { key, algorithm: tlv(TAG.SEQUENCE, encodeAnyOid(sha384 ? OID.ecdsaSha384 : OID.ecdsaSha256)), params: { name: 'ECDSA', hash: sha384 ? 'SHA-384' : 'SHA-256' }, ecdsa: true };
  }
  if (alg.name === 'RSASSA-PKCS1-v1_5') {
    return { key, algorithm: tlv(TAG.SEQUENCE, encodeAnyOid(OID.sha256WithRsa), Uint8Array.of(TAG.NULL, 0)), params: { name: 'RSASSA-PKCS1-v1_5' }, ecdsa: false };
  }
  throw new Error(`unsupported CA key ${alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ''}: use ECDSA P-256/P-384 or RSA`);
}

function time(d: Date): Uint8Array {
  const iso = d.toISOString();
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  const year = d.getUTCFullYear();
  const text = year >= 1950 && year < 2050 ? `${digits.slice(2)}Z` : `${digits}Z`;
  return tlv(year >= 1950 && year < 2050 ? TAG.UTC_TIME : TAG.GENERALIZED_TIME, new TextEncoder().encode(text));
}

function extension(e: CertificateExtension): Uint8Array {
  return tlv(TAG.SEQUENCE, encodeAnyOid(e.oid), e.critical ? Uint8Array.of(TAG.BOOLEAN, 1, 0xff) : new Uint8Array(0), tlv(TAG.OCTET_STRING, e.value));
}

function ipBytes(ip: string): Uint8Array {
  if (ip.includes(':')) {
    const [head, tail] = ip.split('::') as [string, string | undefined];
    const parse = (s: string | undefined) => (s ? s.split(':').map((h) => parseInt(h, 16)) : []);
    const a = parse(head);
    const b = parse(tail);
    const groups = tail === undefined ? a : [...a, ...new Array(8 - a.length - b.length).fill(0), ...b];
    return Uint8Array.from(groups.flatMap((g) => [g >> 8, g & 0xff]));
  }
  return Uint8Array.from(ip.split('.').map(Number));
}

export function encodeSubjectAltNames(names: SubjectAltName[]): Uint8Array {
  const ascii = (s: string) => new TextEncoder().encode(s);
  return tlv(
    TAG.SEQUENCE,
    ...names.map((n) => (n.type === 'dns' ? tlv(0x82, ascii(n.value)) : n.type === 'uri' ? tlv(0x86, ascii(n.value)) : tlv(0x87, ipBytes(n.value)))),
  );
}

async function keyIdentifier(publicKeyBits: Uint8Array): Promise<Uint8Array> {
  // RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's value.
  return new Uint8Array(await crypto.subtle.digest('SHA-1', ownBytes(publicKeyBits)));
}

/** The subjectPublicKey bits of a DER SubjectPublicKeyInfo. */
function spkiBits(spki: Uint8Array): Uint8Array {
  const [, bits] = children(readWhole(spki, TAG.SEQUENCE));
  if (!bits) throw new Error('malformed SubjectPublicKeyInfo');
  return bitStringBytes(bits);
}

export interface IssueRequest {
  subject: Uint8Array;
  spki: Uint8Array;
  sans: SubjectAltName[];
  origin: CertificateOrigin;
  notBefore: Date;
  notAfter: Date;
}

export interface Issuer {
  certificate: Certificate;
  signing: SigningKey;
  /** The CA's key identifier, for AuthorityKeyIdentifier. */
  keyId: Uint8Array;
}

export async function makeIssuer(certificate: Certificate, key: CryptoKey): Promise<Issuer> {
  const ski = certificate.extension(OID.subjectKeyIdentifier);
  const keyId = ski && ski.value[0] === TAG.OCTET_STRING ? ski.value.subarray(2) : await keyIdentifier(certificate.publicKeyBytes);
  return { certificate, signing: signingKey(key), keyId };
}

/** A positive 128-bit serial number, never starting with a zero byte. */
function serialNumber(): Uint8Array {
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial;
}

export async function issueCertificate(issuer: Issuer, request: IssueRequest): Promise<Uint8Array> {
  const emptySubject = request.subject.length === 2;
  const extensions: CertificateExtension[] = [
    { oid: OID.basicConstraints, critical: true, value: Uint8Array.of(TAG.SEQUENCE, 0) },
    { oid: OID.keyUsage, critical: true, value: Uint8Array.of(TAG.BIT_STRING, 2, 7, 0x80) }, // digitalSignature
    { oid: OID.extKeyUsage, critical: false, value: tlv(TAG.SEQUENCE, encodeAnyOid(OID.serverAuth), encodeAnyOid(OID.clientAuth)) },
    { oid: OID.subjectKeyIdentifier, critical: false, value: tlv(TAG.OCTET_STRING, await keyIdentifier(spkiBits(request.spki))) },
    { oid: OID.authorityKeyIdentifier, critical: false, value: tlv(TAG.SEQUENCE, tlv(0x80, issuer.keyId)) },
  ];
  // RFC 5280 4.2.1.6: with an empty subject, the SAN carries the identity and must be critical.
  if (request.sans.length > 0) extensions.push({ oid: OID.subjectAltName, critical: emptySubject, value: encodeSubjectAltNames(request.sans) });
  extensions.push(certificateOriginExtension(request.origin));
  // As Enarx: a software certificate carries the (empty) KVM evidence extension, marking it non-confidential.
  if (request.origin.tee === 'software') extensions.push({ oid: OID_ENARX_KVM, critical: false, value: new Uint8Array(0) });

  const signing = issuer.signing;
  const tbs = tlv(
    TAG.SEQUENCE,
    Uint8Array.of(0xa0, 3, TAG.INTEGER, 1, 2),
    tlv(TAG.INTEGER, serialNumber()),
    signing.algorithm,
    issuer.certificate.subject.der,
    tlv(TAG.SEQUENCE, time(request.notBefore), time(request.notAfter)),
    request.subject,
    request.spki,
    tlv(0xa3, tlv(TAG.SEQUENCE, ...extensions.map(extension))),
  );
  const raw = new Uint8Array(await crypto.subtle.sign(signing.params, signing.key, ownBytes(tbs)));
  const signature = signing.ecdsa ? ecdsaRawToDer(raw) : raw;
  return tlv(TAG.SEQUENCE, tbs, signing.algorithm, tlv(TAG.BIT_STRING, Uint8Array.of(0), signature));
}


const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^(([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}|(([0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})?::(([0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})?)$/i;
const URI = /^[a-z][a-z0-9+.-]*:[\x21-\x7e]+$/i;

/** A SAN from the command line: `DNS:name`, `IP:address`, `URI:uri`, or a bare DNS name / IP address / URI. */
export function parseSubjectAltName(text: string): SubjectAltName {
  const m = /^(DNS|IP|URI):(.*)$/i.exec(text);
  const kind = m ? m[1]!.toLowerCase() : IPV4.test(text) || IPV6.test(text) ? 'ip' : /^[a-z][a-z0-9+.-]*:/i.test(text) ? 'uri' : 'dns';
  const value = m ? m[2]! : text;
  if (kind === 'dns' && (value.length > 253 || !DNS_NAME.test(value))) throw new Error(`'${value}' is not a valid DNS name`);
  if (kind === 'ip' && !IPV4.test(value) && !IPV6.test(value)) throw new Error(`'${value}' is not an IP address`);
  if (kind === 'uri' && !URI.test(value)) throw new Error(`'${value}' is not an absolute URI`);
  return { type: kind as SubjectAltName['type'], value: kind === 'dns' ? value.toLowerCase() : value };
}
