import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { buildTree, DrawbridgeClient, formatContentDigest, LocalIssuer } from '../../src/drawbridge/index.ts';
import { runEnarx, serveEnarx, spawnEnarx, type Served } from '../helpers/cli.ts';

interface Child {
  url: string;
  stderr: () => string;
  stop: Served<unknown>['stop'];
}

async function serve(store: string, extra: string[] = []): Promise<Child> {
  const served = await serveEnarx<{ url: string }>(['drawbridge', 'serve', '--addr', '127.0.0.1:0', '--store', store, '--json', ...extra], { timeoutMs: 15_000 });
  return { url: served.doc.url, stderr: served.stderr, stop: served.stop };
}

/** Kills the server outright, as a crash would. */
async function kill(child: Child): Promise<void> {
  await child.stop('SIGKILL');
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) n += e.isDirectory() ? await countFiles(join(dir, e.name)) : 1;
  return n;
}

describe('a Drawbridge killed mid-publish', () => {
  let dir: string;
  let store: string;
  let pkg: string;
  const children: Child[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'drawbridge-crash-'));
    store = join(dir, 'store');
    pkg = join(dir, 'pkg');
    await (await import('node:fs/promises')).mkdir(pkg);
    await writeFile(join(pkg, 'main.wasm'), randomBytes(8 * 1024 * 1024));
    await writeFile(join(pkg, 'Enarx.toml'), 'x = 1\n');
  });
  after(async () => {
    for (const c of children) await kill(c);
    await rm(dir, { recursive: true, force: true });
  });

  test('shows nothing partial after SIGKILL, keeps what it acknowledged, and resumes', async () => {
    const first = await serve(store);
    children.push(first);
    const ca = await readFile(join(store, 'tls', 'ca.crt'), 'utf8');
    const token = await (await LocalIssuer.open(store, { create: false })).issue({ subject: 'local|alice' });
    const client = new DrawbridgeClient({ url: first.url, ca, token });
    await client.putUser('alice', { subject: 'local|alice' });
    await client.putRepository('alice', 'app', { public: true });
    const done = { user: 'alice', repo: 'app', tag: '1.0.0' };
    const torn = { user: 'alice', repo: 'app', tag: '2.0.0' };
    const tree = await buildTree(pkg);
    // One tag fully published (acknowledged): it must survive the kill.
    await client.publish(done, tree);
    // Another: tag entry and root directory stored, then main.wasm cut off halfway.
    await client.putTag(torn, tree.root);
    const root = tree.nodes[0];
    await client.putNode(torn, [], root!.entry, root!.bytes!);
    const wasm = tree.nodes.find((n) => n.path.join('/') === 'main.wasm')!;
    const u = new URL(first.url);
    const req = request({
      hostname: u.hostname,
      port: u.port,
      method: 'PUT',
      path: '/api/v0.1.0/alice/app/_tag/2.0.0/tree/main.wasm',
      ca,
      agent: false,
      headers: { authorization: `Bearer ${token}`, 'content-type': wasm.entry.type, 'content-length': wasm.entry.length, 'content-digest': formatContentDigest(wasm.entry.digest) },
    });
    req.on('error', () => {});
    const bytes = await readFile(wasm.file!);
    req.write(bytes.subarray(0, bytes.length / 2));
    // Wait until the server has part of the body on disk, then kill it.
    const tmp = join(store, 'data', 'tmp');
    const deadline = Date.now() + 10_000;
    for (;;) {
      const parts = await readdir(tmp);
      if (parts.length > 0 && (await stat(join(tmp, parts[0]!)).catch(() => ({ size: 0 }))).size > 0) break;
      if (Date.now() > deadline) throw new Error('the upload never reached the server');
      await new Promise((r) => setTimeout(r, 20));
    }
    await kill(first);
    req.destroy();
    client.close();

    const second = await serve(store);
    children.push(second);
    const anonymous = new DrawbridgeClient({ url: second.url, ca });
    const owner = new DrawbridgeClient({ url: second.url, ca, token });
    try {
      assert.deepEqual(await anonymous.listTags('alice', 'app'), ['1.0.0']);
      assert.equal(await anonymous.getTag(torn), undefined);
      assert.equal(await anonymous.headNode(torn, ['main.wasm']), undefined);
      assert.equal((await owner.getTag(torn))?.pending, true);
      assert.equal(await owner.headNode(torn, ['main.wasm']), undefined);
      // The torn upload's temporary file is gone; the blobs are exactly those referenced:
      // the published tag's three nodes (main.wasm, Enarx.toml, the root, shared with 2.0.0).
      assert.deepEqual(await readdir(tmp), []);
      assert.equal(await countFiles(join(store, 'data', 'blobs')), 3);
      const fetched = join(dir, 'fetched');
      await anonymous.fetchTree(done, fetched);
      assert.deepEqual(await readFile(join(fetched, 'main.wasm')), bytes);

      const resumed = await owner.publish(torn, tree);
      assert.equal(resumed.skipped, 1);
      assert.deepEqual(await anonymous.listTags('alice', 'app'), ['1.0.0', '2.0.0']);
    } finally {
      anonymous.close();
      owner.close();
      await kill(second);
    }
  });
});

