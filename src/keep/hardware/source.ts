/**
 * The evidence source of a hardware Keep: the Keep itself asks the hardware (configfs-tsm in an
 * SEV-SNP or TDX guest, Gramine's /dev/attestation in an SGX enclave) for evidence binding its key,
 * through the one interface its host named and granted, and shapes it for the Steward's CSR as
 * Enarx does: SNP and SGX in Enarx's extension request, TDX in the csr-attestation attribute, each
 * with the collateral its host relays (which the Keep never trusts: the Steward verifies it).
 */
import {
  attestationStatementType,
  encodeSgxEvidence,
  encodeSnpEvidence,
  encodeSnpReportEvidence,
  encodeTdxEvidence,
  OID_EVIDENCE_SNP_REPORT,
} from '../../pki/index.ts';
import type { EvidenceInterface, HostCollateral } from '../../sallyport/index.ts';
import type { EvidenceSource } from '../steward.ts';
import { type AttestationFs, CollectionError, nodeFs } from './fs.ts';
import { collectGramine } from './gramine.ts';
import { collectTsm } from './tsm.ts';
import { parseCertTable } from './certtable.ts';
import { type CollateralFetch, collateralRequest } from './collateral.ts';

const NO_TCB = { certs: [], report: new Uint8Array(0) };

export interface HardwareSourceOptions {
  fs?: AttestationFs;
  /**
   * Asks the host for the collateral Enarx 0.7's CSR carries (VCEK and CRLs; TCB info and CRLs).
   * Without it, or when the host has none, the evidence goes without, and only a Steward that
   * fetches collateral itself (ours) can verify it.
   */
  collateral?: CollateralFetch;
  /** Told when the host's collateral could not be had (the CSR goes without it). */
  warn?: (message: string) => void;
}

/**
 * Evidence of `kind` collected through `via`, with the collateral Enarx's Keeps carry: SNP as
 * Enarx's Evidence (the VCEK or VLEK from the certificate table the host provisioned through
 * configfs-tsm's auxblob, else from the host's collateral; the ARK CRLs), or, with no VCEK at all,
 * the bare report for a Steward that fetches it; SGX as Enarx's SgxEvidence (quote, CRLs, TCB
 * info); TDX in our TdxEvidence (the same, plus the QE identity). See docs/keep-hardware.md.
 */
export function hardwareEvidenceSource(kind: 'snp' | 'tdx' | 'sgx', via: EvidenceInterface, options: HardwareSourceOptions = {}): EvidenceSource {
  const fs = options.fs ?? nodeFs;
  const ask = async (evidenceKind: 'snp' | 'sgx' | 'tdx', evidence: Uint8Array, needLeaf: boolean): Promise<HostCollateral | null> =>
    options.collateral ? hostCollateralFor(evidenceKind, evidence, needLeaf, options.collateral, options.warn ?? (() => {}), "the CSR goes without the host's collateral") : null;
  return {
    kind,
    description: `${kind.toUpperCase()} evidence through ${via.via} (${via.root})`,
    async collect(reportData) {
      if (via.via === 'gramine') {
        if (kind !== 'sgx') throw new CollectionError(`Gramine gives SGX quotes, not ${kind} evidence`);
        const quote = await collectGramine(reportData, { root: via.root, fs });
        return csrEvidence('sgx', quote, undefined, await ask('sgx', quote, false));
      }
      const got = await collectTsm(reportData, { root: via.root, fs });
      if (got.kind !== kind) throw new CollectionError(`configfs-tsm's provider ${got.provider} gives ${got.kind} evidence, not ${kind}`);
      if (got.kind === 'tdx') return csrEvidence('tdx', got.evidence, undefined, await ask('tdx', got.evidence, false));
      const provisioned = got.auxblob ? parseCertTable(got.auxblob).find((e) => e.name === 'vcek' || e.name === 'vlek')?.der : undefined;
      return csrEvidence('snp', got.evidence, provisioned, await ask('snp', got.evidence, !provisioned));
    },
  };
}

/**
 * The host's collateral for `evidence` (its request built from the evidence, then asked through
 * `fetch`), or null when the host has none: the CSR then goes without, and `warn` hears why, after
 * `without` ("the CSR goes without the host's collateral").
 */
export async function hostCollateralFor(
  kind: 'snp' | 'sgx' | 'tdx',
  evidence: Uint8Array,
  needLeaf: boolean,
  fetch: CollateralFetch,
  warn: (message: string) => void,
  without: string,
): Promise<HostCollateral | null> {
  try {
    return await fetch(await collateralRequest(kind, evidence, needLeaf));
  } catch (err) {
    warn(`${without} (${(err as Error).message}); a Steward that fetches none, as Enarx 0.7's, will refuse it`);
    return null;
  }
}

/**
 * The CSR evidence for a hardware `evidence` (SNP report, SGX or TDX quote), with the VCEK the
 * certificate table provisioned (SNP) and the host's collateral, in Enarx's encodings (see
 * hardwareEvidenceSource). A VCEK from the certificate table wins over the host's.
 */
export function csrEvidence(kind: 'snp' | 'sgx' | 'tdx', evidence: Uint8Array, provisionedLeaf: Uint8Array | undefined, host: HostCollateral | null): Awaited<ReturnType<EvidenceSource['collect']>> {
  if (kind === 'sgx') return { enarxEvidence: { kind: 'sgx', der: encodeSgxEvidence({ quote: evidence, crls: host?.crls ?? [], tcb: host?.tcb ?? NO_TCB }) } };
  if (kind === 'tdx') {
    const stmt = encodeTdxEvidence({ quote: evidence, crls: host?.crls ?? [], tcb: host?.tcb ?? NO_TCB, ...(host?.qe ? { qeIdentity: host.qe } : {}) });
    return { attestation: { attestations: [{ type: attestationStatementType('tdx'), stmt }], certs: [] } };
  }
  const vcek = provisionedLeaf ?? host?.leaf;
  if (!vcek) {
    // No VCEK from anyone: Enarx's SNP Evidence cannot omit it, so the bare report goes in a
    // csr-attestation statement of ours, and the Steward fetches the VCEK from AMD KDS for the
    // report's CHIP_ID and REPORTED_TCB (docs/steward.md).
    return { attestation: { attestations: [{ type: OID_EVIDENCE_SNP_REPORT, stmt: encodeSnpReportEvidence(evidence) }], certs: [] } };
  }
  return { enarxEvidence: { kind: 'snp', der: encodeSnpEvidence({ vcek, crls: host?.crls ?? [], report: evidence }) } };
}
