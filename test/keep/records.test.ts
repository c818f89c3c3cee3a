// SallyportRecords, the stream node:tls runs over in the process Keep: what it delivers, holds,
// credits and sends, against a real host Endpoint on the other end of an in-memory pipe.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { duplexPair } from 'node:stream';
import { Endpoint, INITIAL_WINDOW } from '../../src/sallyport/index.ts';
import type { HostMessage, KeepMessage } from '../../src/sallyport/index.ts';
import { SallyportRecords } from '../../src/keep/process/streams.ts';
import { reusedReads } from '../../src/keep/process/pipes.ts';

const STREAM = 9;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function pair() {
  const [keepEnd, hostEnd] = duplexPair();
  const toHost: KeepMessage[] = [];
  const violations: string[] = [];
  let records!: SallyportRecords;
  const keep = new Endpoint<HostMessage, KeepMessage>(keepEnd, {
    incoming: 'host-to-keep',
    onMessage: (m) => {
      if (m.t === 'data') records.data(Buffer.from(m.bytes));
      else if (m.t === 'eof') records.eof();
    },
    onViolation: (err) => violations.push(err.message),
    onClose: () => {},
  });
  const host = new Endpoint<KeepMessage, HostMessage>(hostEnd, {
    incoming: 'keep-to-host',
    onMessage: (m) => toHost.push(m),
    onViolation: (err) => assert.fail(err.message),
    onClose: () => {},
  });
  keep.openStream(STREAM);
  host.openStream(STREAM);
  records = new SallyportRecords(keep, STREAM);
  return { keep, host, records, toHost, violations };
}

function bytesOf(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed) & 0xff;
  return out;
}

test('records wait, uncredited, until node:tls reads; then come in order, are credited, and end after the last', async () => {
  const { host, records } = pair();
  const seen: Uint8Array[] = [];
  let ended = false;
  records.on('data', (d: Uint8Array) => {
    assert.ok(!ended);
    seen.push(d);
  });
  records.on('end', () => (ended = true));
  records.pause(); // as node:tls's JSStreamSocket does first
  const sent = [bytesOf(300 * 1024, 1), bytesOf(300 * 1024, 2), bytesOf(10, 3)];
  for (const b of sent) assert.equal(host.sendOwned(STREAM, b), b.length);
  host.send({ t: 'eof', stream: STREAM });
  await tick();
  assert.equal(seen.length, 0);
  assert.equal(host.sendWindow(STREAM), INITIAL_WINDOW - 600 * 1024 - 10, 'nothing is credited while held');
  records.resume();
  await tick();
  assert.ok(Buffer.concat(seen).equals(Buffer.concat(sent)), 'the bytes that came are the bytes sent');
  assert.ok(ended);
  await tick(); // the credit frames' way to the host
  // Credit goes back in quarter windows: all but the last quarter's rest is granted.
  assert.ok(host.sendWindow(STREAM) > INITIAL_WINDOW - INITIAL_WINDOW / 4, 'what was delivered is credited back');
});

test('while reading, a record is delivered as its frame is handled; a pause holds the next ones', async () => {
  const { host, records } = pair();
  const seen: number[] = [];
  records.on('data', (d: Uint8Array) => {
    seen.push(d.length);
    if (seen.length === 1) records.pause();
  });
  records.resume();
  host.sendOwned(STREAM, bytesOf(100, 1));
  host.sendOwned(STREAM, bytesOf(200, 2));
  await tick();
  assert.deepEqual(seen, [100]);
  records.resume();
  await tick();
  assert.deepEqual(seen, [100, 200]);
});

test('a record after the eof, or a second eof, breaks the protocol', async () => {
  for (const second of ['data', 'eof'] as const) {
    const { host, violations } = pair();
    host.send({ t: 'eof', stream: STREAM });
    if (second === 'data') host.sendOwned(STREAM, bytesOf(5, 0));
    else host.send({ t: 'eof', stream: STREAM });
    await tick();
    assert.equal(violations.length, 1);
    assert.match(violations[0]!, second === 'data' ? /data on stream 9 after its eof/ : /second eof on stream 9/);
  }
});

