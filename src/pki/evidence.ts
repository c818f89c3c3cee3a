/**
 * DER codecs for the evidence a Keep puts in its CSR.
 *
 * Enarx 0.7 (enarx/steward crates/attestation, enarx/enarx shim-kvm and backend/sgx):
 *
 *   Evidence     ::= SEQUENCE { crts SEQUENCE { vcek Certificate, crl CrlList }, report OCTET STRING }  -- SNP
 *   SgxEvidence  ::= SEQUENCE { quote OCTET STRING, crl CrlList, tcb TcbPackage }
 *   TcbPackage   ::= SEQUENCE { crts SEQUENCE OF Certificate, report OCTET STRING }   -- report: PCS JSON
 *   CrlList      ::= SEQUENCE { crls SEQUENCE OF SEQUENCE { url UTF8String, crl CertificateList } }
 *
 * Ours, for Intel TDX (which Enarx never defined), as a csr-attestation statement:
 *
 *   TdxEvidence  ::= SEQUENCE { quote OCTET STRING, crl CrlList, tcb TcbPackage,
 *                               qeIdentity [0] EXPLICIT TcbPackage OPTIONAL }
 *
 * draft-ietf-lamps-csr-attestation (attribute id-aa-attestation):
 *
 *   AttestationBundle    ::= SEQUENCE { attestations SEQUENCE SIZE (1..MAX) OF AttestationStatement,
 *                                       certs SEQUENCE SIZE (1..MAX) OF Certificate OPTIONAL }
 *   AttestationStatement ::= SEQUENCE { type OBJECT IDENTIFIER, stmt ANY DEFINED BY type }
 *
 * Certificates and CRLs are kept as their exact DER bytes: the verifier checks their signatures.
 * Decoding walks the DER strictly (no trailing bytes, definite minimal lengths).
 */
import { AsnPropTypes } from '@peculiar/asn1-schema';
import { buffer, bytes, decode, encode, fields, requireSequence } from './asn1.ts';
import { children, DerError, encodeAnyOid, readAnyOid, readWhole, TAG, type Tlv, tlv } from './der.ts';

export interface CrlEntry {
  url: string;
  /** DER CertificateList. */
  crl: Uint8Array;
}
export interface SnpEvidence {
  /** DER Certificate: the VCEK (or VLEK). */
  vcek: Uint8Array;
  crls: CrlEntry[];
  /** The raw 1184-byte ATTESTATION_REPORT. */
  report: Uint8Array;
}
export interface TcbPackage {
  /** DER Certificates: the TCB signing chain. */
  certs: Uint8Array[];
  /** The signed PCS JSON, as received. */
  report: Uint8Array;
}
export interface SgxEvidence {
  quote: Uint8Array;
  crls: CrlEntry[];
  tcb: TcbPackage;
}
export interface TdxEvidence extends SgxEvidence {
  qeIdentity?: TcbPackage;
}
export interface AttestationStatement {
  type: string;
  /** The DER of `stmt`, whatever its type. */
  stmt: Uint8Array;
}
export interface AttestationBundle {
  attestations: AttestationStatement[];
  /** DER certificates given alongside (the draft's LimitedCertChoices, certificate arm). */
  certs: Uint8Array[];
}

/** Bounds on list lengths in untrusted evidence: real evidence uses a handful. */
export const EVIDENCE_LIMITS = { crls: 16, certs: 16, attestations: 8 } as const;

// ---- schema classes -------------------------------------------------------------------------

class CrlEntryAsn {
  url = '';
  crl = new ArrayBuffer(0);
}
fields(CrlEntryAsn, { url: { type: AsnPropTypes.Utf8String }, crl: { type: AsnPropTypes.Any } });

class CrlListAsn {
  crls: CrlEntryAsn[] = [];
}
fields(CrlListAsn, { crls: { type: CrlEntryAsn, repeated: 'sequence' } });

class SnpCrtsAsn {
  vcek = new ArrayBuffer(0);
  crl = new CrlListAsn();
}
fields(SnpCrtsAsn, { vcek: { type: AsnPropTypes.Any }, crl: { type: CrlListAsn } });

class SnpEvidenceAsn {
  crts = new SnpCrtsAsn();
  report = new ArrayBuffer(0);
}
fields(SnpEvidenceAsn, { crts: { type: SnpCrtsAsn }, report: { type: AsnPropTypes.OctetString } });

