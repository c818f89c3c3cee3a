// The Keep writes the guest's output frames straight to its sallyport descriptor while nothing is
// queued (endpoint.ts #writeNow). The guest's memory changes once its call returns, and the pipe
// takes only what fits: what a full pipe refuses must leave as a copy, after what went before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Endpoint, FrameDecoder, decodeMessage } from '../../src/sallyport/index.ts';
import type { HostMessage, KeepMessage } from '../../src/sallyport/index.ts';

test('guest output written straight to a full pipe arrives whole, in order, as it was when sent', { skip: process.platform !== 'linux', timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'enarx-direct-'));
  const streams: { destroy(): void }[] = [];
  try {
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writeFd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    const output = new Socket({ fd: writeFd, readable: false, writable: true });
    const input = new PassThrough();
    streams.push(output, input);
    const keep = new Endpoint<HostMessage, KeepMessage>({ input, output, outputFd: writeFd }, {
      incoming: 'host-to-keep',
      onMessage: () => {},
      onViolation: (err) => assert.fail(err.message),
      onClose: () => {},
    });
    keep.openStream(1);
    // Nobody reads yet: the first writes go straight into the pipe, a later one only in part, and
    // the rest wait in the queue. 16 writes of 40 000 bytes fit the window (1 MiB) and overflow a
    // pipe of 64 KiB; each buffer is overwritten (as a guest reuses its memory) right after.
    const guest = new Uint8Array(40_000);
    const sent: number[] = [];
    for (let i = 0; i < 16; i++) {
      guest.fill(i + 1);
      sent.push(keep.trySendData(1, guest));
      guest.fill(0xee);
    }
    assert.deepEqual(sent, new Array(16).fill(40_000));
    assert.ok(output.writableLength > 0, 'positive control: the pipe filled and the rest was queued');
    const reader = new Socket({ fd: readFd, readable: true, writable: false });
    streams.push(reader);
    const decoder = new FrameDecoder();
    const got: Uint8Array[] = [];
    await new Promise<void>((resolve, reject) => {
      let bytes = 0;
      reader.on('data', (chunk: Buffer) => {
        for (const payload of decoder.push(chunk)) {
          const m = decodeMessage(payload, 'keep-to-host');
          if (m.t !== 'data' || m.stream !== 1) return reject(new Error(`unexpected ${m.t}`));
          got.push(m.bytes);
          bytes += m.bytes.length;
        }
        if (bytes === 16 * 40_000) resolve();
      });
      reader.on('error', reject);
    });
    assert.equal(got.length, 16);
    got.forEach((bytes, i) => assert.ok(bytes.every((b) => b === i + 1), `write ${i} arrived as it was sent`));
  } finally {
    for (const s of streams) s.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
