/**
 * Where a Keep's evidence comes from. The host chooses the source when it starts the Keep (it
 * knows the platform); the evidence itself is made inside the Keep over report data the Keep
 * computes, so the host cannot bind someone else's key.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SnpTcbValues } from '../../attestation/testing/snp.ts';
import type { SnpProduct } from '../../attestation/roots.ts';

export type EvidenceConfig =
  /** A software Keep without attestation: clients refuse it unless told otherwise. */
  | { kind: 'none' }
  /**
   * Software SEV-SNP-format evidence signed by a local test VCEK. It exercises the real
   * verification path, but proves nothing: the host holds the signing key, and clients accept it
   * only when they trust that test root explicitly.
   */
  | { kind: 'snp-test'; product: SnpProduct; chipId: Uint8Array; tcb: SnpTcbValues; leafKey: Uint8Array; certs: Uint8Array[] }
  /** The confidential VM or enclave this Keep runs in: configfs-tsm (SNP, TDX) or Gramine (SGX). */
  | { kind: 'hardware' };

export interface Collected {
  kind: 'none' | 'snp' | 'sgx' | 'tdx';
  evidence: Uint8Array;
  /** DER certificates that come with the evidence (SNP: VCEK/VLEK, ASK, ARK), leaf first. */
  certs: Uint8Array[];
}

export interface EvidenceSource {
  readonly kind: EvidenceConfig['kind'];
  collect(reportData: Uint8Array): Promise<Collected>;
}

const KEEP_CODE = dirname(fileURLToPath(import.meta.url));

/**
 * What a software SNP Keep reports as its MEASUREMENT: SHA-384 over the Keep's own code, read by
 * the Keep itself, so a policy can pin a release: the bundled agent when the Keep runs one, else
 * its source files.
 */
export async function softwareMeasurement(): Promise<Uint8Array> {
  const entry = process.argv[1] ?? '';
  const files = entry.endsWith('.mjs')
    ? [entry]
    : [...readdirSync(KEEP_CODE).filter((f) => f.endsWith('.ts')).map((f) => join(KEEP_CODE, f)), join(KEEP_CODE, '..', 'crypto.ts')].sort();
  const parts = files.flatMap((f) => [new TextEncoder().encode(`${basename(f)}\0`), readFileSync(f)]);
  const total = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    total.set(p, o);
    o += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest('SHA-384', total));
}

export async function evidenceSource(config: EvidenceConfig): Promise<EvidenceSource> {
  switch (config.kind) {
    case 'none':
      return { kind: 'none', collect: async () => ({ kind: 'none', evidence: new Uint8Array(0), certs: [] }) };
    case 'snp-test': {
      const { buildSnpReport, signSnpReport } = await import('../../attestation/testing/snp.ts');
      const key = await crypto.subtle.importKey('pkcs8', new Uint8Array(config.leafKey), { name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign']);
      const measurement = await softwareMeasurement();
      const chain = { product: config.product, signingKey: 'vcek' as const, chipId: config.chipId, tcb: config.tcb };
      return {
        kind: 'snp-test',
        collect: async (reportData) => ({ kind: 'snp', evidence: await signSnpReport(buildSnpReport(chain, { reportData, measurement }), key), certs: config.certs }),
      };
    }
    case 'hardware': {
      const { collectEvidence } = await import('../../keep/hardware/index.ts');
      return {
        kind: 'hardware',
        collect: async (reportData) => {
          const got = await collectEvidence(reportData);
          return { kind: got.kind, evidence: got.evidence, certs: got.auxCerts };
        },
      };
    }
    default:
      throw new Error(`unknown evidence source ${(config as { kind: string }).kind}`);
  }
}
