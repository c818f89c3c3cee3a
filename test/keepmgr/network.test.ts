import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { attestKeep, provisionKeep, followOutput, type OutputPayload } from '../../src/keepmgr/index.ts';
import { REPO_ROOT } from '../helpers/paths.ts';
import { startTestDaemon, tlsEcho, waitFor, type TestDaemon } from './helpers.ts';

const example = (name: string) => new Uint8Array(readFileSync(join(REPO_ROOT, 'examples', name)));
const STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n';

let t: TestDaemon;
before(async () => {
  t = await startTestDaemon({ poolSize: 0 });
});
after(() => t.close());

function text(payloads: OutputPayload[], stream: string): string {
  return payloads.map((p) => (p.stream === stream && 'data' in p ? Buffer.from(p.data).toString() : '')).join('');
}

test('a listen file of a provisioned Keep: the host binds an ephemeral port, shows it in the Keep, and a TLS client talks to the workload (TLS ends inside the Keep)', { timeout: 120_000 }, async () => {
  const keep = await t.client.create();
  const att = await attestKeep(t.client, keep.id, { allowUnattested: true });
  // Port 8443 is the Enarx.toml's wish; many Keeps share this host, so the daemon picks the port.
  const config = `args = ["ingest", "1"]\n${STDIO}[[files]]\nname = "ingest"\nkind = "listen"\nprot = "tls"\naddr = "0.0.0.0"\nport = 8443\n`;
  const session = await provisionKeep(t.client, att, { wasm: example('echo-server.wasm'), config });
  await waitFor(async () => (await t.client.get(keep.id)).ports.length === 1, 60_000, 'the listen file to be bound');
  const [port] = (await t.client.get(keep.id)).ports;
  assert.equal(port!.name, 'ingest');
  assert.equal(port!.address, '127.0.0.1');
  assert.notEqual(port!.port, 8443);
  const { echo, cert } = await tlsEcho(port!.port, 'hello through the keep manager\n');
  assert.equal(echo, 'hello through the keep manager\n');
  // Without a Steward the Keep presents a certificate it made itself, as `enarx run` does.
  assert.match(cert!.subject, /CN=localhost/);
  assert.equal(cert!.subject, cert!.issuer);
  const got: OutputPayload[] = [];
  const end = await followOutput(t.client, session, (p) => got.push(p));
  assert.equal(end.exit?.code, 0, text(got, 'stderr') + text(got, 'log'));
  assert.equal((await t.client.get(keep.id)).state, 'exited');
});

test('a connect file of a provisioned Keep: the host dials for it and relays the bytes', { timeout: 120_000 }, async () => {
  const server = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    const keep = await t.client.create();
    const att = await attestKeep(t.client, keep.id, { allowUnattested: true });
    const config = `${STDIO}[[files]]\nname = "server"\nkind = "connect"\nprot = "tcp"\nhost = "127.0.0.1"\nport = ${port}\n`;
    const session = await provisionKeep(t.client, att, { wasm: example('echo-client.wasm'), config, stdin: new TextEncoder().encode('ping over the sallyport\n') });
    const got: OutputPayload[] = [];
    const end = await followOutput(t.client, session, (p) => got.push(p));
    assert.equal(end.exit?.code, 0, text(got, 'stderr') + text(got, 'log'));
    assert.equal(text(got, 'stdout'), 'ping over the sallyport\n');
  } finally {
    server.close();
  }
});
