/**
 * The whole flow with real local servers: `enarx steward serve --trust-test-root`, `enarx
 * drawbridge serve --ca STEWARD_CA` (mutual TLS), signed packages published to public and private
 * repositories, and `enarx deploy` into a process Keep with software evidence, which attests
 * first, fetches over mutual TLS, verifies, obtains its workload certificate and only then runs.
 * A lying registry (a small proxy in front of the real one) and bad tags are refused before any
 * guest code runs (the guest's first line, "catpkg: started", never appears).
 */
import type { ChildProcess } from 'node:child_process';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { runEnarx, serveEnarx, spawnEnarx, stopAllServed } from '../helpers/cli.ts';
import { REPO_ROOT } from '../helpers/paths.ts';
import { buildTree, digestBytes, DrawbridgeClient, formatContentDigest, keyId, signTagEntry } from '../../src/drawbridge/index.ts';
import { deployPackage } from '../../src/keep/deploy.ts';
import { requestStewardIdentity } from '../../src/keep/steward.ts';
import { softwareSnpEvidence } from '../../src/keep/software-evidence.ts';
import type { WorkloadIdentity } from '../../src/pki/index.ts';

const CATPKG = join(REPO_ROOT, 'examples', 'catpkg.wasm');
const STARTED = /catpkg: started/;
const children: ChildProcess[] = [];

async function serve(args: string[]): Promise<Record<string, unknown>> {
  return (await serveEnarx(args)).doc;
}

