/**
 * keepmgr Keeps and a Steward: a Keep gets its certificate as `enarx run --steward` does (its
 * key, software SNP evidence binding it and the workload's digest, a CSR over its relayed dial),
 * before its workload runs; the Keep's record shows the chain, and its listen file presents it to
 * TLS clients that trust only the Steward's CA.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { attestKeep, provisionKeep, followOutput, type OutputPayload } from '../../src/keepmgr/index.ts';
import { libraryVerifier } from '../../src/keepmgr/client.ts';
import { REPO_ROOT } from '../helpers/paths.ts';
import { serveEnarx } from '../helpers/cli.ts';
import { startTestDaemon, tempDir, tlsEcho, waitFor, type TestDaemon } from './helpers.ts';

const STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n';
const ECHO = new Uint8Array(readFileSync(join(REPO_ROOT, 'examples', 'echo-server.wasm')));

let t: TestDaemon;
let stewardProcess: ChildProcess;
let steward: { url: string; ca: string };
let arkPem: string;
let snpDir: string;

before(async () => {
  const dir = tempDir();
  snpDir = join(dir, 'snp');
  // The daemon makes its software SNP test chain; the Steward trusts it explicitly (ARK, then ASK).
  t = await startTestDaemon({ poolSize: 0, softwareSnp: snpDir });
  arkPem = readFileSync(t.daemon.testRootPath!, 'utf8');
  const served = await serveEnarx<{ url: string; ca: { path: string } }>(['steward', 'serve', '--port', '0', '--data-dir', join(dir, 'steward'), '--san', 'localhost', '--san', 'IP:127.0.0.1', '--trust-test-root', join(snpDir, 'steward-trust.pem'), '--json']);
  stewardProcess = served.child;
  const doc = served.doc;
  steward = { url: doc.url, ca: readFileSync(doc.ca.path, 'utf8') };
});
after(async () => {
  stewardProcess?.kill('SIGKILL');
  await t?.close();
});

test('a client that names a Steward gets a Keep certified by it: the record shows the chain, TLS clients that trust only the Steward connect', { timeout: 120_000 }, async () => {
  const keep = await t.client.create();
  const att = await attestKeep(t.client, keep.id, { verifier: await libraryVerifier({ trustedTestRoots: [{ name: 'keepmgr', pem: arkPem }] }) });
  assert.equal(att.result?.verified, true);
  const config = `args = ["ingest", "1"]\n${STDIO}[[files]]\nname = "ingest"\nkind = "listen"\nprot = "tls"\naddr = "127.0.0.1"\nport = 0\n`;
  const session = await provisionKeep(t.client, att, { wasm: ECHO, config, steward: steward.url });
  await waitFor(async () => { const k = await t.client.get(keep.id); return k.ports.length === 1 && k.certificate !== null; }, 60_000, 'the listen file to be bound and the Keep certified');
  const info = await t.client.get(keep.id);
  assert.match(info.certificate ?? '', /^-----BEGIN CERTIFICATE-----/);
  const port = info.ports[0]!.port;
  const { echo } = await tlsEcho(port, 'certified\n', { ca: steward.ca });
  assert.equal(echo, 'certified\n');
  const got: OutputPayload[] = [];
  const end = await followOutput(t.client, session, (p) => got.push(p));
  assert.equal(end.exit?.code, 0);
  // The CLI shows who certified the Keep.
  const { runEnarx } = await import('../helpers/cli.ts');
  const shown = await runEnarx(['keep', 'info', keep.id, '--keepmgr', `unix:${t.daemon.socketPath}`]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /^certificate .*issued by .*\(\d+ certificate\(s\)\)$/m);
});

test('a Steward that refuses the Keep stops it before its workload runs; the reason is sealed to the client', { timeout: 120_000 }, async () => {
  const keep = await t.client.create();
  const att = await attestKeep(t.client, keep.id, { verifier: await libraryVerifier({ trustedTestRoots: [{ name: 'keepmgr', pem: arkPem }] }) });
  // A Steward that does not answer at that address: the Keep cannot be certified.
  const session = await provisionKeep(t.client, att, { wasm: ECHO, config: null, steward: 'http://127.0.0.1:1/' });
  const got: OutputPayload[] = [];
  const end = await followOutput(t.client, session, (p) => got.push(p));
  assert.equal(end.exit?.code, 1);
  assert.match(end.exit?.reason ?? '', /Steward/);
  assert.equal((await t.client.get(keep.id)).certificate, null);
});

test("a daemon's --steward certifies Keeps whose client names none", { timeout: 120_000 }, async () => {
  const d = await startTestDaemon({ poolSize: 0, softwareSnp: snpDir, steward: steward.url });
  try {
    const keep = await d.client.create();
    const att = await attestKeep(d.client, keep.id, { verifier: await libraryVerifier({ trustedTestRoots: [{ name: 'keepmgr', pem: arkPem }] }) });
    const session = await provisionKeep(d.client, att, { wasm: ECHO, config: `args = ["ingest", "0"]\n${STDIO}[[files]]\nname = "ingest"\nkind = "listen"\nprot = "tls"\naddr = "127.0.0.1"\nport = 0\n` });
    const end = await followOutput(d.client, session, () => {});
    assert.equal(end.exit?.code, 0);
    assert.match((await d.client.get(keep.id)).certificate ?? '', /^-----BEGIN CERTIFICATE-----/);
  } finally {
    await d.close();
  }
});
