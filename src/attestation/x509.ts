/**
 * X.509 certificates and CRLs for attestation: parsing (exact signed bytes kept), signatures through
 * WebCrypto (RSASSA-PSS as AMD uses it, PKCS#1 v1.5, ECDSA as Intel and the AMD VCEK use it), chain
 * validation to pinned trust anchors at an injected `now`, and CRL checks.
 *
 * Browser-safe: only WebCrypto and the DER reader. Every failure is a VerificationError naming its
 * step ('parse' for malformed bytes, 'chain' for path and validity problems, 'crl' for revocation).
 */
import { bytesEqual, concatBytes, fromAnyBase64, fromBase64, fromHex, looksLikeText, ownBytes, sha256Hex, toBase64 } from './bytes.ts';
import {
  DerError,
  TAG,
  bitStringBytes,
  children,
  decodeBoolean,
  decodeOid,
  decodeSmallUint,
  encodeOid,
  encodeTlv,
  expectTag,
  integerHex,
  readTlv,
  readWhole,
  type Tlv,
} from './der.ts';
import { VerificationError } from './types.ts';

export type HashName = 'SHA-256' | 'SHA-384' | 'SHA-512';
export type CurveName = 'P-256' | 'P-384' | 'P-521';

export type SignatureAlgorithm =
  | { kind: 'ecdsa'; hash: HashName }
  | { kind: 'rsa-pss'; hash: HashName; saltLength: number }
  | { kind: 'rsa-pkcs1'; hash: HashName }
  | { kind: 'ed25519' };

export type PublicKeyInfo = { kind: 'ec'; curve: CurveName } | { kind: 'rsa' } | { kind: 'ed25519' };

export interface Extension {
  oid: string;
  critical: boolean;
  /** The extnValue OCTET STRING's content: the DER of the extension's value. */
  value: Uint8Array;
}

/** A distinguished name: its exact encoding (compared bytewise) and a readable form. */
export interface Name {
  der: Uint8Array;
  /** e.g. "CN=SEV-Milan, O=Advanced Micro Devices, ..." (attributes in encoding order, most specific last). */
  text: string;
  /** The last commonName, or '' when there is none. */
  commonName: string;
}

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  ed25519: '1.3.101.112',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  crlNumber: '2.5.29.20',
  deltaCrlIndicator: '2.5.29.27',
  issuingDistributionPoint: '2.5.29.28',
  authorityKeyIdentifier: '2.5.29.35',
  subjectKeyIdentifier: '2.5.29.14',
  crlDistributionPoints: '2.5.29.31',
  commonName: '2.5.4.3',
} as const;

const HASH_OIDS: Record<string, HashName> = {
  [OID.sha256]: 'SHA-256',
  [OID.sha384]: 'SHA-384',
  [OID.sha512]: 'SHA-512',
};
const CURVE_OIDS: Record<string, CurveName> = {
  '1.2.840.10045.3.1.7': 'P-256',
  '1.3.132.0.34': 'P-384',
  '1.3.132.0.35': 'P-521',
};
const ATTRIBUTE_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.5': 'serialNumber',
  '1.2.840.113549.1.9.1': 'emailAddress',
};
/** Extensions this module understands or may safely ignore even when marked critical. */
const KNOWN_CRITICAL = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  '2.5.29.37', // extKeyUsage: not used for attestation roles
  '2.5.29.17', // subjectAltName
  '2.5.29.32', // certificatePolicies: no policy constraints are applied
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
  OID.crlDistributionPoints,
]);
const KNOWN_CRITICAL_CRL = new Set<string>([OID.crlNumber, OID.authorityKeyIdentifier, OID.issuingDistributionPoint]);