/** A registry that lies: forwards to the real one, with `rewrite` choosing the upstream path and `tamper` the answer. */
async function lyingRegistry(upstream: string, ca: string, options: { rewrite?: (path: string) => string; tamper?: (path: string, body: Buffer) => Buffer | undefined }): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = options.rewrite ? options.rewrite(req.url!) : req.url!;
    const up = httpsRequest(`${upstream}${path}`, { method: req.method, ca, headers: { accept: req.headers.accept ?? '*/*' } }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', () => {
        let body: Buffer = Buffer.concat(chunks);
        const headers: Record<string, string> = {};
        for (const h of ['content-type', 'content-digest', 'drawbridge-tag-state']) if (answer.headers[h]) headers[h] = String(answer.headers[h]);
        const changed = options.tamper?.(req.url!, body);
        if (changed) {
          // A careful liar: the response's own digest matches the bytes it sends.
          body = changed;
          headers['content-digest'] = formatContentDigest(digestBytes(body));
        }
        res.writeHead(answer.statusCode ?? 502, { ...headers, 'content-length': String(body.length) });
        res.end(req.method === 'HEAD' ? undefined : body);
      });
    });
    up.on('error', () => res.writeHead(502).end());
    up.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('enarx deploy from a Drawbridge into a Keep that attests first', { timeout: 240_000 }, () => {
  let dir: string;
  let stewardUrl: string;
  let registry: string;
  let registryCa: string;
  let registryCaFile: string;
  let host: string;
  let trustedFile: string;
  let trusted: JWK;
  let kid: string;
  const servers: Server[] = [];
  const env = () => ({ XDG_CONFIG_HOME: join(dir, 'config'), ENARX_LOG: '' });
  const deploy = (args: string[]) => runEnarx(['deploy', ...args], { env: env(), timeoutMs: 120_000 });
  const attested = () => ['--steward', stewardUrl, '--software-evidence', join(dir, 'root')];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'enarx-deploy-registry-'));
    const r = await runEnarx(['platform', 'test-root', 'create', '--dir', join(dir, 'root')]);
    assert.equal(r.code, 0, r.stderr);
    const steward = await serve(['steward', 'serve', '--port', '0', '--data-dir', join(dir, 'ca'), '--san', 'localhost', '--san', 'IP:127.0.0.1', '--trust-test-root', join(dir, 'root', 'ark.pem'), '--json']);
    stewardUrl = String(steward.url);
    const stewardCaFile = String((steward.ca as { path: string }).path);
    const db = await serve(['drawbridge', 'serve', '--addr', '127.0.0.1:0', '--store', join(dir, 'db'), '--ca', stewardCaFile, '--json']);
    registry = String(db.url);
    host = new URL(registry).host;
    registryCaFile = String((db.tls as { localCa: string }).localCa);
    registryCa = await readFile(registryCaFile, 'utf8');
    const token = await runEnarx(['drawbridge', 'token', '--store', join(dir, 'db'), '--json', 'alice-sub']);
    assert.equal(token.code, 0, token.stderr);
    const client = new DrawbridgeClient({ url: registry, ca: registryCa, token: (JSON.parse(token.stdout) as { token: string }).token });

    // Two packages that differ only in their data file; keys: one trusted, one not.
    for (const [name, greeting] of [['one', 'version one\n'], ['two', 'version two\n']] as const) {
      const pkg = join(dir, `pkg-${name}`);
      await mkdir(join(pkg, 'data'), { recursive: true });
      await copyFile(CATPKG, join(pkg, 'main.wasm'));
      await writeFile(join(pkg, 'Enarx.toml'), 'args = ["data/greeting.txt"]\n');
      await writeFile(join(pkg, 'data', 'greeting.txt'), greeting);
    }
    const key = async () => exportJWK((await generateKeyPair('ES256', { extractable: true })).privateKey);
    const signer = await key();
    const stranger = await key();
    trusted = { kty: signer.kty, crv: signer.crv, x: signer.x, y: signer.y } as JWK;
    kid = await keyId(trusted);
    trustedFile = join(dir, 'publisher.pub.jwk');
    await writeFile(trustedFile, JSON.stringify(trusted));

    await client.putUser('alice', { subject: 'alice-sub' });
    await client.putRepository('alice', 'pub', { public: true });
    // Software test-root evidence makes the Steward mark certificates debug: the repository must allow them.
    await client.putRepository('alice', 'priv', { public: false, allow_debug_keeps: true });
    await client.putRepository('alice', 'strict', { public: false });
    const publish = async (repo: string, tag: string, pkg: string, jwk: JWK | null) => {
      const at = { user: 'alice', repo, tag };
      await client.publish(at, await buildTree(join(dir, pkg)), jwk ? { sign: (root) => signTagEntry(root, at, jwk) } : {});
    };
    await publish('pub', '1.0.0', 'pkg-one', signer);
    await publish('pub', '2.0.0', 'pkg-two', signer);
    await publish('pub', '3.0.0', 'pkg-one', null);
    await publish('pub', '4.0.0', 'pkg-one', stranger);
    await publish('priv', '1.0.0', 'pkg-one', signer);
    await publish('strict', '1.0.0', 'pkg-one', signer);
    // A TLS echo server whose listen file requires client certificates from a CA shipped in the package.
    const echo = join(dir, 'pkg-echo');
    await mkdir(echo, { recursive: true });
    await copyFile(join(REPO_ROOT, 'examples', 'echo-server.wasm'), join(echo, 'main.wasm'));
    await copyFile(stewardCaFile, join(echo, 'clients.pem'));
    await writeFile(
      join(echo, 'Enarx.toml'),
      '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n[[files]]\nname = "ingest"\nkind = "listen"\nprot = "tls"\naddr = "127.0.0.1"\nport = 0\nclient_ca = "clients.pem"\n',
    );
    await publish('pub', '5.0.0', 'pkg-echo', signer);
    // Packages with their own [limits], which the host enforces unless the deployer sets its own.
    for (const [name, toml] of [['sleep', 'args = ["3000"]\n[limits]\nwall-time = "1s"\n'], ['rss', 'args = ["3000"]\n[limits]\nrss = "1MiB"\n']] as const) {
      await mkdir(join(dir, `pkg-${name}`), { recursive: true });
      await copyFile(join(REPO_ROOT, 'examples', 'sleep.wasm'), join(dir, `pkg-${name}`, 'main.wasm'));
      await writeFile(join(dir, `pkg-${name}`, 'Enarx.toml'), toml);
    }
    await publish('pub', '6.0.0', 'pkg-sleep', signer);
    await publish('pub', '7.0.0', 'pkg-rss', signer);
    client.close();
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await stopAllServed();
    for (const s of servers) s.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('public repository: attest, fetch over mutual TLS, verify, workload certificate, run (--json)', async () => {
    const r = await deploy(['--json', ...attested(), '--drawbridge-ca', registryCaFile, '--trust-key', trustedFile, `${host}/alice/pub:1.0.0`]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(doc.kind, 'registry');
    assert.equal(doc.slug, `${host}/alice/pub:1.0.0`);
    assert.equal(doc.signer, kid);
    assert.equal(doc.digest, `sha-384:${createHash('sha384').update(await readFile(CATPKG)).digest('hex')}`);
    assert.equal(doc.exit, 0);
    assert.equal(doc.stdout, 'catpkg: started\nversion one\ncatpkg: /package is read-only (Read-only file system)\n');
    // The order, inside the Keep.
    const steps = ['attesting for a fetch certificate', 'the Steward issued the fetch certificate', 'fetching', 'tag signature verified', 'verified /main.wasm', 'attesting for the workload certificate', 'the Steward certified workload'];
    let at = -1;
    for (const step of steps) {
      const i = r.stderr.indexOf(`deploy: ${step}`);
      assert.ok(i > at, `'${step}' comes in order:\n${r.stderr}`);
      at = i;
    }
  });

  test('private repository: the Drawbridge lets the Keep read by its Steward certificate, and only with it', async () => {
    const ok = await deploy([...attested(), '--drawbridge-ca', registryCaFile, '--trust-key', trustedFile, `${host}/alice/priv:1.0.0`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^catpkg: started\nversion one\n/);
    const anonymous = await deploy(['--drawbridge-ca', registryCaFile, '--trust-key', trustedFile, `${host}/alice/priv:1.0.0`]);
    assert.equal(anonymous.code, 1, anonymous.stderr);
    assert.match(anonymous.stderr, /HTTP 401.*add --steward URL/);
    assert.doesNotMatch(anonymous.stdout, STARTED);
  });

  test('a private repository that does not allow debug Keeps refuses a test-root Keep (403), saying why', async () => {
    const r = await deploy([...attested(), '--drawbridge-ca', registryCaFile, '--trust-key', trustedFile, `${host}/alice/strict:1.0.0`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /marked debug.*allow_debug_keeps.*HTTP 403.*--allow-debug-keeps/);
    assert.doesNotMatch(r.stdout, STARTED);
  });

  test('a local package directory with --steward attests before it runs', async () => {
    const r = await runEnarx(['deploy', ...attested(), join(dir, 'pkg-one')], { env: { ...env(), ENARX_LOG: 'info' }, timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /the Steward at \S+ certified this Keep/);
    assert.equal(r.stdout, 'catpkg: started\nversion one\ncatpkg: /package is read-only (Read-only file system)\n');
  });

  test('the workload certificate names the digest, the slug and the signer key; the fetch certificate names no workload', async () => {
    const stage = await mkdtemp(join(dir, 'stage-'));
    const evidence = await softwareSnpEvidence(join(dir, 'root'));
    const asked: (WorkloadIdentity | undefined)[] = [];
    const certificates: X509Certificate[] = [];
    const deployed = await deployPackage(
      { origin: registry, user: 'alice', repo: 'priv', tag: '1.0.0', ca: [registryCa], trustedKeys: [JSON.stringify(trusted)], allowUnsigned: false, stage },
      {
        dial: (h, p) => new Promise((resolve, reject) => { const s = netConnect(p, h, () => resolve(s)); s.once('error', reject); }),
        log: () => {},
        certify: async (workload) => {
          asked.push(workload);
          const identity = await requestStewardIdentity({ steward: stewardUrl, evidence, ...(workload ? { workload } : {}) });
          certificates.push(new X509Certificate(identity.certificateChain[0]!));
          return identity;
        },
      },
    );
    assert.equal(asked.length, 2);
    assert.equal(asked[0], undefined);
    const workload = asked[1]!;
    const wasm = await readFile(CATPKG);
    assert.deepEqual(Buffer.from(workload.digest.value), createHash('sha384').update(wasm).digest());
    assert.equal(workload.package?.slug, `${host}/alice/priv:1.0.0`);
    assert.deepEqual(Buffer.from(workload.package!.signer), createPublicKey({ key: trusted as never, format: 'jwk' }).export({ type: 'spki', format: 'der' }));
    assert.doesNotMatch(certificates[0]!.subjectAltName ?? '', /urn:enarx:workload/);
    assert.match(certificates[1]!.subjectAltName ?? '', new RegExp(`urn:enarx:workload:sha-384:${createHash('sha384').update(wasm).digest('hex')}`));
    assert.match(certificates[1]!.subjectAltName ?? '', new RegExp(`urn:enarx:package:${host.replace(/\./g, '\\.')}/alice/priv:1\\.0\\.0`));
    assert.equal(deployed.signer, kid);
    assert.deepEqual((await readdir(stage)).sort(), ['Enarx.toml', 'data', 'main.wasm']);
    assert.equal(await readFile(join(stage, 'data', 'greeting.txt'), 'utf8'), 'version one\n');
  });

  test("a deployed TLS server: its listen file is bound through the host, it serves the workload certificate, mutual TLS with the package's CA", async () => {
    const keep = spawnEnarx(['deploy', ...attested(), '--drawbridge-ca', registryCaFile, '--trust-key', trustedFile, `${host}/alice/pub:5.0.0`], {
      env: { ...env(), ENARX_LOG: 'info' },
    });
    children.push(keep);
    let err = '';
    keep.stderr!.on('data', (c: Buffer) => (err += c));
    const exited = new Promise((r) => keep.on('close', r));
    let port: number | undefined;
    let done = false;
    void exited.then(() => (done = true));
    while (!done && port === undefined) {
      await new Promise((r) => setTimeout(r, 50));
      const m = /listen file 'ingest' is bound to \S+ port (\d+)/.exec(err);
      if (m && /the Steward certified workload/.test(err)) port = Number(m[1]);
    }
    assert.ok(port, `no listening port:\n${err}`);
    const ca = await readFile(join(dir, 'ca', 'ca.crt'), 'utf8');
    const client = await requestStewardIdentity({ steward: stewardUrl, evidence: await softwareSnpEvidence(join(dir, 'root')) });
    const { connect } = await import('node:tls');
    const talk = (identity?: { cert: string; key: string }) => new Promise<{ echoed: string; peer: X509Certificate }>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...identity }, () => socket.write('over mutual TLS\n'));
      socket.on('end', () => reject(new Error('closed without an answer')));
      let got = '';
      socket.on('data', (d: Buffer) => {
        got += d;
        if (got.includes('\n')) {
          const peerCert = new X509Certificate(socket.getPeerX509Certificate()!.raw);
          socket.end();
          resolve({ echoed: got, peer: peerCert });
        }
      });
      socket.on('error', reject);
    });
    const { echoed, peer } = await talk({ cert: client.certificateChain.join(''), key: client.privateKey });
    assert.equal(echoed, 'over mutual TLS\n');
    // The package's client_ca is in force: a client without a certificate from it is turned away.
    await assert.rejects(talk(), /certificate required|ECONNRESET|closed/i);
    const digest = createHash('sha384').update(await readFile(join(REPO_ROOT, 'examples', 'echo-server.wasm'))).digest('hex');
    assert.match(peer.subjectAltName ?? '', new RegExp(`urn:enarx:workload:sha-384:${digest}`));
    assert.match(peer.subjectAltName ?? '', /urn:enarx:package:[^,]+\/alice\/pub:5\.0\.0/);
    keep.kill('SIGTERM');
    await exited;
  });

  test("the package's own [limits] wall-time and rss stop it, from the host; the deployer's flags win over them", async () => {
    const common = ['--drawbridge-ca', registryCaFile, '--trust-key', trustedFile];
    const [wall, rss, overridden] = await Promise.all([
      deploy([...common, `${host}/alice/pub:6.0.0`]),
      deploy([...common, `${host}/alice/pub:7.0.0`]),
      deploy([...common, '--wall-time-limit', '60s', `${host}/alice/pub:6.0.0`]),
    ]);
    assert.equal(wall.code, 137, wall.stderr);
    assert.equal(wall.stdout, '', 'stopped before it woke up');
    assert.match(wall.stderr, /^enarx: the Keep went over its wall-time limit \(1s, from the package's Enarx\.toml\)$/m);
    assert.equal(rss.code, 137, rss.stderr);
    assert.match(rss.stderr, /^enarx: the Keep went over its rss limit \(.* > 1\.0 MiB, from the package's Enarx\.toml\)$/m);
    assert.equal(overridden.code, 0, overridden.stderr);
    assert.match(overridden.stdout, /^slept \d+ ms\n$/);
  });

  test('an unsigned tag is refused, and runs only with --allow-unsigned', async () => {
    const refused = await deploy(['--drawbridge-ca', registryCaFile, '--trust-key', trustedFile, `${host}/alice/pub:3.0.0`]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /alice\/pub:3\.0\.0 is not signed.*--allow-unsigned/);
    assert.doesNotMatch(refused.stdout, STARTED);
    const allowed = await deploy(['--allow-unsigned', '--drawbridge-ca', registryCaFile, `${host}/alice/pub:3.0.0`]);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stderr, /the tag is UNSIGNED \(allowed explicitly\)/);
    assert.match(allowed.stdout, STARTED);
  });

  test('a tag signed by an untrusted key is refused', async () => {
    const r = await deploy(['--drawbridge-ca', registryCaFile, '--trust-key', trustedFile, `${host}/alice/pub:4.0.0`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /signed by key \S+, which is not trusted.*enarx key trust/);
    assert.doesNotMatch(r.stdout, STARTED);
    // Trusted through trusted-keys.json by kid works the same as the file.
    const trust = await runEnarx(['key', 'trust', trustedFile], { env: env() });
    assert.equal(trust.code, 0, trust.stderr);
    const byKid = await deploy(['--drawbridge-ca', registryCaFile, '--trust-key', kid, `${host}/alice/pub:1.0.0`]);
    assert.equal(byKid.code, 0, byKid.stderr);
    const unknownKid = await deploy(['--drawbridge-ca', registryCaFile, '--trust-key', 'no-such-kid', `${host}/alice/pub:1.0.0`]);
    assert.equal(unknownKid.code, 1);
    assert.match(unknownKid.stderr, /no such file, and no key with that kid/);
  });

  test("a registry that answers with a tampered blob is refused", async () => {
    const liar = await lyingRegistry(registry, registryCa, {
      tamper: (path, body) => {
        if (!path.endsWith('/_tag/1.0.0/tree/main.wasm')) return undefined;
        const copy = Buffer.from(body);
        copy[copy.length - 1] = copy[copy.length - 1]! ^ 1;
        return copy;
      },
    });
    servers.push(liar.server);
    const r = await deploy(['--trust-key', trustedFile, `${liar.url}/api/v0.1.0/alice/pub/_tag/1.0.0`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /refused .*\/main\.wasm: the server's sha-\d+ digest differs from its entry/);
    assert.doesNotMatch(r.stdout, STARTED);
  });

  test("a validly signed tag served under another tag's name (a downgrade) is refused", async () => {
    const liar = await lyingRegistry(registry, registryCa, { rewrite: (path) => path.replace('/_tag/2.0.0', '/_tag/1.0.0') });
    servers.push(liar.server);
    const r = await deploy(['--trust-key', trustedFile, `${liar.url}/api/v0.1.0/alice/pub/_tag/2.0.0`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the signature is for alice\/pub:1\.0\.0, not alice\/pub:2\.0\.0/);
    assert.doesNotMatch(r.stdout, STARTED);
  });

  test("a registry that answers with another package's tree is refused", async () => {
    const liar = await lyingRegistry(registry, registryCa, { rewrite: (path) => path.replace('/_tag/1.0.0/tree', '/_tag/2.0.0/tree') });
    servers.push(liar.server);
    const r = await deploy(['--trust-key', trustedFile, `${liar.url}/api/v0.1.0/alice/pub/_tag/1.0.0`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /refused .*digest differs from its entry/);
    assert.doesNotMatch(r.stdout, STARTED);
  });

  test('an unreachable registry or a wrong CA: one line with what to do', async () => {
    const wrongCa = await deploy(['--trust-key', trustedFile, '--drawbridge-ca', join(dir, 'ca', 'ca.crt'), `${host}/alice/pub:1.0.0`]);
    assert.equal(wrongCa.code, 1);
    assert.match(wrongCa.stderr, /TLS to the registry .* failed.*--drawbridge-ca/);
    assert.equal(wrongCa.stderr.trim().split('\n').filter((l) => l.startsWith('enarx:')).length, 1);
    assert.doesNotMatch(wrongCa.stdout, STARTED);
  });
});