class TcbPackageAsn {
  crts: ArrayBuffer[] = [];
  report = new ArrayBuffer(0);
}
fields(TcbPackageAsn, {
  crts: { type: AsnPropTypes.Any, repeated: 'sequence' },
  report: { type: AsnPropTypes.OctetString },
});

class SgxEvidenceAsn {
  quote = new ArrayBuffer(0);
  crl = new CrlListAsn();
  tcb = new TcbPackageAsn();
}
fields(SgxEvidenceAsn, {
  quote: { type: AsnPropTypes.OctetString },
  crl: { type: CrlListAsn },
  tcb: { type: TcbPackageAsn },
});

class TdxEvidenceAsn {
  quote = new ArrayBuffer(0);
  crl = new CrlListAsn();
  tcb = new TcbPackageAsn();
  qeIdentity?: TcbPackageAsn;
}
fields(TdxEvidenceAsn, {
  quote: { type: AsnPropTypes.OctetString },
  crl: { type: CrlListAsn },
  tcb: { type: TcbPackageAsn },
  qeIdentity: { type: TcbPackageAsn, context: 0, optional: true },
});

class AttestationStatementAsn {
  type = new ArrayBuffer(0);
  stmt = new ArrayBuffer(0);
}
fields(AttestationStatementAsn, {
  type: { type: AsnPropTypes.Any },
  stmt: { type: AsnPropTypes.Any },
});

class AttestationBundleAsn {
  attestations: AttestationStatementAsn[] = [];
  certs?: ArrayBuffer[];
}
fields(AttestationBundleAsn, {
  attestations: { type: AttestationStatementAsn, repeated: 'sequence' },
  certs: { type: AsnPropTypes.Any, repeated: 'sequence', optional: true },
});

// ---- conversions ----------------------------------------------------------------------------

function limit<T>(items: T[], max: number, what: string): T[] {
  if (items.length > max) throw new DerError(`too many ${what}: ${items.length} (at most ${max})`);
  return items;
}

// Decoding walks the DER directly (strict, and ~50x faster than the schema parser on a 4 KB SNP
// evidence); encoding uses the schema classes above.

function need(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new DerError(`malformed ${what}`);
  return t;
}

function seqOf(t: Tlv | undefined, what: string, max: number, label: string): Tlv[] {
  const items = children(need(t, TAG.SEQUENCE, what));
  return limit(items, max, label);
}