function parseError(what: string, err: unknown): VerificationError {
  const detail = err instanceof Error ? err.message : String(err);
  return new VerificationError('parse', `${what}: ${detail}`, { cause: err });
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers

function parseAlgorithmIdentifier(tlv: Tlv): { oid: string; params: Tlv | undefined } {
  expectTag(tlv, TAG.SEQUENCE);
  const parts = children(tlv);
  if (parts.length < 1 || parts.length > 2) throw new DerError('malformed AlgorithmIdentifier');
  return { oid: decodeOid(parts[0]!), params: parts[1] };
}

function hashOf(tlv: Tlv): HashName {
  const { oid } = parseAlgorithmIdentifier(tlv);
  const hash = HASH_OIDS[oid];
  if (!hash) throw new DerError(`unsupported hash algorithm ${oid}`);
  return hash;
}

/** Decodes a signatureAlgorithm, including RSASSA-PSS parameters (defaults per RFC 4055 are SHA-1, which WebCrypto refuses). */
export function decodeSignatureAlgorithm(tlv: Tlv): SignatureAlgorithm {
  const { oid, params } = parseAlgorithmIdentifier(tlv);
  switch (oid) {
    case '1.2.840.10045.4.3.2':
      return { kind: 'ecdsa', hash: 'SHA-256' };
    case '1.2.840.10045.4.3.3':
      return { kind: 'ecdsa', hash: 'SHA-384' };
    case '1.2.840.10045.4.3.4':
      return { kind: 'ecdsa', hash: 'SHA-512' };
    case '1.2.840.113549.1.1.11':
      return { kind: 'rsa-pkcs1', hash: 'SHA-256' };
    case '1.2.840.113549.1.1.12':
      return { kind: 'rsa-pkcs1', hash: 'SHA-384' };
    case '1.2.840.113549.1.1.13':
      return { kind: 'rsa-pkcs1', hash: 'SHA-512' };
    case OID.ed25519:
      return { kind: 'ed25519' };
    case OID.rsassaPss: {
      if (!params) throw new DerError('RSASSA-PSS without parameters (SHA-1 defaults are not accepted)');
      let hash: HashName | undefined;
      let mgfHash: HashName | undefined;
      let saltLength = 20;
      let trailer = 1;
      for (const field of children(expectTag(params, TAG.SEQUENCE))) {
        const inner = children(field)[0];
        if (!inner) throw new DerError('empty RSASSA-PSS parameter');
        if (field.tag === 0xa0) hash = hashOf(inner);
        else if (field.tag === 0xa1) {
          const mgf = parseAlgorithmIdentifier(inner);
          if (mgf.oid !== OID.mgf1 || !mgf.params) throw new DerError('RSASSA-PSS mask generation is not MGF1');
          mgfHash = hashOf(mgf.params);
        } else if (field.tag === 0xa2) saltLength = decodeSmallUint(inner);
        else if (field.tag === 0xa3) trailer = decodeSmallUint(inner);
        else throw new DerError('unknown RSASSA-PSS parameter');
      }
      if (!hash) throw new DerError('RSASSA-PSS with the SHA-1 default hash is not accepted');
      if (mgfHash !== hash) throw new DerError('RSASSA-PSS with an MGF1 hash different from the message hash');
      if (trailer !== 1) throw new DerError('RSASSA-PSS trailer field must be 1');
      return { kind: 'rsa-pss', hash, saltLength };
    }
    default:
      throw new DerError(`unsupported signature algorithm ${oid}`);
  }
}

function decodePublicKeyInfo(spki: Tlv): { info: PublicKeyInfo; keyBytes: Uint8Array } {
  const [alg, key] = children(expectTag(spki, TAG.SEQUENCE));
  if (!alg || !key) throw new DerError('malformed SubjectPublicKeyInfo');
  const { oid, params } = parseAlgorithmIdentifier(alg);
  const keyBytes = bitStringBytes(key);
  if (oid === OID.ecPublicKey) {
    if (!params || params.tag !== TAG.OID) throw new DerError('EC key without a named curve');
    const curve = CURVE_OIDS[decodeOid(params)];
    if (!curve) throw new DerError('unsupported EC curve');
    return { info: { kind: 'ec', curve }, keyBytes };
  }
  if (oid === OID.rsaEncryption || oid === OID.rsassaPss) return { info: { kind: 'rsa' }, keyBytes };
  if (oid === OID.ed25519) return { info: { kind: 'ed25519' }, keyBytes };
  throw new DerError(`unsupported public key algorithm ${oid}`);
}

function decodeName(tlv: Tlv): Name {
  expectTag(tlv, TAG.SEQUENCE);
  const parts: string[] = [];
  let commonName = '';
  for (const rdn of children(tlv)) {
    expectTag(rdn, TAG.SET);
    for (const atv of children(rdn)) {
      const [type, value] = children(expectTag(atv, TAG.SEQUENCE));
      if (!type || !value) throw new DerError('malformed name attribute');
      const oid = decodeOid(type);
      const text = new TextDecoder('utf-8', { fatal: false }).decode(value.content);
      parts.push(`${ATTRIBUTE_NAMES[oid] ?? oid}=${text}`);
      if (oid === OID.commonName) commonName = text;
    }
  }
  return { der: tlv.raw, text: parts.join(', '), commonName };
}

function decodeTime(tlv: Tlv): Date {
  const text = new TextDecoder('ascii').decode(tlv.content);
  let m: RegExpMatchArray | null;
  let year: number;
  if (tlv.tag === TAG.UTC_TIME) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
    if (!m) throw new DerError(`malformed UTCTime '${text}'`);
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (tlv.tag === TAG.GENERALIZED_TIME) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/.exec(text);
    if (!m) throw new DerError(`malformed GeneralizedTime '${text}'`);
    year = Number(m[1]);
  } else {
    throw new DerError('expected a UTCTime or GeneralizedTime');
  }
  const ms = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  const date = new Date(ms);
  if (Number.isNaN(ms) || date.getUTCMonth() !== Number(m[2]) - 1 || date.getUTCDate() !== Number(m[3])) {
    throw new DerError(`invalid date '${text}'`);
  }
  return date;
}

function decodeExtensions(tlv: Tlv): Map<string, Extension> {
  const out = new Map<string, Extension>();
  for (const ext of children(expectTag(tlv, TAG.SEQUENCE))) {
    const parts = children(expectTag(ext, TAG.SEQUENCE));
    if (parts.length < 2 || parts.length > 3) throw new DerError('malformed extension');
    const oid = decodeOid(parts[0]!);
    const critical = parts.length === 3 ? decodeBoolean(parts[1]!) : false;
    const value = expectTag(parts[parts.length - 1]!, TAG.OCTET_STRING).content;
    if (out.has(oid)) throw new DerError(`duplicate extension ${oid}`);
    out.set(oid, { oid, critical, value });
  }
  return out;
}

/** A signed object's parts: the exact signed bytes, the algorithm and the signature. */
export interface Signed {
  tbs: Uint8Array;
  signatureAlgorithm: SignatureAlgorithm;
  signature: Uint8Array;
}

