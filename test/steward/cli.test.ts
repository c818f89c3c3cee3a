import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { toPem } from '../../src/attestation/x509.ts';
import { runEnarx } from '../helpers/cli.ts';
import { ENARX_BIN, testdata } from '../helpers/paths.ts';
import { kvmCsr, productionCa } from './helpers.ts';

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
  stop: () => Promise<number | null>;
}

/** Starts `enarx steward serve ARGS --port 0 --json` and waits for its JSON document. */
function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ENARX_BIN, 'steward', 'serve', '--port', '0', '--json', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the Steward did not start: ${err}`));
    }, 20_000);
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    child.stderr.on('data', (c: Buffer) => (err += c));
    child.stdout.on('data', (c: Buffer) => {
      out += c;
      try {
        const json = JSON.parse(out);
        clearTimeout(timer);
        resolve({ json, stderr: () => err, stop: () => (child.kill('SIGTERM'), exited) });
      } catch {
        // not complete yet
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`the Steward exited (${code}) before listening: ${err}`));
    });
  });
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
      assert.match(first.stderr(), /DEBUG MODE/);
      assert.match(first.stderr(), /curl --cacert .*ca\.crt/);
      assert.equal((await fetch(first.json.url)).status, 200);
      const res = await fetch(first.json.url, { method: 'POST', headers: { 'content-type': 'application/pkcs10' }, body: Buffer.from(await kvmCsr()) });
      assert.equal(res.status, 200);
    } finally {
      assert.equal(await first.stop(), 0);
    }
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
      assert.doesNotMatch(started.stderr(), /DEBUG/);
      const res = await fetch(started.json.url, { method: 'POST', headers: { 'content-type': 'application/pkcs10' }, body: Buffer.from(await kvmCsr()) });
      assert.equal(res.status, 400);
      assert.equal((await res.json()).step, 'policy');
    } finally {
      await started.stop();
    }
  });

  it('bad flags exit 2; unusable files exit 1 with one line that says what to do', async () => {
    const lifetime = await runEnarx(['steward', 'serve', '--lifetime', '5 weeks']);
    assert.equal(lifetime.code, 2);
    assert.match(lifetime.stderr, /invalid --lifetime/);
    const half = await runEnarx(['steward', 'serve', '--key', 'x.pem']);
    assert.equal(half.code, 2);
    assert.match(half.stderr, /--key and --crt go together/);
    const san = await runEnarx(['steward', 'serve', '--san', 'not a name']);
    assert.equal(san.code, 2);
    const missing = await runEnarx(['steward', 'serve', '--key', '/nonexistent/k.pem', '--crt', '/nonexistent/c.pem']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
    assert.match(missing.stderr, /cannot read the CA key/);
    const dir = tempDir();
    writeFileSync(join(dir, 'bad.toml'), '[sgx]\nsigner = ["00"]\n');
    const policy = await runEnarx(['steward', 'serve', '--config', join(dir, 'bad.toml'), '--data-dir', dir]);
    assert.equal(policy.code, 1);
    assert.match(policy.stderr, /bad\.toml/);
    const overlap = await runEnarx(['steward', 'serve', '--config', testdata('enarx-steward', 'policies', 'derived', 'sgx-hash-and-blacklist-overlap.toml'), '--data-dir', dir]);
    assert.equal(overlap.code, 1);
    const lone = tempDir();
    writeFileSync(join(lone, 'ca.key'), readFileSync(testdata('enarx-steward', 'ca', 'ca.key')));
    const orphan = await runEnarx(['steward', 'serve', '--data-dir', lone]);
    assert.equal(orphan.code, 1);
    assert.match(orphan.stderr, /only one of ca\.key and ca\.crt/);
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

