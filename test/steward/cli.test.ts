import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { request as httpsRequest } from 'node:https';
import { generateKeyPair, issueCertificate } from '../../src/attestation/testing/pki.ts';
import { parseCertificates, toPem } from '../../src/attestation/x509.ts';
import { readCertificateOrigin } from '../../src/pki/index.ts';
import { encodeSubjectAltNames } from '../../src/steward/certificate.ts';
import { runEnarx, serveEnarx } from '../helpers/cli.ts';
import { testdata } from '../helpers/paths.ts';
import { kvmCsr, productionCa, snpCsr, snpTestChain } from './helpers.ts';

/** POSTs a CSR over HTTPS, trusting only `ca`. */
function httpsPost(url: string, body: Uint8Array, ca: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', ca, headers: { 'content-type': 'application/pkcs10' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'enarx-steward-'));
  dirs.push(d);
  return d;
}

interface Started {
  json: { url: string; mode: string; ca: { path: string; sha256: string; pem: string } };
  stderr: () => string;
  /** Sends SIGTERM and resolves with the exit status, or 'signal SIG…' when a signal ended it. */
  stop: () => Promise<number | string>;
}

/** Starts `enarx steward serve ARGS --port 0 --json` and waits for its JSON document. */
async function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const served = await serveEnarx<Started['json']>(['steward', 'serve', '--port', '0', '--json', ...args], { env });
  return { json: served.doc, stderr: served.stderr, stop: () => served.stop() };
}

