import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENARX_SCOPES, OidcError, oidcLogin, parseIssuer } from '../../src/cli/oidc.ts';
import { runEnarx } from '../helpers/cli.ts';

type Handler = (path: string, form: URLSearchParams, res: ServerResponse) => void;

interface Provider {
  url: string;
  requests: { path: string; form: URLSearchParams }[];
  handle: Handler;
  close(): Promise<void>;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function startProvider(): Promise<Provider> {
  const provider: Provider = {
    url: '',
    requests: [],
    handle: (_p, _f, res) => json(res, 404, {}),
    close: () => new Promise((r) => server.close(() => r())),
  };
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      provider.requests.push({ path, form });
      provider.handle(path, form, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  provider.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return provider;
}

/** A provider that answers `answers` in turn at the token endpoint, after a discovery document. */
function deviceProvider(p: Provider, answers: [number, unknown][], device: Record<string, unknown> = {}): void {
  let i = 0;
  p.handle = (path, _form, res) => {
    if (path === '/.well-known/openid-configuration') {
      return json(res, 200, { issuer: p.url, device_authorization_endpoint: `${p.url}device`, token_endpoint: `${p.url}token` });
    }
    if (path === '/device') {
      return json(res, 200, { device_code: 'dev-123', user_code: 'ABCD-EFGH', verification_uri: `${p.url}activate`, expires_in: 300, interval: 0, ...device });
    }
    if (path === '/token') {
      const [status, body] = answers[Math.min(i++, answers.length - 1)]!;
      return json(res, status, body);
    }
    json(res, 404, {});
  };
}

const TOKEN = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZS1zdWIifQ.';

describe('OAuth login (RFC 8628 device flow, client credentials)', () => {
  let p: Provider;
  before(async () => {
    p = await startProvider();
  });
  after(() => p.close());

  const base = () => ({ domain: p.url, clientId: 'enarx-cli', audience: 'https://registry.example/', flow: 'device' as const });

  test('polls through authorization_pending and returns the token; asks for Enarx scopes and audience', async () => {
    p.requests = [];
    deviceProvider(p, [
      [400, { error: 'authorization_pending' }],
      [400, { error: 'authorization_pending' }],
      [200, { access_token: TOKEN, token_type: 'Bearer', expires_in: 3600 }],
    ]);
    const prompts: unknown[] = [];
    const token = await oidcLogin({ ...base(), onPrompt: (x) => prompts.push(x) });
    assert.deepEqual(token, { accessToken: TOKEN, tokenType: 'Bearer', expiresInSeconds: 3600 });
    assert.deepEqual(prompts, [{ verificationUri: `${p.url}activate`, verificationUriComplete: undefined, userCode: 'ABCD-EFGH', expiresInSeconds: 300 }]);
    const device = p.requests.find((r) => r.path === '/device')!;
    assert.equal(device.form.get('client_id'), 'enarx-cli');
    assert.equal(device.form.get('audience'), 'https://registry.example/');
    assert.equal(device.form.get('scope'), ENARX_SCOPES);
    const polls = p.requests.filter((r) => r.path === '/token');
    assert.equal(polls.length, 3);
    for (const poll of polls) {
      assert.equal(poll.form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:device_code');
      assert.equal(poll.form.get('device_code'), 'dev-123');
    }
  });

  test('slow_down adds five seconds to the interval for the rest of the login', async () => {
    deviceProvider(
      p,
      [
        [400, { error: 'slow_down' }],
        [400, { error: 'authorization_pending' }],
        [400, { error: 'slow_down' }],
        [200, { access_token: TOKEN }],
      ],
      { interval: 2 },
    );
    const waits: number[] = [];
    await oidcLogin({ ...base(), sleep: async (ms) => void waits.push(ms) });
    assert.deepEqual(waits, [2000, 7000, 7000, 12000]);
  });

  test('a denied or expired login ends with its reason', async () => {
    deviceProvider(p, [[400, { error: 'access_denied' }]]);
    await assert.rejects(oidcLogin(base()), (e: OidcError) => e.code === 'access_denied' && /denied/.test(e.message));
    deviceProvider(p, [[400, { error: 'expired_token' }]]);
    await assert.rejects(oidcLogin(base()), (e: OidcError) => e.code === 'expired_token');
    deviceProvider(p, [[400, { error: 'invalid_client', error_description: 'unknown client' }]]);
    await assert.rejects(oidcLogin(base()), /invalid_client: unknown client/);
  });

  test('stops polling once the code has expired, without asking again', async () => {
    deviceProvider(p, [[400, { error: 'authorization_pending' }]], { expires_in: 10, interval: 4 });
    let clock = 0;
    p.requests = [];
    await assert.rejects(
      oidcLogin({ ...base(), now: () => clock, sleep: async (ms) => void (clock += ms) }),
      (e: OidcError) => e.code === 'expired_token',
    );
    assert.equal(p.requests.filter((r) => r.path === '/token').length, 2, 'polled at 4 s and 8 s, not at 12 s');
  });

  test('bad answers from the provider are one clear error each', async () => {
    const cases: [string, [number, unknown], RegExp][] = [
      ['no access_token', [200, { token_type: 'Bearer' }], /no access_token/],
      ['empty access_token', [200, { access_token: '' }], /no access_token/],
      ['not JSON', [500, undefined], /status 500/],
    ];
    for (const [name, answer, expected] of cases) {
      deviceProvider(p, [answer]);
      await assert.rejects(oidcLogin(base()), expected, name);
    }
    p.handle = (path, _f, res) => {
      if (path === '/.well-known/openid-configuration') return json(res, 200, { device_authorization_endpoint: `${p.url}device` });
      if (path === '/device') return json(res, 200, { user_code: 'X' });
      json(res, 404, {});
    };
    await assert.rejects(oidcLogin(base()), /lacks device_code/);
    p.handle = (path, _f, res) => {
      if (path === '/.well-known/openid-configuration') return json(res, 200, { token_endpoint: 'http://evil.example/token' });
      json(res, 404, {});
    };
    await assert.rejects(oidcLogin(base()), /unusable token_endpoint/);
    p.handle = (_path, _f, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"x":"${'a'.repeat(100_000)}"}`);
    };
    await assert.rejects(oidcLogin(base()), /larger than/);
  });

  test("without discovery, Enarx's Auth0 paths are used", async () => {
    p.requests = [];
    p.handle = (path, _f, res) => {
      if (path === '/oauth/device/code') return json(res, 200, { device_code: 'd', user_code: 'u', verification_uri: 'https://x/', interval: 0 });
      if (path === '/oauth/token') return json(res, 200, { access_token: TOKEN });
      json(res, 404, {});
    };
    assert.equal((await oidcLogin(base())).accessToken, TOKEN);
    assert.deepEqual(
      p.requests.map((r) => r.path),
      ['/.well-known/openid-configuration', '/oauth/device/code', '/oauth/token'],
    );
  });

  test('client credentials send the secret and never poll', async () => {
    p.requests = [];
    deviceProvider(p, [[200, { access_token: TOKEN }]]);
    await assert.rejects(oidcLogin({ ...base(), flow: 'client' }), /client secret/);
    const token = await oidcLogin({ ...base(), flow: 'client', clientSecret: 's3cret' });
    assert.equal(token.accessToken, TOKEN);
    const sent = p.requests.find((r) => r.path === '/token')!;
    assert.equal(sent.form.get('grant_type'), 'client_credentials');
    assert.equal(sent.form.get('client_secret'), 's3cret');
    assert.ok(!p.requests.some((r) => r.path === '/device'));
  });

  test('plain http is refused except on loopback', () => {
    assert.throws(() => parseIssuer('http://auth.example.com/'), /https/);
    assert.throws(() => parseIssuer('ftp://auth.example.com/'), /https/);
    assert.equal(parseIssuer('auth.example.com').href, 'https://auth.example.com/');
    assert.equal(parseIssuer('http://localhost:8080/tenant').href, 'http://localhost:8080/tenant/');
  });

  test('enarx user login --oidc-domain stores the token from the device flow, prompts on stderr, --json on stdout', async () => {
    deviceProvider(p, [
      [400, { error: 'authorization_pending' }],
      [200, { access_token: TOKEN }],
    ]);
    const home = await mkdtemp(join(tmpdir(), 'enarx-oidc-'));
    const env = { XDG_CONFIG_HOME: home, ENARX_INSECURE_AUTH_TOKEN: '' };
    const r = await runEnarx(['user', 'login', 'registry.example', '--oidc-domain', p.url, '--oidc-client-id', 'enarx-cli', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /open http:\/\/127\.0\.0\.1:\d+\/activate\nand confirm the code ABCD-EFGH/);
    const out = JSON.parse(r.stdout) as { origin: string; subject: string; stored: string };
    assert.deepEqual({ origin: out.origin, subject: out.subject }, { origin: 'https://registry.example', subject: 'alice-sub' });
    assert.equal((await stat(out.stored)).mode & 0o777, 0o600);
    assert.equal(JSON.parse(await readFile(out.stored, 'utf8'))['https://registry.example'], TOKEN);

    deviceProvider(p, [[400, { error: 'access_denied' }]]);
    const denied = await runEnarx(['user', 'login', 'registry.example', '--oidc-domain', p.url, '--oidc-client-id', 'enarx-cli'], { env });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /^enarx: login failed: the login was denied at the provider \(run enarx user login again\)$/m);

    const usage = await runEnarx(['user', 'login', 'registry.example'], { env: { ...env, ENARX_OIDC_DOMAIN: '' } });
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /needs --oidc-domain/);
    const flow = await runEnarx(['user', 'login', 'registry.example', '--oidc-domain', p.url, '--oidc-client-id', 'x', '--oidc-flow', 'magic'], { env });
    assert.equal(flow.code, 2);
    assert.match(flow.stderr, /--oidc-flow must be device or client/);
  });
});
