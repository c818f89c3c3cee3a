/**
 * The verifier's public contract, shared by the Steward, the keep-manager client, the CLI and the
 * browser page. Browser-safe: nothing here (or anywhere in src/attestation) imports from node:.
 */

import { oneLine } from './text.ts';

export { oneLine };

export type EvidenceKind = 'snp' | 'sgx' | 'tdx';

/**
 * The step at which a verification (or a Steward issuance) failed. The Steward reports these same
 * names in its problem+json refusals, so clients can tell a bad chain from a policy mismatch.
 */
export const VERIFICATION_STEPS = [
  'parse', // the evidence or collateral bytes are malformed
  'chain', // a certificate chain does not lead to a pinned root, or a certificate is outside its validity
  'crl', // a certificate is revoked, or a CRL is invalid, expired or from the wrong issuer
  'signature', // a signature over the report, quote, QE report or collateral does not verify
  'collateral', // collateral is missing, expired, not yet valid, or does not match the evidence (FMSPC, product)
  'tcb', // no TCB level matches, the level is Revoked, or the TCB is inconsistent with the certificate
  'identity', // the TDX module / QE identity does not match
  'binding', // report data does not bind the key (and identity) it must
  'policy', // the evidence is genuine but the policy refuses it
] as const;
export type VerificationStep = (typeof VERIFICATION_STEPS)[number];

/** A rejection: always names its step. Its message is one line (see oneLine). */
export class VerificationError extends Error {
  readonly step: VerificationStep;
  /** Set when the failure is an input the caller did not give (the CLI exits 2 for it). */
  readonly code: FailureCode | undefined;
  constructor(step: VerificationStep, message: string, options?: { cause?: unknown; code?: FailureCode }) {
    super(oneLine(message), options);
    this.name = 'VerificationError';
    this.step = step;
    this.code = options?.code;
  }
}

/** 'missing-collateral': a certificate or collateral document the evidence needs was not given. */
export type FailureCode = 'missing-collateral';

export interface Failure {
  step: VerificationStep;
  message: string;
  code?: FailureCode;
}

export interface PolicyOutcome {
  accepted: boolean;
  reasons: string[];
}

/**
 * What one verification says. `verified` is true when every signature, chain, CRL and collateral
 * check passed and, for SGX and TDX, a TCB level that is not Revoked matched. Debug and tcbStatus
 * do not affect it; policy decides on those.
 */
export interface VerificationResult {
  kind: EvidenceKind;
  verified: boolean;
  /** Intel's TCB status name for SGX/TDX; null for SNP. */
  tcbStatus: string | null;
  /** Sorted union of advisory IDs over the matched platform, QE and TDX-module levels ([] for SNP). */
  advisories: string[];
  /** SNP POLICY bit 19, SGX ATTRIBUTES.DEBUG, TDX TDATTRIBUTES bit 0. */
  debug: boolean;
  /** Hex: SNP MEASUREMENT, SGX MRENCLAVE or TDX MRTD. */
  measurement: string;
  /** Hex of the 64 bytes of report data. */
  reportData: string;
  /** Every other decoded field (TCB, chip/platform ids, signer and product ids, ...). */
  claims: Record<string, unknown>;
  failure: Failure | null;
  policy: PolicyOutcome | null;
  /** Which root anchored the chain: e.g. 'amd-milan', 'intel-sgx-root', or 'test:<name>' for an explicitly trusted test root. */
  trustAnchor: string | null;
  /** True when CRLs covering every certificate in the chain were given and checked. */
  revocationChecked: boolean;
  /** Non-fatal notes, e.g. "no CRL given for the ASK". */
  warnings: string[];
  /** SGX/TDX: bytes after the quote's declared end, ignored as Intel's QVL ignores them. */
  trailingBytes?: number;
}
