/**
 * The evidence source of a hardware Keep: the Keep itself asks the hardware (configfs-tsm in an
 * SEV-SNP or TDX guest, Gramine's /dev/attestation in an SGX enclave) for evidence binding its key,
 * through the one interface its host named and granted, and shapes it for the Steward's CSR as
 * Enarx does: SNP and SGX in Enarx's extension request, TDX in the csr-attestation attribute.
 */
import {
  attestationStatementType,
  encodeSgxEvidence,
  encodeSnpEvidence,
  encodeSnpReportEvidence,
  encodeTdxEvidence,
  OID_EVIDENCE_SNP_REPORT,
} from '../../pki/index.ts';
import type { EvidenceInterface } from '../../sallyport/index.ts';
import type { EvidenceSource } from '../steward.ts';
import { type AttestationFs, CollectionError, nodeFs } from './fs.ts';
import { collectGramine } from './gramine.ts';
import { collectTsm } from './tsm.ts';
import { parseCertTable } from './certtable.ts';

const NO_COLLATERAL = { crls: [], tcb: { certs: [], report: new Uint8Array(0) } };

/**
 * Evidence of `kind` collected through `via`. SNP takes its VCEK (or VLEK) from the certificate
 * table the host provisioned (configfs-tsm auxblob), or sends the bare report when there is none;
 * SGX and TDX quotes go without PCS collateral (TCB info, QE identity, CRLs). The Steward obtains
 * what is missing itself and verifies it against the vendors' roots (docs/steward.md).
 */
export function hardwareEvidenceSource(kind: 'snp' | 'tdx' | 'sgx', via: EvidenceInterface, fs: AttestationFs = nodeFs): EvidenceSource {
  return {
    kind,
    description: `${kind.toUpperCase()} evidence through ${via.via} (${via.root})`,
    async collect(reportData) {
      if (via.via === 'gramine') {
        if (kind !== 'sgx') throw new CollectionError(`Gramine gives SGX quotes, not ${kind} evidence`);
        const quote = await collectGramine(reportData, { root: via.root, fs });
        return { enarxEvidence: { kind: 'sgx', der: encodeSgxEvidence({ quote, ...NO_COLLATERAL }) } };
      }
      const got = await collectTsm(reportData, { root: via.root, fs });
      if (got.kind !== kind) throw new CollectionError(`configfs-tsm's provider ${got.provider} gives ${got.kind} evidence, not ${kind}`);
      if (got.kind === 'tdx') {
        return { attestation: { attestations: [{ type: attestationStatementType('tdx'), stmt: encodeTdxEvidence({ quote: got.evidence, ...NO_COLLATERAL }) }], certs: [] } };
      }
      const leaf = got.auxblob ? parseCertTable(got.auxblob).find((e) => e.name === 'vcek' || e.name === 'vlek') : undefined;
      if (!leaf) {
        // No host-provisioned VCEK: Enarx's SNP Evidence cannot omit it, so the bare report goes in a
        // csr-attestation statement of ours, and the Steward fetches the VCEK from AMD KDS for the
        // report's CHIP_ID and REPORTED_TCB (docs/steward.md).
        return { attestation: { attestations: [{ type: OID_EVIDENCE_SNP_REPORT, stmt: encodeSnpReportEvidence(got.evidence) }], certs: [] } };
      }
      return { enarxEvidence: { kind: 'snp', der: encodeSnpEvidence({ vcek: leaf.der, crls: [], report: got.evidence }) } };
    },
  };
}
