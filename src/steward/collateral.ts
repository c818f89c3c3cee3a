/**
 * Collateral the Steward obtains itself (AMD KDS, Intel PCS, or its on-disk cache through
 * src/collateral) when a CSR's evidence does not carry all it needs: an SNP report without a VCEK
 * or CRL, an SGX or TDX quote without TCB info, QE identity or CRLs, or with stale copies of them.
 *
 * Who delivers collateral does not matter: every document is signed by AMD or Intel and the
 * verifier checks it against the pinned roots and at the Steward's clock, whether the Keep sent it
 * or the Steward fetched it. Fetching at the Steward lets Keeps whose host has no cache or network
 * attest (our Keeps carry what their host's cache relays, docs/keep-hardware.md), replaces stale
 * copies, and one cache serves every Keep.
 */
import type { VerificationResult } from '../attestation/types.ts';
import {
  type CollateralOptions,
  type CollateralProvider,
  CollateralUnavailableError,
  readBounded,
  serviceProvider,
  STEWARD,
  verifyWithCollateral as verifyAndFetch,
} from '../collateral/index.ts';
import { StewardRefusal } from './problems.ts';
import type { EvidenceInput, VerifyFn } from './verify.ts';

// A provider's `client` names who asked (see clientKey in http.ts), for the per-client download budget.
export type { CollateralProvider } from '../collateral/index.ts';
export { wantsCollateral } from '../collateral/index.ts';

/** A provider over src/collateral: the on-disk cache, refreshed from AMD KDS and Intel PCS unless `offline`. */
export function collateralProvider(options: Omit<CollateralOptions, 'now' | 'signal'>, limits: DownloadLimits = {}): CollateralProvider {
  // One guard for all the Steward's requests: what a CSR names (a bare SNP report's chip id and
  // TCB, a quote's FMSPC) is unauthenticated until the document fetched for it verifies it.
  const guard = guardedFetch(options.fetch ?? globalThis.fetch, limits);
  return serviceProvider(options, {
    fetchFor: (client) => (client === undefined ? guard : guard.forClient(client)),
    ...(limits.budgetMs === undefined ? {} : { budget: { ms: limits.budgetMs, whose: "the Steward's" } }),
  });
}

export interface DownloadLimits {
  /** Downloads from AMD or Intel per minute, across all clients (default 60); beyond, a CSR that needs one is refused for now. */
  perMinute?: number;
  /** Downloads per minute that one client's CSRs may cause (default 20), so that no client can spend the whole budget. */
  perClientPerMinute?: number;
  /** How long a vendor's "not found" for a URL is remembered and answered without asking again (default 10 minutes). */
  notFoundMs?: number;
  /**
   * All of one CSR's downloads together may take this long (ms), whatever their timeouts and
   * retries; then the CSR is refused (503) unless its evidence verified without them. None by
   * default; `steward serve --collateral-budget` gives 10 s.
   */
  budgetMs?: number;
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

/** `promise`, or, once `signal` aborts first, the rejection fetch gives then. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | null | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const stop = () => reject(signal.reason instanceof Error ? signal.reason : new DOMException(String(signal.reason), 'AbortError'));
    if (signal.aborted) return stop();
    signal.addEventListener('abort', stop, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', stop));
  });
}

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
    // A request that joins another's download still ends at its own timeout or budget.
    if (shared) return answer(await abortable(shared, init?.signal));
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

/**
 * The shared flow (src/collateral/verify.ts) as the Steward answers it: collateral it cannot obtain
 * for evidence that did not verify is a refusal, 400 at step `collateral` when the vendor knows no
 * such chip, TCB or FMSPC (the evidence is at fault), else 503 (the Steward is).
 */
export async function verifyWithCollateral(
  input: EvidenceInput,
  verify: VerifyFn,
  provider: CollateralProvider,
  warn: (message: string) => void = () => {},
  client?: string,
): Promise<VerificationResult> {
  try {
    return await verifyAndFetch(input, verify, provider, { by: STEWARD, warn, ...(client === undefined ? {} : { client }) });
  } catch (err) {
    if (!(err instanceof CollateralUnavailableError)) throw err;
    throw new StewardRefusal(err.notFound ? 'evidence-rejected' : 'collateral-unavailable', 'collateral', err.message, { cause: err.cause });
  }
}
