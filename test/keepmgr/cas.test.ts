// CA files of a provisioned Enarx.toml (`ca` of a connect file, `client_ca` of a listen file):
// the client reads them and seals them with the workload; the Keep's TLS trusts exactly those.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { attestKeep, followOutput, provisionKeep, type OutputPayload } from '../../src/keepmgr/index.ts';
import { generateKeyPair, issueCertificate, type TestKeyPair } from '../../src/attestation/testing/pki.ts';
import type { Certificate } from '../../src/attestation/x509.ts';
import { toPem } from '../../src/attestation/x509.ts';
import { encodeSubjectAltNames } from '../../src/steward/certificate.ts';
import { runEnarx } from '../helpers/cli.ts';
import { REPO_ROOT } from '../helpers/paths.ts';
import { startTestDaemon, tempDir, waitFor, type TestDaemon } from './helpers.ts';

const example = (name: string) => new Uint8Array(readFileSync(join(REPO_ROOT, 'examples', name)));
const STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n';
const when = { notBefore: new Date(Date.now() - 86_400_000), notAfter: new Date(Date.now() + 86_400_000) };

interface Ca {
  cert: Certificate;
  key: TestKeyPair;
  pem: string;
}

async function ca(name: string): Promise<Ca> {
  const key = await generateKeyPair('ec-p256');
  const cert = await issueCertificate({ subject: [['2.5.4.3', name]], subjectKey: key, ca: {}, ...when });
  return { cert, key, pem: toPem('CERTIFICATE', cert.der) };
}

async function leaf(issuer: Ca, cn: string, ip?: string): Promise<{ cert: string; key: string }> {
  const key = await generateKeyPair('ec-p256');
  const cert = await issueCertificate({
    subject: [['2.5.4.3', cn]],
    subjectKey: key,
    issuer: { certificate: issuer.cert, key: issuer.key },
    ...when,
    ...(ip ? { extensions: [{ oid: '2.5.29.17', value: encodeSubjectAltNames([{ type: 'ip', value: ip }]) }] } : {}),
  });
  return { cert: toPem('CERTIFICATE', cert.der), key: toPem('PRIVATE KEY', new Uint8Array(await crypto.subtle.exportKey('pkcs8', key.privateKey))) };
}

function text(payloads: OutputPayload[], stream: string): string {
  return payloads.map((p) => (p.stream === stream && 'data' in p ? Buffer.from(p.data).toString() : '')).join('');
}

let t: TestDaemon;
let serverCa: Ca;
let otherCa: Ca;
before(async () => {
  t = await startTestDaemon({ poolSize: 0 });
  [serverCa, otherCa] = await Promise.all([ca('server CA'), ca('another CA')]);
});
after(() => t.close());

async function provisionAndWait(config: string, wasm: Uint8Array, cas: Record<string, string[]> | undefined, stdin?: string) {
  const keep = await t.client.create();
  const att = await attestKeep(t.client, keep.id, { allowUnattested: true });
  const session = await provisionKeep(t.client, att, { wasm, config, ...(cas ? { cas } : {}), ...(stdin ? { stdin: new TextEncoder().encode(stdin) } : {}) });
  return { keep, session };
}

