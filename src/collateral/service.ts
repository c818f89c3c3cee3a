import { type CacheEntry, type CacheMeta, DiskCache } from './cache.ts';
import { HttpError, httpGet, type ProgressEvent } from './http.ts';

export interface CollateralOptions {
  /** Where documents are cached. */
  cacheDir: string;
  /** AMD Key Distribution Service; default https://kdsintf.amd.com. */
  amdBaseUrl?: string;
  /** Intel Provisioning Certification Service (or a PCCS); default https://api.trustedservices.intel.com. */
  intelBaseUrl?: string;
  /** Where Intel publishes the Root CA CRL; default https://certificates.trustedservices.intel.com. */
  intelCertsBaseUrl?: string;
  /** Never use the network: answer from the cache or fail. */
  offline?: boolean;
  timeoutMs?: number;
  retries?: number;
  backoffMs?: number;
  /** Refresh a cached document once less than this fraction of its lifetime remains. */
  refreshFraction?: number;
  now?: () => Date;
  fetch?: typeof fetch;
  onProgress?: (event: ProgressEvent) => void;
  /** Intel PCS subscription key, needed only for PCK certificates. */
  intelApiKey?: string;
  /** Ends every download at once when aborted (an overall budget); the cache still answers. */
  signal?: AbortSignal;
}

export const DEFAULTS = {
  amdBaseUrl: 'https://kdsintf.amd.com',
  intelBaseUrl: 'https://api.trustedservices.intel.com',
  intelCertsBaseUrl: 'https://certificates.trustedservices.intel.com',
  timeoutMs: 15_000,
  retries: 3,
  backoffMs: 500,
  refreshFraction: 0.25,
} as const;

/**
 * A signal for CollateralOptions.signal that ends every download once `ms` have passed: one time
 * budget for all of them. Its reason is the line that says so: "WHOSE collateral budget of N s ran
 * out (FLAG)".
 */
export function downloadBudget(ms: number, whose: string, flag = '--collateral-budget'): AbortSignal {
  const budget = new AbortController();
  setTimeout(() => budget.abort(`${whose} collateral budget of ${ms / 1000} s ran out (${flag})`), ms).unref();
  return budget.signal;
}

/** A cached or freshly downloaded collateral document. */
export interface Document {
  /** The file in the cache that holds it. */
  path: string;
  body: Uint8Array;
  meta: CacheMeta;
  source: 'network' | 'cache';
  /** Set when a stale copy was served because the refresh failed or the service is offline. */
  warning?: string;
}

/** Collateral could not be obtained; the message says why and what to do. */
export class CollateralError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CollateralError';
  }
}

/** How to recognise a good answer: returns when it expires and which headers to keep, or throws. */
export type Validate = (body: Uint8Array, headers: Headers) => { expiresAt: Date; headers?: Record<string, string> };

export interface DocumentSpec {
  /** Cache key: a relative path such as amd/Milan/crl.der. */
  key: string;
  url: string;
  /** What it is, for messages: "the Milan VCEK CRL". */
  what: string;
  validate: Validate;
  headers?: Record<string, string>;
}

/**
 * Serves collateral from the cache while it is fresh, refreshes it from the network once it nears
 * its expiry, falls back to the cached copy (with a warning) while that is still valid when the
 * network fails, and works from the cache alone when offline.
 */
export class CollateralService {
  readonly options: Required<Omit<CollateralOptions, 'onProgress' | 'intelApiKey' | 'signal'>> & Pick<CollateralOptions, 'onProgress' | 'intelApiKey' | 'signal'>;
  readonly cache: DiskCache;

