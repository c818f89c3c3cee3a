// KeepServices.dial and .attest, driven from inside a Keep (the real KeepSide) against a scripted
// host on the other end of an in-memory pipe: what crosses the sallyport, and what the Keep's
// code gets back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { duplexPair } from 'node:stream';
import type { Socket } from 'node:net';
import { Endpoint } from '../../src/sallyport/index.ts';
import type { HostMessage, KeepMessage } from '../../src/sallyport/index.ts';
import { KeepSide } from '../../src/keep/process/keep.ts';
import type { KeepServices } from '../../src/keep/process/keep.ts';
import type { SallyportSocket } from '../../src/keep/process/streams.ts';
import { IoError } from '../../src/wasi/io.ts';

type Script = (m: KeepMessage, host: Endpoint<KeepMessage, HostMessage>) => void;

/** Runs `inside` as the Keep's workload, with `script` answering the Keep's messages; resolves with what the host saw. */
async function inKeep(inside: (services: KeepServices) => Promise<void>, script: Script): Promise<{ seen: KeepMessage[]; exitCode: number; error?: unknown }> {
  const [keepEnd, hostEnd] = duplexPair();
  const seen: KeepMessage[] = [];
  let error: unknown;
  let exited!: (code: number) => void;
  const exitCode = new Promise<number>((resolve) => (exited = resolve));
  const host: Endpoint<KeepMessage, HostMessage> = new Endpoint<KeepMessage, HostMessage>(hostEnd, {
    incoming: 'keep-to-host',
    onMessage: (m) => {
      seen.push(m);
      if (m.t === 'exit' || m.t === 'fail') void host.close();
      else script(m, host);
    },
    onViolation: (err) => assert.fail(`the Keep broke the protocol: ${err.message}`),
    onClose: () => {},
  });
  for (const id of [0, 1, 2]) host.openStream(id);
  const keep: KeepSide = new KeepSide(keepEnd as unknown as Socket, async () => {
    try {
      await inside(keep.services);
    } catch (err) {
      error = err;
    }
    return { kind: 'exit', code: 0 };
  }, (code) => exited(code));
  const module = new Uint8Array(8);
  host.send({ t: 'hello', version: 1, init: { moduleSize: module.length, argv: ['x'], env: [], files: [], limits: { memory: null, descriptors: null }, logLevel: 'warn', steward: null } });
  host.send({ t: 'module', bytes: module });
  return { seen, exitCode: await exitCode, error };
}

const read = (socket: SallyportSocket, n: number) =>
  new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= n) resolve(Buffer.concat(chunks));
    });
    socket.once('error', reject);
  });

test('dial: the host is asked for host:port on a new even stream, and bytes flow both ways', async () => {
  const fromKeep: Buffer[] = [];
  let streamId = -1;
  const { seen, exitCode, error } = await inKeep(
    async (services) => {
      const socket = await services.dial('db.example', 5432);
      const reply = read(socket, 5);
      socket.write('ping!');
      assert.equal((await reply).toString(), 'pong!');
      socket.end();
      await new Promise<void>((resolve) => socket.once('finish', () => resolve()));
      socket.destroy();
    },
    (m, host) => {
      if (m.t === 'dial') {
        streamId = m.stream;
        host.openStream(m.stream);
        host.send({ t: 'dialed', stream: m.stream, error: null });
      } else if (m.t === 'data' && m.stream === streamId) {
        fromKeep.push(Buffer.from(m.bytes));
        if (Buffer.concat(fromKeep).toString() === 'ping!') void host.sendData(m.stream, Buffer.from('pong!'));
      }
    },
  );
  assert.equal(error, undefined, String(error));
  assert.equal(exitCode, 0);
  const dial = seen.find((m) => m.t === 'dial');
  assert.deepEqual(dial, { t: 'dial', stream: streamId, host: 'db.example', port: 5432 });
  assert.ok(streamId >= 16 && streamId % 2 === 0);
  assert.equal(Buffer.concat(fromKeep).toString(), 'ping!');
  assert.ok(seen.some((m) => m.t === 'eof' && m.stream === streamId), 'end() is an eof on the stream');
  assert.ok(seen.some((m) => m.t === 'close' && m.stream === streamId), 'destroy() closes the stream');
});

test('dial: a refusal by the host rejects with ECONNREFUSED, and each dial gets its own stream', async () => {
  const streams: number[] = [];
  const { error } = await inKeep(
    async (services) => {
      await assert.rejects(services.dial('127.0.0.1', 1), (e: unknown) => e instanceof IoError && e.code === 'ECONNREFUSED' && /connect ECONNREFUSED/.test(e.message));
      await assert.rejects(services.dial('10.0.0.1', 2), (e: unknown) => e instanceof IoError && e.code === 'EHOSTUNREACH');
    },
    (m, host) => {
      if (m.t !== 'dial') return;
      streams.push(m.stream);
      host.openStream(m.stream);
      host.send({ t: 'dialed', stream: m.stream, error: m.port === 1 ? 'connect ECONNREFUSED 127.0.0.1:1' : 'no route to host' });
    },
  );
  assert.equal(error, undefined, String(error));
  assert.equal(streams.length, 2);
  assert.ok(streams[1]! > streams[0]!);
});

test('attest: the 64 bytes reach the host, its evidence or its error comes back', async () => {
  const reportData = Uint8Array.from({ length: 64 }, (_, i) => i);
  const asked: Uint8Array[] = [];
  const { error } = await inKeep(
    async (services) => {
      const evidence = await services.attest(reportData);
      assert.deepEqual({ kind: evidence.kind, bytes: Buffer.from(evidence.bytes) }, { kind: 'snp', bytes: Buffer.from('report') });
      await assert.rejects(services.attest(reportData), /no evidence source here/);
      await assert.rejects(services.attest(new Uint8Array(63)), RangeError);
    },
    (m, host) => {
      if (m.t !== 'attest') return;
      asked.push(m.reportData);
      if (asked.length === 1) host.send({ t: 'evidence', id: m.id, kind: 'snp', bytes: Buffer.from('report'), error: null });
      else host.send({ t: 'evidence', id: m.id, kind: null, bytes: null, error: 'no evidence source here' });
    },
  );
  assert.equal(error, undefined, String(error));
  assert.equal(asked.length, 2, 'the 63-byte request never left the Keep');
  assert.deepEqual(Buffer.from(asked[0]!), Buffer.from(reportData));
});