test('a connect file with `ca`: the Keep trusts the sealed CA for the server, and a server of another CA is refused', { timeout: 120_000 }, async () => {
  const id = await leaf(serverCa, 'echo server', '127.0.0.1');
  const server = createTlsServer({ cert: id.cert, key: id.key }, (s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    const config = `${STDIO}[[files]]\nname = "server"\nkind = "connect"\nprot = "tls"\nhost = "127.0.0.1"\nport = ${port}\nca = "ca.pem"\n`;
    const good = await provisionAndWait(config, example('echo-client.wasm'), { server: [serverCa.pem] }, 'ping over TLS\n');
    const got: OutputPayload[] = [];
    const end = await followOutput(t.client, good.session, (p) => got.push(p));
    assert.equal(end.exit?.code, 0, text(got, 'stderr') + text(got, 'log'));
    assert.equal(text(got, 'stdout'), 'ping over TLS\n');

    const wrong = await provisionAndWait(config, example('echo-client.wasm'), { server: [otherCa.pem] }, 'ping\n');
    const gotWrong: OutputPayload[] = [];
    const endWrong = await followOutput(t.client, wrong.session, (p) => gotWrong.push(p));
    assert.notEqual(endWrong.exit?.code, 0, 'a server certificate from another CA must not be trusted');
    assert.equal(text(gotWrong, 'stdout'), '');
  } finally {
    server.close();
  }
});

test('a listen file with `client_ca`: only clients with a certificate from the sealed CA get through', { timeout: 120_000 }, async () => {
  const config = `args = ["ingest", "4"]\n${STDIO}[[files]]\nname = "ingest"\nkind = "listen"\nprot = "tls"\naddr = "127.0.0.1"\nport = 0\nclient_ca = "clients.pem"\n`;
  // Four connections: the two refused ones reach the workload too (as failed connections), then two good ones.
  const { keep, session } = await provisionAndWait(config, example('echo-server.wasm'), { ingest: [serverCa.pem] });
  await waitFor(async () => (await t.client.get(keep.id)).ports.length === 1, 60_000, 'the listen file to be bound');
  const [port] = (await t.client.get(keep.id)).ports;
  const echo = async (client?: { cert: string; key: string }): Promise<string> => {
    const socket = tlsConnect({ host: '127.0.0.1', port: port!.port, rejectUnauthorized: false, ...(client ?? {}) });
    socket.on('error', () => {});
    socket.write('mutual\n');
    let out = '';
    try {
      for await (const chunk of socket) {
        out += chunk;
        if (out.length >= 7) break;
      }
    } catch {
      // refused during or after the handshake
    }
    socket.destroy();
    return out;
  };
  assert.equal(await echo(), '', 'no client certificate: refused');
  assert.equal(await echo(await leaf(otherCa, 'mallory')), '', 'a certificate from another CA: refused');
  assert.equal(await echo(await leaf(serverCa, 'alice')), 'mutual\n');
  assert.equal(await echo(await leaf(serverCa, 'bob')), 'mutual\n');
  const got: OutputPayload[] = [];
  const end = await followOutput(t.client, session, (p) => got.push(p));
  assert.equal(end.exit?.code, 0, text(got, 'stderr') + text(got, 'log'));
});

test('an Enarx.toml naming a CA file that was not provisioned with it ends the Keep with a sealed reason', { timeout: 120_000 }, async () => {
  const config = `${STDIO}[[files]]\nname = "server"\nkind = "connect"\nprot = "tls"\nhost = "127.0.0.1"\nport = 1\nca = "ca.pem"\n`;
  const { session } = await provisionAndWait(config, example('echo-client.wasm'), undefined);
  const got: OutputPayload[] = [];
  const end = await followOutput(t.client, session, (p) => got.push(p));
  assert.notEqual(end.exit?.code, 0);
  assert.match(`${end.exit?.reason ?? ''} ${text(got, 'log')}`, /'server': its ca file was not provisioned with it/);
});

test('enarx deploy --keepmgr reads the CA files an Enarx.toml names, relative to the package, and says which one is missing', { timeout: 120_000 }, async () => {
  const id = await leaf(serverCa, 'echo server', '127.0.0.1');
  const server = createTlsServer({ cert: id.cert, key: id.key }, (s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const pkg = join(tempDir('keepmgr-cas-'), 'pkg');
  mkdirSync(pkg);
  try {
    const { port } = server.address() as AddressInfo;
    writeFileSync(join(pkg, 'main.wasm'), example('echo-client.wasm'));
    writeFileSync(join(pkg, 'Enarx.toml'), `${STDIO}[[files]]\nname = "server"\nkind = "connect"\nprot = "tls"\nhost = "127.0.0.1"\nport = ${port}\nca = "certs/ca.pem"\n`);
    const args = ['deploy', '--keepmgr', t.daemon.url!, '--ca', t.daemon.caPath, '--token', t.token, '--insecure-unattested', '--stdin', '-', pkg];
    const missing = await runEnarx(args, { input: 'x\n' });
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /cannot read the CA file .*certs\/ca\.pem that 'server' names: ENOENT/);
    mkdirSync(join(pkg, 'certs'));
    writeFileSync(join(pkg, 'certs', 'ca.pem'), serverCa.pem);
    const ok = await runEnarx(args, { input: 'through the keep manager, over TLS\n' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'through the keep manager, over TLS\n');
  } finally {
    server.close();
  }
});
