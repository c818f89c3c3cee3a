/**
 * The certificate origin: what a Steward certificate vouches for. It travels in a non-critical
 * SubjectDirectoryAttributes extension (2.5.29.9) as one attribute:
 *
 *   id-enarx-certificateOrigin OBJECT IDENTIFIER ::= { 2.25.46740769646162043182522345630166459416 1 2 }
 *   SubjectDirectoryAttributes ::= SEQUENCE SIZE (1..MAX) OF Attribute   -- { id-enarx-certificateOrigin, { CertificateOrigin } }
 *
 *   CertificateOrigin ::= SEQUENCE {
 *     tee           ENUMERATED { software(0), sgx(1), snp(2), tdx(3) },
 *     stewardDebug  BOOLEAN,      -- issued by a debug-mode Steward (self-signed CA)
 *     teeDebug      BOOLEAN,      -- the TEE ran with debugging enabled (its memory is readable)
 *     testRoot      BOOLEAN,      -- the evidence chained to an explicitly trusted local test root
 *     trustAnchor   UTF8String,   -- the verifier's anchor name ('amd-milan', 'intel-sgx-root', 'test:…', 'none')
 *     measurement   OCTET STRING, -- SNP MEASUREMENT, SGX MRENCLAVE, TDX MRTD; empty for software
 *     identity      [0] EXPLICIT WorkloadIdentity OPTIONAL }  -- the verified, bound identity
 *
 * Non-critical, so that ordinary TLS stacks accept the certificate; relying parties that care
 * (Drawbridge) read it with `readCertificateOrigin` and refuse what their policy does not allow.
 */
import { AsnPropTypes } from '@peculiar/asn1-schema';
import { buffer, bytes, decode, encode, fields } from './asn1.ts';
import { children, DerError, decodeAnyOid, encodeAnyOid, readWhole, setOf, TAG, tlv } from './der.ts';
import { fromIdentityAsn, toIdentityAsn, type WorkloadIdentity, WorkloadIdentityAsn } from './identity.ts';
import { OID_CERTIFICATE_ORIGIN, OID_ENARX_KVM, OID_SUBJECT_DIRECTORY_ATTRIBUTES } from './oids.ts';

export type OriginTee = 'software' | 'sgx' | 'snp' | 'tdx';
const TEES: readonly OriginTee[] = ['software', 'sgx', 'snp', 'tdx'];

export interface CertificateOrigin {
  tee: OriginTee;
  stewardDebug: boolean;
  teeDebug: boolean;
  testRoot: boolean;
  trustAnchor: string;
  measurement: Uint8Array;
  identity?: WorkloadIdentity;
}

class CertificateOriginAsn {
  tee = 0;
  stewardDebug = false;
  teeDebug = false;
  testRoot = false;
  trustAnchor = '';
  measurement = new ArrayBuffer(0);
  identity?: WorkloadIdentityAsn;
}
fields(CertificateOriginAsn, {
  tee: { type: AsnPropTypes.Enumerated },
  stewardDebug: { type: AsnPropTypes.Boolean },
  teeDebug: { type: AsnPropTypes.Boolean },
  testRoot: { type: AsnPropTypes.Boolean },
  trustAnchor: { type: AsnPropTypes.Utf8String },
  measurement: { type: AsnPropTypes.OctetString },
  identity: { type: WorkloadIdentityAsn, context: 0, optional: true },
});

export function encodeCertificateOrigin(origin: CertificateOrigin): Uint8Array {
  const asn = Object.assign(new CertificateOriginAsn(), {
    tee: TEES.indexOf(origin.tee),
    stewardDebug: origin.stewardDebug,
    teeDebug: origin.teeDebug,
    testRoot: origin.testRoot,
    trustAnchor: origin.trustAnchor,
    measurement: buffer(origin.measurement),
  });
  if (asn.tee < 0) throw new Error(`unknown TEE ${origin.tee}`);
  if (origin.identity) asn.identity = toIdentityAsn(origin.identity);
  return encode(asn);
}

export function decodeCertificateOrigin(der: Uint8Array): CertificateOrigin {
  const asn = decode(der, CertificateOriginAsn, 'CertificateOrigin');
  const tee = TEES[asn.tee];
  if (!tee) throw new DerError(`unknown TEE number ${asn.tee} in the certificate origin`);
  const origin: CertificateOrigin = {
    tee,
    stewardDebug: asn.stewardDebug,
    teeDebug: asn.teeDebug,
    testRoot: asn.testRoot,
    trustAnchor: asn.trustAnchor,
    measurement: bytes(asn.measurement),
  };
  if (asn.identity) origin.identity = fromIdentityAsn(asn.identity);
  return origin;
}

