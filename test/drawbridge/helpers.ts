import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import {
  Authenticator,
  createCertificateAuthority,
  discoverOidc,
  DrawbridgeClient,
  ensureLocalTls,
  issueCertificate,
  type Issuer,
  type Limits,
  LocalIssuer,
  type RunningDrawbridge,
  startDrawbridge,
  Store,
  type StoreOptions,
  type TokenVerifier,
} from '../../src/drawbridge/index.ts';

export const AUDIENCE = 'https://drawbridge.test/';

/** A stand-in OIDC provider on 127.0.0.1:0: discovery document, JWKS, RS256 tokens. */
export class TestOidcIssuer {
  readonly url: string;
  readonly #server: Server;
  readonly #key: CryptoKey;

  private constructor(url: string, server: Server, key: CryptoKey) {
    this.url = url;
    this.#server = server;
    this.#key = key;
  }

  static async start(): Promise<TestOidcIssuer> {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
    let base = '';
    const server = createServer((req, res) => {
      if (req.url === '/.well-known/openid-configuration') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ issuer: base, jwks_uri: `${base}jwks`, authorization_endpoint: `${base}authorize` }));
      } else if (req.url === '/jwks') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: [jwk] }));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    return new TestOidcIssuer(base, server, privateKey);
  }

  token(claims: { sub?: string; scope?: string; aud?: string; iss?: string; exp?: number; iat?: number }, key?: CryptoKey): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const payload: Record<string, unknown> = { scope: claims.scope ?? 'manage:drawbridge_users manage:drawbridge_repositories manage:drawbridge_tags' };
    if (claims.scope === '') delete payload.scope;
    return new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', kid: 'test-key' })
      .setIssuer(claims.iss ?? this.url)
      .setAudience(claims.aud ?? AUDIENCE)
      .setSubject(claims.sub ?? 'auth0|alice')
      .setIssuedAt(claims.iat ?? now)
      .setExpirationTime(claims.exp ?? now + 600)
      .sign(key ?? this.#key);
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.#server.close(() => r());
      this.#server.closeAllConnections();
    });
  }
}

export interface Registry {
  dir: string;
  url: string;
  serverCa: string;
  store: Store;
  running: RunningDrawbridge;
  local: LocalIssuer;
  oidc: TestOidcIssuer;
  steward: Issuer & { certPem: string };
  client(options?: { token?: string; cert?: { certPem: string; keyPem: string } }): DrawbridgeClient;
  close(): Promise<void>;
}

/** A Drawbridge on 127.0.0.1:0 with a fresh store, a local issuer, a test OIDC issuer and a Steward-like client CA. */
export async function startRegistry(options: { limits?: Partial<Limits>; store?: StoreOptions } = {}): Promise<Registry> {
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-test-'));
  const store = Store.open(join(dir, 'store'), options.store);
  const local = await LocalIssuer.open(dir);
  const oidc = await TestOidcIssuer.start();
  const verifiers: TokenVerifier[] = [local, await discoverOidc(oidc.url, AUDIENCE)];
  const tls = await ensureLocalTls(dir);
  const steward = await createCertificateAuthority('Test Steward CA');
  const running = await startDrawbridge({
    store,
    authenticator: new Authenticator(verifiers),
    tls: { cert: tls.certPem, key: tls.keyPem, clientCa: steward.certPem },
    limits: options.limits,
  });
  const serverCa = await readFile(tls.caPath, 'utf8');
  const clients: DrawbridgeClient[] = [];
  return {
    dir,
    url: running.url,
    serverCa,
    store,
    running,
    local,
    oidc,
    steward,
    client(o = {}) {
      const c = new DrawbridgeClient({ url: running.url, ca: serverCa, token: o.token, cert: o.cert?.certPem, key: o.cert?.keyPem });
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.close();
      await running.close();
      await oidc.close();
      store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function keepCertificate(ca: Issuer, name = 'keep'): ReturnType<typeof issueCertificate> {
  return issueCertificate(ca, { commonName: name, usage: 'client', days: 1 });
}
