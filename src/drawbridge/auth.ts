/**
 * Who is asking. Bearer tokens are JWTs, verified either against an OIDC issuer's JWKS (found by
 * discovery) or against the server's own local signing key (tokens made by `enarx drawbridge
 * token`). Scopes are Enarx's: `<read|write|manage>:<drawbridge_users|drawbridge_repositories|drawbridge_tags>`.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type CryptoKey,
  type JWTPayload,
  calculateJwkThumbprint,
  createRemoteJWKSet,
  decodeJwt,
  exportJWK,
  exportPKCS8,
  generateKeyPair,
  importJWK,
  importPKCS8,
  jwtVerify,
  SignJWT,
} from 'jose';

export const SCOPE_CONTEXTS = ['drawbridge_users', 'drawbridge_repositories', 'drawbridge_tags'] as const;
export type ScopeContext = (typeof SCOPE_CONTEXTS)[number];
export type ScopeLevel = 'read' | 'write';

/** Every scope Enarx's `user login` asks for. */
export const ALL_SCOPES = SCOPE_CONTEXTS.map((c) => `manage:${c}`);

export interface Principal {
  subject: string;
  scopes: Set<string>;
  issuer: string;
}

/** `manage` satisfies both levels, as in Enarx. */
export function hasScope(p: Principal, context: ScopeContext, level: ScopeLevel): boolean {
  return p.scopes.has(`${level}:${context}`) || p.scopes.has(`manage:${context}`);
}

export class AuthError extends Error {
  readonly status: number;
  constructor(message: string, status = 401) {
    super(message);
    this.name = 'AuthError';
    this.status = status;
  }
}

export interface TokenVerifier {
  readonly issuer: string;
  verify(token: string): Promise<Principal>;
}

// RS256 is what Enarx's Drawbridge accepts; the others are what current issuers also sign with.
const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA', 'Ed25519'];

function principalFrom(payload: JWTPayload, issuer: string): Principal {
  if (typeof payload.sub !== 'string' || payload.sub === '') throw new AuthError('Invalid token provided: no subject');
  const raw = payload.scope;
  const scopes = typeof raw === 'string' ? raw.split(' ').filter(Boolean) : Array.isArray(raw) ? raw.filter((s): s is string => typeof s === 'string') : [];
  return { subject: payload.sub, scopes: new Set(scopes), issuer };
}

async function verifyWith(token: string, key: Parameters<typeof jwtVerify>[1], issuer: string, audience: string): Promise<Principal> {
  try {
    const { payload } = await jwtVerify(token, key as never, {
      issuer,
      audience,
      algorithms: ASYMMETRIC_ALGORITHMS,
      requiredClaims: ['exp', 'iat', 'scope', 'aud', 'sub'],
      clockTolerance: 5,
    });
    return principalFrom(payload, issuer);
  } catch (err) {
    if (err instanceof AuthError) throw err;
    throw new AuthError(`Invalid token provided: ${(err as Error).message}`);
  }
}

/**
 * An OIDC issuer: discovery at `{issuer}/.well-known/openid-configuration` gives the JWKS address;
 * keys are fetched (and refreshed on an unknown `kid`) by jose.
 */
export async function discoverOidc(issuer: string, audience: string, options: { timeoutMs?: number } = {}): Promise<TokenVerifier> {
  const base = issuer.endsWith('/') ? issuer : `${issuer}/`;
  const url = new URL('.well-known/openid-configuration', base);
  let meta: { issuer?: unknown; jwks_uri?: unknown };
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(options.timeoutMs ?? 10_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    meta = (await res.json()) as typeof meta;
  } catch (err) {
    throw new Error(`OIDC discovery at ${url} failed: ${(err as Error).message}`);
  }
  if (typeof meta.jwks_uri !== 'string') throw new Error(`OIDC discovery at ${url} gave no jwks_uri`);
  if (typeof meta.issuer !== 'string' || meta.issuer.replace(/\/$/, '') !== issuer.replace(/\/$/, '')) {
    throw new Error(`OIDC discovery at ${url} names issuer ${String(meta.issuer)}, not ${issuer}`);
  }
  const declared = meta.issuer;
  const jwks = createRemoteJWKSet(new URL(meta.jwks_uri), { timeoutDuration: options.timeoutMs ?? 10_000 });
  return { issuer: declared, verify: (token) => verifyWith(token, jwks, declared, audience) };
}

