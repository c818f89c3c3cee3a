/**
 * OAuth 2.0 login for `enarx user login`: the device authorization grant (RFC 8628), for a person at
 * a terminal, and the client-credentials grant (RFC 6749 §4.4), for automation. Enarx 0.7 asks for
 * the same scopes and passes `audience=https://{registry host}/`, so tokens work with an
 * Auth0-style provider configured for Drawbridge. Endpoints come from OpenID discovery; a provider
 * without discovery gets Enarx's Auth0 paths (`oauth/device/code`, `oauth/token`).
 */
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { isLoopbackHost } from '../net/loopback.ts';

export const ENARX_SCOPES = 'openid profile manage:drawbridge_repositories manage:drawbridge_tags manage:drawbridge_users';

export class OidcError extends Error {
  /** The OAuth error code (`access_denied`, `expired_token`, ...) when the provider gave one. */
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.name = 'OidcError';
    this.code = code;
  }
}

export interface DevicePrompt {
  verificationUri: string;
  verificationUriComplete: string | undefined;
  userCode: string;
  expiresInSeconds: number;
}

export interface OidcLoginOptions {
  /** The provider's issuer URL, e.g. https://auth.example.com/ */
  domain: string;
  clientId: string;
  audience: string;
  scope?: string;
  flow: 'device' | 'client';
  /** Required for the client flow. */
  clientSecret?: string;
  /** Extra PEM roots for the provider's certificate. */
  ca?: string;
  /** Called once, with what the person must open and type. */
  onPrompt?: (prompt: DevicePrompt) => void;
  /** Injectable for tests; waits between polls. */
  sleep?: (ms: number) => Promise<void>;
  /** Injectable for tests; the current time in ms. */
  now?: () => number;
}

export interface OidcToken {
  accessToken: string;
  tokenType: string;
  expiresInSeconds: number | undefined;
}

interface Endpoints {
  deviceAuthorization: string;
  token: string;
}

const MAX_RESPONSE = 64 * 1024;
const TIMEOUT_MS = 30_000;

