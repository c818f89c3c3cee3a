import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { type Digests, digestBytes, DrawbridgeClient, IntegrityError, VerifyingStream } from '../../src/drawbridge/index.ts';

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
