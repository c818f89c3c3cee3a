/**
 * `enarx attest verify|decode --evidence keep.csr`: a Keep's certificate request (what it sends the
 * Steward) read as the Steward reads it. Its evidence and the certificates, CRLs and collateral it
 * carries become the verifier's inputs; once verified, the CSR's self-signature, its key's curve and
 * the report data's binding of its key (and workload identity) are checked as the Steward checks
 * them, short of its policy.
 */
import { parsePem } from '../../attestation/x509.ts';
import type { EvidenceKind, VerificationResult } from '../../attestation/types.ts';
import { CsrError, parseCsr, type ParsedCsr, verifyCsrSignature } from '../../pki/index.ts';
import { EnarxError } from '../errors.ts';

export interface CsrEvidenceInput {
  kind: EvidenceKind;
  evidence: Uint8Array;
  certs: Uint8Array[];
  crls: Uint8Array[];
  collateral: string[];
  /** The Steward's checks that follow a verification: CSR signature, key curve, report data binding. */
  bind(result: VerificationResult): Promise<void>;
}

/** The DER of a CSR file (DER, or PEM "CERTIFICATE REQUEST"), or undefined when it is not one. */
function csrDer(bytes: Uint8Array): Uint8Array | undefined {
  // DER first: a Keep's CSR may carry PEM text (its collateral) inside.
  if (bytes[0] === 0x30) return bytes;
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(0, Math.min(bytes.length, 1 << 20)));
  try {
    return parsePem(text).find((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST')?.der;
  } catch {
    return undefined; // bad base64 in some block: not a CSR this reads
  }
}

/**
 * The evidence of a Keep's CSR, or undefined when the file is not a CSR. A CSR without exactly one
 * piece of hardware evidence, or with malformed evidence, is an error that says so.
 */
export async function evidenceFromCsr(bytes: Uint8Array, path: string): Promise<CsrEvidenceInput | undefined> {
  const der = csrDer(bytes);
  if (!der) return undefined;
  let csr: ParsedCsr;
  try {
    csr = parseCsr(der);
  } catch (err) {
    if (err instanceof CsrError) return undefined;
    throw err;
  }
  const [ev, ...more] = csr.evidence;
  if (!ev) throw new EnarxError(`${path}: this certificate request carries no evidence`, { hint: 'a Keep adds its evidence as an Enarx extension (1.3.6.1.4.1.58270.1.x) or an id-aa-attestation attribute' });
  if (more.length > 0) throw new EnarxError(`${path}: this certificate request carries ${csr.evidence.length} pieces of evidence; the Steward takes exactly one`);
  if (ev.kind === 'kvm') throw new EnarxError(`${path}: this certificate request carries software (KVM) evidence, which proves nothing about a platform: there is nothing to verify`);
  const { unpackEvidence, checkBinding, StewardRefusal } = await import('../../steward/index.ts');
  let unpacked: ReturnType<typeof unpackEvidence>;
  try {
    unpacked = unpackEvidence(ev, csr.attestationCerts);
  } catch (err) {
    if (err instanceof StewardRefusal) throw new EnarxError(`${path}: ${err.message}`);
    throw err;
  }
  const kind = ev.kind;
  const { evidence, certs, crls, collateral } = unpacked.input;
  const bind = async (result: VerificationResult) => {
    if (!result.verified) return;
    const refuse = (step: 'signature' | 'binding', message: string) => {
      result.verified = false;
      result.failure = { step, message };
    };
    if (!(await verifyCsrSignature(csr).catch(() => false))) return refuse('signature', "the certificate request's self-signature does not verify with its key");
    if (csr.key.namedCurve !== unpacked.hardwareCurve) {
      return refuse('binding', `the request's key is ${csr.key.namedCurve ?? csr.key.algorithmOid} but the ${kind.toUpperCase()} hardware key is ${unpacked.hardwareCurve}`);
    }
    try {
      await checkBinding(kind, csr, result.reportData);
    } catch (err) {
      if (err instanceof StewardRefusal) return refuse('binding', err.message);
      throw err;
    }
  };
  return { kind, evidence, certs: [...certs], crls: [...crls], collateral: [...collateral], bind };
}
