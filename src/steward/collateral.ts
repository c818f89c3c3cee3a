/**
 * Collateral the Steward obtains itself (AMD KDS, Intel PCS, or its on-disk cache through
 * src/collateral) when a CSR's evidence does not carry all it needs: an SNP report without a VCEK
 * or CRL, an SGX or TDX quote without TCB info, QE identity or CRLs, or with stale copies of them.
 *
 * Who delivers collateral does not matter: every document is signed by AMD or Intel and the
 * verifier checks it against the pinned roots and at the Steward's clock, whether the Keep sent it
 * or the Steward fetched it. Fetching at the Steward keeps the Keep's TCB and the sallyport free
 * of collateral handling, and one cache serves every Keep.
 */
import type { VerificationResult } from '../attestation/types.ts';
import { utf8 } from '../attestation/bytes.ts';
import {
  CollateralError,
  type CollateralOptions,
  CollateralService,
  collateralForEvidence,
  type EvidenceCollateral,
  HttpError,
  readBounded,
  reportIdentity,
} from '../collateral/index.ts';
import { decodeIntelQuote } from '../attestation/intel/index.ts';
import { toHex } from '../attestation/bytes.ts';
import { StewardRefusal } from './problems.ts';
import type { EvidenceInput, VerifyFn } from './verify.ts';

/**
 * Gets the collateral `evidence` needs, with freshness judged at `now` (the Steward's clock).
 * `client` names who asked (see clientKey in http.ts), for the per-client download budget.
 */
export type CollateralProvider = (evidence: Uint8Array, options: { haveLeaf: boolean; now: Date; client?: string }) => Promise<EvidenceCollateral>;

/** A provider over src/collateral: the on-disk cache, refreshed from AMD KDS and Intel PCS unless `offline`. */
export function collateralProvider(options: Omit<CollateralOptions, 'now'>, limits: DownloadLimits = {}): CollateralProvider {
  // One guard for all the Steward's requests: what a CSR names (a bare SNP report's chip id and
  // TCB, a quote's FMSPC) is unauthenticated until the document fetched for it verifies it.
  const guard = guardedFetch(options.fetch ?? globalThis.fetch, limits);
  return (evidence, { haveLeaf, now, client }) =>
    collateralForEvidence(new CollateralService({ ...options, fetch: client === undefined ? guard : guard.forClient(client), now: () => now }), evidence, { haveLeaf });
}

export interface DownloadLimits {
  /** Downloads from AMD or Intel per minute, across all clients (default 60); beyond, a CSR that needs one is refused for now. */
  perMinute?: number;
  /** Downloads per minute that one client's CSRs may cause (default 20), so that no client can spend the whole budget. */
  perClientPerMinute?: number;
  /** How long a vendor's "not found" for a URL is remembered and answered without asking again (default 10 minutes). */
  notFoundMs?: number;
  clock?: () => number;
}

const MAX_REMEMBERED_NOT_FOUND = 10_000;
/** Clients whose budget is tracked at once; beyond, the oldest is forgotten (the global budget still holds). */
const MAX_TRACKED_CLIENTS = 10_000;
/** A shared download is held in memory: far above any vendor document (the collateral service itself allows 4 MiB). */
const MAX_SHARED_BYTES = 8 * 1024 * 1024;

/** A token bucket refilled continuously at `perMinute`. */
class Bucket {
  readonly perMinute: number;
  tokens: number;
  stamp: number;
  constructor(perMinute: number, now: number) {
    this.perMinute = perMinute;
    this.tokens = perMinute;
    this.stamp = now;
  }
  refill(now: number): number {
    this.tokens = Math.min(this.perMinute, this.tokens + ((now - this.stamp) / 60_000) * this.perMinute);
    this.stamp = now;
    return this.tokens;
  }
}

/** fetch for anonymous requests, and per client through `forClient`: one guard, shared state. */
export type GuardedFetch = typeof fetch & { forClient(client: string): typeof fetch };

const rateLimited = (message: string) => Object.assign(new Error(message), { name: 'RateLimited' });