/** True only for hardware evidence from a production Steward: no debug anywhere, no test root. */
export function isConfidential(origin: CertificateOrigin): boolean {
  return origin.tee !== 'software' && !origin.stewardDebug && !origin.teeDebug && !origin.testRoot;
}

export interface CertificateExtension {
  oid: string;
  critical: boolean;
  /** The extnValue contents (the DER of the extension's own type). */
  value: Uint8Array;
}

/** The extensions of a DER X.509 certificate, with OIDs decoded exactly (any arc size). */
export function certificateExtensions(certDer: Uint8Array): CertificateExtension[] {
  const [tbs] = children(readWhole(certDer, TAG.SEQUENCE));
  if (!tbs || tbs.tag !== TAG.SEQUENCE) throw new DerError('malformed certificate: no TBSCertificate');
  const wrapper = children(tbs).find((t) => t.tag === 0xa3);
  if (!wrapper) return [];
  const [list] = children(wrapper);
  if (!list || list.tag !== TAG.SEQUENCE) throw new DerError('malformed certificate extensions');
  return children(list).map((ext) => {
    const parts = ext.tag === TAG.SEQUENCE ? children(ext) : [];
    const id = parts[0];
    const last = parts[parts.length - 1];
    if (!id || !last || parts.length < 2 || parts.length > 3 || last.tag !== TAG.OCTET_STRING) throw new DerError('malformed certificate extension');
    const critical = parts.length === 3 && parts[1]!.content[0] === 0xff;
    return { oid: decodeAnyOid(id), critical, value: last.content };
  });
}

/**
 * The extension that carries the origin: a SubjectDirectoryAttributes (RFC 5280 4.2.1.8) holding one
 * Attribute of type id-enarx-certificateOrigin. Our OIDs have arcs above 2^31, which Go's X.509
 * parser (and others) refuse in an extension's own id; inside the extension's value nobody but
 * the reader of the attribute decodes them, so certificates stay parseable everywhere.
 */
export function certificateOriginExtension(origin: CertificateOrigin): CertificateExtension {
  const attribute = tlv(TAG.SEQUENCE, encodeAnyOid(OID_CERTIFICATE_ORIGIN), setOf([encodeCertificateOrigin(origin)]));
  return { oid: OID_SUBJECT_DIRECTORY_ATTRIBUTES, critical: false, value: tlv(TAG.SEQUENCE, attribute) };
}

/** The origin a Steward wrote into a certificate, or null when it has none. Throws DerError when malformed. */
export function readCertificateOrigin(certDer: Uint8Array): CertificateOrigin | null {
  const ext = certificateExtensions(certDer).find((e) => e.oid === OID_SUBJECT_DIRECTORY_ATTRIBUTES);
  if (!ext) return null;
  for (const attr of children(readWhole(ext.value, TAG.SEQUENCE))) {
    const [type, values] = attr.tag === TAG.SEQUENCE ? children(attr) : [];
    if (!type || !values || values.tag !== TAG.SET) throw new DerError('malformed subject directory attribute');
    if (decodeAnyOid(type) !== OID_CERTIFICATE_ORIGIN) continue;
    const [value, ...more] = children(values);
    if (!value || more.length > 0) throw new DerError('the certificate origin attribute must have exactly one value');
    return decodeCertificateOrigin(value.raw);
  }
  return null;
}

/**
 * A relying party's one-line reading of a certificate (the shape Drawbridge's origin seam takes):
 * 'tee' for confidential hardware from a production Steward; 'software' for software Keeps (our
 * origin, or Enarx's KVM marker); 'debug' for a debug Steward, a debug TEE, a test root, or an
 * origin that cannot be read (fail closed); 'unmarked' when the certificate says nothing.
 */
export function describeOrigin(certDer: Uint8Array): { kind: 'tee' | 'software' | 'debug' | 'unmarked'; detail?: string } {
  let origin: CertificateOrigin | null;
  let enarxKvm = false;
  try {
    enarxKvm = certificateExtensions(certDer).some((e) => e.oid === OID_ENARX_KVM);
    origin = readCertificateOrigin(certDer);
  } catch (err) {
    return { kind: 'debug', detail: `unreadable certificate origin: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (!origin) return enarxKvm ? { kind: 'software', detail: 'Enarx KVM (software) certificate' } : { kind: 'unmarked' };
  if (origin.tee === 'software') return { kind: 'software', detail: origin.stewardDebug ? 'software Keep, debug Steward' : 'software Keep' };
  const why = [origin.stewardDebug && 'debug Steward', origin.teeDebug && `debug ${origin.tee} guest`, origin.testRoot && `test root ${origin.trustAnchor}`].filter(Boolean);
  return why.length ? { kind: 'debug', detail: why.join(', ') } : { kind: 'tee', detail: origin.tee };
}
