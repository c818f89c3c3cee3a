/**
 * What a Keep's certificate says about where it came from. The Steward marks every certificate it
 * issues with a certificate-origin extension (which TEE, or software, or debug); Drawbridge refuses
 * debug and software Keeps on a private repository unless the repository allows them.
 *
 * The decoder of that extension is the Steward's PKI module's (src/pki describeOrigin): a
 * certificate without a marking reads as 'unmarked' (Enarx's own Steward marked only software
 * certificates, with its KVM extension), which a private repository accepts from its trusted CA.
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

/** Installs the Steward's decoder (src/pki) once it exists. */
export function setCertificateOriginDecoder(next: CertificateOriginDecoder): void {
  decoder = next;
}

export function certificateOrigin(der: Uint8Array): CertificateOrigin {
  return decoder(der);
}

/** Whether a repository lets a Keep with this certificate read it; undefined when it may. */
export function originRefusal(origin: CertificateOrigin, repo: { allowDebugKeeps: boolean; allowSoftwareKeeps: boolean }): string | undefined {
  if (origin.kind === 'debug' && !repo.allowDebugKeeps) {
    return 'the client certificate is marked debug and this repository does not allow debug Keeps (set "allow_debug_keeps": true in its config to allow them)';
  }
  if (origin.kind === 'software' && !repo.allowSoftwareKeeps) {
    return 'the client certificate is marked software (no TEE) and this repository does not allow software Keeps (set "allow_software_keeps": true in its config to allow them)';
  }
  return undefined;
}
