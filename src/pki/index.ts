/**
 * PKI shared by Keeps, the Steward and relying parties: Enarx's OIDs and evidence encodings, CSR
 * parsing and building, the workload-identity attribute and the certificate origin extension.
 * Browser-safe: WebCrypto and @peculiar/asn1-schema only, nothing from node:.
 */
export * from './oids.ts';
export { DerError } from './der.ts';
export * from './evidence.ts';
export * from './identity.ts';
export * from './origin.ts';
export * from './csr.ts';
