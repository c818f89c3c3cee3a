/**
 * Object identifiers used between Keeps, the Steward and relying parties.
 *
 * Enarx's own (Profian's private enterprise number 58270) are kept for wire compatibility.
 *
 * Ours live under a UUID arc, 2.25.<UUID> (ITU-T X.667 / ISO/IEC 9834-8): the one arc anyone can
 * take without a registry, and clearly ours because we drew the UUID
 * (2329f1dd-a928-480f-baa3-850e4004a418). Extending Profian's PEN would squat on another
 * organisation's space; a made-up PEN could collide. See docs/steward.md.
 */

/** Enarx: PKCS#10 extension carrying KVM / software "evidence" (empty in Enarx 0.7). */
export const OID_ENARX_KVM = '1.3.6.1.4.1.58270.1.1';
/** Enarx: PKCS#10 extension carrying SgxEvidence. */
export const OID_ENARX_SGX = '1.3.6.1.4.1.58270.1.2';
/** Enarx: PKCS#10 extension carrying SNP Evidence. */
export const OID_ENARX_SNP = '1.3.6.1.4.1.58270.1.3';

/** The enarx-ts arc: 2.25.<UUID 2329f1dd-a928-480f-baa3-850e4004a418>. */
export const OID_ENARX_TS = '2.25.46740769646162043182522345630166459416';
/** Sub-arc for PKI objects. */
export const OID_ENARX_TS_PKI = `${OID_ENARX_TS}.1`;
/** PKCS#10 attribute: the WorkloadIdentity whose digest the report data binds. */
export const OID_WORKLOAD_IDENTITY = `${OID_ENARX_TS_PKI}.1`;
/** Attribute in a certificate's SubjectDirectoryAttributes: where it comes from (TEE, debug, test root, identity). */
export const OID_CERTIFICATE_ORIGIN = `${OID_ENARX_TS_PKI}.2`;
/** csr-attestation statement type: TdxEvidence (an Intel TDX quote and its collateral). */
export const OID_EVIDENCE_TDX = `${OID_ENARX_TS_PKI}.3`;
/**
 * csr-attestation statement type: a bare SEV-SNP report (OCTET STRING), for a Keep whose host
 * provisioned no VCEK (Enarx's SNP Evidence cannot omit it); the Steward fetches the VCEK.
 */
export const OID_EVIDENCE_SNP_REPORT = `${OID_ENARX_TS_PKI}.4`;

/** RFC 5280 subjectDirectoryAttributes: carries the certificate origin attribute. */
export const OID_SUBJECT_DIRECTORY_ATTRIBUTES = '2.5.29.9';
/** PKCS#9 extensionRequest (RFC 2985). */
export const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
/** id-aa-attestation (draft-ietf-lamps-csr-attestation; early-allocated as id-aa-evidence). */
export const OID_AA_ATTESTATION = '1.2.840.113549.1.9.16.2.59';

export const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
export const OID_P256 = '1.2.840.10045.3.1.7';
export const OID_P384 = '1.3.132.0.34';
export const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
export const OID_ECDSA_SHA384 = '1.2.840.10045.4.3.3';
export const OID_ECDSA_SHA512 = '1.2.840.10045.4.3.4';

export const OID_SHA256 = '2.16.840.1.101.3.4.2.1';
export const OID_SHA384 = '2.16.840.1.101.3.4.2.2';
export const OID_SHA512 = '2.16.840.1.101.3.4.2.3';

/** Which TEE an Enarx extension OID stands for. */
export const ENARX_EVIDENCE_OIDS: Readonly<Record<string, 'kvm' | 'sgx' | 'snp'>> = {
  [OID_ENARX_KVM]: 'kvm',
  [OID_ENARX_SGX]: 'sgx',
  [OID_ENARX_SNP]: 'snp',
};
