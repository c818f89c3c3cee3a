import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { type Digests, digestBytes, DrawbridgeClient, IntegrityError, VerifyingStream } from '../../src/drawbridge/index.ts';
import { startRegistry } from './helpers.ts';

test('a request on a kept-alive socket the server dropped is sent again on a fresh one', async () => {
  const served = new Map<Socket, number>();
  let dropped = 0;
  const server = createServer((req, res) => {
    const n = (served.get(req.socket) ?? 0) + 1;
    served.set(req.socket, n);
    if (n > 1) {
      dropped++;
      req.socket.destroy(); // as a server whose keep-alive timeout just fired
      return;
    }
    res.writeHead(200, { 'content-length': 0, connection: 'keep-alive' }).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = new DrawbridgeClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  try {
    await client.health();
    await client.health();
    await client.health();
    assert.ok(dropped >= 1, 'the server dropped a reused socket');
  } finally {
    client.close();
    server.closeAllConnections();
    server.close();
  }
});

test('with its own dialer, the client keeps connections alive: several requests, one dial; a dropped one is dialled again', async () => {
  const served = new Map<Socket, number>();
  let dropAfter = Infinity;
  const server = createServer((req, res) => {
    const n = (served.get(req.socket) ?? 0) + 1;
    served.set(req.socket, n);
    if (n > dropAfter) return void req.socket.destroy();
    res.writeHead(200, { 'content-length': 0, connection: 'keep-alive' }).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const dials: string[] = [];
  // A plain Duplex over the socket, as a Keep's sallyport stream is: no socket methods to lean on.
  const connect = async (host: string, p: number): Promise<Duplex> => {
    dials.push(`${host}:${p}`);
    const socket = netConnect(p, host);
    await new Promise((r) => socket.once('connect', r));
    return plainDuplex(socket);
  };
  const client = new DrawbridgeClient({ url: `http://127.0.0.1:${port}`, connect });
  try {
    for (let i = 0; i < 8; i++) await client.health();
    // Node's agent may open a second connection while the first is being freed, never one per request.
    assert.ok(dials.length <= 2 && dials.every((d) => d === `127.0.0.1:${port}`), `8 requests, ${dials.length} dials`);
    const before = dials.length;
    dropAfter = 1; // from now on a connection serves one request: a reused one is closed instead
    await client.health();
    assert.ok(dials.length > before, 'the request is sent once more on a fresh connection');
  } finally {
    client.close();
    server.closeAllConnections();
    server.close();
  }
});

test('with its own TLS dialer (as in a Keep), requests to a Drawbridge share one TLS connection', async () => {
  const registry = await startRegistry();
  let dials = 0;
  const client = new DrawbridgeClient({
    url: registry.url,
    connect: async (host, port) => {
      dials++;
      const socket = tlsConnect({ host, port, ca: registry.serverCa, servername: 'localhost' });
      await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
      return socket;
    },
  });
  let served = 0;
  registry.running.server.on('secureConnection', () => served++);
  try {
    for (let i = 0; i < 6; i++) {
      await client.health();
      await new Promise((r) => setImmediate(r)); // the response's end frees its connection
    }
    assert.equal(dials, 1, `6 requests, ${dials} TLS connections`);
    assert.equal(served, 1);
  } finally {
    client.close();
    await registry.close();
  }
});

/** A Duplex that only relays a socket's bytes (none of a socket's own methods), like a Keep's sallyport stream. */
function plainDuplex(socket: Socket): Duplex {
  const d = new Duplex({
    read: () => void socket.resume(),
    write: (chunk, _enc, cb) => void socket.write(chunk, cb),
    final: (cb) => void socket.end(cb),
    destroy: (err, cb) => {
      socket.destroy();
      cb(err);
    },
  });
  socket.on('data', (c) => d.push(c) || socket.pause());
  socket.on('end', () => d.push(null));
  socket.on('close', () => d.destroy());
  return d;
}

test('VerifyingStream withholds the last chunk until length and every digest check out', async () => {
  const data = Buffer.from('0123456789'.repeat(1000));
  const good = digestBytes(data);
  const run = async (length: number, expected: Digests[]) => {
    const out: Buffer[] = [];
    const v = new VerifyingStream(length, expected, 'x');
    Readable.from([data.subarray(0, 4000), data.subarray(4000)]).pipe(v);
    for await (const c of v) out.push(c as Buffer);
    return Buffer.concat(out);
  };
  assert.deepEqual(await run(data.length, [good]), data);
  await assert.rejects(run(data.length + 1, [good]), (e: Error) => e instanceof IntegrityError && /got 10000 bytes, expected 10001/.test(e.message));
  await assert.rejects(run(data.length - 1, [good]), /more than the announced 9999 bytes/);
  const wrong = digestBytes(Buffer.from('other'));
  await assert.rejects(run(data.length, [good, { 'sha-384': wrong['sha-384'] }]), /sha-384 digest mismatch/);
});
