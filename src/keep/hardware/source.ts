/**
 * The evidence source of a hardware Keep: the Keep itself asks the hardware (configfs-tsm in an
 * SEV-SNP or TDX guest, Gramine's /dev/attestation in an SGX enclave) for evidence binding its key,
 * through the one interface its host named and granted, and shapes it for the Steward's CSR as
 * Enarx does: SNP and SGX in Enarx's extension request, TDX in the csr-attestation attribute.
 */
import { attestationStatementType, encodeSgxEvidence, encodeSnpEvidence, encodeTdxEvidence } from '../../pki/index.ts';
import type { EvidenceInterface } from '../../sallyport/index.ts';
import type { EvidenceSource } from '../steward.ts';
import { type AttestationFs, CollectionError, nodeFs } from './fs.ts';
import { collectGramine } from './gramine.ts';
import { collectTsm } from './tsm.ts';
import { parseCertTable } from './certtable.ts';

const NO_COLLATERAL = { crls: [], tcb: { certs: [], report: new Uint8Array(0) } };

/**
 * Evidence of `kind` collected through `via`. SNP takes its VCEK (or VLEK) from the certificate
 * table the host provisioned (configfs-tsm auxblob); SGX and TDX quotes go without PCS collateral
 * (TCB info, QE identity, CRLs), which the Steward must then have by other means.
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
        throw new CollectionError(
          'the SEV-SNP host provisioned no VCEK or VLEK in the certificate table (configfs-tsm auxblob is empty), so the Steward cannot check the report; ' +
            "have the host install its certificates for extended guest requests (e.g. 'snphost import')",
        );
      }
      return { enarxEvidence: { kind: 'snp', der: encodeSnpEvidence({ vcek: leaf.der, crls: [], report: got.evidence }) } };
    },
  };
}
