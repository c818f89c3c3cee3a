// Listen and connect files in the process Keep, end to end with real clients and servers on
// loopback. The host relays socket bytes; with prot = "tls" those bytes must be ciphertext.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect as netConnect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import { createSelfSignedIdentity } from '../../src/keep/identity.ts';
import type { ProcessKeepFile } from '../../src/keep/process/host.ts';
import { STDIO, startKeep } from '../helpers/process-keep.ts';

interface Relayed {
  in: Buffer[];
  out: Buffer[];
}

function echoServer(prot: 'tcp' | 'tls', connections: number, limits = {}) {
  const relayed: Relayed = { in: [], out: [] };
  let resolvePort: (port: number) => void;
  const port = new Promise<number>((r) => (resolvePort = r));
  const files: ProcessKeepFile[] = [...STDIO, { kind: 'listen', name: 'ingest', prot, addr: '127.0.0.1', port: 0 }];
  const run = startKeep('echo-server', ['ingest', String(connections)], {
    files,
    limits,
    onListening: (_name, _addr, p) => resolvePort(p),
    tap: (direction, _stream, bytes) => relayed[direction].push(Buffer.from(bytes)),
  });
  run.stdin.end();
  return { run, port, relayed };
}

function tlsExchange(port: number, message: Buffer): Promise<{ echoed: Buffer; protocol: string | null; cert: X509Certificate }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false });
    const chunks: Buffer[] = [];
    let protocol: string | null = null;
    let cert: X509Certificate;
    socket.on('secureConnect', () => {
      protocol = socket.getProtocol();
      cert = socket.getPeerX509Certificate()!;
      socket.end(message);
    });
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => resolve({ echoed: Buffer.concat(chunks), protocol, cert }));
    socket.on('error', reject);
  });
}

test('TLS listen: a Node TLS client talks to the Keep, and the host relays only ciphertext', async () => {
  const { run, port, relayed } = echoServer('tls', 1);
  const marker = Buffer.from(`secret-${randomBytes(16).toString('hex')}`);
  const message = Buffer.concat([marker, randomBytes(50_000), marker]);
  const { echoed, protocol, cert } = await tlsExchange(await port, message);
  assert.ok(echoed.equals(message), 'the echo is exact');
  assert.equal(protocol, 'TLSv1.3');
  assert.equal(cert.subject, 'CN=localhost');
  assert.equal(cert.issuer, 'CN=localhost');
  assert.deepEqual(await run.outcome, { kind: 'exit', code: 0 });

  const inbound = Buffer.concat(relayed.in);
  const outbound = Buffer.concat(relayed.out);
  assert.ok(inbound.length > message.length && outbound.length > message.length, 'the whole exchange was relayed');
  for (const stream of [inbound, outbound]) {
    assert.equal(stream.indexOf(marker), -1, 'plaintext crossed the host');
    assert.equal(stream.indexOf(message.subarray(marker.length, marker.length + 64)), -1);
    assert.equal(stream[0], 0x16, 'starts with a TLS handshake record');
    assertTlsRecords(stream);
  }
});

test('TLS and TCP listen: megabytes echoed through the Keep come back exact (the write buffers are reused)', async () => {
  const message = randomBytes(6 * 1024 * 1024 + 12_345);
  const tls = echoServer('tls', 1);
  const { echoed } = await tlsExchange(await tls.port, message);
  assert.ok(echoed.equals(message), 'the TLS echo is exact');
  assert.deepEqual(await tls.run.outcome, { kind: 'exit', code: 0 });

  const tcp = echoServer('tcp', 1);
  const port = await tcp.port;
  const plain = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = netConnect({ host: '127.0.0.1', port }, () => socket.end(message));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
  assert.ok(plain.equals(message), 'the TCP echo is exact');
  assert.deepEqual(await tcp.run.outcome, { kind: 'exit', code: 0 });
});

/** Walks the byte stream as TLS records: every record has a known type and version 3.x. */
function assertTlsRecords(stream: Buffer): void {
  let at = 0;
  let appData = 0;
  while (at < stream.length) {
    const type = stream[at]!;
    assert.ok([0x14, 0x15, 0x16, 0x17].includes(type), `record type ${type} at ${at}`);
    assert.equal(stream[at + 1], 3);
    if (type === 0x17) appData++;
    at += 5 + stream.readUInt16BE(at + 3);
  }
  assert.equal(at, stream.length, 'the stream is whole records');
  assert.ok(appData > 0);
}

