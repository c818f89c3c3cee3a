/**
 * The Keep's half of its collateral: what it asks the host for (public identifiers read from its own
 * evidence, never the evidence itself), and how the host's answer goes into the CSR in Enarx 0.7's
 * encoding. The host cannot make a CSR pass with this: the Steward verifies every certificate, CRL
 * and signed document against its pinned roots; a wrong answer only gets the Keep refused.
 */
import type { CollateralRequest, HostCollateral } from '../../sallyport/messages.ts';
import { CollectionError } from './fs.ts';

/** Asks the host for collateral; rejects with the host's reason when it has none. */
export type CollateralFetch = (request: CollateralRequest) => Promise<HostCollateral>;

/** What `evidence` of `kind` asks its host for; an SNP report asks for its VCEK only when `needLeaf`. */
export function collateralRequest(kind: 'snp' | 'sgx' | 'tdx', evidence: Uint8Array, needLeaf: boolean): Promise<CollateralRequest> {
  return kind === 'snp' ? snpCollateralRequest(evidence, needLeaf) : intelCollateralRequest(kind, evidence);
}

/** The request for an SNP report: its signing key, product (v3+), CHIP_ID and REPORTED_TCB. */
export async function snpCollateralRequest(report: Uint8Array, needLeaf: boolean): Promise<CollateralRequest> {
  const { KDS_PRODUCT_NAMES, parseSnpReport, productFromCpuid } = await import('../../attestation/snp/report.ts');
  const parsed = parseSnpReport(report);
  const product = productFromCpuid(parsed);
  return { kind: 'snp', key: parsed.signingKey, product: product ? KDS_PRODUCT_NAMES[product] : null, chipId: parsed.chipId, tcb: parsed.reportedTcb, leaf: needLeaf };
}

/** The request for an SGX or TDX quote: the FMSPC and CA of the PCK certificate it carries. */
export async function intelCollateralRequest(kind: 'sgx' | 'tdx', quote: Uint8Array): Promise<CollateralRequest> {
  const { decodeIntelQuote } = await import('../../attestation/intel/claims.ts');
  const pck = decodeIntelQuote(quote).pck;
  if (!pck || 'error' in pck) {
    throw new CollectionError(`the ${kind.toUpperCase()} quote carries no readable PCK certificate${pck && 'error' in pck ? ` (${pck.error})` : ''}, so its collateral is unknown`);
  }
  return { kind, fmspc: pck.fmspc.toUpperCase(), ca: /Platform CA/.test(pck.issuer) ? 'platform' : 'processor' };
}
