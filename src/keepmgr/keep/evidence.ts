/**
 * Where a Keep's evidence comes from. The host chooses the source when it starts the Keep (it
 * knows the platform); the evidence itself is made inside the Keep over report data the Keep
 * computes, so the host cannot bind someone else's key.
 */
export type EvidenceConfig = { kind: 'none' };

export interface EvidenceSource {
  /** 'none' means a software Keep without attestation: clients refuse it unless told otherwise. */
  readonly kind: 'none' | 'snp' | 'sgx' | 'tdx';
  collect(reportData: Uint8Array): Promise<Uint8Array>;
}

export function evidenceSource(config: EvidenceConfig): EvidenceSource {
  switch (config.kind) {
    case 'none':
      return { kind: 'none', collect: async () => new Uint8Array(0) };
    default:
      throw new Error(`unknown evidence source ${(config as { kind: string }).kind}`);
  }
}
