/**
 * PKCS#10 certification requests as Enarx Keeps send them, plus our additions:
 *
 * - evidence in an extensionRequest extension under Enarx's OIDs (1.3.6.1.4.1.58270.1.{1,2,3});
 * - or evidence in the csr-attestation attribute (id-aa-attestation), for TDX and anything else;
 * - an optional workload-identity attribute (see identity.ts).
 *
 * Parsing keeps the exact signed bytes and the exact SubjectPublicKeyInfo, because the signature and
 * the report-data binding are over those bytes, not over a re-encoding. Browser-safe (WebCrypto).
 */
import { buffer, toHex } from './asn1.ts';
import { children, concat, DerError, decodeAnyOid, encodeAnyOid, readWhole, setOf, TAG, tlv, type Tlv } from './der.ts';
import { decodeAttestationBundle, encodeAttestationBundle, type AttestationBundle } from './evidence.ts';
import { decodeWorkloadIdentity, encodeWorkloadIdentity, type WorkloadIdentity } from './identity.ts';
import {
  ENARX_EVIDENCE_OIDS,
  OID_AA_ATTESTATION,
  OID_EC_PUBLIC_KEY,
  OID_ECDSA_SHA256,
  OID_ECDSA_SHA384,
  OID_ECDSA_SHA512,
  OID_ENARX_KVM,
  OID_ENARX_SGX,
  OID_ENARX_SNP,
  OID_EVIDENCE_SNP_REPORT,
  OID_EVIDENCE_TDX,
  OID_EXTENSION_REQUEST,
  OID_P256,
  OID_P384,
  OID_WORKLOAD_IDENTITY,
} from './oids.ts';

/** Thrown for any CSR that cannot be accepted as a well-formed request. */
export class CsrError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CsrError';
  }
}

export type NamedCurve = 'P-256' | 'P-384';
export type EvidenceKind = 'kvm' | 'sgx' | 'snp' | 'tdx';

export interface CsrKey {
  /** 'ECDSA' for id-ecPublicKey on P-256/P-384; anything else is reported but never accepted. */
  algorithm: string;
  namedCurve: NamedCurve | null;
  /** The SPKI AlgorithmIdentifier's OIDs, for messages. */
  algorithmOid: string;
  curveOid: string | null;
}

export interface CsrExtension {
  oid: string;
  critical: boolean;
  value: Uint8Array;
}

export interface CsrAttribute {
  oid: string;
  values: Uint8Array[];
}

export interface CsrEvidence {
  kind: EvidenceKind;
  /** Where it came from: an Enarx extension or a csr-attestation statement. */
  source: 'enarx-extension' | 'csr-attestation';
  /** The evidence structure's DER (Evidence, SgxEvidence, TdxEvidence, a bare SNP report), or empty for Enarx KVM. */
  der: Uint8Array;
  /** csr-attestation only: the statement type, which tells a bare SNP report from Enarx's SNP Evidence. */
  statementType?: string;
}

export interface ParsedCsr {
  der: Uint8Array;
  /** The signed CertificationRequestInfo, exactly as received. */
  info: Uint8Array;
  /** The SubjectPublicKeyInfo, exactly as received. */
  spki: Uint8Array;
  subject: Uint8Array;
  key: CsrKey;
  signatureAlgorithm: string;
  /** The BIT STRING's content (a DER ECDSA-Sig-Value for ECDSA). */
  signature: Uint8Array;
  attributes: CsrAttribute[];
  extensions: CsrExtension[];
  evidence: CsrEvidence[];
  /** Certificates carried in a csr-attestation bundle. */
  attestationCerts: Uint8Array[];
  identity: { der: Uint8Array; value: WorkloadIdentity } | null;
}

export interface CsrLimits {
  maxAttributes: number;
  maxExtensions: number;
}
export const DEFAULT_CSR_LIMITS: CsrLimits = { maxAttributes: 8, maxExtensions: 16 };

const CURVES: Record<string, NamedCurve> = { [OID_P256]: 'P-256', [OID_P384]: 'P-384' };
const SIGNATURE_HASHES: Record<string, 'SHA-256' | 'SHA-384' | 'SHA-512'> = {
  [OID_ECDSA_SHA256]: 'SHA-256',
  [OID_ECDSA_SHA384]: 'SHA-384',
  [OID_ECDSA_SHA512]: 'SHA-512',
};
/** csr-attestation statement types we understand, and the evidence they carry. */
const STATEMENT_KINDS: Record<string, EvidenceKind> = {
  [OID_ENARX_SNP]: 'snp',
  [OID_ENARX_SGX]: 'sgx',
  [OID_EVIDENCE_TDX]: 'tdx',
  [OID_EVIDENCE_SNP_REPORT]: 'snp',
};