describe('enarx steward serve', () => {
  it('with no arguments: creates a debug CA (key 0600), says how to trust it, and reuses it next time', async () => {
    const home = tempDir();
    const first = await serve([], { XDG_DATA_HOME: home });
    try {
      assert.equal(first.json.mode, 'debug');
      const keyPath = join(home, 'enarx', 'steward', 'ca.key');
      assert.equal(statSync(keyPath).mode & 0o777, 0o600);
      assert.equal(first.json.ca.path, join(home, 'enarx', 'steward', 'ca.crt'));
      assert.equal((await fetch(first.json.url)).status, 200);
      const res = await fetch(first.json.url, { method: 'POST', headers: { 'content-type': 'application/pkcs10' }, body: Buffer.from(await kvmCsr()) });
      assert.equal(res.status, 200);
    } finally {
      assert.equal(await first.stop(), 0);
    }
    // stderr and stdout are separate pipes: read the banner once the process has ended
    assert.match(first.stderr(), /DEBUG MODE/);
    assert.match(first.stderr(), /curl --cacert .*ca\.crt/);
    const second = await serve([], { XDG_DATA_HOME: home });
    try {
      assert.equal(second.json.ca.sha256, first.json.ca.sha256, 'the same CA is reused');
    } finally {
      await second.stop();
    }
  });

  it('production mode from --key/--crt, with a policy, SANs and a lifetime', async () => {
    const dir = tempDir();
    const ca = await productionCa();
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', ca.key));
    writeFileSync(join(dir, 'ca.key'), toPem('PRIVATE KEY', pkcs8));
    writeFileSync(join(dir, 'chain.pem'), ca.chain.map((c) => toPem('CERTIFICATE', c)).join(''));
    const started = await serve(['--key', join(dir, 'ca.key'), '--crt', join(dir, 'chain.pem'), '--config', testdata('enarx-steward', 'policies', 'steward.toml'), '--san', 'keep.example.com', '--lifetime', '1h']);
    try {
      assert.equal(started.json.mode, 'production');
      const res = await fetch(started.json.url, { method: 'POST', headers: { 'content-type': 'application/pkcs10' }, body: Buffer.from(await kvmCsr()) });
      assert.equal(res.status, 400);
      assert.equal((await res.json()).step, 'policy');
    } finally {
      await started.stop();
    }
    assert.doesNotMatch(started.stderr(), /DEBUG/);
  });

  it('HTTPS with --tls-cert/--tls-key, and --trust-test-root: software-root SNP evidence accepted and marked', async () => {
    const dir = tempDir();
    const ca = await productionCa();
    writeFileSync(join(dir, 'ca.key'), toPem('PRIVATE KEY', new Uint8Array(await crypto.subtle.exportKey('pkcs8', ca.key))));
    writeFileSync(join(dir, 'chain.pem'), ca.chain.map((c) => toPem('CERTIFICATE', c)).join(''));
    // a TLS server certificate for 127.0.0.1 from a throwaway root
    const tlsRoot = await generateKeyPair('ec-p256');
    const now = new Date();
    const root = await issueCertificate({ subject: [['2.5.4.3', 'tls root']], subjectKey: tlsRoot, notBefore: now, notAfter: new Date(+now + 3_600_000), ca: {} });
    const tlsKey = await generateKeyPair('ec-p256');
    const server = await issueCertificate({
      subject: [['2.5.4.3', 'steward']],
      subjectKey: tlsKey,
      issuer: { certificate: root, key: tlsRoot },
      notBefore: now,
      notAfter: new Date(+now + 3_600_000),
      extensions: [{ oid: '2.5.29.17', value: encodeSubjectAltNames([{ type: 'ip', value: '127.0.0.1' }]) }],
    });
    writeFileSync(join(dir, 'tls.pem'), toPem('CERTIFICATE', server.der));
    writeFileSync(join(dir, 'tls.key'), toPem('PRIVATE KEY', new Uint8Array(await crypto.subtle.exportKey('pkcs8', tlsKey.privateKey))));
    const chain = await snpTestChain();
    writeFileSync(join(dir, 'test-ark.pem'), [chain.ark, chain.ask].map((c) => toPem('CERTIFICATE', c.der)).join(''));

    const base = ['--key', join(dir, 'ca.key'), '--crt', join(dir, 'chain.pem'), '--tls-cert', join(dir, 'tls.pem'), '--tls-key', join(dir, 'tls.key')];
    const csr = (await snpCsr({ identity: { digest: { algorithm: 'sha-256', value: new Uint8Array(32).fill(9) } } })).der;
    const post = (url: string) => httpsPost(url, csr, toPem('CERTIFICATE', root.der));

    const plain = await serve(base);
    try {
      assert.match(plain.json.url, /^https:/);
      const refused = await post(plain.json.url);
      assert.equal(refused.status, 400);
      assert.equal(JSON.parse(refused.body.toString()).step, 'chain', 'an untrusted test root is refused');
    } finally {
      await plain.stop();
    }
    const trusting = await serve([...base, '--trust-test-root', join(dir, 'test-ark.pem')]);
    try {
      const ok = await post(trusting.json.url);
      assert.equal(ok.status, 200, ok.body.toString());
      const leaf = parseCertificates(new Uint8Array(ok.body)).at(-1)!;
      const origin = readCertificateOrigin(leaf.der)!;
      assert.equal(origin.testRoot, true);
      assert.equal(origin.trustAnchor, 'test:test-ark');
      assert.equal(origin.identity?.digest.value[0], 9);
    } finally {
      await trusting.stop();
    }
    assert.match(trusting.stderr(), /trusting local test roots test:test-ark/);
  });

  it('bad flags exit 2; unusable files exit 1 with one line that says what to do', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'bad.toml'), '[sgx]\nsigner = ["00"]\n');
    const lone = tempDir();
    writeFileSync(join(lone, 'ca.key'), readFileSync(testdata('enarx-steward', 'ca', 'ca.key')));
    const overlapPolicy = testdata('enarx-steward', 'policies', 'derived', 'sgx-hash-and-blacklist-overlap.toml');
    writeFileSync(join(dir, 'not-a-root.pem'), 'no certificate here');
    const [lifetime, half, san, missing, policy, overlap, orphan, workers, root, noRoot] = await Promise.all([
      runEnarx(['steward', 'serve', '--lifetime', '5 weeks']),
      runEnarx(['steward', 'serve', '--key', 'x.pem']),
      runEnarx(['steward', 'serve', '--san', 'not a name']),
      runEnarx(['steward', 'serve', '--key', '/nonexistent/k.pem', '--crt', '/nonexistent/c.pem']),
      runEnarx(['steward', 'serve', '--config', join(dir, 'bad.toml'), '--data-dir', dir]),
      runEnarx(['steward', 'serve', '--config', overlapPolicy, '--data-dir', dir]),
      runEnarx(['steward', 'serve', '--data-dir', lone]),
      runEnarx(['steward', 'serve', '--workers', '0']),
      runEnarx(['steward', 'serve', '--data-dir', tempDir(), '--trust-test-root', join(dir, 'not-a-root.pem')]),
      runEnarx(['steward', 'serve', '--data-dir', tempDir(), '--trust-test-root', join(dir, 'absent.pem')]),
    ]);
    assert.equal(root.code, 1);
    assert.match(root.stderr, /cannot use .*not-a-root\.pem as a test root/);
    assert.equal(noRoot.code, 1);
    assert.match(noRoot.stderr, /absent\.pem as a test root: no such file/);
    assert.equal(workers.code, 2);
    assert.match(workers.stderr, /invalid --workers/);
    assert.equal(lifetime.code, 2);
    assert.match(lifetime.stderr, /invalid --lifetime/);
    assert.equal(half.code, 2);
    assert.match(half.stderr, /--key and --crt go together/);
    assert.equal(san.code, 2);
    assert.match(san.stderr, /invalid --san/);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
    assert.match(missing.stderr, /cannot read the CA key/);
    assert.equal(policy.code, 1);
    assert.match(policy.stderr, /bad\.toml/);
    assert.equal(overlap.code, 1);
    assert.equal(orphan.code, 1);
    assert.match(orphan.stderr, /only one of ca\.key and ca\.crt/);
    for (const r of [lifetime, half, san, missing, policy, overlap, orphan, root, noRoot]) assert.equal(r.stdout, '', 'nothing on stdout when it fails');
  });

  it('--workers 2: two processes share the port, and all of them stop on SIGTERM', async () => {
    const started = await serve(['--data-dir', tempDir(), '--workers', '2']);
    let replies: number[] = [];
    let status: number | string;
    try {
      replies = await Promise.all(
        Array.from({ length: 4 }, async () => (await fetch(started.json.url, { method: 'POST', headers: { 'content-type': 'application/pkcs10' }, body: Buffer.from(await kvmCsr()) })).status),
      );
    } finally {
      status = await started.stop();
    }
    assert.deepEqual(replies, [200, 200, 200, 200]);
    assert.equal(status, 0);
    assert.match(started.stderr(), /2 processes share the port/);
  });

  it('a port in use: exit 1, and says to pick another', async () => {
    const dir = tempDir();
    const first = await serve(['--data-dir', dir]);
    try {
      const port = new URL(first.json.url).port;
      const second = await runEnarx(['steward', 'serve', '--data-dir', dir, '--port', port]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /EADDRINUSE.*--port/);
    } finally {
      await first.stop();
    }
  });
});