test('writes leave as data frames in order (corked ones together, beyond the window once credited), then eof; destroy closes', async () => {
  const { host, records, toHost } = pair();
  const done: string[] = [];
  const big = bytesOf(INITIAL_WINDOW + 5000, 4);
  records.cork();
  records.write(bytesOf(1000, 1), (err) => done.push(`a ${err ?? ''}`));
  records.write(bytesOf(2000, 2), (err) => done.push(`b ${err ?? ''}`));
  assert.equal(done.length, 0, 'nothing leaves while corked');
  records.uncork();
  records.write(big, (err) => done.push(`big ${err ?? ''}`));
  records.write(bytesOf(3, 5), (err) => done.push(`c ${err ?? ''}`));
  let finished = false;
  records.end(() => (finished = true));
  await tick();
  assert.deepEqual(done, ['a ', 'b '], 'the rest waits for the window');
  assert.ok(!finished);
  // The host consumes what came: credit lets the rest leave.
  const got = () => toHost.filter((m) => m.t === 'data').reduce((n, m) => n + (m as { bytes: Uint8Array }).bytes.length, 0);
  host.consumed(STREAM, got());
  await tick();
  await tick();
  assert.deepEqual(done, ['a ', 'b ', 'big ', 'c ']);
  assert.ok(finished);
  const data = Buffer.concat(toHost.filter((m) => m.t === 'data').map((m) => (m as { bytes: Uint8Array }).bytes));
  assert.ok(data.equals(Buffer.concat([bytesOf(1000, 1), bytesOf(2000, 2), big, bytesOf(3, 5)])), 'the frames carry the bytes written, in order');
  assert.deepEqual(toHost.at(-1), { t: 'eof', stream: STREAM });
  let closed = false;
  records.once('close', () => (closed = true));
  records.destroy();
  await tick();
  assert.ok(closed);
  assert.deepEqual(toHost.at(-1), { t: 'close', stream: STREAM });
  const late = await new Promise<Error | null | undefined>((resolve) => records.write(bytesOf(1, 0), resolve));
  assert.equal((late as { code?: string }).code, 'EPIPE');
});

test('a reset before node:tls wraps the records destroys them without an unhandled error', async () => {
  const { records } = pair();
  let closed = false;
  records.once('close', () => (closed = true));
  records.reset('the client went away');
  await tick();
  assert.ok(closed);
  assert.ok(records.destroyed);
});

test('over a sallyport read into reused buffers, held records are kept intact while the buffers are read into again', async () => {
  const [rawKeepEnd, hostEnd] = duplexPair();
  const reads = reusedReads(64 * 1024);
  // The pipe's reads, as net.Socket makes them with `onread`: into whichever buffer the pool
  // gives, which is first filled with junk, as a read overwrites it.
  rawKeepEnd.on('data', (chunk: Buffer) => {
    for (let at = 0; at < chunk.length; at += 40_000) {
      const piece = chunk.subarray(at, at + 40_000);
      const buffer = reads.onread.buffer();
      buffer.fill(0xee);
      buffer.set(piece);
      reads.onread.callback(piece.length, buffer);
    }
  });
  let records!: SallyportRecords;
  const keep = new Endpoint<HostMessage, KeepMessage>({ input: rawKeepEnd, output: rawKeepEnd, reads }, {
    incoming: 'host-to-keep',
    onMessage: (m) => {
      if (m.t === 'data') records.data(m.bytes);
    },
    onViolation: (err) => assert.fail(err.message),
    onClose: () => {},
  });
  const host = new Endpoint<KeepMessage, HostMessage>(hostEnd, { incoming: 'keep-to-host', onMessage: () => {}, onViolation: (err) => assert.fail(err.message), onClose: () => {} });
  keep.openStream(STREAM);
  host.openStream(STREAM);
  records = new SallyportRecords(keep, STREAM);
  const seen: Buffer[] = [];
  // node:tls copies each record at once: so does this reader.
  records.on('data', (d: Uint8Array) => seen.push(Buffer.from(d)));
  records.pause();
  const sent = [bytesOf(100 * 1024, 1), bytesOf(50 * 1024, 2), bytesOf(7, 3)];
  for (const b of sent) host.sendOwned(STREAM, b);
  await tick();
  records.resume();
  await tick();
  const more = bytesOf(90 * 1024, 4);
  host.sendOwned(STREAM, more);
  await tick();
  assert.ok(Buffer.concat(seen).equals(Buffer.concat([...sent, more])), 'the bytes that came are the bytes sent');
});