  constructor(options: CollateralOptions) {
    this.options = {
      amdBaseUrl: trimSlash(options.amdBaseUrl ?? DEFAULTS.amdBaseUrl),
      intelBaseUrl: trimSlash(options.intelBaseUrl ?? DEFAULTS.intelBaseUrl),
      intelCertsBaseUrl: trimSlash(options.intelCertsBaseUrl ?? DEFAULTS.intelCertsBaseUrl),
      offline: options.offline ?? false,
      timeoutMs: options.timeoutMs ?? DEFAULTS.timeoutMs,
      retries: options.retries ?? DEFAULTS.retries,
      backoffMs: options.backoffMs ?? DEFAULTS.backoffMs,
      refreshFraction: options.refreshFraction ?? DEFAULTS.refreshFraction,
      now: options.now ?? (() => new Date()),
      fetch: options.fetch ?? globalThis.fetch,
      cacheDir: options.cacheDir,
      onProgress: options.onProgress,
      intelApiKey: options.intelApiKey,
      signal: options.signal,
    };
    this.cache = new DiskCache(options.cacheDir);
  }

  async get(spec: DocumentSpec): Promise<Document> {
    const now = this.options.now();
    const cached = await this.cache.get(spec.key);
    const path = this.cache.path(spec.key);
    if (cached && now < refreshAt(cached, this.options.refreshFraction)) {
      this.options.onProgress?.({ type: 'cache', url: spec.url, state: 'fresh' });
      return { path, ...cached, source: 'cache' };
    }
    const valid = cached && now < new Date(cached.meta.expiresAt);
    if (this.options.offline) {
      if (valid) {
        const warning = `${spec.what} is due for a refresh (it expires at ${cached.meta.expiresAt}); offline, so the cached copy is used`;
        this.options.onProgress?.({ type: 'cache', url: spec.url, state: 'offline' });
        return { path, ...cached, source: 'cache', warning };
      }
      throw new CollateralError(
        cached
          ? `${spec.what} in the cache expired at ${cached.meta.expiresAt}; go online to refresh it`
          : `${spec.what} is not in the cache (${path}); go online to fetch it`,
      );
    }
    try {
      return await this.download(spec, now);
    } catch (err) {
      if (valid && (err instanceof HttpError || err instanceof CollateralError)) {
        const warning = `could not refresh ${spec.what} (${err.message}); using the cached copy, valid until ${cached.meta.expiresAt}`;
        this.options.onProgress?.({ type: 'warning', url: spec.url, message: warning });
        return { path, ...cached, source: 'cache', warning };
      }
      if (err instanceof HttpError) throw new CollateralError(`cannot fetch ${spec.what}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  private async download(spec: DocumentSpec, now: Date): Promise<Document> {
    const answer = await httpGet(spec.url, {
      timeoutMs: this.options.timeoutMs,
      retries: this.options.retries,
      backoffMs: this.options.backoffMs,
      maxBytes: 4 * 1024 * 1024,
      fetch: this.options.fetch,
      onProgress: this.options.onProgress,
      headers: spec.headers,
      ...(this.options.signal ? { signal: this.options.signal } : {}),
    });
    let checked: ReturnType<Validate>;
    try {
      checked = spec.validate(answer.body, answer.headers);
    } catch (err) {
      throw new CollateralError(`${spec.url} answered something that is not ${spec.what}: ${(err as Error).message}`, { cause: err });
    }
    const meta: CacheMeta = { url: spec.url, fetchedAt: now.toISOString(), expiresAt: checked.expiresAt.toISOString(), headers: checked.headers ?? {} };
    const path = await this.cache.put(spec.key, answer.body, meta);
    const warning = checked.expiresAt <= now ? `${spec.url} served ${spec.what} that expired at ${meta.expiresAt}` : undefined;
    if (warning) this.options.onProgress?.({ type: 'warning', url: spec.url, message: warning });
    return { path, body: answer.body, meta, source: 'network', warning };
  }
}

function refreshAt(entry: CacheEntry, fraction: number): Date {
  const fetched = Date.parse(entry.meta.fetchedAt);
  const expires = Date.parse(entry.meta.expiresAt);
  const lifetime = Number.isNaN(fetched) ? 0 : Math.max(0, expires - fetched);
  return new Date(expires - lifetime * fraction);
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}
