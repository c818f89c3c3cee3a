/**
 * From CSR evidence to a verification result: unpacks Enarx's (and our TDX) evidence structures
 * into the verifier's inputs, finds the hardware key's algorithm, and calls the verifier. The
 * verifier is injected (`VerifyFn`), so the Steward's rules are tested apart from the verifiers.
 */
import { utf8 } from '../attestation/bytes.ts';
import { verifyEvidence } from '../attestation/index.ts';
import { parseQuote } from '../attestation/intel/quote.ts';
import { SGX_EXTENSION_OID } from '../attestation/intel/pck.ts';
import { VerificationError, type VerificationResult } from '../attestation/types.ts';
import { type Certificate, parseCertificate, parseCertificates, type TrustAnchor } from '../attestation/x509.ts';
import {
  type CsrEvidence,
  type TdxEvidence,
  decodeSgxEvidence,
  decodeSnpEvidence,
  decodeSnpReportEvidence,
  decodeTdxEvidence,
  DerError,
  type NamedCurve,
  OID_EVIDENCE_SNP_REPORT,
} from '../pki/index.ts';
import type { VerifyInput } from '../collateral/index.ts';
import { StewardRefusal } from './problems.ts';

/** What the verifier needs, shaped as src/attestation's verifyEvidence options. */
export interface EvidenceInput extends VerifyInput {
  /** Roots trusted only because the Steward was told to (--trust-test-root). */
  trustedTestRoots: TrustAnchor[];
}

export type VerifyFn = (input: EvidenceInput) => Promise<VerificationResult>;

export interface UnpackedEvidence {
  input: Omit<EvidenceInput, 'now' | 'trustedTestRoots'>;
  /** The curve of the key that signs the hardware's evidence (VCEK / PCK), compared with the CSR's. */
  hardwareCurve: NamedCurve | string;
}

function curveOf(cert: Certificate): string {
  const info = cert.publicKeyInfo;
  return info.kind === 'ec' ? info.curve : info.kind;
}

/** The PCK's curve: from the quote's PCK chain, else a given PCK certificate, else the quote's key type. */
function pckCurve(quote: Uint8Array, certs: Uint8Array[]): string {
  const parsed = parseQuote(quote);
  if (parsed.certificationDataType === 5) {
    const [leaf] = parseCertificates(parsed.certificationData);
    if (leaf) return curveOf(leaf);
  }
  for (const der of certs) {
    const cert = parseCertificate(der);
    if (cert.extension(SGX_EXTENSION_OID)) return curveOf(cert);
  }
  return 'P-256'; // attestation key type 2 (ECDSA-256-with-P-256), which parseQuote requires
}

/** Decodes the evidence structure of a CSR into verifier inputs. Malformed evidence is a 400 at step 'parse'. */
export function unpackEvidence(ev: CsrEvidence, extraCerts: Uint8Array[] = []): UnpackedEvidence {
  try {
    switch (ev.kind) {
      case 'snp': {
        if (ev.statementType === OID_EVIDENCE_SNP_REPORT) {
          // A bare report: the VCEK (or VLEK) comes from the bundle's certificates or the Steward's collateral.
          const report = decodeSnpReportEvidence(ev.der);
          return { input: { kind: 'snp', evidence: report, certs: extraCerts, crls: [], collateral: [] }, hardwareCurve: 'P-384' };
        }
        const snp = decodeSnpEvidence(ev.der);
        const vcek = parseCertificate(snp.vcek);
        return {
          input: { kind: 'snp', evidence: snp.report, certs: [snp.vcek, ...extraCerts], crls: snp.crls.map((c) => c.crl), collateral: [] },
          hardwareCurve: curveOf(vcek),
        };
      }
      case 'sgx':
      case 'tdx': {
        const intel: TdxEvidence = ev.kind === 'sgx' ? decodeSgxEvidence(ev.der) : decodeTdxEvidence(ev.der);
        const qe = intel.qeIdentity ?? null;
        const certs = [...intel.tcb.certs, ...(qe?.certs ?? []), ...extraCerts];
        const collateral = [intel.tcb.report, ...(qe ? [qe.report] : [])].filter((r) => r.length > 0).map(utf8);
        return {
          input: { kind: ev.kind, evidence: intel.quote, certs, crls: intel.crls.map((c) => c.crl), collateral },
          hardwareCurve: pckCurve(intel.quote, certs),
        };
      }
      default:
        throw new StewardRefusal('bad-csr', 'parse', `${ev.kind} evidence has no hardware verifier`);
    }
  } catch (err) {
    if (err instanceof StewardRefusal) throw err;
    if (err instanceof DerError || err instanceof VerificationError || err instanceof Error) {
      throw new StewardRefusal('evidence-rejected', 'parse', `malformed ${ev.kind.toUpperCase()} evidence: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

/** The verifier on main (src/attestation verifyEvidence): SNP, SGX and TDX against the vendors' roots. */
export function builtinVerifier(): VerifyFn {
  return (input) =>
    verifyEvidence({
      evidence: input.evidence,
      kind: input.kind,
      certs: input.certs,
      crls: input.crls,
      collateral: input.collateral,
      now: input.now,
      trustedTestRoots: input.trustedTestRoots.map((a) => ({ name: a.name, certificate: a.certificate })),
    });
}
