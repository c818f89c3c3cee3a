import type { VersionReq } from './semver.ts';

/**
 * A parsed policy. Each section applies to one kind of evidence; a missing section means the
 * built-in defaults for that kind (no debug, and for SGX and TDX a TCB status of UpToDate), as in
 * Enarx's Steward.
 */
export interface Policy {
  snp: SnpPolicy | null;
  sgx: SgxPolicy | null;
  tdx: TdxPolicy | null;
  /** `[azure]`: checks on the Azure HCL runtime data and vTPM quote of SNP or TDX evidence; absent = none. */
  azure?: AzurePolicy | null;
}

/** `[azure]`: what the Azure claims (claims.azure) must say. */
export interface AzurePolicy {
  /** `required`: the report data must bind Azure HCL runtime data. */
  required: boolean;
  /** `vtpm_quote`: a vTPM quote must have been verified with the bound attestation key. */
  vtpmQuote: boolean;
  /** `pcrs`: PCR index to allowed values (lower-case hex); a vTPM quote is then required. */
  pcrs: Readonly<Record<string, readonly string[]>>;
  /** `vm_configuration`: members of the runtime data's "vm-configuration" and the values they must have. */
  vmConfiguration: Readonly<Record<string, string | number | boolean>>;
}

/** Keys every section has. */
export interface CommonPolicy {
  /** `debug`: accept debug-enabled guests/enclaves. Default false. */
  debug: boolean;
  /** `require_revocation`: reject unless CRLs covering the whole chain were checked. Default false. */
  requireRevocation: boolean;
}

/** Lower-case hex digests. */
export type Digests = readonly string[];

export interface SnpTcbMinimum {
  bootloader?: number;
  tee?: number;
  snp?: number;
  microcode?: number;
  fmc?: number;
}

export interface SnpPolicy extends CommonPolicy {
  /** `signer`: allowed AUTHOR_KEY_DIGEST values (requires AUTHOR_KEY_EN). */
  signer: Digests;
  signerBlacklist: Digests;
  /** `hash`: allowed MEASUREMENT values. */
  hash: Digests;
  hashBlacklist: Digests;
  idKeyDigest: Digests;
  idKeyDigestBlacklist: Digests;
  /** `abi`: requirement on the guest policy's ABI major.minor.0. Absent = any. */
  abi: VersionReq | null;
  /** `policy_flags`: guest policy bits (byte 2 of POLICY) the guest may enable; Reserved always included. */
  policyFlags: number | null;
  /** `platform_info_flags`: "SME" (bit 0) or "TSME" (bit 1); bits 0-1 of PLATFORM_INFO must equal it. */
  platformInfoFlags: number | null;
  /** `min_tcb`: minimum SPLs of REPORTED_TCB. */
  minTcb: SnpTcbMinimum | null;
  minGuestSvn: number | null;
  /** `firmware`: requirement on the firmware version CURRENT_MAJOR.CURRENT_MINOR.CURRENT_BUILD. */
  firmware: VersionReq | null;
  /** `vmpl`: allowed VMPLs. Absent = any. */
  vmpl: readonly number[] | null;
  /** `host_data`: allowed HOST_DATA values (32 bytes). */
  hostData: Digests;
}

/** Keys SGX and TDX share: minimums on the Quoting Enclave, the PCE and the collateral's age. */
export interface IntelMinimums {
  /** `min_qe_svn`: minimum ISVSVN of the Quoting Enclave's report. */
  minQeSvn: number | null;
  /** `min_pce_svn`: minimum PCESVN of the PCK certificate. */
  minPceSvn: number | null;
  /** `min_tcb_evaluation_data_number`: minimum tcbEvaluationDataNumber of the TCB info (TCB recovery). */
  minTcbEvaluationDataNumber: number | null;
}

export interface SgxPolicy extends CommonPolicy, IntelMinimums {
  /** `signer`: allowed MRSIGNER values. */
  signer: Digests;
  signerBlacklist: Digests;
  /** `hash`: allowed MRENCLAVE values. */
  hash: Digests;
  hashBlacklist: Digests;
  /** `features`: ATTRIBUTES flag bits the enclave may have (INIT and MODE64BIT added); null when absent. */
  features: bigint | null;
  /** `misc_select`: MISCSELECT bits the enclave may have; 0 = not checked. */
  miscSelect: number;
  enclaveSecurityVersion: number | null;
  enclaveProductId: number | null;
  allowedAdvisories: readonly string[];
  /** `tcb_status`: accepted TCB statuses; null = Enarx's rule (UpToDate unless advisories are allowed). */
  tcbStatus: readonly string[] | null;
}

export interface TdxPolicy extends CommonPolicy, IntelMinimums {
  /** `hash`: allowed MRTD values. */
  hash: Digests;
  hashBlacklist: Digests;
  rtmr0: Digests;
  rtmr1: Digests;
  rtmr2: Digests;
  rtmr3: Digests;
  mrSeam: Digests;
  mrConfigId: Digests;
  mrOwner: Digests;
  mrOwnerConfig: Digests;
  /** `min_tee_tcb_svn`: 16 minimum SVN bytes, compared byte by byte with TEE_TCB_SVN. */
  minTeeTcbSvn: readonly number[] | null;
  allowedAdvisories: readonly string[];
  tcbStatus: readonly string[] | null;
}

/** A policy file that cannot be used. The message names the section and key. */
export class PolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyError';
  }
}