/**
 * The server's own token issuer: an ES256 key kept in the store (mode 0600). Its issuer and
 * audience are both `urn:enarx:drawbridge:local:<key thumbprint>`, so a token from one store is
 * worthless to another.
 */
export class LocalIssuer implements TokenVerifier {
  readonly issuer: string;
  readonly #privateKey: CryptoKey;
  readonly #publicKey: CryptoKey;
  readonly #kid: string;

  private constructor(issuer: string, kid: string, privateKey: CryptoKey, publicKey: CryptoKey) {
    this.issuer = issuer;
    this.#kid = kid;
    this.#privateKey = privateKey;
    this.#publicKey = publicKey;
  }

  static keyPath(storeDir: string): string {
    return join(storeDir, 'auth', 'token-signing-key.pem');
  }

  /** Loads the store's key, creating it on first use. */
  static async open(storeDir: string, options: { create?: boolean } = {}): Promise<LocalIssuer> {
    const path = LocalIssuer.keyPath(storeDir);
    let pem: string;
    try {
      pem = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || options.create === false) {
        throw new Error(`cannot read the token signing key ${path}: ${(err as Error).message}`);
      }
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      pem = await exportPKCS8(privateKey);
      await mkdir(join(storeDir, 'auth'), { recursive: true, mode: 0o700 });
      await writeFile(path, pem, { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
        pem = await readFile(path, 'utf8'); // another process made it first
      });
      await chmod(path, 0o600);
    }
    const privateKey = await importPKCS8(pem, 'ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    delete jwk.d;
    const kid = await calculateJwkThumbprint(jwk);
    const publicKey = (await importJWK({ ...jwk, alg: 'ES256' }, 'ES256')) as CryptoKey;
    return new LocalIssuer(`urn:enarx:drawbridge:local:${kid}`, kid, privateKey, publicKey);
  }

  async issue(options: { subject: string; scopes?: string[]; ttlSeconds?: number; now?: number }): Promise<string> {
    const now = Math.floor((options.now ?? Date.now()) / 1000);
    return new SignJWT({ scope: (options.scopes ?? ALL_SCOPES).join(' ') })
      .setProtectedHeader({ alg: 'ES256', kid: this.#kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(this.issuer)
      .setSubject(options.subject)
      .setIssuedAt(now)
      .setExpirationTime(now + (options.ttlSeconds ?? 3600))
      .sign(this.#privateKey);
  }

  verify(token: string): Promise<Principal> {
    return verifyWith(token, this.#publicKey, this.issuer, this.issuer);
  }
}

/** Picks the verifier by the token's (unverified) `iss`, then lets that verifier check everything. */
export class Authenticator {
  readonly #verifiers: TokenVerifier[];

  constructor(verifiers: TokenVerifier[]) {
    this.#verifiers = verifiers;
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    if (!authorization) throw new AuthError('Bearer token header missing');
    const m = /^Bearer\s+([A-Za-z0-9._~+/-]+=*)$/i.exec(authorization.trim());
    if (!m) throw new AuthError('Authorization header is not a Bearer token');
    const token = m[1] as string;
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      throw new AuthError('Invalid token provided: not a JWT');
    }
    const verifier = this.#verifiers.find((v) => v.issuer.replace(/\/$/, '') === String(iss).replace(/\/$/, ''));
    if (!verifier) throw new AuthError(`Invalid token provided: issuer ${String(iss).slice(0, 100)} is not trusted here`);
    return verifier.verify(token);
  }
}
