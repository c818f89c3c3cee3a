// The host reads an adopted Keep's sallyport pipe into reused buffers (pipes.ts ReadBuffers): a
// read's bytes are valid only while the Endpoint handles them, unless the role keeps them. These
// tests make the reads small, so that frames split across reads, and check that nothing is lost,
// reordered or overwritten: kept views, bytes held for a frame's next read, and control messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Endpoint, encodeFrame, encodeMessage } from '../../src/sallyport/index.ts';
import type { HostMessage, KeepMessage } from '../../src/sallyport/index.ts';
import { dataFrame } from '../../src/sallyport/hot.ts';
import { pipePair } from '../../src/keep/process/pipes.ts';

/** Two fifos: the host's pipe pair reads one (through reads of `readBytes`) and writes the other; `keep` writes the first. */
function pipes(dir: string, readBytes: number): { host: ReturnType<typeof pipePair>; keep: Socket; close(): void } {
  const fds = ['in', 'out'].map((name) => {
    const path = join(dir, name);
    execFileSync('mkfifo', [path]);
    const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    return { read, write: openSync(path, constants.O_WRONLY | constants.O_NONBLOCK) };
  });
  const host = pipePair(fds[0]!.read, fds[1]!.write, readBytes);
  const keep = new Socket({ fd: fds[0]!.write, readable: false, writable: true });
  const drain = new Socket({ fd: fds[1]!.read, readable: true, writable: false });
  drain.resume();
  return { host, keep, close: () => [host.input, host.output, keep, drain].forEach((s) => s.destroy()) };
}

/** Bytes `length` long whose values depend on `seed` and their position, so that any shift or overwrite shows. */
function pattern(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + i * 7) & 0xff;
  return out;
}

test('data split across small reused reads arrives whole and in order, on interleaved streams, kept or not', { skip: process.platform !== 'linux', timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'enarx-reads-'));
  const p = pipes(dir, 1000);
  try {
    assert.ok(p.host.reads, 'the pair reads into reused buffers');
    const got = new Map<number, { bytes: Uint8Array; release(): void }[]>([[1, []], [2, []]]);
    const attested: Uint8Array[] = [];
    let eofs = 0;
    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    const host = new Endpoint<KeepMessage, HostMessage>(p.host, {
      incoming: 'keep-to-host',
      onMessage: (m) => {
        if (m.t === 'data') got.get(m.stream)!.push(host.keep(m.bytes)); // held, not released yet: pins the buffers
        else if (m.t === 'attest') attested.push(m.reportData);
        else if (m.t === 'eof' && ++eofs === 2) resolveDone();
      },
      onViolation: (err) => assert.fail(err.message),
      onClose: () => {},
    });
    host.openStream(1);
    host.openStream(2);
    // Odd sizes, both streams interleaved, a control message with bytes between them: frames of
    // 1 .. 3000 bytes through reads of at most 1000 bytes, in writes that cut frames anywhere.
    const sizes = [1, 999, 1000, 1001, 17, 2999, 3000, 5, 64, 1500, 333, 2048];
    const sent = new Map<number, Uint8Array[]>([[1, []], [2, []]]);
    const frames: Uint8Array[] = [];
    sizes.forEach((size, i) => {
      const stream = 1 + (i % 2);
      const bytes = pattern(i, size);
      sent.get(stream)!.push(bytes);
      frames.push(dataFrame(stream, bytes));
      if (i === 5) frames.push(encodeFrame(encodeMessage({ t: 'attest', id: 1, reportData: pattern(99, 64) })));
    });
    frames.push(encodeFrame(encodeMessage({ t: 'eof', stream: 1 })), encodeFrame(encodeMessage({ t: 'eof', stream: 2 })));
    const wire = Buffer.concat(frames);
    for (let at = 0; at < wire.length; at += 777) {
      p.keep.write(wire.subarray(at, at + 777));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await done;
    for (const stream of [1, 2]) {
      const joined = Buffer.concat(got.get(stream)!.map((k) => k.bytes));
      assert.deepEqual(joined, Buffer.concat(sent.get(stream)!), `stream ${stream} arrived whole and in order`);
    }
    assert.deepEqual(attested.map((b) => Buffer.from(b)), [Buffer.from(pattern(99, 64))], 'a control message is decoded from a copy');
    // Released, the buffers are read into again; what was kept past the pinning limit was copied.
    for (const k of [...got.values()].flat()) k.release();
  } finally {
    p.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a released buffer is read into again; bytes kept from it beforehand are not', { skip: process.platform !== 'linux', timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'enarx-reads-'));
  const p = pipes(dir, 4096);
  try {
    // As the Endpoint does, the sink keeps what it keeps while it handles the read.
    const chunks: { chunk: Uint8Array; kept?: { bytes: Uint8Array; release(): void } }[] = [];
    let keepNext = false;
    let wake = () => {};
    p.host.reads!.listen((chunk) => {
      chunks.push(keepNext ? { chunk, kept: p.host.reads!.keep(chunk) } : { chunk });
      wake();
    });
    const next = async (bytes: Uint8Array, keep: boolean) => {
      keepNext = keep;
      const arrived = new Promise<void>((resolve) => (wake = resolve));
      p.keep.write(bytes);
      await arrived;
      return chunks.at(-1)!;
    };
    const first = await next(pattern(1, 100), true);
    const kept = first.kept!;
    assert.equal(kept.bytes, first.chunk, 'kept as the view itself, no copy');
    const second = await next(pattern(2, 100), false);
    assert.notEqual(second.chunk.buffer, first.chunk.buffer, 'a pinned buffer is not read into');
    assert.deepEqual(kept.bytes, Buffer.from(pattern(1, 100)));
    const third = await next(pattern(3, 100), false);
    assert.equal(third.chunk.buffer, second.chunk.buffer, 'an unpinned buffer is read into again');
    assert.deepEqual(kept.bytes, Buffer.from(pattern(1, 100)));
    kept.release();
    kept.release(); // twice is once
    // Pin buffers up to the limit; past it, keep copies.
    const pins: { bytes: Uint8Array; release(): void }[] = [];
    let copies = 0;
    for (let i = 0; i < 12; i++) {
      const { chunk, kept: k } = await next(pattern(10 + i, 50), true);
      if (k!.bytes.buffer !== chunk.buffer) copies++;
      pins.push(k!);
    }
    assert.ok(copies >= 3 && copies < 12, `past the pinning limit kept bytes are copies (${copies} of 12)`);
    await next(pattern(30, 50), false); // reads into a buffer again
    pins.forEach((k, i) => assert.deepEqual(k.bytes, Buffer.from(pattern(10 + i, 50)), `kept read ${i} is intact`));
    for (const k of pins) k.release();
    const after = await next(pattern(31, 50), true);
    assert.equal(after.kept!.bytes, after.chunk, 'released, buffers may be pinned again');
    after.kept!.release();
  } finally {
    p.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