function expect(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new CsrError(`malformed CSR: ${what}`);
  return t;
}

function parseKey(spki: Tlv): CsrKey {
  const [alg] = children(spki);
  const algParts = children(expect(alg, TAG.SEQUENCE, 'bad SubjectPublicKeyInfo'));
  const algorithmOid = decodeAnyOid(expect(algParts[0], TAG.OID, 'bad key algorithm'));
  const curveOid = algParts[1]?.tag === TAG.OID ? decodeAnyOid(algParts[1]) : null;
  const namedCurve = algorithmOid === OID_EC_PUBLIC_KEY && curveOid ? (CURVES[curveOid] ?? null) : null;
  return { algorithm: namedCurve ? 'ECDSA' : 'unsupported', namedCurve, algorithmOid, curveOid };
}

/**
 * Parses a DER CSR. Refuses (CsrError) anything malformed, unknown attributes and extensions,
 * duplicates, critical evidence extensions, and more attributes/extensions than `limits` allow.
 */
export function parseCsr(der: Uint8Array, limits: CsrLimits = DEFAULT_CSR_LIMITS): ParsedCsr {
  try {
    return parse(der, limits);
  } catch (err) {
    if (err instanceof CsrError) throw err;
    throw new CsrError(`malformed CSR: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function parse(der: Uint8Array, limits: CsrLimits): ParsedCsr {
  const outer = readWhole(der, TAG.SEQUENCE);
  const top = children(outer);
  if (top.length !== 3) throw new CsrError('malformed CSR: expected info, algorithm and signature');
  const info = expect(top[0], TAG.SEQUENCE, 'no CertificationRequestInfo');
  const sigAlg = children(expect(top[1], TAG.SEQUENCE, 'no signature algorithm'));
  const signatureAlgorithm = decodeAnyOid(expect(sigAlg[0], TAG.OID, 'bad signature algorithm'));
  const sigBits = expect(top[2], TAG.BIT_STRING, 'no signature');
  if (sigBits.content[0] !== 0 || sigBits.content.length < 2) throw new CsrError('malformed CSR: bad signature BIT STRING');
  const signature = sigBits.content.subarray(1);

  const fieldsOfInfo = children(info);
  const version = expect(fieldsOfInfo[0], TAG.INTEGER, 'no version');
  if (version.content.length !== 1 || version.content[0] !== 0) throw new CsrError('unsupported CSR version (only v1, 0, exists)');
  const subject = expect(fieldsOfInfo[1], TAG.SEQUENCE, 'no subject');
  const spki = expect(fieldsOfInfo[2], TAG.SEQUENCE, 'no SubjectPublicKeyInfo');
  const attrsTlv = fieldsOfInfo[3];
  if (fieldsOfInfo.length > 4 || (attrsTlv && attrsTlv.tag !== 0xa0)) throw new CsrError('malformed CSR: unexpected fields after the key');

  const attributes: CsrAttribute[] = [];
  if (attrsTlv) {
    const list = children(attrsTlv);
    if (list.length > limits.maxAttributes) throw new CsrError(`too many CSR attributes: ${list.length} (at most ${limits.maxAttributes})`);
    for (const a of list) {
      const parts = children(expect(a, TAG.SEQUENCE, 'bad attribute'));
      if (parts.length !== 2) throw new CsrError('malformed CSR: bad attribute');
      const oid = decodeAnyOid(expect(parts[0], TAG.OID, 'bad attribute type'));
      const values = children(expect(parts[1], TAG.SET, 'bad attribute values')).map((v) => v.raw);
      if (attributes.some((x) => x.oid === oid)) throw new CsrError(`duplicate CSR attribute ${oid}`);
      attributes.push({ oid, values });
    }
  }

  const extensions: CsrExtension[] = [];
  const evidence: CsrEvidence[] = [];
  let attestationCerts: Uint8Array[] = [];
  let identity: ParsedCsr['identity'] = null;
  for (const attr of attributes) {
    if (attr.values.length !== 1) throw new CsrError(`CSR attribute ${attr.oid} must have exactly one value`);
    const value = attr.values[0]!;
    if (attr.oid === OID_EXTENSION_REQUEST) {
      extensions.push(...parseExtensions(value, limits));
    } else if (attr.oid === OID_AA_ATTESTATION) {
      const bundle = decodeAttestationBundle(value);
      for (const s of bundle.attestations) {
        const kind = STATEMENT_KINDS[s.type];
        if (!kind) throw new CsrError(`unsupported attestation statement type ${s.type}`);
        evidence.push({ kind, source: 'csr-attestation', der: s.stmt, statementType: s.type });
      }
      attestationCerts = bundle.certs;
    } else if (attr.oid === OID_WORKLOAD_IDENTITY) {
      identity = { der: value, value: decodeWorkloadIdentity(value) };
    } else {
      throw new CsrError(`unsupported CSR attribute ${attr.oid}`);
    }
  }
  for (const ext of extensions) {
    const kind = ENARX_EVIDENCE_OIDS[ext.oid];
    if (!kind) throw new CsrError(`unsupported CSR extension ${ext.oid}`);
    if (ext.critical) throw new CsrError(`the evidence extension ${ext.oid} must not be critical`);
    evidence.push({ kind, source: 'enarx-extension', der: ext.value });
  }

  return {
    der,
    info: info.raw,
    spki: spki.raw,
    subject: subject.raw,
    key: parseKey(spki),
    signatureAlgorithm,
    signature,
    attributes,
    extensions,
    evidence,
    attestationCerts,
    identity,
  };
}

function parseExtensions(value: Uint8Array, limits: CsrLimits): CsrExtension[] {
  const seq = readWhole(value, TAG.SEQUENCE);
  const list = children(seq);
  if (list.length > limits.maxExtensions) throw new CsrError(`too many requested extensions: ${list.length} (at most ${limits.maxExtensions})`);
  const out: CsrExtension[] = [];
  for (const e of list) {
    const parts = children(expect(e, TAG.SEQUENCE, 'bad extension'));
    if (parts.length < 2 || parts.length > 3) throw new CsrError('malformed CSR: bad extension');
    const oid = decodeAnyOid(expect(parts[0], TAG.OID, 'bad extension id'));
    let critical = false;
    if (parts.length === 3) {
      const b = expect(parts[1], 0x01, 'bad extension criticality');
      if (b.content.length !== 1) throw new CsrError('malformed CSR: bad BOOLEAN');
      critical = b.content[0] !== 0;
    }
    const extnValue = expect(parts[parts.length - 1], TAG.OCTET_STRING, 'bad extension value');
    if (out.some((x) => x.oid === oid)) throw new CsrError(`duplicate CSR extension ${oid}`);
    out.push({ oid, critical, value: extnValue.content });
  }
  return out;
}

/** DER ECDSA-Sig-Value -> IEEE P1363 r||s of `size` bytes each, strictly. */
export function ecdsaDerToRaw(sig: Uint8Array, size: number): Uint8Array {
  const seq = readWhole(sig, TAG.SEQUENCE);
  const parts = children(seq);
  if (parts.length !== 2) throw new DerError('malformed ECDSA signature');
  const out = new Uint8Array(size * 2);
  parts.forEach((p, i) => {
    if (p.tag !== TAG.INTEGER) throw new DerError('malformed ECDSA signature');
    let v = p.content;
    if (v.length === 0 || v[0]! & 0x80) throw new DerError('malformed ECDSA signature integer');
    if (v.length > 1 && v[0] === 0 && !(v[1]! & 0x80)) throw new DerError('non-minimal ECDSA signature integer');
    if (v[0] === 0) v = v.subarray(1);
    if (v.length > size) throw new DerError('ECDSA signature integer too large');
    out.set(v, i * size + size - v.length);
  });
  return out;
}

/** IEEE P1363 r||s -> DER ECDSA-Sig-Value. */
export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  const int = (v: Uint8Array): Uint8Array => {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    const trimmed = v.subarray(i);
    return tlv(TAG.INTEGER, trimmed[0]! & 0x80 ? concat(Uint8Array.of(0), trimmed) : trimmed);
  };
  return tlv(TAG.SEQUENCE, int(raw.subarray(0, half)), int(raw.subarray(half)));
}

const CURVE_BYTES: Record<NamedCurve, number> = { 'P-256': 32, 'P-384': 48 };

/** Verifies the CSR's self-signature (ECDSA P-256/P-384 with SHA-256/384/512). */
export async function verifyCsrSignature(csr: ParsedCsr): Promise<boolean> {
  const hash = SIGNATURE_HASHES[csr.signatureAlgorithm];
  const curve = csr.key.namedCurve;
  if (!hash) throw new CsrError(`unsupported CSR signature algorithm ${csr.signatureAlgorithm}`);
  if (!curve) throw new CsrError(`unsupported CSR key ${csr.key.algorithmOid}${csr.key.curveOid ? ` (${csr.key.curveOid})` : ''}: ECDSA P-256 or P-384 expected`);
  let raw: Uint8Array;
  try {
    raw = ecdsaDerToRaw(csr.signature, CURVE_BYTES[curve]);
  } catch {
    return false;
  }
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey('spki', buffer(csr.spki), { name: 'ECDSA', namedCurve: curve }, false, ['verify']);
  } catch (err) {
    throw new CsrError(`the CSR's public key is not a valid ${curve} point`, { cause: err });
  }
  return crypto.subtle.verify({ name: 'ECDSA', hash }, key, buffer(raw), buffer(csr.info));
}

// ---- building -------------------------------------------------------------------------------

export interface CsrRequest {
  /** The Keep's key pair (ECDSA P-256 or P-384; the private key may be non-extractable). */
  keys: CryptoKeyPair;
  /** Evidence in an Enarx extension (kvm: empty bytes, as Enarx sends). */
  enarxEvidence?: { kind: 'kvm' | 'sgx' | 'snp'; der: Uint8Array };
  /** Evidence in the csr-attestation attribute (TDX, or SNP/SGX the standard way). */
  attestation?: AttestationBundle;
  /** The workload identity to have certified; the report data must bind it. */
  identity?: WorkloadIdentity;
  /** Digest for the signature; by default SHA-256 for P-256 and SHA-384 for P-384, as Enarx. */
  hash?: 'SHA-256' | 'SHA-384' | 'SHA-512';
}

const ENARX_OID_FOR: Record<'kvm' | 'sgx' | 'snp', string> = { kvm: OID_ENARX_KVM, sgx: OID_ENARX_SGX, snp: OID_ENARX_SNP };
const SIGNATURE_OID_FOR: Record<string, string> = { 'SHA-256': OID_ECDSA_SHA256, 'SHA-384': OID_ECDSA_SHA384, 'SHA-512': OID_ECDSA_SHA512 };

function attribute(oid: string, value: Uint8Array): Uint8Array {
  return tlv(TAG.SEQUENCE, encodeAnyOid(oid), setOf([value]));
}

/** The statement type OID for evidence of `kind` inside a csr-attestation bundle. */
export function attestationStatementType(kind: 'snp' | 'sgx' | 'tdx'): string {
  return kind === 'snp' ? OID_ENARX_SNP : kind === 'sgx' ? OID_ENARX_SGX : OID_EVIDENCE_TDX;
}

/** Builds and signs a DER CSR shaped as Enarx Keeps build theirs (empty subject, v1). */
export async function buildCsr(request: CsrRequest): Promise<Uint8Array> {
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', request.keys.publicKey));
  const curve = (request.keys.publicKey.algorithm as EcKeyAlgorithm).namedCurve as NamedCurve;
  if (!(curve in CURVE_BYTES)) throw new CsrError(`unsupported key curve ${curve}: use P-256 or P-384`);
  const hash = request.hash ?? (curve === 'P-384' ? 'SHA-384' : 'SHA-256');
  const attrs: Uint8Array[] = [];
  if (request.enarxEvidence) {
    const ext = tlv(TAG.SEQUENCE, encodeAnyOid(ENARX_OID_FOR[request.enarxEvidence.kind]), tlv(TAG.OCTET_STRING, request.enarxEvidence.der));
    attrs.push(attribute(OID_EXTENSION_REQUEST, tlv(TAG.SEQUENCE, ext)));
  }
  if (request.attestation) attrs.push(attribute(OID_AA_ATTESTATION, encodeAttestationBundle(request.attestation)));
  if (request.identity) attrs.push(attribute(OID_WORKLOAD_IDENTITY, encodeWorkloadIdentity(request.identity)));
  const info = tlv(
    TAG.SEQUENCE,
    Uint8Array.of(TAG.INTEGER, 1, 0),
    Uint8Array.of(TAG.SEQUENCE, 0),
    spki,
    attrs.length ? setOf(attrs, 0xa0) : new Uint8Array(0),
  );
  const raw = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash }, request.keys.privateKey, buffer(info)));
  const algId = tlv(TAG.SEQUENCE, encodeAnyOid(SIGNATURE_OID_FOR[hash]!));
  return tlv(TAG.SEQUENCE, info, algId, tlv(TAG.BIT_STRING, Uint8Array.of(0), ecdsaRawToDer(raw)));
}

/** Short description for logs: key, evidence kinds, identity. */
export function describeCsr(csr: ParsedCsr): string {
  const ev = csr.evidence.map((e) => e.kind).join('+') || 'no evidence';
  const id = csr.identity ? ` identity ${csr.identity.value.digest.algorithm}:${toHex(csr.identity.value.digest.value).slice(0, 16)}…` : '';
  return `${csr.key.namedCurve ?? csr.key.algorithmOid} key, ${ev}${id}`;
}

