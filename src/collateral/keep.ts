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
import { CollateralError, type CollateralOptions, CollateralService, DEFAULTS, type Document, downloadBudget } from './service.ts';

export interface KeepCollateral {
  collateral: HostCollateral;
  /** What could not be obtained (the rest is still worth sending). */
  missing: string[];
  /**
   * Set when the service's signal (an overall budget) ended downloads: its reason and what the Keep
   * goes without, in one line (not in `missing`; keepCollateralSource says it once).
   */
  outOfTime?: string;
}

/**
 * Gets what `request` names. Pieces that cannot be obtained are listed in `missing` (those the
 * service's signal ended, in `outOfTime`); when nothing at all could be obtained, a CollateralError
 * says why.
 */
export async function collateralForKeep(service: CollateralService, request: CollateralRequest): Promise<KeepCollateral> {
  const missing: string[] = [];
  const out: HostCollateral = { leaf: null, crls: [], tcb: null, qe: null };
  // Pieces left out because the service's signal (an overall budget) ended their download: said
  // once, in one line, instead of one "cannot fetch" each.
  const outOfTime: string[] = [];
  const attempt = async <T>(what: string, download: () => Promise<T>): Promise<T | null> => {
    try {
      return await download();
    } catch (err) {
      if (!(err instanceof CollateralError)) throw err;
      if (service.options.signal?.aborted) outOfTime.push(what);
      else missing.push(err.message);
      return null;
    }
  };
  const result = (): KeepCollateral =>
    outOfTime.length > 0
      ? { collateral: out, missing, outOfTime: `${String(service.options.signal!.reason)}: the Keep goes on without ${[...new Set(outOfTime)].join(', ')}` }
      : { collateral: out, missing };
  if (request.kind === 'snp') {
    // A version 2 report does not name its product: try each, as Enarx's host cached both.
    let products: AmdProduct[] = request.product ? [request.product] : ['Milan', 'Genoa'];
    if (request.leaf) {
      if (request.key === 'vlek') {
        missing.push('a VLEK is not published by AMD KDS: the cloud provider installs it in the certificate table');
      } else {
        for (const product of products) {
          const vcek = await attempt('the VCEK', () => fetchVcek(service, product, request.chipId, snpTcb(product, request.tcb)));
          if (vcek) {
            out.leaf = vcek.body;
            products = [product];
            missing.length = 0;
            outOfTime.length = 0;
            break;
          }
        }
      }
    }
    for (const product of products.toSorted()) {
      const crl = await attempt(`the ${product} ARK CRL`, () => fetchAmdCrl(service, product, request.key));
      if (crl) out.crls.push({ url: ENARX_CRL_URLS.amd(product, request.key), crl: crl.body });
    }
    if (!out.leaf && out.crls.length === 0 && outOfTime.length === 0) throw new CollateralError(`no SNP collateral could be obtained: ${missing.join('; ')}`);
    return result();
  }
  const tcb = await attempt('the TCB info', () => fetchTcbInfo(service, request.kind, request.fmspc));
  if (tcb) out.tcb = signedDocument(tcb);
  if (request.kind === 'tdx') {
    const qe = await attempt('the QE identity', () => fetchQeIdentity(service, 'tdx'));
    if (qe) out.qe = signedDocument(qe);
  }
  // The order Enarx's `platform sgx cache-crl` wrote: the Root CA's CRL, then the PCK CA's.
  const root = await attempt('the Root CA CRL', () => fetchRootCaCrl(service));
  if (root) out.crls.push({ url: ENARX_CRL_URLS.intelRoot, crl: root.body });
  const pck = await attempt('the PCK CRL', () => fetchPckCrl(service, request.ca));
  if (pck) out.crls.push({ url: ENARX_CRL_URLS.intelPck(request.ca), crl: pck.body });
  if (!out.tcb && out.crls.length === 0 && outOfTime.length === 0) throw new CollateralError(`no ${request.kind.toUpperCase()} collateral could be obtained: ${missing.join('; ')}`);
  return result();
}

