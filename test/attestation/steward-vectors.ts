import { readFileSync } from 'node:fs';
import type { VerificationResult } from '../../src/attestation/types.ts';
import { testdata } from '../helpers/paths.ts';

/**
 * Verification results for the evidence inside the three real Enarx CSRs
 * (../shared/testdata/enarx-steward/extracted), as the verifier reports them, for policy tests.
 *
 * The fields are decoded here from the report and quote bytes at the offsets of
 * shared/reference/attestation.md. The SGX TCB level is selected from the CSR's own TCB info by the
 * PCK certificate's TCB components, which the test-data README lists (§4.3).
 */
export type StewardVector = 'milan' | 'icelake-i5' | 'icelake-xeon';
export const STEWARD_VECTORS: readonly StewardVector[] = ['icelake-i5', 'icelake-xeon', 'milan'];
export const STEWARD_NOW = new Date('2023-02-01T00:00:00Z');

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function base(kind: 'snp' | 'sgx'): Omit<VerificationResult, 'measurement' | 'reportData' | 'claims' | 'debug'> {
  return {
    kind,
    verified: true,
    tcbStatus: null,
    advisories: [],
    failure: null,
    policy: null,
    trustAnchor: kind === 'snp' ? 'amd-milan' : 'intel-sgx-root',
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
    ...base('snp'),
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

/** PCK TCB components and PCESVN (README §4.3 table). */
const PCK_TCB: Record<'icelake-i5' | 'icelake-xeon', { comps: number[]; pcesvn: number }> = {
  'icelake-i5': { comps: [6, 6, 2, 2, 2, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0], pcesvn: 10 },
  'icelake-xeon': { comps: [4, 4, 3, 3, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], pcesvn: 11 },
};

interface TcbLevel {
  tcb: { sgxtcbcomponents: { svn: number }[]; pcesvn: number };
  tcbStatus: string;
  advisoryIDs?: string[];
}

function sgxResult(name: 'icelake-i5' | 'icelake-xeon'): VerificationResult {
  const q = readFileSync(testdata('enarx-steward', 'extracted', name, 'quote.bin'));
  const body = q.subarray(48, 432);
  const tcbInfo = JSON.parse(readFileSync(testdata('enarx-steward', 'extracted', name, 'tcb-info.json'), 'utf8')) as {
    tcbInfo: { tcbLevels: TcbLevel[] };
  };
  const pck = PCK_TCB[name];
  const level = tcbInfo.tcbInfo.tcbLevels.find(
    (l) => l.tcb.sgxtcbcomponents.every((c, i) => pck.comps[i]! >= c.svn) && pck.pcesvn >= l.tcb.pcesvn,
  );
  if (!level) throw new Error(`no TCB level for ${name}`);
  const flags = body.readBigUInt64LE(48);
  return {
    ...base('sgx'),
    tcbStatus: level.tcbStatus,
    advisories: [...(level.advisoryIDs ?? [])].sort(),
    debug: (flags & 2n) === 2n,
    measurement: hex(body.subarray(64, 96)),
    reportData: hex(body.subarray(320, 384)),
    claims: {
      mrsigner: hex(body.subarray(128, 160)),
      isvProdId: body.readUInt16LE(256),
      isvSvn: body.readUInt16LE(258),
      miscSelect: body.readUInt32LE(16),
      attributes: { flags: `0x${flags.toString(16)}`, debug: (flags & 2n) === 2n },
    },
  };
}

export function stewardResult(name: StewardVector): VerificationResult {
  return name === 'milan' ? snpResult() : sgxResult(name);
}