describe('enarx drawbridge (CLI)', () => {
  test('token: needs the store the server uses, and known scopes', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'drawbridge-cli-'));
    try {
      let r = await runEnarx(['drawbridge', 'token', 'alice', '--store', empty]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^enarx: no Drawbridge token key in .* \(start 'enarx drawbridge serve --store/);
      await LocalIssuer.open(empty);
      r = await runEnarx(['drawbridge', 'token', 'alice', '--store', empty, '--scope', 'root:everything']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /unknown scope 'root:everything'/);
      r = await runEnarx(['drawbridge', 'token', 'alice', '--store', empty, '--ttl', '5m', '--json', '--scope', 'read:drawbridge_tags']);
      assert.equal(r.code, 0, r.stderr);
      const doc = JSON.parse(r.stdout) as { token: string; scopes: string[]; subject: string };
      assert.deepEqual(doc.scopes, ['read:drawbridge_tags']);
      const claims = await (await LocalIssuer.open(empty)).verify(doc.token);
      assert.equal(claims.subject, 'alice');
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  test('serve: bad flags are usage errors; without TLS flags it makes a CA and says how to trust it', async () => {
    let r = await runEnarx(['drawbridge', 'serve', '--addr', 'nowhere']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--addr 'nowhere' is not HOST:PORT/);
    r = await runEnarx(['drawbridge', 'serve', '--cert', 'x.pem']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--cert and --key go together/);
    r = await runEnarx(['drawbridge', 'serve', '--oidc-issuer', 'http://127.0.0.1:1/']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--oidc-issuer and --oidc-audience go together/);
    const unreachable = await mkdtemp(join(tmpdir(), 'drawbridge-cli-'));
    r = await runEnarx(['drawbridge', 'serve', '--addr', '127.0.0.1:0', '--store', unreachable, '--oidc-issuer', 'http://127.0.0.1:1/', '--oidc-audience', 'x']);
    await rm(unreachable, { recursive: true, force: true });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^enarx: OIDC discovery at http:\/\/127\.0\.0\.1:1\/\.well-known\/openid-configuration failed: .* \(check --oidc-issuer/);
    const store = await mkdtemp(join(tmpdir(), 'drawbridge-cli-'));
    const proc = spawnEnarx(['drawbridge', 'serve', '--addr', '127.0.0.1:0', '--store', store], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr?.on('data', (c: Buffer) => (err += c));
    try {
      const deadline = Date.now() + 15_000;
      while (!err.includes('local CA') && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
      assert.match(err, /listening on https:\/\/127\.0\.0\.1:\d+/);
      assert.match(err, /ENARX_CA_BUNDLE=.*tls\/ca\.crt/);
      for (const key of ['tls/ca.key', 'tls/server.key', 'auth/token-signing-key.pem']) {
        assert.equal((await stat(join(store, key))).mode & 0o777, 0o600, key);
      }
      // A second server on the same store is refused.
      r = await runEnarx(['drawbridge', 'serve', '--addr', '127.0.0.1:0', '--store', store]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /in use by process/);
    } finally {
      proc.kill('SIGTERM');
      await once(proc, 'exit');
      await rm(store, { recursive: true, force: true });
    }
  });
});
