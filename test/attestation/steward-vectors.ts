import { readFileSync } from 'node:fs';
import type { VerificationResult } from '../../src/attestation/types.ts';
import { verifySgxQuote } from '../../src/attestation/intel/index.ts';
import { testdata } from '../helpers/paths.ts';
import { icelake } from './intel-vectors.ts';

/**
 * Verification results for the evidence inside the three real Enarx CSRs
 * (../shared/testdata/enarx-steward/extracted), as the verifier reports them, for policy tests.
 *
 * SGX results come from the Intel verifier. The SNP fields are decoded here from the report bytes at
 * the offsets of shared/reference/attestation.md until the SNP verifier is on main.
 */
export type StewardVector = 'milan' | 'icelake-i5' | 'icelake-xeon';
export const STEWARD_VECTORS: readonly StewardVector[] = ['icelake-i5', 'icelake-xeon', 'milan'];
export const STEWARD_NOW = new Date('2023-02-01T00:00:00Z');

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function snpBase(): Omit<VerificationResult, 'measurement' | 'reportData' | 'claims' | 'debug'> {
  return {
    kind: 'snp',
    verified: true,
    tcbStatus: null,
    advisories: [],
    failure: null,
    policy: null,
    trustAnchor: 'amd-milan',
    revocationChecked: true,
    warnings: [],
  };
}

function snpResult(): VerificationResult {
  const r = readFileSync(testdata('enarx-steward', 'extracted', 'milan', 'report.bin'));
  const policy = r.readBigUInt64LE(0x08);
  const tcb = (off: number) => ({ bootloader: r[off]!, tee: r[off + 1]!, snp: r[off + 6]!, microcode: r[off + 7]! });
  const platformInfo = r.readBigUInt64LE(0x40);
  return {
    ...snpBase(),
    debug: ((policy >> 19n) & 1n) === 1n,
    measurement: hex(r.subarray(0x90, 0xc0)),
    reportData: hex(r.subarray(0x50, 0x90)),
    claims: {
      version: r.readUInt32LE(0),
      guestSvn: r.readUInt32LE(4),
      policy: {
        abiMinor: Number(policy & 0xffn),
        abiMajor: Number((policy >> 8n) & 0xffn),
        smt: ((policy >> 16n) & 1n) === 1n,
        migrateMa: ((policy >> 18n) & 1n) === 1n,
        debug: ((policy >> 19n) & 1n) === 1n,
        singleSocket: ((policy >> 20n) & 1n) === 1n,
      },
      vmpl: r.readUInt32LE(0x30),
      platformInfo: { smtEnabled: (platformInfo & 1n) === 1n, tsmeEnabled: (platformInfo & 2n) === 2n },
      authorKeyEn: (r.readUInt32LE(0x48) & 1) === 1,
      hostData: hex(r.subarray(0xc0, 0xe0)),
      idKeyDigest: hex(r.subarray(0xe0, 0x110)),
      authorKeyDigest: hex(r.subarray(0x110, 0x140)),
      reportedTcb: tcb(0x180),
      chipId: hex(r.subarray(0x1a0, 0x1e0)),
      currentVersion: { build: r[0x1e8]!, minor: r[0x1e9]!, major: r[0x1ea]! },
    },
  };
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
