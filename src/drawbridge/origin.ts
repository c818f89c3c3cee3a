/**
 * What a Keep's certificate says about where it came from. The Steward writes a certificate-origin
 * attribute into every certificate it issues; its PKI module reads it (src/pki describeOrigin) as
 * one of: 'tee' (hardware, production Steward), 'software' (no TEE: our origin's software TEE, or
 * Enarx's KVM marker), 'debug' (a debug Steward, a debug TEE, a local test root, or an origin that
 * cannot be read: fail closed) or 'unmarked' (no marking, e.g. Enarx's own Steward's TEE
 * certificates), which a private repository accepts from its trusted CA, as Enarx's Drawbridge does.
 */
import { describeOrigin } from '../pki/index.ts';

export type CertificateOriginKind = 'tee' | 'software' | 'debug' | 'unmarked';

export interface CertificateOrigin {
  kind: CertificateOriginKind;
  /** e.g. the TEE ('snp', 'tdx', 'sgx') or why the certificate is debug. */
  detail?: string;
}

export type CertificateOriginDecoder = (der: Uint8Array) => CertificateOrigin;

let decoder: CertificateOriginDecoder = describeOrigin;

/** Replaces the decoder (for a deployment whose CA marks certificates another way). */
export function setCertificateOriginDecoder(next: CertificateOriginDecoder): void {
  decoder = next;
}

export function certificateOrigin(der: Uint8Array): CertificateOrigin {
  return decoder(der);
}

/** Why a repository refuses a Keep with this certificate, or undefined when it may read. */
export function originRefusal(origin: CertificateOrigin, repo: { allowDebugKeeps: boolean; allowSoftwareKeeps: boolean }): string | undefined {
  const detail = origin.detail ? ` (${origin.detail})` : '';
  if (origin.kind === 'debug' && !repo.allowDebugKeeps) {
    return `the client certificate is marked debug${detail} and this repository was not created with "allow_debug_keeps": true`;
  }
  if (origin.kind === 'software' && !repo.allowSoftwareKeeps) {
    return `the client certificate is marked software${detail} and this repository was not created with "allow_software_keeps": true`;
  }
  return undefined;
}