/**
 * fetch as the Steward's collateral downloads use it, so that its clients cannot make it flood the
 * vendors, nor starve each other: one download per URL at a time (concurrent requests share it,
 * whoever asked), a vendor's 404 remembered for a while, and budgets of downloads per minute, one
 * per client and one for all. Shared downloads and remembered 404s cost no budget.
 */
export function guardedFetch(inner: typeof fetch, limits: DownloadLimits = {}): GuardedFetch {
  const perMinute = limits.perMinute ?? 60;
  const perClient = limits.perClientPerMinute ?? 20;
  const notFoundMs = limits.notFoundMs ?? 10 * 60_000;
  const clock = limits.clock ?? Date.now;
  const notFound = new Map<string, number>();
  const inflight = new Map<string, Promise<{ status: number; statusText: string; headers: [string, string][]; body: ArrayBuffer }>>();
  const global = new Bucket(perMinute, clock());
  const clients = new Map<string, Bucket>();
  const answer = (a: { status: number; statusText: string; headers: [string, string][]; body: ArrayBuffer }) =>
    new Response(a.status === 204 || a.status === 304 ? null : a.body.slice(0), { status: a.status, statusText: a.statusText, headers: a.headers });
  const clientBucket = (client: string, now: number): Bucket => {
    let bucket = clients.get(client);
    if (!bucket) {
      if (clients.size >= MAX_TRACKED_CLIENTS) clients.delete(clients.keys().next().value!);
      bucket = new Bucket(perClient, now);
    } else clients.delete(client);
    clients.set(client, bucket); // most recently used last
    return bucket;
  };
  const guarded = async (client: string | undefined, input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    const url = input instanceof Request ? input.url : String(input);
    const until = notFound.get(url);
    if (until !== undefined) {
      if (clock() < until) return new Response(null, { status: 404, statusText: 'Not Found (remembered)' });
      notFound.delete(url);
    }
    const shared = inflight.get(url);
    if (shared) return answer(await shared);
    const now = clock();
    const own = client === undefined ? undefined : clientBucket(client, now);
    if (own && own.refill(now) < 1) {
      throw rateLimited(`this client's collateral download budget at the Steward (${perClient} per minute) is spent; retry in a minute`);
    }
    if (global.refill(now) < 1) {
      throw rateLimited(`the Steward's collateral download budget (${perMinute} per minute) is spent; retry in a minute, or fill its cache`);
    }
    global.tokens -= 1;
    if (own) own.tokens -= 1;
    const pending = (async () => {
      const r = await inner(input, init);
      return { status: r.status, statusText: r.statusText, headers: [...r.headers] as [string, string][], body: (await readBounded(r, url, MAX_SHARED_BYTES)).buffer as ArrayBuffer };
    })();
    inflight.set(url, pending);
    try {
      const got = await pending;
      if (got.status === 404) {
        notFound.set(url, clock() + notFoundMs);
        if (notFound.size > MAX_REMEMBERED_NOT_FOUND) notFound.delete(notFound.keys().next().value!);
      }
      return answer(got);
    } finally {
      inflight.delete(url);
    }
  };
  const anonymous = ((input, init) => guarded(undefined, input, init)) as GuardedFetch;
  anonymous.forClient = (client) => ((input, init) => guarded(client, input, init)) as typeof fetch;
  return anonymous;
}

const isTestAnchor = (r: VerificationResult) => (r.trustAnchor ?? '').startsWith('test:');

/**
 * Whether a first verification, with what the CSR carried, calls for the Steward's own collateral:
 * something required is missing; a CRL or collateral document was stale or absent (not for
 * evidence under a local test root, which no vendor serves); or genuine evidence verified without
 * revocation checks or (SGX, TDX) without the QE identity.
 */
export function wantsCollateral(result: VerificationResult): boolean {
  if (result.failure) {
    if (result.failure.code === 'missing-collateral') return true;
    return (result.failure.step === 'crl' || result.failure.step === 'collateral') && !isTestAnchor(result);
  }
  if (isTestAnchor(result) || !result.trustAnchor) return false;
  return !result.revocationChecked || (result.kind !== 'snp' && result.claims.qeStatus == null);
}

