import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex, duplexPair } from 'node:stream';
import { encode } from 'cborg';
import { Endpoint, INITIAL_WINDOW, ProtocolError, encodeFrame } from '../../src/sallyport/index.ts';
import type { HostMessage, KeepMessage } from '../../src/sallyport/index.ts';

function pair(rates?: { frames: { perSecond: number; burst: number }; control: { perSecond: number; burst: number } }) {
  const [a, b] = duplexPair();
  const hostGot: KeepMessage[] = [];
  const keepGot: HostMessage[] = [];
  const violations: { host: ProtocolError[]; keep: ProtocolError[] } = { host: [], keep: [] };
  const host = new Endpoint<KeepMessage, HostMessage>(a, {
    incoming: 'keep-to-host',
    onMessage: (m) => hostGot.push(m),
    onViolation: (e) => violations.host.push(e),
    onClose: () => {},
    ...(rates ? { rates } : {}),
  });
  const keep = new Endpoint<HostMessage, KeepMessage>(b, {
    incoming: 'host-to-keep',
    onMessage: (m) => keepGot.push(m),
    onViolation: (e) => violations.keep.push(e),
    onClose: () => {},
  });
  return { a, b, host, keep, hostGot, keepGot, violations };
}
const tick = () => new Promise((r) => setImmediate(r));

test('data flows within the credit window and the writer waits for credit', async () => {
  const p = pair();
  p.host.openStream(1);
  p.keep.openStream(1);
  const big = new Uint8Array(INITIAL_WINDOW + 1000).fill(7);
  let done = false;
  const sending = p.keep.sendData(1, big).then(() => (done = true));
  for (let i = 0; i < 10; i++) await tick();
  const received = () => p.hostGot.reduce((n, m) => n + (m.t === 'data' ? m.bytes.length : 0), 0);
  assert.equal(received(), INITIAL_WINDOW, 'the sender stops at the window');
  assert.equal(done, false);
  p.host.consumed(1, INITIAL_WINDOW);
  await sending;
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(received(), big.length);
  assert.deepEqual(p.violations, { host: [], keep: [] });
});

test('data beyond the granted window is a violation', async () => {
  const p = pair();
  p.host.openStream(1);
  const chunk = new Uint8Array(512 * 1024);
  for (let i = 0; i < 3; i++) p.b.write(encodeFrame(encode(['data', 1, chunk])));
  for (let i = 0; i < 10; i++) await tick();
  assert.equal(p.violations.host.length, 1);
  assert.match(p.violations.host[0]!.message, /exceeds the granted window/);
  assert.equal(p.hostGot.length, 2, 'nothing is processed after the violation');
});

test('data or credit on a stream that never existed is a violation; on a closed one it is dropped', async () => {
  const p = pair();
  p.host.openStream(21);
  p.host.closeStream(21);
  p.b.write(encodeFrame(encode(['data', 21, Uint8Array.of(1)])));
  p.b.write(encodeFrame(encode(['credit', 21, 5])));
  await tick();
  assert.equal(p.violations.host.length, 0);
  p.b.write(encodeFrame(encode(['data', 99, Uint8Array.of(1)])));
  await tick();
  assert.match(p.violations.host[0]!.message, /unknown stream 99/);
});

test('credit that would grow a window past its size is a violation', async () => {
  const p = pair();
  p.keep.openStream(1);
  p.a.write(encodeFrame(encode(['credit', 1, 1])));
  await tick();
  assert.match(p.violations.keep[0]!.message, /grows the window/);
});

test('a flood of control messages is stopped by the rate limit', async () => {
  const p = pair({ frames: { perSecond: 1e6, burst: 1e6 }, control: { perSecond: 10, burst: 50 } });
  const frames = [];
  for (let i = 0; i < 200; i++) frames.push(encodeFrame(encode(['log', 'info', 'x'])));
  p.b.write(Buffer.concat(frames));
  await tick();
  assert.equal(p.hostGot.length, 50);
  assert.match(p.violations.host[0]!.message, /rate exceeded/);
});

test('garbage on the pipe is reported once and stops processing', async () => {
  const p = pair();
  p.b.write(Uint8Array.of(0, 0, 0, 3, 0xff, 0xff, 0xff));
  p.b.write(encodeFrame(encode(['exit', 0])));
  await tick();
  assert.equal(p.violations.host.length, 1);
  assert.match(p.violations.host[0]!.message, /undecodable CBOR/);
  assert.deepEqual(p.hostGot, []);
});

test('a role can flag a message that is well-formed but wrong in context', async () => {
  const [a, b] = duplexPair();
  const seen: string[] = [];
  const host = new Endpoint<KeepMessage, HostMessage>(a, {
    incoming: 'keep-to-host',
    onMessage: (m) => {
      if (m.t === 'dial') throw new ProtocolError(`dial to ${m.host} is not allowed`);
    },
    onViolation: (e) => seen.push(e.message),
    onClose: () => {},
  });
  b.write(encodeFrame(encode(['dial', 16, 'evil.example', 443])));
  await tick();
  assert.deepEqual(seen, ['dial to evil.example is not allowed']);
  assert.equal(host.failed, true);
});

test('drained() resolves once a small write below the high-water mark has completed', async () => {
  // A slow pipe: the write stays queued (writableLength > 0) without ever filling the buffer, so
  // no 'drain' event comes; drained() must still resolve when the write completes.
  const writes: (() => void)[] = [];
  const pipe = new Duplex({ read() {}, write: (_chunk, _enc, done) => void writes.push(done) });
  const keep = new Endpoint<HostMessage, KeepMessage>(pipe, {
    incoming: 'host-to-keep',
    onMessage: () => {},
    onViolation: () => {},
    onClose: () => {},
  });
  keep.send({ t: 'exit', code: 0 });
  let drained = false;
  const waiting = keep.drained().then(() => (drained = true));
  await tick();
  assert.equal(drained, false, 'the frame is still being written');
  for (const done of writes.splice(0)) done();
  await waiting;
  assert.equal(drained, true);
});

test('a data frame split across many reads arrives as its pieces, in order, checked against the window as a whole', async () => {
  const p = pair();
  p.host.openStream(1);
  const bytes = Uint8Array.from({ length: 3000 }, (_, i) => i % 251);
  const frame = encodeFrame(encode(['data', 1, bytes]));
  for (let at = 0; at < frame.length; at += 700) p.b.write(frame.subarray(at, at + 700));
  for (let i = 0; i < 20; i++) await tick();
  assert.deepEqual(p.violations, { host: [], keep: [] });
  assert.ok(p.hostGot.length > 1, 'more than one piece');
  assert.ok(p.hostGot.every((m) => m.t === 'data' && m.stream === 1 && m.bytes.length > 0));
  assert.ok(Buffer.concat(p.hostGot.map((m) => (m as { bytes: Uint8Array }).bytes)).equals(Buffer.from(bytes)));

  // The window counts the whole frame: a split frame one byte past what is left is refused
  // before any of its pieces is handed on.
  const left = INITIAL_WINDOW - bytes.length;
  const over = encodeFrame(encode(['data', 1, new Uint8Array(left + 1)]));
  p.hostGot.length = 0;
  for (let at = 0; at < over.length; at += 64 * 1024) p.b.write(over.subarray(at, at + 64 * 1024));
  for (let i = 0; i < 40; i++) await tick();
  assert.equal(p.violations.host.length, 1);
  assert.match(String((p.violations.host as ProtocolError[])[0]?.message), /exceeds the granted window/);
  assert.equal(p.hostGot.length, 0);
});