test('TCP listen: the same relay carries plaintext (so the tap sees what crosses)', async () => {
  const { run, port, relayed } = echoServer('tcp', 1);
  const message = Buffer.from(`plain-${randomBytes(8).toString('hex')}`);
  const p = await port;
  const echoed = await new Promise<Buffer>((resolve, reject) => {
    const s = netConnect(p, '127.0.0.1', () => s.end(message));
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
  assert.ok(echoed.equals(message));
  assert.deepEqual(await run.outcome, { kind: 'exit', code: 0 });
  assert.ok(Buffer.concat(relayed.in).equals(message));
  assert.ok(Buffer.concat(relayed.out).equals(message));
});

test('TLS listen: openssl s_client reaches the Keep', async () => {
  const { run, port } = echoServer('tls', 1);
  const p = await port;
  // Like a user at a terminal: type a line, see it come back, then hang up.
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${p}`, '-servername', 'localhost', '-quiet'], { stdio: ['pipe', 'pipe', 'ignore'] });
  child.stdin.write('hello from openssl\n');
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no echo from the Keep; got ${JSON.stringify(out)}`)), 10_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (out.endsWith('\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  child.kill();
  assert.equal(out, 'hello from openssl\n');
  assert.deepEqual(await run.outcome, { kind: 'exit', code: 0 });
});

test('TLS connect: the Keep verifies the server against the given CA and talks through the host', async () => {
  const server = createSelfSignedIdentity();
  const tls = createTlsServer({ key: server.privateKey, cert: server.certificateChain[0] }, (s) => {
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => s.end(Buffer.concat([Buffer.from('echo: '), ...chunks])));
  });
  await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
  const port = (tls.address() as AddressInfo).port;
  const relayed: Relayed = { in: [], out: [] };
  const files: ProcessKeepFile[] = [...STDIO, { kind: 'connect', name: 'server', prot: 'tls', host: 'localhost', port, ca: [server.certificateChain[0]!] }];
  const run = startKeep('echo-client', ['server'], { files, tap: (d, _s, b) => relayed[d].push(Buffer.from(b)) });
  run.stdin.end('over tls, verified');
  assert.deepEqual(await run.outcome, { kind: 'exit', code: 0 });
  assert.equal(run.stdout(), 'echo: over tls, verified');
  assert.equal(Buffer.concat(relayed.out).indexOf('over tls'), -1);
  assert.equal(Buffer.concat(relayed.in).indexOf('echo: '), -1);
  tls.close();
});

test('TLS connect: a server the Keep cannot verify stops the start with a clear error', async () => {
  const server = createSelfSignedIdentity();
  const tls = createTlsServer({ key: server.privateKey, cert: server.certificateChain[0] }, (s) => s.end());
  tls.on('tlsClientError', () => {});
  await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
  const port = (tls.address() as AddressInfo).port;
  const files: ProcessKeepFile[] = [...STDIO, { kind: 'connect', name: 'server', prot: 'tls', host: 'localhost', port }];
  const run = startKeep('echo-client', ['server'], { files });
  run.stdin.end();
  const outcome = await run.outcome;
  assert.equal(outcome.kind, 'error');
  assert.match((outcome as { message: string }).message, /cannot connect on localhost port \d+ for 'server': TLS to localhost:\d+ failed: self[- ]signed certificate/);
  tls.close();
});

test('TCP connect: a refused connection stops the start with a clear error; an open one works', async () => {
  const srv = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  const files: ProcessKeepFile[] = [...STDIO, { kind: 'connect', name: 'server', prot: 'tcp', host: '127.0.0.1', port }];
  const ok = startKeep('echo-client', ['server'], { files });
  ok.stdin.end('ping');
  assert.deepEqual(await ok.outcome, { kind: 'exit', code: 0 });
  assert.equal(ok.stdout(), 'ping');
  srv.close();
  await new Promise((r) => setTimeout(r, 50));
  const refused = startKeep('echo-client', ['server'], { files });
  refused.stdin.end();
  const outcome = await refused.outcome;
  assert.equal(outcome.kind, 'error');
  assert.match((outcome as { message: string }).message, /cannot connect on 127\.0\.0\.1 port \d+ for 'server': connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
});

test('the descriptors limit turns away connections beyond it, and the Keep goes on', async () => {
  const { run, port } = echoServer('tcp', 1, { descriptors: 5 });
  const p = await port;
  const first = netConnect(p, '127.0.0.1');
  await new Promise((r) => first.once('connect', r));
  await new Promise((r) => setTimeout(r, 100));
  const second = netConnect(p, '127.0.0.1');
  const secondClosed = await new Promise<boolean>((resolve) => {
    second.on('error', () => resolve(true));
    second.on('close', () => resolve(true));
    second.on('data', () => resolve(false));
    setTimeout(() => resolve(false), 2000);
  });
  assert.equal(secondClosed, true, 'the connection beyond the limit is closed');
  const got = await new Promise<string>((resolve) => {
    let s = '';
    first.on('data', (d) => (s += d));
    first.on('end', () => resolve(s));
    first.end('still served');
  });
  assert.equal(got, 'still served');
  assert.deepEqual(await run.outcome, { kind: 'exit', code: 0 });
});

// Without a limit from the command line, Enarx.toml or a package, the host still relays at most
// DEFAULT_DESCRIPTORS descriptors' worth of connections: each holds up to a 1 MiB window on the
// host, so a workload that never accepts must not make it buffer without bound.
test('without a descriptors limit the host turns away connections beyond the default one', { timeout: 120_000 }, async () => {
  const { DEFAULT_DESCRIPTORS } = await import('../../src/keep/limits.ts');
  const { run, port } = echoServer('tcp', 1);
  const p = await port;
  // stdin, stdout, stderr and the listener count too (as in the WASI table).
  const room = DEFAULT_DESCRIPTORS - 4;
  const extra = 6;
  let closed = 0;
  let allClosed: () => void;
  const enough = new Promise<void>((r) => (allClosed = r));
  const clients = Array.from({ length: room + extra }, () => {
    const c = netConnect(p, '127.0.0.1');
    c.on('error', () => {});
    c.on('close', () => {
      if (++closed === extra) allClosed();
    });
    return c;
  });
  await enough;
  assert.equal(closed, extra, `${extra} connections beyond ${room} are turned away, no more`);
  for (const c of clients) c.destroy();
  const outcome = await run.outcome;
  assert.equal(outcome.kind, 'exit');
});
