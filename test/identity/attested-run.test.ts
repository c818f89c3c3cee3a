/**
 * `enarx run` against a Steward, as a user runs it: a test root from the CLI, `enarx steward serve
 * --trust-test-root`, then the TLS echo example in a process Keep with software evidence. Clients
 * trust only the Steward's CA (Node TLS and openssl s_client). Refusals stop the Keep before the
 * workload starts, exit 1, with the Steward's reason.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { runEnarx, serveEnarx, spawnEnarx } from '../helpers/cli.ts';
import { softwareSnpEvidence } from '../../src/keep/software-evidence.ts';
import { requestStewardIdentity } from '../../src/keep/steward.ts';
import { keepMeasurement, nilKeepMeasurement } from '../../src/keep/process/measurement.ts';
import { readCertificateOrigin } from '../../src/pki/index.ts';
import { REPO_ROOT } from '../helpers/paths.ts';

const dir = mkdtempSync(join(tmpdir(), 'enarx-attested-run-'));
const children: ChildProcess[] = [];
const ECHO = join(REPO_ROOT, 'examples', 'echo-server.wasm');

function start(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; stdout: () => string; stderr: () => string; exited: Promise<number | null> } {
  const child = spawnEnarx(args, { env });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c));
  child.stderr!.on('data', (c: Buffer) => (err += c));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function waitFor<T>(what: string, probe: () => T | undefined, exited: Promise<unknown>, output: () => string, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let done = false;
  void exited.then(() => (done = true));
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (done || Date.now() > deadline) throw new Error(`no ${what}; output so far:\n${output()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function steward(extra: string[] = []): Promise<{ url: string; caFile: string }> {
  const s = await serveEnarx<{ url: string; ca: { path: string } }>(['steward', 'serve', '--port', '0', '--data-dir', join(dir, 'ca'), '--san', 'localhost', '--san', 'IP:127.0.0.1', '--trust-test-root', join(dir, 'root', 'ark.pem'), '--json', ...extra]);
  children.push(s.child);
  return { url: s.doc.url, caFile: s.doc.ca.path };
}

function tlsEcho(port: number, ca: string, line: string, client: { cert?: string; key?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...client }, () => socket.write(`${line}\n`));
    socket.on('end', () => reject(new Error('closed without an answer')));
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d;
      if (got.includes('\n')) {
        socket.end();
        resolve(got);
      }
    });
    socket.on('error', reject);
  });
}

function echoConfig(name: string, extra = ''): string {
  const file = join(dir, name);
  writeFileSync(file, `[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n[[files]]\nname = "ingest"\nkind = "listen"\nprot = "tls"\naddr = "127.0.0.1"\nport = 0\n${extra}`);
  return file;
}

before(async () => {
  const r = await runEnarx(['platform', 'test-root', 'create', '--dir', join(dir, 'root')]);
  assert.equal(r.code, 0, r.stderr);
});
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('enarx run --steward with software evidence', () => {
  it('serves TLS with the Steward certificate: Node and openssl trust only the Steward CA', async () => {
    const { url, caFile } = await steward();
    const ca = readFileSync(caFile, 'utf8');
    const keep = start(['run', '--backend', 'process', '--steward', url, '--software-evidence', join(dir, 'root'), '--wasmcfgfile', echoConfig('echo.toml'), ECHO], { ENARX_LOG: 'info' });
    const port = await waitFor('listening port', () => /listen file 'ingest' is bound to \S+ port (\d+)/.exec(keep.stderr())?.[1], keep.exited, keep.stderr);
    // Connecting at once, before the Steward has answered: the client waits for the Steward's
    // certificate and is never served a self-signed one.
    assert.equal(await tlsEcho(Number(port), ca, 'hello'), 'hello\n');
    assert.match(keep.stderr(), /certified this Keep/);
    // s_client keeps the connection open after its input ends: read the echo, then stop it.
    const openssl = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', caFile, '-verify_return_error', '-quiet', '-servername', 'localhost']);
    children.push(openssl);
    let sslOut = '';
    let sslErr = '';
    openssl.stdout.on('data', (c: Buffer) => (sslOut += c));
    openssl.stderr.on('data', (c: Buffer) => (sslErr += c));
    openssl.stdin.write('from openssl\n');
    const closed = new Promise((r) => openssl.on('close', r));
    await waitFor('openssl echo', () => (sslOut.includes('from openssl') ? true : undefined), closed, () => sslErr, 10_000);
    openssl.kill('SIGTERM');
    assert.match(sslErr, /depth=1 CN\s*=\s*enarx steward/);
    keep.child.kill('SIGTERM');
    await keep.exited;
  });

  it('mutual TLS: client_ca makes the Keep require a client certificate from that CA', async () => {
    const { url, caFile } = await steward();
    const ca = readFileSync(caFile, 'utf8');
    const cfg = echoConfig('mtls.toml', `client_ca = ${JSON.stringify(caFile)}\n`);
    const keep = start(['run', '--backend', 'process', '--steward', url, '--software-evidence', join(dir, 'root'), '--wasmcfgfile', cfg, ECHO], { ENARX_LOG: 'info' });
    const port = Number(await waitFor('listening port', () => /listen file 'ingest' is bound to \S+ port (\d+)/.exec(keep.stderr())?.[1], keep.exited, keep.stderr));
    // A client with its own Steward certificate (another attested party) is let in.
    const client = await requestStewardIdentity({ steward: url, evidence: await softwareSnpEvidence(join(dir, 'root')) });
    await waitFor('certificate', () => (/certified this Keep/.test(keep.stderr()) ? true : undefined), keep.exited, keep.stderr);
    assert.equal(await tlsEcho(port, ca, 'mutual', { cert: client.certificateChain.join(''), key: client.privateKey }), 'mutual\n');
    await assert.rejects(tlsEcho(port, ca, 'anonymous'), /certificate required|ECONNRESET|closed/i);
    keep.child.kill('SIGTERM');
    await keep.exited;
  });

  it('the nil Keep gets its certificate the same way, with a measurement of its own', async () => {
    const { url, caFile } = await steward();
    const ca = readFileSync(caFile, 'utf8');
    const keep = start(['run', '--backend', 'nil', '--steward', url, '--software-evidence', join(dir, 'root'), '--wasmcfgfile', echoConfig('nil.toml'), ECHO], { ENARX_LOG: 'info' });
    const port = Number(await waitFor('listening port', () => /listen file 'ingest' is bound to \S+ port (\d+)/.exec(keep.stderr())?.[1], keep.exited, keep.stderr));
    assert.match(keep.stderr(), /certified this Keep/);
    let leaf: Buffer | undefined;
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => {
      leaf = socket.getPeerCertificate().raw;
      socket.end();
    });
    await new Promise((resolve, reject) => socket.on('close', resolve).on('error', reject));
    const origin = readCertificateOrigin(new Uint8Array(leaf!));
    assert.ok(origin?.testRoot, 'a certificate for test-root evidence is marked');
    assert.deepEqual([...origin.measurement], [...(await nilKeepMeasurement())]);
    assert.notDeepEqual([...origin.measurement], [...(await keepMeasurement())], 'a policy can tell the nil Keep from the process Keep');
    assert.equal(await tlsEcho(port, ca, 'nil'), 'nil\n');
    keep.child.kill('SIGKILL');
    await keep.exited;
    const refused = await runEnarx(['run', '--backend', 'nil', '--steward', url, '--wasmcfgfile', echoConfig('nil-noev.toml'), ECHO]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /this host cannot attest.*--software-evidence/s);
  });

  it('a policy that pins another measurement stops the Keep before the workload, exit 1, with the reason', async () => {
    writeFileSync(join(dir, 'policy.toml'), `[snp]\nhash = ["${'cd'.repeat(48)}"]\n`);
    const { url } = await steward(['--config', join(dir, 'policy.toml')]);
    const r = await runEnarx(['run', '--backend', 'process', '--steward', url, '--software-evidence', join(dir, 'root'), '--wasmcfgfile', echoConfig('refused.toml'), ECHO]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the Steward refused this Keep's certificate request: The policy refuses this evidence: .*untrusted enarx measurement.* \(step: policy\)/);
  });

  it('without evidence the Keep says this host cannot attest and what to do', async () => {
    const { url } = await steward();
    const r = await runEnarx(['run', '--backend', 'process', '--steward', url, '--wasmcfgfile', echoConfig('noev.toml'), ECHO]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /this host cannot attest.*--software-evidence/);
  });

  it('refuses plain-http Stewards off loopback, and --software-evidence without a Steward', async () => {
    const r = await runEnarx(['run', '--backend', 'process', '--steward', 'http://steward.example.com/', ECHO]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refusing plain-http Steward/);
    const u = await runEnarx(['run', '--software-evidence', join(dir, 'root'), ECHO]);
    assert.equal(u.code, 2);
    assert.match(u.stderr, /needs a Steward/);
  });
});
