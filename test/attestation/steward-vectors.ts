import { readFileSync } from 'node:fs';
import type { VerificationResult } from '../../src/attestation/types.ts';
import { verifyEvidence, verifySgxQuote } from '../../src/attestation/index.ts';
import { testdata } from '../helpers/paths.ts';
import { icelake } from './intel-vectors.ts';

/**
 * Verification results for the evidence inside the three real Enarx CSRs
 * (../shared/testdata/enarx-steward/extracted), as the verifier reports them, for policy tests.
 *
 * Each is the verifier's own result on the evidence, certificates, CRLs and TCB info the CSR carried.
 */
export type StewardVector = 'milan' | 'icelake-i5' | 'icelake-xeon';
export const STEWARD_VECTORS: readonly StewardVector[] = ['icelake-i5', 'icelake-xeon', 'milan'];
export const STEWARD_NOW = new Date('2023-02-01T00:00:00Z');

const extracted = (...p: string[]) => new Uint8Array(readFileSync(testdata('enarx-steward', 'extracted', ...p)));

/** SNP: the real verifier's result on the CSR's report, VCEK and CRLs at STEWARD_NOW. */
async function snpResult(): Promise<VerificationResult> {
  const result = await verifyEvidence({
    evidence: extracted('milan', 'report.bin'),
    certs: [extracted('milan', 'vcek.der')],
    crls: [extracted('milan', 'crl-milan.der'), extracted('milan', 'crl-genoa.der')],
    now: STEWARD_NOW,
  });
  if (!result.verified) throw new Error(`the Milan report did not verify: ${JSON.stringify(result.failure)}`);
  return result;
}

/** SGX: the real verifier's result on the CSR's quote, CRLs and TCB info at STEWARD_NOW. */
async function sgxResult(which: 'i5' | 'xeon'): Promise<VerificationResult> {
  const { quote, options } = icelake(which, STEWARD_NOW.toISOString());
  const result = await verifySgxQuote(quote, options);
  if (!result.verified) throw new Error(`the ${which} quote did not verify: ${JSON.stringify(result.failure)}`);
  return result;
}

export async function stewardResult(name: StewardVector): Promise<VerificationResult> {
  if (name === 'milan') return snpResult();
  return sgxResult(name === 'icelake-i5' ? 'i5' : 'xeon');
}