/** A provider URL: https, or http on loopback only (a token must never cross a network in clear). */
function secureUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(/^[a-z]+:\/\//i.test(text) ? text : `https://${text}`);
  } catch {
    throw new OidcError(`'${text}' is not an OIDC domain or URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw new OidcError(`'${text}': the OIDC provider must be reached over https (plain http only on localhost)`);
  }
  return url;
}

/** An issuer URL, always ending in '/' so that endpoint paths resolve beneath it. */
export function parseIssuer(domain: string): URL {
  const url = secureUrl(domain);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  url.search = '';
  url.hash = '';
  return url;
}

function send(url: URL, options: { method: string; body?: string; ca?: string }): Promise<{ status: number; body: unknown }> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (options.body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const req = request(url, { method: options.method, headers, ca: options.ca, timeout: TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_RESPONSE) req.destroy(new OidcError(`${url.origin}: the answer is larger than ${MAX_RESPONSE} bytes`));
        else chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new OidcError(`${url.origin}: no answer within ${TIMEOUT_MS / 1000} s`)));
    req.on('error', (err) => reject(err instanceof OidcError ? err : new OidcError(`${url.origin}: ${err.message}`)));
    req.end(options.body);
  });
}

function record(body: unknown): Record<string, unknown> {
  return body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

/** The endpoint URL a provider named, which must stay on https (or loopback http) like the issuer. */
function endpoint(value: unknown, issuer: URL, what: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new OidcError(`${issuer.origin}: discovery gave a ${what} that is not a string`);
  try {
    return secureUrl(value).href;
  } catch {
    throw new OidcError(`${issuer.origin}: discovery gave an unusable ${what}: ${value}`);
  }
}

async function discover(issuer: URL, ca: string | undefined): Promise<Endpoints> {
  const fallback = { deviceAuthorization: new URL('oauth/device/code', issuer).href, token: new URL('oauth/token', issuer).href };
  const res = await send(new URL('.well-known/openid-configuration', issuer), { method: 'GET', ca });
  if (res.status === 404) return fallback;
  if (res.status !== 200) throw new OidcError(`${issuer.origin}: OpenID discovery answered ${res.status}`);
  const meta = record(res.body);
  return {
    deviceAuthorization: endpoint(meta.device_authorization_endpoint, issuer, 'device_authorization_endpoint') ?? fallback.deviceAuthorization,
    token: endpoint(meta.token_endpoint, issuer, 'token_endpoint') ?? fallback.token,
  };
}

function providerError(body: Record<string, unknown>, status: number, origin: string): OidcError {
  const code = typeof body.error === 'string' ? body.error : undefined;
  const description = typeof body.error_description === 'string' ? `: ${body.error_description}` : '';
  return new OidcError(`${origin}: ${code ?? `status ${status}`}${description}`, code);
}

function tokenOf(body: Record<string, unknown>, origin: string): OidcToken {
  if (typeof body.access_token !== 'string' || body.access_token.length === 0) throw new OidcError(`${origin}: the token answer has no access_token`);
  return {
    accessToken: body.access_token,
    tokenType: typeof body.token_type === 'string' ? body.token_type : 'Bearer',
    expiresInSeconds: typeof body.expires_in === 'number' ? body.expires_in : undefined,
  };
}

function positiveSeconds(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : fallback;
}

export async function oidcLogin(options: OidcLoginOptions): Promise<OidcToken> {
  const issuer = parseIssuer(options.domain);
  const scope = options.scope ?? ENARX_SCOPES;
  const endpoints = await discover(issuer, options.ca);
  const form = (params: Record<string, string>) => new URLSearchParams(params).toString();

  if (options.flow === 'client') {
    if (!options.clientSecret) throw new OidcError('the client-credentials flow needs a client secret (ENARX_OIDC_CLIENT_SECRET)');
    const res = await send(new URL(endpoints.token), {
      method: 'POST',
      ca: options.ca,
      body: form({ grant_type: 'client_credentials', client_id: options.clientId, client_secret: options.clientSecret, audience: options.audience, scope }),
    });
    const body = record(res.body);
    if (res.status !== 200) throw providerError(body, res.status, issuer.origin);
    return tokenOf(body, issuer.origin);
  }

  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = options.now ?? Date.now;
  const start = await send(new URL(endpoints.deviceAuthorization), {
    method: 'POST',
    ca: options.ca,
    body: form({ client_id: options.clientId, audience: options.audience, scope }),
  });
  const auth = record(start.body);
  if (start.status !== 200) throw providerError(auth, start.status, issuer.origin);
  const { device_code: deviceCode, user_code: userCode } = auth;
  // RFC 8628 names it verification_uri; some providers still send Google's older verification_url.
  const verificationUri = auth.verification_uri ?? auth.verification_url;
  if (typeof deviceCode !== 'string' || typeof userCode !== 'string' || typeof verificationUri !== 'string') {
    throw new OidcError(`${issuer.origin}: the device authorization answer lacks device_code, user_code or verification_uri`);
  }
  const expiresIn = positiveSeconds(auth.expires_in, 600);
  let interval = positiveSeconds(auth.interval, 5);
  options.onPrompt?.({
    verificationUri,
    verificationUriComplete: typeof auth.verification_uri_complete === 'string' ? auth.verification_uri_complete : undefined,
    userCode,
    expiresInSeconds: expiresIn,
  });
  const deadline = now() + expiresIn * 1000;
  for (;;) {
    await sleep(interval * 1000);
    if (now() > deadline) throw new OidcError('the login code expired before it was confirmed', 'expired_token');
    const res = await send(new URL(endpoints.token), {
      method: 'POST',
      ca: options.ca,
      body: form({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode, client_id: options.clientId }),
    });
    const body = record(res.body);
    if (res.status === 200) return tokenOf(body, issuer.origin);
    switch (body.error) {
      case 'authorization_pending':
        continue;
      case 'slow_down':
        interval += 5; // RFC 8628 §3.5: every slow_down adds 5 seconds, for the rest of the login
        continue;
      case 'access_denied':
        throw new OidcError('the login was denied at the provider', 'access_denied');
      case 'expired_token':
        throw new OidcError('the login code expired before it was confirmed', 'expired_token');
      default:
        throw providerError(body, res.status, issuer.origin);
    }
  }
}
