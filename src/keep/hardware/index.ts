/**
 * Evidence collection inside a Keep running in a confidential VM (SEV-SNP or TDX, through
 * configfs-tsm) or a Gramine SGX enclave (through /dev/attestation). The caller supplies the 64
 * bytes of report data, typically a hash of the Keep's public key.
 */
import { parseCertTable } from './certtable.ts';
import { type AttestationFs, CollectionError, nodeFs } from './fs.ts';
import { collectGramine } from './gramine.ts';
import { GRAMINE_ROOT, TSM_REPORT_ROOT } from './paths.ts';
import { collectTsm } from './tsm.ts';

export { buildCertTable, type CertTableEntry, parseCertTable } from './certtable.ts';
export { detectHardware, type HardwareCheck, type HardwareReport } from './detect.ts';
export { type AttestationFs, CollectionError, nodeFs } from './fs.ts';
export { collectGramine } from './gramine.ts';
export { GRAMINE_ROOT, TSM_REPORT_ROOT } from './paths.ts';
export { collectTsm, type TsmEvidence, type TsmOptions } from './tsm.ts';

export interface CollectOptions {
  /** configfs-tsm report directory; default /sys/kernel/config/tsm/report. */
  tsmRoot?: string;
  /** Gramine attestation directory; default /dev/attestation. */
  gramineRoot?: string;
  fs?: AttestationFs;
  /** SNP only: the VMPL to request the report at. */
  privlevel?: number;
}

export interface CollectedEvidence {
  kind: 'snp' | 'tdx' | 'sgx';
  /** SNP ATTESTATION_REPORT, TDX quote or SGX quote, exactly as the hardware produced it. */
  evidence: Uint8Array;
  /** SNP: the DER certificates the host provisioned (VCEK or VLEK, ASK, ARK), leaf first; [] otherwise. */
  auxCerts: Uint8Array[];
  /** Which interface produced it: 'configfs-tsm:sev_guest', 'configfs-tsm:tdx_guest' or 'gramine'. */
  source: string;
}

const LEAF_FIRST = ['vcek', 'vlek', 'ask', 'ark'];

/**
 * Collects evidence binding `reportData` through whichever interface this Keep has: configfs-tsm
 * when its report directory exists, else Gramine's /dev/attestation. Throws a CollectionError that
 * says what is missing when neither exists.
 */
export async function collectEvidence(reportData: Uint8Array, options: CollectOptions = {}): Promise<CollectedEvidence> {
  const fs = options.fs ?? nodeFs;
  const tsmRoot = options.tsmRoot ?? TSM_REPORT_ROOT;
  const gramineRoot = options.gramineRoot ?? GRAMINE_ROOT;
  if ((await fs.kind(tsmRoot)) === 'dir') {
    const got = await collectTsm(reportData, { root: tsmRoot, fs, privlevel: options.privlevel });
    const auxCerts = got.auxblob
      ? parseCertTable(got.auxblob)
          .filter((e) => e.name !== null && e.name !== 'extra')
          .sort((a, b) => LEAF_FIRST.indexOf(a.name!) - LEAF_FIRST.indexOf(b.name!))
          .map((e) => e.der)
      : [];
    return { kind: got.kind, evidence: got.evidence, auxCerts, source: `configfs-tsm:${got.provider}` };
  }
  if ((await fs.kind(`${gramineRoot}/attestation_type`)) === 'file') {
    return { kind: 'sgx', evidence: await collectGramine(reportData, { root: gramineRoot, fs }), auxCerts: [], source: 'gramine' };
  }
  throw new CollectionError(
    `no attestation interface found: neither configfs-tsm (${tsmRoot}) nor Gramine (${gramineRoot}) exists; ` +
      'a hardware Keep must run inside an SEV-SNP or TDX guest with Linux >= 6.7, or inside a Gramine SGX enclave (run `enarx platform info` for details)',
  );
}