/**
 * Verifies with what the CSR carried and, when that falls short (`wantsCollateral`), again with the
 * collateral `provider` obtains: its documents replace the CSR's documents of the same kind (CRLs,
 * TCB info, QE identity); certificates are added. Collateral that cannot be obtained is a refusal
 * naming what is missing and what the Steward's operator can run, unless the evidence already
 * verified (then the first result stands, with a warning).
 */
export async function verifyWithCollateral(
  input: EvidenceInput,
  verify: VerifyFn,
  provider: CollateralProvider,
  warn: (message: string) => void = () => {},
  client?: string,
): Promise<VerificationResult> {
  const first = await verify(input);
  if (!wantsCollateral(first)) return first;
  const haveLeaf = !(input.kind === 'snp' && first.failure?.code === 'missing-collateral');
  let fetched: EvidenceCollateral;
  try {
    fetched = await provider(input.evidence, { haveLeaf, now: input.now, ...(client === undefined ? {} : { client }) });
  } catch (err) {
    if (!(err instanceof CollateralError)) throw err;
    if (first.verified) {
      warn(`verified without the Steward's own collateral: ${err.message}`);
      return first;
    }
    const unknown = err.cause instanceof HttpError && err.cause.status === 404;
    const detail = `the Steward cannot obtain the collateral this ${input.kind.toUpperCase()} evidence needs: ${err.message}${unknown ? '' : `; ${operatorHint(input)}`}`;
    // The vendor does not know this chip, TCB or FMSPC: the evidence is at fault. Otherwise the Steward is.
    throw new StewardRefusal(unknown ? 'evidence-rejected' : 'collateral-unavailable', 'collateral', detail, { cause: err });
  }
  const merged: EvidenceInput = {
    ...input,
    certs: [...input.certs, ...fetched.certs],
    crls: fetched.crls.length > 0 ? fetched.crls : input.crls,
    collateral: fetched.collateral.length > 0 ? fetched.collateral.map((c) => utf8(c.bytes)) : input.collateral,
  };
  const second = await verify(merged);
  const f = second.failure;
  if (f && (f.step === 'crl' || f.step === 'collateral') && /expired|nextUpdate|not yet valid/.test(f.message)) {
    // The Steward already used the newest copy it could obtain: only a refresh or its clock can help.
    const source = fetched.documents.some((d) => d.source === 'cache') ? 'its cache and the vendors' : 'the vendors';
    second.failure = { ...f, message: `${f.message} (in the newest collateral the Steward got from ${source}: refresh its cache with enarx update-cache, or check its clock)` };
  }
  return second;
}

/** What the Steward's operator can run to put this evidence's collateral into the Steward's cache. */
function operatorHint(input: EvidenceInput): string {
  const tail = "run on the Steward's host (with --cache-dir for its cache), or let it reach AMD KDS / Intel PCS";
  try {
    if (input.kind === 'snp') {
      const id = reportIdentity(input.evidence);
      const t = id.tcb;
      const tcb = [t.bootloader, t.tee, t.snp, t.microcode, ...(t.fmc !== undefined ? [t.fmc] : [])].join(',');
      return `${tail}: enarx platform snp update --product ${id.product} --chip-id ${toHex(id.chipId)} --tcb ${tcb} && enarx platform snp cache-crl`;
    }
    const pck = decodeIntelQuote(input.evidence).pck;
    const fmspc = pck && !('error' in pck) ? pck.fmspc.toUpperCase() : 'FMSPC';
    return `${tail}: enarx platform sgx cache-tcb --fmspc ${fmspc}${input.kind === 'tdx' ? ' --tdx' : ''} && enarx platform sgx cache-crl`;
  } catch {
    return `${tail}: enarx attest verify --fetch --evidence FILE fills the cache for a saved report or quote`;
  }
}
