/**
 * Where a keepmgr Keep's evidence comes from. As for every process Keep, the Keep computes the
 * report data (binding its key, its id and the client's nonce) and asks its host over the
 * sallyport (`attest`); the host collects evidence over exactly those bytes. The challenger
 * gets the raw report with its certificates; the Keep gets the sallyport's `evidence` bytes
 * (Enarx's DER evidence), which it puts in a Steward CSR.
 */
import type { SnpTcbValues } from '../../attestation/testing/snp.ts';
import type { SnpProduct } from '../../attestation/roots.ts';
import type { KeepCollateralSettings, KeepCollateralSource } from '../../collateral/keep.ts';

export type EvidenceConfig =
  /** A software Keep without attestation: clients refuse it unless told otherwise. */
  | { kind: 'none' }
  /**
   * Software SEV-SNP-format evidence signed by a local test VCEK. It exercises the real
   * verification path, but proves nothing: the host holds the signing key, and clients accept it
   * only when they trust that test root explicitly.
   */
  | { kind: 'snp-test'; product: SnpProduct; chipId: Uint8Array; tcb: SnpTcbValues; leafKey: Uint8Array; certs: Uint8Array[] }
  /** The confidential VM or enclave this daemon and its Keeps run in: configfs-tsm (SNP, TDX) or Gramine (SGX). */
  | { kind: 'hardware' };

export interface Collected {
  kind: 'snp' | 'sgx' | 'tdx';
  /** The SNP report or the quote, as the hardware (or the test root) made it. */
  evidence: Uint8Array;
  /** DER certificates that come with it (SNP: VCEK/VLEK, ASK, ARK), leaf first. */
  certs: Uint8Array[];
  /** What the Keep is answered with (`evidence` bytes of the sallyport). */
  forKeep: Uint8Array;
}

export interface EvidenceSource {
  readonly kind: 'none' | 'snp' | 'hardware';
  /** The kind the Keep is told in `standby`, so that a Steward key is made on the right curve; null: none. */
  readonly keepKind: 'snp' | 'sgx' | 'tdx' | null;
  collect(reportData: Uint8Array): Promise<Collected>;
}

export interface EvidenceSourceOptions {
  /** Where a --hardware daemon gets the collateral its Keeps' CSRs carry; by default the collateral cache (env settings). */
  collateral?: KeepCollateralSource;
  /** Told what collateral could not be had. */
  warn?: (message: string) => void;
  /** How the default source gets collateral (`keepmgr serve`'s collateral flags); each Keep's CSR gets the whole budget. */
  collateralSettings?: KeepCollateralSettings;
}

export async function evidenceSource(config: EvidenceConfig, options: EvidenceSourceOptions = {}): Promise<EvidenceSource> {
  switch (config.kind) {
    case 'none':
      return {
        kind: 'none',
        keepKind: null,
        collect: async () => {
          throw new Error('this keep manager offers no attestation (start it with --software-snp DIR or --hardware)');
        },
      };
    case 'snp-test': {
      const [{ buildSnpReport, signSnpReport }, { encodeSnpEvidence }, { keepMeasurement }] = await Promise.all([
        import('../../attestation/testing/snp.ts'),
        import('../../pki/index.ts'),
        import('../../keep/process/measurement.ts'),
      ]);
      const key = await crypto.subtle.importKey('pkcs8', new Uint8Array(config.leafKey), { name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign']);
      // The process Keep's code, as `enarx run --software-evidence` measures it.
      const measurement = await keepMeasurement();
      const chain = { product: config.product, signingKey: 'vcek' as const, chipId: config.chipId, tcb: config.tcb };
      return {
        kind: 'snp',
        keepKind: 'snp',
        collect: async (reportData) => {
          const report = await signSnpReport(buildSnpReport(chain, { reportData, measurement }), key);
          return { kind: 'snp', evidence: report, certs: config.certs, forKeep: encodeSnpEvidence({ vcek: config.certs[0]!, crls: [], report }) };
        },
      };
    }
    case 'hardware': {
      const [{ collectEvidence }, { hardwarePaths }, { detectHardware }, { csrEvidence, hostCollateralFor }] = await Promise.all([
        import('../../keep/hardware/index.ts'),
        import('../../keep/hardware/backend.ts'),
        import('../../keep/hardware/detect.ts'),
        import('../../keep/hardware/source.ts'),
      ]);
      // The same interfaces `enarx platform info` and `enarx run` use (ENARX_TSM_REPORT_ROOT, ENARX_GRAMINE_ROOT).
      const paths = hardwarePaths();
      // Keeps are told their evidence kind up front, so that a Steward key is made on the curve it
      // needs (P-384 for SNP, P-256 for quotes); where no interface works, challenges say why.
      const { kinds } = await detectHardware(paths);
      const warn = options.warn ?? (() => {});
      // What an Enarx 0.7 Steward needs in the Keep's CSR: the host's collateral, as `enarx run` relays it.
      const fetchCollateral = async (request: import('../../sallyport/index.ts').CollateralRequest) => {
        // A source per Keep's CSR: each gets the whole download budget.
        const source = options.collateral ?? (await import('../../collateral/keep.ts')).keepCollateralSource(options.collateralSettings);
        const got = await source(request);
        for (const m of got.missing) warn(`collateral for a Keep's CSR: ${m}`);
        return got.collateral;
      };
      const collateral = (kind: 'snp' | 'sgx' | 'tdx', evidence: Uint8Array, haveLeaf: boolean) =>
        hostCollateralFor(kind, evidence, !haveLeaf, fetchCollateral, warn, "a Keep's CSR goes without collateral");
      return {
        kind: 'hardware',
        keepKind: kinds[0] ?? null,
        collect: async (reportData) => {
          const got = await collectEvidence(reportData, { tsmRoot: paths.tsmRoot, gramineRoot: paths.gramineRoot });
          const leaf = got.kind === 'snp' ? got.auxCerts[0] : undefined;
          // The Keep's `evidence` answer is its CSR's evidence (Enarx's DER, or our statement's).
          const csr = csrEvidence(got.kind, got.evidence, leaf, await collateral(got.kind, got.evidence, leaf !== undefined));
          const forKeep = 'enarxEvidence' in csr ? csr.enarxEvidence.der : csr.attestation.attestations[0]!.stmt;
          return { kind: got.kind, evidence: got.evidence, certs: got.auxCerts, forKeep };
        },
      };
    }
    default:
      throw new Error(`unknown evidence source ${(config as { kind: string }).kind}`);
  }
}
