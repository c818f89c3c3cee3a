import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { directNetwork } from '../../src/net/index.ts';
import { selfSignedIdentityProvider } from '../../src/keep/identity.ts';
import { IoError, WOULD_BLOCK } from '../../src/wasi/io.ts';
import type { Connection, Listener } from '../../src/wasi/io.ts';

async function accept(listener: Listener): Promise<Connection> {
  for (;;) {
    const c = listener.tryAccept();
    if (c !== WOULD_BLOCK) return c;
    await listener.ready();
  }
}
async function readAll(c: Connection): Promise<string> {
  let out = '';
  for (;;) {
    const r = c.input.tryRead(65536);
    if (r === null) return out;
    if (r === WOULD_BLOCK) await c.input.ready();
    else out += Buffer.from(r).toString();
  }
}

/** A TLS listen file with a real client connected to it: the accepted connection and what the client receives. */
async function tlsPair() {
  let port = 0;
  const net = directNetwork({ identity: selfSignedIdentityProvider(), onListening: (_n, _a, p) => (port = p) });
  const listener = await net.listen({ name: 'ingest', prot: 'tls', addr: '127.0.0.1', port: 0 });
  const client = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false });
  const chunks: Buffer[] = [];
  client.on('data', (d: Buffer) => chunks.push(d));
  const ended = new Promise((r) => client.once('end', r));
  const conn = await accept(listener);
  return { listener, client, conn, received: async () => (await ended, Buffer.concat(chunks)) };
}
/** Writes all of `bytes` as a guest does: what tryWrite takes, waiting while it takes nothing. */
async function writeAll(c: Connection, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length; ) {
    const wrote = c.output.tryWrite(bytes.subarray(at));
    if (wrote === 0) await c.output.ready();
    at += wrote;
  }
}

test('a TLS listen file serves a real TLS client with the self-signed certificate', async () => {
  let port = 0;
  const identity = selfSignedIdentityProvider();
  const net = directNetwork({ identity, onListening: (_n, _a, p) => (port = p) });
  const listener = await net.listen({ name: 'ingest', prot: 'tls', addr: '127.0.0.1', port: 0 });
  assert.ok(port > 0);
  const pem = (await identity.identity()).certificateChain[0]!;
  const client = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: pem });
  const conn = await accept(listener);
  await new Promise((r) => client.once('secureConnect', r));
  assert.equal(client.getProtocol(), 'TLSv1.3');
  assert.equal(conn.output.tryWrite(Buffer.from('hello over tls\n')), 15);
  conn.shutdown('write');
  client.end('from client');
  let got = '';
  client.on('data', (d) => (got += d));
  await new Promise((r) => client.once('end', r));
  assert.equal(got, 'hello over tls\n');
  assert.equal(await readAll(conn), 'from client');
  conn.close();
  listener.close();
});

test('a TLS connection carries megabytes written from one reused buffer exactly (its write buffers are reused only once written)', async () => {
  const { listener, client, conn, received } = await tlsPair();
  // As guest memory: one buffer, refilled after every write.
  const memory = new Uint8Array(100_000);
  const expected: Buffer[] = [];
  for (let n = 0; n < 48; n++) {
    memory.fill(n);
    memory[0] = 255 - n;
    await writeAll(conn, memory);
    expected.push(Buffer.from(memory));
  }
  conn.shutdown('write');
  assert.ok((await received()).equals(Buffer.concat(expected)), 'every byte as it was when written');
  client.end();
  conn.close();
  listener.close();
});

test('writes gathered while one is in flight: flush waits for them, and a close right after writing still sends every byte', async () => {
  const { listener, client, conn, received } = await tlsPair();
  const room = conn.output.writableBytes();
  const expected: Buffer[] = [];
  const write = async (round: number) => {
    const bytes = Buffer.alloc(70_000, round);
    await writeAll(conn, bytes);
    expected.push(bytes);
  };
  for (let n = 0; n < 20; n++) await write(n);
  await conn.output.flush();
  assert.equal(conn.output.writableBytes(), room, 'after a flush nothing is gathered or in flight');
  for (let n = 20; n < 40; n++) await write(n);
  conn.close();
  assert.ok((await received()).equals(Buffer.concat(expected)), 'every byte, in order');
  client.end();
  listener.close();
});

test('a TCP connect file reaches a server; a refused one fails with ECONNREFUSED', async () => {
  const server = createServer((s) => s.end('pong'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const net = directNetwork({ identity: selfSignedIdentityProvider() });
  try {
    const conn = await net.connect({ name: 'srv', prot: 'tcp', host: '127.0.0.1', port });
    assert.equal(await readAll(conn), 'pong');
    // Half-open, as TCP allows: the peer finished sending, our side may still write until shut down.
    assert.equal(conn.output.tryWrite(Uint8Array.of(1)), 1);
    conn.shutdown('write');
    assert.throws(() => conn.output.tryWrite(Uint8Array.of(1)), (e: unknown) => e instanceof IoError && e.code === 'EPIPE');
    conn.close();
  } finally {
    server.close();
  }
  await assert.rejects(net.connect({ name: 'srv', prot: 'tcp', host: '127.0.0.1', port }), (e: unknown) => e instanceof IoError && e.code === 'ECONNREFUSED');
});

test('a TLS connect file refuses a server its trust anchors do not cover', async () => {
  const serverNet = directNetwork({ identity: selfSignedIdentityProvider(), onListening: () => {} });
  let port = 0;
  const net2 = directNetwork({ identity: selfSignedIdentityProvider(), onListening: (_n, _a, p) => (port = p) });
  const listener = await net2.listen({ name: 'l', prot: 'tls', addr: '127.0.0.1', port: 0 });
  void accept(listener).catch(() => {});
  await assert.rejects(serverNet.connect({ name: 'x', prot: 'tls', host: 'localhost', port }), /TLS to localhost:\d+ failed/);
  listener.close();
});

test('a listener queues connections until accepted and reports them as pending', async () => {
  let port = 0;
  const net = directNetwork({ identity: selfSignedIdentityProvider(), onListening: (_n, _a, p) => (port = p) });
  const listener = await net.listen({ name: 'l', prot: 'tcp', addr: '127.0.0.1', port: 0 });
  assert.equal(listener.tryAccept(), WOULD_BLOCK);
  const sockets = [netConnect(port, '127.0.0.1'), netConnect(port, '127.0.0.1')];
  while (listener.pendingConnections() < 2) await listener.ready().then(() => new Promise((r) => setTimeout(r, 5)));
  assert.equal(listener.pendingConnections(), 2);
  (await accept(listener)).close();
  (await accept(listener)).close();
  for (const s of sockets) s.destroy();
  listener.close();
  assert.throws(() => listener.tryAccept(), IoError);
});
