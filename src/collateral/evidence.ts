import { hardwareEvidence } from '../attestation/index.ts';
import { decodeIntelQuote } from '../attestation/intel/index.ts';
import { type AmdKeyKind, type AmdProduct, fetchAmdCrl, fetchCertChain, fetchVcek, reportIdentity } from './amd.ts';
import { fetchPckCrl, fetchQeIdentity, fetchRootCaCrl, fetchTcbInfo } from './intel.ts';
import { CollateralError, type CollateralService, type Document } from './service.ts';

/** What verifyEvidence needs besides the evidence, gathered from the cache or the vendors. */
export interface EvidenceCollateral {
  certs: Uint8Array[];
  crls: Uint8Array[];
  collateral: { name: string; bytes: Uint8Array }[];
  documents: Document[];
}

const SNP_REPORT_SIZE = 0x4a0;

/**
 * Gets the collateral some evidence needs: for an SEV-SNP report its VCEK (unless `haveLeaf`),
 * the ASK/ARK (or ASVK/ARK) chain and the ARK CRL; for an SGX or TDX quote the TCB info for the
 * FMSPC of the PCK certificate inside it, the QE identity, the PCK CRL of its CA and the Root CA CRL.
 * An SNP report inside an Azure HCL report is looked at directly.
 */
export async function collateralForEvidence(
  service: CollateralService,
  given: Uint8Array,
  options: { haveLeaf?: boolean } = {},
): Promise<EvidenceCollateral> {
  const evidence = hardwareEvidence(given);
  const out: EvidenceCollateral = { certs: [], crls: [], collateral: [], documents: [] };
  const keep = (d: Document) => {
    out.documents.push(d);
    return d;
  };
  if (evidence.length === SNP_REPORT_SIZE && !isIntelQuote(evidence)) {
    const signingKey = (new DataView(evidence.buffer, evidence.byteOffset, evidence.byteLength).getUint32(0x48, true) >> 2) & 7;
    if (signingKey !== 0 && signingKey !== 1) throw new CollateralError(`the report's SIGNING_KEY is ${signingKey}: it names no VCEK or VLEK to fetch collateral for`);
    const kind: AmdKeyKind = signingKey === 1 ? 'vlek' : 'vcek';
    const version = evidence[0]!;
    // Version 2 reports do not name their product: try each (Enarx hard-coded Milan).
    const products: AmdProduct[] = version >= 3 ? [reportIdentity(evidence).product] : ['Milan', 'Genoa'];
    let chosen: AmdProduct[] = products;
    if (kind === 'vcek' && !options.haveLeaf) {
      chosen = [];
      let lastError: unknown;
      for (const product of products) {
        const id = reportIdentity(evidence, product);
        try {
          out.certs.push(keep(await fetchVcek(service, product, id.chipId, id.tcb)).body);
          chosen = [product];
          break;
        } catch (err) {
          lastError = err;
        }
      }
      if (chosen.length === 0) {
        if (products.length === 1 || !(lastError instanceof CollateralError)) throw lastError;
        // The cause stays the last HTTP error, so that callers can still tell a 404 from an outage.
        throw new CollateralError(`a version ${version} report names no product, and neither the ${products.join(' nor the ')} VCEK could be fetched for it: ${lastError.message}`, {
          cause: lastError.cause,
        });
      }
    }
    for (const product of chosen) {
      out.certs.push(keep(await fetchCertChain(service, product, kind)).body);
      out.crls.push(keep(await fetchAmdCrl(service, product, kind)).body);
    }
    return out;
  }
  const decoded = decodeIntelQuote(evidence);
  const pck = decoded.pck;
  if (!pck || 'error' in pck) {
    throw new CollateralError(`the quote carries no readable PCK certificate${pck && 'error' in pck ? ` (${pck.error})` : ''}, so its FMSPC is unknown`);
  }
  const tcb = keep(await fetchTcbInfo(service, decoded.kind, pck.fmspc));
  const qe = keep(await fetchQeIdentity(service, decoded.kind));
  const pckCrl = keep(await fetchPckCrl(service, /Platform CA/.test(pck.issuer) ? 'platform' : 'processor'));
  const root = keep(await fetchRootCaCrl(service));
  out.collateral.push({ name: tcb.path, bytes: tcb.body }, { name: qe.path, bytes: qe.body });
  for (const d of [tcb, qe, pckCrl]) {
    const chain = d.meta.headers['issuer-chain'];
    if (chain) out.certs.push(new TextEncoder().encode(chain));
  }
  out.crls.push(pckCrl.body, root.body);
  return out;
}

function isIntelQuote(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[2] === 2 && bytes[3] === 0 && bytes[0]! >= 3 && bytes[0]! <= 5 && bytes[1] === 0;
}