function sameAlgorithm(a: SignatureAlgorithm, b: SignatureAlgorithm): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

// ---------------------------------------------------------------------------------------------
// Certificates

/** What certificates and CRLs share: the exact signed bytes, the algorithm, the signature, and a memo of verifications. */
abstract class SignedObject implements Signed {
  readonly der: Uint8Array;
  readonly tbs: Uint8Array;
  readonly signatureAlgorithm: SignatureAlgorithm;
  readonly signature: Uint8Array;
  readonly #verified = new WeakMap<Certificate, Promise<boolean>>();

  constructor(der: Uint8Array) {
    this.der = der;
    const outer = readWhole(der, TAG.SEQUENCE);
    const parts = children(outer);
    if (parts.length !== 3) throw new DerError('a signed structure has three parts');
    const [tbs, alg, sig] = parts as [Tlv, Tlv, Tlv];
    this.tbs = expectTag(tbs, TAG.SEQUENCE).raw;
    this.signatureAlgorithm = decodeSignatureAlgorithm(alg);
    this.signature = bitStringBytes(sig);
  }

  /** The fields of the signed part. */
  protected tbsFields(): Tlv[] {
    return children(readWhole(this.tbs, TAG.SEQUENCE));
  }

  /** Whether `issuer`'s key verifies this object's signature (cached per issuer object). */
  isSignedBy(issuer: Certificate): Promise<boolean> {
    let result = this.#verified.get(issuer);
    if (!result) {
      result = verifySigned(this, issuer);
      this.#verified.set(issuer, result);
    }
    return result;
  }
}


export class Certificate extends SignedObject {
  readonly version: number;
  /** Lowercase hex of the serial's magnitude without leading zeros ("0" for AMD's VCEKs). */
  readonly serialNumber: string;
  readonly issuer: Name;
  readonly subject: Name;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The DER SubjectPublicKeyInfo. */
  readonly spki: Uint8Array;
  readonly publicKeyInfo: PublicKeyInfo;
  /** The raw subjectPublicKey bits (an EC point, an RSAPublicKey). */
  readonly publicKeyBytes: Uint8Array;
  readonly extensions: ReadonlyMap<string, Extension>;
  /** basicConstraints: cA and pathLenConstraint, undefined when the extension is absent. */
  readonly basicConstraints: { ca: boolean; pathLength: number | undefined } | undefined;
  /** keyUsage bits (bit 0 = digitalSignature ... bit 5 = keyCertSign, bit 6 = cRLSign), undefined when absent. */
  readonly keyUsage: number | undefined;

  readonly #keys = new Map<string, Promise<CryptoKey>>();
  #sha256: Promise<string> | undefined;
  #spkiSha256: Promise<string> | undefined;

  /** Use parseCertificate(): it caches and reports errors as VerificationError('parse'). */
  constructor(der: Uint8Array) {
    super(der);
    const parts = this.tbsFields();
    let i = 0;
    let version = 1;
    if (parts[0]?.tag === 0xa0) {
      version = decodeSmallUint(children(parts[0])[0] ?? parts[0]) + 1;
      i++;
    }
    if (version < 1 || version > 3) throw new DerError(`unsupported certificate version ${version}`);
    this.version = version;
    const take = (what: string): Tlv => {
      const t = parts[i++];
      if (!t) throw new DerError(`certificate without ${what}`);
      return t;
    };
    const serial = expectTag(take('serialNumber'), TAG.INTEGER);
    if (serial.content.length === 0 || serial.content.length > 21) throw new DerError('bad serial number length');
    this.serialNumber = integerHex(serial.content);
    const innerAlg = decodeSignatureAlgorithm(take('signature'));
    if (!sameAlgorithm(innerAlg, this.signatureAlgorithm)) {
      throw new DerError('signature algorithm inside and outside the signed part differ');
    }
    this.issuer = decodeName(take('issuer'));
    const validity = children(expectTag(take('validity'), TAG.SEQUENCE));
    if (validity.length !== 2) throw new DerError('malformed validity');
    this.notBefore = decodeTime(validity[0]!);
    this.notAfter = decodeTime(validity[1]!);
    this.subject = decodeName(take('subject'));
    const spki = take('subjectPublicKeyInfo');
    this.spki = spki.raw;
    const pk = decodePublicKeyInfo(spki);
    this.publicKeyInfo = pk.info;
    this.publicKeyBytes = pk.keyBytes;
    let extensions = new Map<string, Extension>();
    for (; i < parts.length; i++) {
      const t = parts[i]!;
      if (t.tag === 0x81 || t.tag === 0x82) continue; // issuer/subject unique IDs
      if (t.tag !== 0xa3 || version !== 3) throw new DerError('unexpected field in tbsCertificate');
      extensions = decodeExtensions(children(t)[0] ?? t);
    }
    this.extensions = extensions;
    const bc = extensions.get(OID.basicConstraints);
    if (bc) {
      const fields = children(readWhole(bc.value, TAG.SEQUENCE));
      let ca = false;
      let pathLength: number | undefined;
      for (const f of fields) {
        if (f.tag === TAG.BOOLEAN) ca = decodeBoolean(f);
        else if (f.tag === TAG.INTEGER) pathLength = decodeSmallUint(f);
      }
      this.basicConstraints = { ca, pathLength };
    }
    const ku = extensions.get(OID.keyUsage);
    if (ku) {
      const bits = readWhole(ku.value, TAG.BIT_STRING).content;
      let value = 0;
      // Bit 0 is the most significant bit of the first content byte after the unused-bits count.
      for (let b = 0; b < 16; b++) {
        const byte = bits[1 + (b >> 3)];
        if (byte !== undefined && byte & (0x80 >> (b & 7))) value |= 1 << b;
      }
      this.keyUsage = value;
    }
  }

