/** HTTP GET with a timeout, bounded retries and clear errors, for collateral downloads. */
import { concatAll } from '../attestation/bytes.ts';

export interface HttpOptions {
  /** Per-attempt timeout. */
  timeoutMs: number;
  /** Attempts after the first, for network errors, timeouts, 5xx and 429. */
  retries: number;
  /** First backoff delay; doubles on each retry. A 429's Retry-After wins when given. */
  backoffMs: number;
  maxBytes: number;
  fetch: typeof fetch;
  onProgress?: (event: ProgressEvent) => void;
  /** Extra request headers (e.g. Intel's Ocp-Apim-Subscription-Key). */
  headers?: Record<string, string>;
  /** Ends the download, its retries and its backoff at once (an overall budget); its reason is the error's message. */
  signal?: AbortSignal;
}

export type ProgressEvent =
  | { type: 'start'; url: string; attempt: number }
  | { type: 'retry'; url: string; attempt: number; delayMs: number; reason: string }
  | { type: 'done'; url: string; bytes: number; ms: number }
  | { type: 'cache'; url: string; state: 'fresh' | 'stale' | 'offline' }
  | { type: 'warning'; url: string; message: string };

export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** A download failed; `status` is the HTTP status when there was one. */
export class HttpError extends Error {
  readonly status: number | undefined;
  readonly url: string;
  constructor(url: string, message: string, status?: number) {
    super(message);
    this.name = 'HttpError';
    this.url = url;
    this.status = status;
  }
}

const RETRY_AFTER_CAP_MS = 60_000;

export async function httpGet(url: string, options: HttpOptions): Promise<HttpAnswer> {
  let lastError: HttpError | undefined;
  for (let attempt = 0; attempt <= options.retries; attempt++) {
    stopIfAborted(url, options.signal);
    options.onProgress?.({ type: 'start', url, attempt });
    const started = Date.now();
    let delay = options.backoffMs * 2 ** attempt;
    try {
      const answer = await once(url, options);
      if (answer.status >= 200 && answer.status < 300) {
        options.onProgress?.({ type: 'done', url, bytes: answer.body.length, ms: Date.now() - started });
        return answer;
      }
      lastError = new HttpError(url, `${url} answered HTTP ${answer.status}${statusHint(answer.status)}`, answer.status);
      if (answer.status !== 429 && answer.status < 500) throw lastError;
      const retryAfter = Number(answer.headers.get('retry-after'));
      if (answer.status === 429 && Number.isFinite(retryAfter) && retryAfter >= 0) delay = Math.min(retryAfter * 1000, RETRY_AFTER_CAP_MS);
    } catch (err) {
      stopIfAborted(url, options.signal);
      if (err instanceof HttpError && err.status !== undefined && err.status !== 429 && err.status < 500) throw err;
      lastError = err instanceof HttpError ? err : new HttpError(url, describeNetworkError(url, err, options.timeoutMs));
    }
    if (attempt < options.retries) {
      options.onProgress?.({ type: 'retry', url, attempt: attempt + 1, delayMs: delay, reason: lastError.message });
      await sleep(delay, options.signal);
    }
  }
  throw new HttpError(url, `${lastError!.message} (gave up after ${options.retries + 1} attempt${options.retries === 0 ? '' : 's'})`, lastError!.status);
}

/** Not (or no longer) fetched: the caller's signal ended the download. Never retried. */
function stopIfAborted(url: string, signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new HttpError(url, `${url} was not fetched: ${String(signal.reason)}`);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

async function once(url: string, options: HttpOptions): Promise<HttpAnswer> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  const response = await options.fetch(url, { signal, headers: options.headers, redirect: 'follow' });
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > options.maxBytes) {
    await response.body?.cancel();
    throw new HttpError(url, `${url} answered ${declared} bytes, more than the ${options.maxBytes} allowed`, undefined);
  }
  return { status: response.status, headers: response.headers, body: await readBounded(response, url, options.maxBytes) };
}

/** A response's body, read up to `maxBytes`; more is an HttpError, and the rest is not read. */
export async function readBounded(response: Response, url: string, maxBytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (response.body) {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        await reader.cancel();
        throw new HttpError(url, `${url} answered more than the ${maxBytes} bytes allowed`);
      }
      chunks.push(value);
    }
  }
  return concatAll(chunks);
}

function statusHint(status: number): string {
  if (status === 404) return ' (not found: check the product, chip id, TCB or FMSPC)';
  if (status === 401 || status === 403) return ' (refused: this request may need an API key)';
  if (status === 429) return ' (rate limited)';
  return '';
}

function describeNetworkError(url: string, err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `${url} did not answer within ${timeoutMs / 1000} s`;
  const cause = e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
  return `cannot reach ${url} (${cause})`;
}