function whole(der: Uint8Array, what: string): Tlv[] {
  try {
    return children(readWhole(der, TAG.SEQUENCE));
  } catch (err) {
    throw new DerError(`malformed ${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function exactly(parts: Tlv[], n: number, what: string): Tlv[] {
  if (parts.length !== n) throw new DerError(`malformed ${what}: ${parts.length} fields, expected ${n}`);
  return parts;
}

function crlList(t: Tlv | undefined, what: string): CrlEntry[] {
  const [crls, ...rest] = children(need(t, TAG.SEQUENCE, `${what} CrlList`));
  if (rest.length) throw new DerError(`malformed ${what} CrlList`);
  return seqOf(crls, `${what} CRL list`, EVIDENCE_LIMITS.crls, 'CRLs').map((entry) => {
    const [url, crl] = exactly(children(need(entry, TAG.SEQUENCE, `${what} CRL entry`)), 2, `${what} CRL entry`);
    return { url: utf8(need(url, TAG.UTF8_STRING, `${what} CRL URL`).content), crl: need(crl, TAG.SEQUENCE, 'a CRL').raw };
  });
}

function tcbPackage(t: Tlv | undefined, what: string): TcbPackage {
  const [crts, report] = exactly(children(need(t, TAG.SEQUENCE, what)), 2, what);
  return {
    certs: seqOf(crts, `${what} certificates`, EVIDENCE_LIMITS.certs, 'certificates').map((c) => need(c, TAG.SEQUENCE, 'a certificate').raw),
    report: need(report, TAG.OCTET_STRING, `${what} report`).content,
  };
}

function utf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new DerError('malformed UTF8String');
  }
}

function toCrlList(crls: CrlEntry[]): CrlListAsn {
  const list = new CrlListAsn();
  list.crls = crls.map((c) => Object.assign(new CrlEntryAsn(), { url: c.url, crl: buffer(c.crl) }));
  return list;
}


function toTcb(p: TcbPackage): TcbPackageAsn {
  return Object.assign(new TcbPackageAsn(), { crts: p.certs.map(buffer), report: buffer(p.report) });
}

export function decodeSnpEvidence(der: Uint8Array): SnpEvidence {
  const [crts, report] = exactly(whole(der, 'SNP evidence'), 2, 'SNP evidence');
  const [vcek, crl] = exactly(children(need(crts, TAG.SEQUENCE, 'SNP evidence certificates')), 2, 'SNP evidence certificates');
  return { vcek: need(vcek, TAG.SEQUENCE, 'the VCEK').raw, crls: crlList(crl, 'SNP evidence'), report: need(report, TAG.OCTET_STRING, 'SNP report').content };
}

export function encodeSnpEvidence(ev: SnpEvidence): Uint8Array {
  const crts = Object.assign(new SnpCrtsAsn(), { vcek: buffer(ev.vcek), crl: toCrlList(ev.crls) });
  return encode(Object.assign(new SnpEvidenceAsn(), { crts, report: buffer(ev.report) }));
}

/** A bare SNP report, as the OID_EVIDENCE_SNP_REPORT statement carries it: `OCTET STRING`. */
export function encodeSnpReportEvidence(report: Uint8Array): Uint8Array {
  return tlv(TAG.OCTET_STRING, report);
}

export function decodeSnpReportEvidence(der: Uint8Array): Uint8Array {
  try {
    return readWhole(der, TAG.OCTET_STRING).content;
  } catch (err) {
    throw new DerError(`malformed SNP report statement: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function decodeSgxEvidence(der: Uint8Array): SgxEvidence {
  const [quote, crl, tcb] = exactly(whole(der, 'SGX evidence'), 3, 'SGX evidence');
  return { quote: need(quote, TAG.OCTET_STRING, 'SGX quote').content, crls: crlList(crl, 'SGX evidence'), tcb: tcbPackage(tcb, 'SGX TcbPackage') };
}

export function encodeSgxEvidence(ev: SgxEvidence): Uint8Array {
  return encode(Object.assign(new SgxEvidenceAsn(), { quote: buffer(ev.quote), crl: toCrlList(ev.crls), tcb: toTcb(ev.tcb) }));
}

export function decodeTdxEvidence(der: Uint8Array): TdxEvidence {
  const parts = whole(der, 'TDX evidence');
  if (parts.length !== 3 && parts.length !== 4) throw new DerError(`malformed TDX evidence: ${parts.length} fields`);
  const [quote, crl, tcb, qe] = parts;
  const out: TdxEvidence = { quote: need(quote, TAG.OCTET_STRING, 'TDX quote').content, crls: crlList(crl, 'TDX evidence'), tcb: tcbPackage(tcb, 'TDX TcbPackage') };
  if (qe) {
    const [inner, ...rest] = children(need(qe, 0xa0, 'TDX QE identity'));
    if (rest.length) throw new DerError('malformed TDX QE identity');
    out.qeIdentity = tcbPackage(inner, 'TDX QE identity');
  }
  return out;
}

export function encodeTdxEvidence(ev: TdxEvidence): Uint8Array {
  const asn = Object.assign(new TdxEvidenceAsn(), { quote: buffer(ev.quote), crl: toCrlList(ev.crls), tcb: toTcb(ev.tcb) });
  if (ev.qeIdentity) asn.qeIdentity = toTcb(ev.qeIdentity);
  return encode(asn);
}

export function decodeAttestationBundle(der: Uint8Array): AttestationBundle {
  const asn = decode(der, AttestationBundleAsn, 'AttestationBundle');
  if (asn.attestations.length === 0) throw new DerError('malformed AttestationBundle: no attestations');
  if (asn.certs && asn.certs.length === 0) throw new DerError('malformed AttestationBundle: empty certs');
  return {
    attestations: limit(asn.attestations, EVIDENCE_LIMITS.attestations, 'attestation statements').map((s) => ({
      type: readAnyOid(bytes(s.type)),
      stmt: bytes(s.stmt),
    })),
    certs: limit(asn.certs ?? [], EVIDENCE_LIMITS.certs, 'certificates').map((c) => requireSequence(bytes(c), 'a certificate')),
  };
}

export function encodeAttestationBundle(bundle: AttestationBundle): Uint8Array {
  if (bundle.attestations.length === 0) throw new Error('an AttestationBundle needs at least one statement');
  const asn = new AttestationBundleAsn();
  asn.attestations = bundle.attestations.map((s) => Object.assign(new AttestationStatementAsn(), { type: buffer(encodeAnyOid(s.type)), stmt: buffer(s.stmt) }));
  if (bundle.certs.length > 0) asn.certs = bundle.certs.map(buffer);
  return encode(asn);
}