  get isSelfIssued(): boolean {
    return bytesEqual(this.issuer.der, this.subject.der);
  }

  /** A one-line description for messages: "CN=SEV-VCEK (serial 0)". */
  get label(): string {
    return `'${this.subject.commonName || this.subject.text}' (serial ${this.serialNumber})`;
  }

  extension(oid: string): Extension | undefined {
    return this.extensions.get(oid);
  }

  isValidAt(now: Date): boolean {
    const t = now.getTime();
    return t >= this.notBefore.getTime() && t <= this.notAfter.getTime();
  }

  /** SHA-256 of the DER certificate, lowercase hex. */
  sha256(): Promise<string> {
    return (this.#sha256 ??= sha256Hex(this.der));
  }

  /** SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex. */
  spkiSha256(): Promise<string> {
    return (this.#spkiSha256 ??= sha256Hex(this.spki));
  }

  /** This certificate's key imported for verifying with `algorithm` (cached per algorithm). */
  verifyKey(algorithm: SignatureAlgorithm): Promise<CryptoKey> {
    const id = JSON.stringify(algorithm);
    let key = this.#keys.get(id);
    if (!key) {
      key = importVerifyKey(this, algorithm);
      key.catch(() => this.#keys.delete(id));
      this.#keys.set(id, key);
    }
    return key;
  }
}

// Parsed certificates are immutable, so the same bytes always give the same object: this makes
// repeated verifications of one chain cost no parsing and no RSA work (the "warm cache").
const CERT_CACHE = new Map<string, Certificate>();
const CRL_CACHE = new Map<string, Crl>();
// PEM texts are immutable strings, so they key their parsed contents too (saving base64 decoding).
const PEM_CACHE = new Map<string, Certificate[]>();
const PEM_CRL_CACHE = new Map<string, Crl>();
const CACHE_LIMIT = 512;

function cacheKey(der: Uint8Array): string {
  let s = '';
  for (let i = 0; i < der.length; i += 0x8000) s += String.fromCharCode(...der.subarray(i, i + 0x8000));
  return s;
}

/** Parses one DER certificate. Throws VerificationError('parse') with a one-line reason. */
export function parseCertificate(der: Uint8Array): Certificate {
  return cachedParse(CERT_CACHE, der, 'malformed certificate', (bytes) => new Certificate(bytes));
}

function cachedParse<T>(cache: Map<string, T>, der: Uint8Array, what: string, make: (der: Uint8Array) => T): T {
  const key = cacheKey(der);
  const cached = cache.get(key);
  if (cached) return cached;
  let value: T;
  try {
    value = make(ownBytes(der));
  } catch (err) {
    throw parseError(what, err);
  }
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, value);
  return value;
}


export interface PemBlock {
  label: string;
  der: Uint8Array;
}

/** Every PEM block in a text, in order. Text outside blocks is ignored (as openssl does). */
export function parsePem(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    try {
      out.push({ label: m[1]!, der: fromBase64(m[2]!) });
    } catch (err) {
      throw parseError(`bad base64 in PEM block '${m[1]}'`, err);
    }
  }
  return out;
}

/**
 * The DER objects a text holds, in the forms vendors and tools hand them out: PEM blocks labelled
 * `label`, also URL-encoded (Intel PCS issuer-chain headers: `-----BEGIN%20CERTIFICATE-----%0A...`);
 * or, when the text has no PEM armour at all, the whole text as hex (Intel PCCS, dcap-qvl) or as
 * base64 in either alphabet (Azure's and trustee's JSON evidence carry a bare base64 VCEK). Throws
 * VerificationError('parse') naming what was expected.
 */
export function derFromText(text: string, label: 'CERTIFICATE' | 'X509 CRL'): Uint8Array[] {
  let body = text.replace(/\0+$/, '').trim();
  if (/-----BEGIN(%20| )/.test(body) && /%[0-9A-Fa-f]{2}/.test(body)) {
    try {
      body = decodeURIComponent(body);
    } catch (err) {
      throw parseError(`malformed URL-encoded PEM ${label}`, err);
    }
  }
  if (body.includes('-----BEGIN')) {
    const blocks = parsePem(body).filter((b) => b.label === label);
    if (blocks.length === 0) throw new VerificationError('parse', `no PEM ${label} block found`);
    return blocks.map((b) => b.der);
  }
  // Bare DER is taken only when it starts as every certificate and CRL does, with a SEQUENCE.
  const compact = body.replace(/\s+/g, '');
  if (/^30([0-9A-Fa-f]{2})+$/.test(compact)) return [fromHex(compact)];
  if (/^MI[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) {
    try {
      return [fromAnyBase64(compact)];
    } catch {
      // not base64 either: fall through to the error below
    }
  }
  throw new VerificationError('parse', `no PEM ${label} block found (nor hex or base64 DER)`);
}

export function toPem(label: string, der: Uint8Array): string {
  const b64 = toBase64(der).replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/**
 * Certificates from text (derFromText: any number of PEM CERTIFICATE blocks, trailing NULs allowed,
 * URL-encoded PEM, or one hex/base64 DER) or DER bytes (one certificate, or a PkiPath: a SEQUENCE
 * OF Certificate as Enarx's *.pkipath files).
 */
export function parseCertificates(input: Uint8Array | string): Certificate[] {
  if (typeof input === 'string' || looksLikeText(input)) {
    const text = typeof input === 'string' ? input : new TextDecoder().decode(input);
    const cached = PEM_CACHE.get(text);
    if (cached) return [...cached];
    const armoured = /-----BEGIN(%20| )/.test(text);
    const certs = derFromText(text, 'CERTIFICATE').flatMap((der) => (armoured ? [parseCertificate(der)] : certificatesFromDer(der)));
    if (PEM_CACHE.size >= CACHE_LIMIT) PEM_CACHE.clear();
    PEM_CACHE.set(text, certs);
    return [...certs];
  }
  return certificatesFromDer(input);
}

function certificatesFromDer(input: Uint8Array): Certificate[] {
  let isPkiPath: boolean;
  let outer: Tlv;
  try {
    outer = readWhole(input, TAG.SEQUENCE);
    // A certificate starts with its tbsCertificate SEQUENCE, whose first child is [0] or an INTEGER;
    // a PkiPath starts with a Certificate, whose first child is itself a SEQUENCE.
    const first = readTlv(outer.content, 0);
    isPkiPath = first.tag === TAG.SEQUENCE && first.content.length > 0 && readTlv(first.content, 0).tag === TAG.SEQUENCE;
  } catch (err) {
    throw parseError('not a DER certificate', err);
  }
  if (isPkiPath) {
    let items: Tlv[];
    try {
      items = children(outer);
    } catch (err) {
      throw parseError('malformed certificate sequence', err);
    }
    return items.map((c) => parseCertificate(c.raw));
  }
  return [parseCertificate(input)];
}

// ---------------------------------------------------------------------------------------------
// CRLs

export class Crl extends SignedObject {
  readonly issuer: Name;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  /** Revoked serial numbers (as Certificate.serialNumber) and their revocation dates. */
  readonly revoked: ReadonlyMap<string, Date>;
  readonly extensions: ReadonlyMap<string, Extension>;

  /** Use parseCrl(). */
  constructor(der: Uint8Array) {
    super(der);
    const parts = this.tbsFields();
    let i = 0;
    if (parts[0]?.tag === TAG.INTEGER) {
      if (decodeSmallUint(parts[0]) !== 1) throw new DerError('unsupported CRL version');
      i++;
    }
    const take = (what: string): Tlv => {
      const t = parts[i++];
      if (!t) throw new DerError(`CRL without ${what}`);
      return t;
    };
    const innerAlg = decodeSignatureAlgorithm(take('signature'));
    if (!sameAlgorithm(innerAlg, this.signatureAlgorithm)) throw new DerError('CRL signature algorithms differ');
    this.issuer = decodeName(take('issuer'));
    this.thisUpdate = decodeTime(take('thisUpdate'));
    if (parts[i] && (parts[i]!.tag === TAG.UTC_TIME || parts[i]!.tag === TAG.GENERALIZED_TIME)) {
      this.nextUpdate = decodeTime(parts[i++]!);
    }
    const revoked = new Map<string, Date>();
    if (parts[i]?.tag === TAG.SEQUENCE) {
      for (const entry of children(parts[i++]!)) {
        const [serial, date, entryExtensions, ...rest] = children(expectTag(entry, TAG.SEQUENCE));
        if (!serial || !date || rest.length > 0) throw new DerError('malformed revoked certificate entry');
        // RFC 5280 5.3: a CRL with a critical entry extension we cannot process (certificateIssuer
        // of an indirect CRL) must not be used; reasonCode, invalidityDate and the like are not critical.
        for (const ext of entryExtensions ? decodeExtensions(entryExtensions).values() : []) {
          if (ext.critical) throw new DerError(`a revoked certificate entry has the critical extension ${ext.oid}, which this verifier cannot process (an indirect CRL?)`);
        }
        revoked.set(integerHex(expectTag(serial, TAG.INTEGER).content), decodeTime(date));
      }
    }
    this.revoked = revoked;
    let extensions = new Map<string, Extension>();
    if (parts[i]?.tag === 0xa0) extensions = decodeExtensions(children(parts[i++]!)[0] ?? parts[i - 1]!);
    if (i !== parts.length) throw new DerError('unexpected field in tbsCertList');
    this.extensions = extensions;
  }

  get crlNumber(): number | undefined {
    const ext = this.extensions.get(OID.crlNumber);
    if (!ext) return undefined;
    try {
      return decodeSmallUint(readWhole(ext.value));
    } catch {
      return undefined;
    }
  }

}

/** Parses a CRL from DER, or text (derFromText: PEM "X509 CRL", URL-encoded PEM, hex or base64 DER). Throws VerificationError('parse'). */
export function parseCrl(input: Uint8Array | string): Crl {
  let der: Uint8Array;
  if (typeof input === 'string' || looksLikeText(input)) {
    const text = typeof input === 'string' ? input : new TextDecoder().decode(input);
    const cached = PEM_CRL_CACHE.get(text);
    if (cached) return cached;
    const crl = cachedParse(CRL_CACHE, derFromText(text, 'X509 CRL')[0]!, 'malformed CRL', (bytes) => new Crl(bytes));
    if (PEM_CRL_CACHE.size >= CACHE_LIMIT) PEM_CRL_CACHE.clear();
    PEM_CRL_CACHE.set(text, crl);
    return crl;
  } else {
    der = input;
  }
  return cachedParse(CRL_CACHE, der, 'malformed CRL', (bytes) => new Crl(bytes));
}

// ---------------------------------------------------------------------------------------------
// Signatures

function rsaEncryptionSpki(cert: Certificate): Uint8Array {
  // Browsers import RSA keys only under rsaEncryption; AMD may label the key id-RSASSA-PSS.
  const alg = encodeTlv(TAG.SEQUENCE, concatBytes(encodeOid(OID.rsaEncryption), Uint8Array.of(TAG.NULL, 0)));
  const key = encodeTlv(TAG.BIT_STRING, concatBytes(Uint8Array.of(0), cert.publicKeyBytes));
  return encodeTlv(TAG.SEQUENCE, concatBytes(alg, key));
}

async function importVerifyKey(cert: Certificate, algorithm: SignatureAlgorithm): Promise<CryptoKey> {
  const info = cert.publicKeyInfo;
  switch (algorithm.kind) {
    case 'ecdsa':
      if (info.kind !== 'ec') throw new Error('an ECDSA signature needs an EC key');
      return crypto.subtle.importKey('spki', ownBytes(cert.spki), { name: 'ECDSA', namedCurve: info.curve }, false, ['verify']);
    case 'rsa-pss':
    case 'rsa-pkcs1':
      if (info.kind !== 'rsa') throw new Error('an RSA signature needs an RSA key');
      return crypto.subtle.importKey(
        'spki',
        ownBytes(rsaEncryptionSpki(cert)),
        { name: algorithm.kind === 'rsa-pss' ? 'RSA-PSS' : 'RSASSA-PKCS1-v1_5', hash: algorithm.hash },
        false,
        ['verify'],
      );
    case 'ed25519':
      if (info.kind !== 'ed25519') throw new Error('an Ed25519 signature needs an Ed25519 key');
      return crypto.subtle.importKey('spki', ownBytes(cert.spki), { name: 'Ed25519' }, false, ['verify']);
  }
}

const CURVE_BYTES: Record<CurveName, number> = { 'P-256': 32, 'P-384': 48, 'P-521': 66 };

/** Converts a DER ECDSA-Sig-Value to the fixed-size r||s form WebCrypto takes; undefined if malformed. */
export function ecdsaDerToP1363(der: Uint8Array, curve: CurveName): Uint8Array | undefined {
  const size = CURVE_BYTES[curve];
  try {
    const [r, s, extra] = children(readWhole(der, TAG.SEQUENCE));
    if (!r || !s || extra) return undefined;
    const out = new Uint8Array(2 * size);
    for (const [k, part] of [r, s].entries()) {
      expectTag(part, TAG.INTEGER);
      let v = part.content;
      if (v.length === 0 || v[0]! & 0x80) return undefined;
      while (v.length > 1 && v[0] === 0) v = v.subarray(1);
      if (v.length > size) return undefined;
      out.set(v, (k + 1) * size - v.length);
    }
    return out;
  } catch {
    return undefined;
  }
}

/** Verifies `signature` over `data` with `key` and the algorithm as X.509 encodes it (ECDSA signatures in DER). */
export async function verifyWithKey(
  algorithm: SignatureAlgorithm,
  key: CryptoKey,
  signature: Uint8Array,
  data: Uint8Array,
): Promise<boolean> {
  switch (algorithm.kind) {
    case 'ecdsa': {
      const curve = (key.algorithm as EcKeyAlgorithm).namedCurve as CurveName;
      const raw = ecdsaDerToP1363(signature, curve);
      if (!raw) return false;
      return crypto.subtle.verify({ name: 'ECDSA', hash: algorithm.hash }, key, ownBytes(raw), ownBytes(data));
    }
    case 'rsa-pss':
      return crypto.subtle.verify({ name: 'RSA-PSS', saltLength: algorithm.saltLength }, key, ownBytes(signature), ownBytes(data));
    case 'rsa-pkcs1':
      return crypto.subtle.verify({ name: 'RSASSA-PKCS1-v1_5' }, key, ownBytes(signature), ownBytes(data));
    case 'ed25519':
      return crypto.subtle.verify({ name: 'Ed25519' }, key, ownBytes(signature), ownBytes(data));
  }
}

/** Whether `issuer`'s key verifies a certificate's or CRL's signature. False (never a throw) on a mismatched key type. */
export async function verifySigned(signed: Signed, issuer: Certificate): Promise<boolean> {
  let key: CryptoKey;
  try {
    key = await issuer.verifyKey(signed.signatureAlgorithm);
  } catch {
    return false;
  }
  try {
    return await verifyWithKey(signed.signatureAlgorithm, key, signed.signature, signed.tbs);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Trust anchors and chains

export interface TrustAnchor {
  /** Reported as the result's trustAnchor: e.g. 'amd-milan', 'intel-sgx-root', 'test:my-root'. */
  name: string;
  certificate: Certificate;
}

/** Vendor chains have 2 or 3 certificates; anything much longer is malformed or hostile. */
export const MAX_CHAIN_LENGTH = 8;

export interface ChainOptions {
  /** The roots a chain may end at. A chain that ends elsewhere is rejected at step 'chain'. */
  anchors: readonly TrustAnchor[];
  /** The time every validity window is checked against. */
  now: Date;
  /** CRLs to apply: each is matched to the chain certificate whose subject is its issuer. */
  crls?: readonly Crl[];
}

export interface ChainResult {
  anchor: TrustAnchor;
  /** Leaf first, root last (the given root, or the anchor's certificate when the chain stopped below it). */
  path: Certificate[];
  /** For each link path[i] <- path[i+1]: whether a CRL from path[i+1] was checked for path[i]'s serial. */
  crlChecked: boolean[];
  /** CRLs that matched no issuer in this chain (e.g. another product's CRL); they were not used. */
  unusedCrls: Crl[];
  /** Invalid CRLs (expired, bad signature...) that were set aside because a valid CRL from the same issuer was given too. */
  ignoredCrls: Array<{ crl: Crl; reason: string }>;
}

function iso(d: Date): string {
  return d.toISOString().replace('.000Z', 'Z');
}

/** Throws VerificationError('chain') unless `now` lies in the certificate's validity window. */
/**
 * An invalid Date compares false with every bound, so it would pass every validity window: it is a
 * programming error (TypeError), never a verdict.
 */
export function assertValidNow(now: unknown, who: string): asserts now is Date {
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new TypeError(`${who}: now must be a valid Date`);
}

export function checkValidity(cert: Certificate, now: Date): void {
  if (now.getTime() < cert.notBefore.getTime()) {
    throw new VerificationError('chain', `certificate ${cert.label} is not valid before ${iso(cert.notBefore)} (now ${iso(now)})`);
  }
  if (now.getTime() > cert.notAfter.getTime()) {
    throw new VerificationError('chain', `certificate ${cert.label} expired at ${iso(cert.notAfter)} (now ${iso(now)})`);
  }
}

function checkCriticalExtensions(cert: Certificate): void {
  for (const ext of cert.extensions.values()) {
    if (ext.critical && !KNOWN_CRITICAL.has(ext.oid)) {
      throw new VerificationError('chain', `certificate ${cert.label} has an unsupported critical extension ${ext.oid}`);
    }
  }
}

/**
 * The anchors the chain may end at, each with the full path: the chain's own root when it is (or
 * re-issues) an anchor, else every anchor named as the last certificate's issuer. Several anchors
 * can share a name (a test root named like a vendor's): verifyChain tries each.
 */
function findAnchors(chain: readonly Certificate[], anchors: readonly TrustAnchor[]): Array<{ anchor: TrustAnchor; path: Certificate[] }> {
  const last = chain[chain.length - 1]!;
  const exact = anchors.find((anchor) => bytesEqual(anchor.certificate.der, last.der));
  if (exact) return [{ anchor: exact, path: [...chain] }];
  if (last.isSelfIssued) {
    // A re-issued root (same subject and key) is accepted; its own self-signature is checked later.
    const reissued = anchors.find((a) => bytesEqual(a.certificate.subject.der, last.subject.der) && bytesEqual(a.certificate.spki, last.spki));
    if (reissued) return [{ anchor: reissued, path: [...chain] }];
    throw new VerificationError('chain', `root ${last.label} is not a pinned trust anchor`);
  }
  const named = anchors.filter((anchor) => bytesEqual(anchor.certificate.subject.der, last.issuer.der));
  if (named.length > 0) return named.map((anchor) => ({ anchor, path: [...chain, anchor.certificate] }));
  throw new VerificationError(
    'chain',
    `the chain ends at ${last.label}, whose issuer '${last.issuer.commonName || last.issuer.text}' is not a pinned trust anchor`,
  );
}

/**
 * Checks a CRL issued by `issuer` at `now`: issuer name, signature and update window. Throws
 * VerificationError('crl'). Does not look at revoked serials (see checkRevocation).
 */
export async function checkCrl(crl: Crl, issuer: Certificate, now: Date): Promise<void> {
  assertValidNow(now, 'checkCrl');
  const who = `CRL from '${crl.issuer.commonName || crl.issuer.text}'`;
  if (!bytesEqual(crl.issuer.der, issuer.subject.der)) {
    throw new VerificationError('crl', `${who} is not issued by ${issuer.label}`);
  }
  for (const ext of crl.extensions.values()) {
    if (ext.critical && !KNOWN_CRITICAL_CRL.has(ext.oid)) {
      throw new VerificationError('crl', `${who} has an unsupported critical extension ${ext.oid}`);
    }
  }
  if (crl.extensions.has(OID.deltaCrlIndicator)) throw new VerificationError('crl', `${who} is a delta CRL, which is not supported`);
  if (issuer.keyUsage !== undefined && !(issuer.keyUsage & (1 << 6))) {
    throw new VerificationError('crl', `${issuer.label} may not sign CRLs (keyUsage lacks cRLSign)`);
  }
  if (!(await crl.isSignedBy(issuer))) throw new VerificationError('crl', `${who}: signature does not verify with ${issuer.label}`);
  if (now.getTime() < crl.thisUpdate.getTime()) {
    throw new VerificationError('crl', `${who} is not valid before ${iso(crl.thisUpdate)} (now ${iso(now)})`);
  }
  if (crl.nextUpdate && now.getTime() > crl.nextUpdate.getTime()) {
    throw new VerificationError('crl', `${who} expired at ${iso(crl.nextUpdate)} (now ${iso(now)})`);
  }
}

/** Throws VerificationError('crl') if `crl` lists `cert`'s serial. */
export function checkRevocation(crl: Crl, cert: Certificate): void {
  const date = crl.revoked.get(cert.serialNumber);
  if (date) throw new VerificationError('crl', `certificate ${cert.label} was revoked on ${iso(date)}`);
}

/**
 * Validates `chain` (leaf first; the root may be included or omitted) against pinned anchors at
 * `now`: every signature (RSA-PSS, RSA PKCS#1, ECDSA, Ed25519), issuer/subject name chaining,
 * validity windows, CA constraints on issuers, critical extensions, and the given CRLs (a CRL from
 * an issuer must be valid; of several from one issuer, invalid ones are set aside if one is valid). The root
 * must be byte-equal to an anchor, or have its subject and key (a re-issued root) and a valid
 * self-signature; an embedded root is never trusted on its own. Throws VerificationError with step 'chain' or 'crl'.
 */
export async function verifyChain(chain: readonly Certificate[], options: ChainOptions): Promise<ChainResult> {
  assertValidNow(options.now, 'verifyChain');
  if (chain.length === 0) throw new VerificationError('chain', 'empty certificate chain');
  if (chain.length > MAX_CHAIN_LENGTH) throw new VerificationError('chain', `a chain of ${chain.length} certificates is longer than the ${MAX_CHAIN_LENGTH} accepted`);
  const candidates = findAnchors(chain, options.anchors);
  let firstError: unknown;
  for (const candidate of candidates) {
    try {
      return await verifyPath(candidate.anchor, candidate.path, options);
    } catch (err) {
      if (!(err instanceof VerificationError) || candidates.length === 1) throw err;
      firstError ??= err;
    }
  }
  throw firstError;
}

async function verifyPath(anchor: TrustAnchor, path: Certificate[], options: ChainOptions): Promise<ChainResult> {
  const { now } = options;
  for (const cert of path) {
    checkValidity(cert, now);
    checkCriticalExtensions(cert);
  }
  for (let i = 0; i < path.length - 1; i++) {
    const child = path[i]!;
    const issuer = path[i + 1]!;
    if (!bytesEqual(child.issuer.der, issuer.subject.der)) {
      throw new VerificationError(
        'chain',
        `certificate ${child.label} names issuer '${child.issuer.commonName || child.issuer.text}', not ${issuer.label}`,
      );
    }
    if (!issuer.basicConstraints?.ca) throw new VerificationError('chain', `issuer ${issuer.label} is not a CA certificate`);
    if (issuer.keyUsage !== undefined && !(issuer.keyUsage & (1 << 5))) {
      throw new VerificationError('chain', `issuer ${issuer.label} may not sign certificates (keyUsage lacks keyCertSign)`);
    }
    const below = path.slice(1, i + 1).filter((c) => !c.isSelfIssued).length; // intermediate CAs under this issuer
    const limit = issuer.basicConstraints.pathLength;
    if (limit !== undefined && below > limit) {
      throw new VerificationError('chain', `issuer ${issuer.label} allows ${limit} intermediate CA(s) below it, the chain has ${below}`);
    }
    if (!(await child.isSignedBy(issuer))) {
      throw new VerificationError('chain', `signature of certificate ${child.label} does not verify with ${issuer.label}`);
    }
  }
  const root = path[path.length - 1]!;
  if (!(await root.isSignedBy(root))) throw new VerificationError('chain', `root ${root.label} has an invalid self-signature`);

  const crls = options.crls ?? [];
  const used = new Set<Crl>();
  const crlChecked: boolean[] = [];
  const ignoredCrls: Array<{ crl: Crl; reason: string }> = [];
  for (let i = 0; i < path.length - 1; i++) {
    const child = path[i]!;
    const issuer = path[i + 1]!;
    const candidates = crls.filter((crl) => bytesEqual(crl.issuer.der, issuer.subject.der));
    candidates.forEach((crl) => used.add(crl));
    // Every valid CRL from this issuer is applied (a cache may hold an older one beside the
    // current one); an invalid one is a rejection only when no valid one remains.
    const valid: Crl[] = [];
    let firstError: VerificationError | undefined;
    for (const crl of candidates) {
      try {
        await checkCrl(crl, issuer, now);
        valid.push(crl);
      } catch (err) {
        if (!(err instanceof VerificationError)) throw err;
        firstError ??= err;
        ignoredCrls.push({ crl, reason: err.message });
      }
    }
    if (candidates.length > 0 && valid.length === 0) throw firstError!;
    for (const crl of valid) checkRevocation(crl, child);
    crlChecked.push(valid.length > 0);
  }
  return { anchor, path, crlChecked, unusedCrls: crls.filter((c) => !used.has(c)), ignoredCrls };
}

/** Builds a trust anchor from a certificate after checking its SHA-256 fingerprint (of the DER). */
export async function pinnedAnchor(name: string, der: Uint8Array, sha256: string): Promise<TrustAnchor> {
  const certificate = parseCertificate(der);
  const actual = await certificate.sha256();
  if (actual !== sha256.toLowerCase()) {
    throw new Error(`built-in trust anchor ${name} does not match its pinned fingerprint (${actual} != ${sha256})`);
  }
  return { name, certificate };
}
