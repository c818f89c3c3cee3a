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
 */
import { AsnPropTypes } from '@peculiar/asn1-schema';
import { buffer, bytes, decode, encode, fields, requireSequence } from './asn1.ts';
import { DerError, encodeAnyOid, readAnyOid } from './der.ts';

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

function fromCrlList(list: CrlListAsn): CrlEntry[] {
  return limit(list.crls, EVIDENCE_LIMITS.crls, 'CRLs').map((c) => ({
    url: c.url,
    crl: requireSequence(bytes(c.crl), 'a CRL'),
  }));
}

function toCrlList(crls: CrlEntry[]): CrlListAsn {
  const list = new CrlListAsn();
  list.crls = crls.map((c) => Object.assign(new CrlEntryAsn(), { url: c.url, crl: buffer(c.crl) }));
  return list;
}

function fromTcb(p: TcbPackageAsn): TcbPackage {
  return {
    certs: limit(p.crts, EVIDENCE_LIMITS.certs, 'certificates').map((c) => requireSequence(bytes(c), 'a certificate')),
    report: bytes(p.report),
  };
}

function toTcb(p: TcbPackage): TcbPackageAsn {
  return Object.assign(new TcbPackageAsn(), { crts: p.certs.map(buffer), report: buffer(p.report) });
}

export function decodeSnpEvidence(der: Uint8Array): SnpEvidence {
  const asn = decode(der, SnpEvidenceAsn, 'SNP evidence');
  return {
    vcek: requireSequence(bytes(asn.crts.vcek), 'the VCEK'),
    crls: fromCrlList(asn.crts.crl),
    report: bytes(asn.report),
  };
}

export function encodeSnpEvidence(ev: SnpEvidence): Uint8Array {
  const crts = Object.assign(new SnpCrtsAsn(), { vcek: buffer(ev.vcek), crl: toCrlList(ev.crls) });
  return encode(Object.assign(new SnpEvidenceAsn(), { crts, report: buffer(ev.report) }));
}

export function decodeSgxEvidence(der: Uint8Array): SgxEvidence {
  const asn = decode(der, SgxEvidenceAsn, 'SGX evidence');
  return { quote: bytes(asn.quote), crls: fromCrlList(asn.crl), tcb: fromTcb(asn.tcb) };
}

export function encodeSgxEvidence(ev: SgxEvidence): Uint8Array {
  return encode(Object.assign(new SgxEvidenceAsn(), { quote: buffer(ev.quote), crl: toCrlList(ev.crls), tcb: toTcb(ev.tcb) }));
}

export function decodeTdxEvidence(der: Uint8Array): TdxEvidence {
  const asn = decode(der, TdxEvidenceAsn, 'TDX evidence');
  const out: TdxEvidence = { quote: bytes(asn.quote), crls: fromCrlList(asn.crl), tcb: fromTcb(asn.tcb) };
  if (asn.qeIdentity) out.qeIdentity = fromTcb(asn.qeIdentity);
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
