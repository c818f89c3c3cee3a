/**
 * The host's half of a hardware Keep's collateral: what the Keep lacks for an Enarx 0.7 CSR (the
 * VCEK and ARK CRLs for an SNP report; the TCB info, CRLs and, for TDX, the QE identity for a
 * quote), obtained through the collateral cache as Enarx's host did from /var/cache. The host is
 * untrusted and this is public, vendor-signed data: the Keep only places it in its CSR, and the
 * Steward verifies every piece against its pinned roots.
 */
import { pemCertificates } from '../attestation/intel/collateral.ts';
import type { CollateralRequest, HostCollateral, SignedDocument } from '../sallyport/messages.ts';
import { type AmdProduct, fetchAmdCrl, fetchVcek, snpTcb } from './amd.ts';
import { ENARX_CRL_URLS } from './enarx.ts';
import { environmentOptions } from './environment.ts';
import { fetchPckCrl, fetchQeIdentity, fetchRootCaCrl, fetchTcbInfo } from './intel.ts';
import { CollateralError, type CollateralOptions, CollateralService, type Document } from './service.ts';

export interface KeepCollateral {
  collateral: HostCollateral;
  /** What could not be obtained (the rest is still worth sending). */
  missing: string[];
}

/**
 * Gets what `request` names. Pieces that cannot be obtained are listed in `missing`; when nothing
 * at all could be obtained, a CollateralError says why.
 */
export async function collateralForKeep(service: CollateralService, request: CollateralRequest): Promise<KeepCollateral> {
  const missing: string[] = [];
  const out: HostCollateral = { leaf: null, crls: [], tcb: null, qe: null };
  const attempt = async <T>(what: Promise<T>): Promise<T | null> => {
    try {
      return await what;
    } catch (err) {
      if (!(err instanceof CollateralError)) throw err;
      missing.push(err.message);
      return null;
    }
  };
  if (request.kind === 'snp') {
    // A version 2 report does not name its product: try each, as Enarx's host cached both.
    let products: AmdProduct[] = request.product ? [request.product] : ['Milan', 'Genoa'];
    if (request.leaf) {
      if (request.key === 'vlek') {
        missing.push('a VLEK is not published by AMD KDS: the cloud provider installs it in the certificate table');
      } else {
        for (const product of products) {
          const vcek = await attempt(fetchVcek(service, product, request.chipId, snpTcb(product, request.tcb)));
          if (vcek) {
            out.leaf = vcek.body;
            products = [product];
            missing.length = 0;
            break;
          }
        }
      }
    }
    for (const product of products.toSorted()) {
      const crl = await attempt(fetchAmdCrl(service, product, request.key));
      if (crl) out.crls.push({ url: ENARX_CRL_URLS.amd(product, request.key), crl: crl.body });
    }
    if (!out.leaf && out.crls.length === 0) throw new CollateralError(`no SNP collateral could be obtained: ${missing.join('; ')}`);
    return { collateral: out, missing };
  }
  const tcb = await attempt(fetchTcbInfo(service, request.kind, request.fmspc));
  if (tcb) out.tcb = signedDocument(tcb);
  if (request.kind === 'tdx') {
    const qe = await attempt(fetchQeIdentity(service, 'tdx'));
    if (qe) out.qe = signedDocument(qe);
  }
  // The order Enarx's `platform sgx cache-crl` wrote: the Root CA's CRL, then the PCK CA's.
  const root = await attempt(fetchRootCaCrl(service));
  if (root) out.crls.push({ url: ENARX_CRL_URLS.intelRoot, crl: root.body });
  const pck = await attempt(fetchPckCrl(service, request.ca));
  if (pck) out.crls.push({ url: ENARX_CRL_URLS.intelPck(request.ca), crl: pck.body });
  if (!out.tcb && out.crls.length === 0) throw new CollateralError(`no ${request.kind.toUpperCase()} collateral could be obtained: ${missing.join('; ')}`);
  return { collateral: out, missing };
}

/** A PCS document with its issuer chain (from the response header the cache kept), leaf first. */
function signedDocument(d: Document): SignedDocument {
  const chain = d.meta.headers['issuer-chain'];
  return { certs: chain ? pemCertificates(chain) : [], report: d.body };
}

/**
 * The collateral source a Keep's host uses: the cache and the vendors that `enarx platform snp
 * update` and `enarx platform sgx cache-*` use (ENARX_COLLATERAL_DIR, ENARX_KDS_URL, ENARX_PCS_URL,
 * ENARX_INTEL_CERTS_URL), made on first use. A Keep's start should not wait long for a vendor, so
 * each request gets a shorter timeout and fewer retries than the commands' defaults.
 */
export function keepCollateralSource(options: Partial<Omit<CollateralOptions, 'now'>> = {}): (request: CollateralRequest) => Promise<KeepCollateral> {
  let service: CollateralService | undefined;
  return (request) => {
    service ??= new CollateralService({ ...environmentOptions(), timeoutMs: 10_000, retries: 1, ...options });
    return collateralForKeep(service, request);
  };
}