/** A PCS document with its issuer chain (from the response header the cache kept), leaf first. */
function signedDocument(d: Document): SignedDocument {
  const chain = d.meta.headers['issuer-chain'];
  return { certs: chain ? pemCertificates(chain) : [], report: d.body };
}

/** How a Keep's host obtains collateral: `enarx run` and `enarx deploy` flags, else the environment. */
export interface KeepCollateralSettings {
  /** false: relay none (--no-fetch-collateral); the Keep's CSR goes without. */
  fetch?: boolean;
  /** Cache, vendor URLs, offline, per-download timeout and retries (over environmentOptions()). */
  options?: Partial<Omit<CollateralOptions, 'now' | 'signal'>>;
  /** All of one Keep's downloads together, from its first request (default 10 s). */
  budgetMs?: number;
}

export const KEEP_COLLATERAL_DEFAULTS = { timeoutMs: 10_000, retries: 1, budgetMs: 10_000 } as const;

export type KeepCollateralSource = (request: CollateralRequest) => Promise<KeepCollateral>;

/**
 * The collateral source of one Keep's host: the cache and the vendors that `enarx platform snp
 * update` and `enarx platform sgx cache-*` use (ENARX_COLLATERAL_DIR, ENARX_KDS_URL, ENARX_PCS_URL,
 * ENARX_INTEL_CERTS_URL, or the settings), made on first use. A Keep's start should not wait long
 * for a vendor: each download has a short timeout and one retry, and all of this source's downloads
 * share one budget from its first request; once it is spent, downloads stop, the cache still
 * answers, and the Keep goes on without what is missing. That is said once, in `missing`.
 */
export function keepCollateralSource(settings: KeepCollateralSettings = {}): KeepCollateralSource {
  let service: CollateralService | undefined;
  let said = false;
  return async (request) => {
    if (settings.fetch === false) throw new CollateralError('this host relays no collateral (--no-fetch-collateral)');
    service ??= new CollateralService({ ...keepServiceOptions(settings), signal: downloadBudget(settings.budgetMs ?? KEEP_COLLATERAL_DEFAULTS.budgetMs, "the host's") });
    const { collateral, missing, outOfTime } = await collateralForKeep(service, request);
    if (outOfTime === undefined || said) return { collateral, missing };
    said = true;
    return { collateral, missing: [...missing, outOfTime] };
  };
}

/** The collateral service's settings for a Keep's host: the environment's, the Keep's defaults, then `settings`. */
function keepServiceOptions(settings: KeepCollateralSettings): Omit<CollateralOptions, 'now' | 'signal'> {
  return { ...environmentOptions(), timeoutMs: KEEP_COLLATERAL_DEFAULTS.timeoutMs, retries: KEEP_COLLATERAL_DEFAULTS.retries, ...settings.options };
}

/** One line for logs: where a Keep's host gets collateral from. */
export function describeKeepCollateral(settings: KeepCollateralSettings = {}): string {
  if (settings.fetch === false) return 'none (--no-fetch-collateral)';
  const o = keepServiceOptions(settings);
  const budget = `${(settings.budgetMs ?? KEEP_COLLATERAL_DEFAULTS.budgetMs) / 1000} s in all`;
  if (o.offline) return `the cache ${o.cacheDir} only (offline)`;
  const kds = o.amdBaseUrl ?? DEFAULTS.amdBaseUrl;
  const pcs = o.intelBaseUrl ?? DEFAULTS.intelBaseUrl;
  const certs = o.intelCertsBaseUrl ?? DEFAULTS.intelCertsBaseUrl;
  const timeout = (o.timeoutMs ?? KEEP_COLLATERAL_DEFAULTS.timeoutMs) / 1000;
  const retries = o.retries ?? KEEP_COLLATERAL_DEFAULTS.retries;
  return `the cache ${o.cacheDir}, refreshed from ${kds}, ${pcs} and ${certs} (${timeout} s a download, ${retries} ${retries === 1 ? 'retry' : 'retries'}, ${budget})`;
}
