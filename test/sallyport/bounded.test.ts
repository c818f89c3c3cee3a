// What a Keep can make its host buffer: at most a stream's window (1 MiB) per stream, whatever the
// Keep does. A Keep that writes without end while the host's stdout is blocked, and one that never
// reads its pipe while the host has stdin to give, leave the host holding no more than that.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { startKeep } from '../helpers/process-keep.ts';

const WINDOW = 1024 * 1024;
/** Room for a frame in flight and the streams' own buffers beyond the window. */
const SLACK = 256 * 1024;

/** Polls `value` until it stops growing (the same reading twice, 500 ms apart), then returns it. */
async function settled(value: () => number): Promise<number> {
  let last = -1;
  for (let i = 0; i < 120; i++) {
    const now = value();
    if (now === last && now > 0) return now;
    last = now;
    await sleep(500);
  }
  return value();
}

test('a Keep that writes stdout without end, while the host cannot write its stdout, gets no more than its window buffered', async () => {
  // A reader that never reads: the host's stdout accepts the first chunk and never finishes it.
  const blocked = new Writable({ highWaterMark: 16 * 1024, write: () => {} });
  const abort = new AbortController();
  const run = startKeep('iobench', ['stdout', '4096'], { stdout: blocked, signal: abort.signal });
  run.stdin.end();
  const held = await settled(() => blocked.writableLength);
  abort.abort();
  const outcome = await run.outcome;
  assert.ok(held > 0, 'positive control: the workload wrote');
  assert.ok(held <= WINDOW + SLACK, `the host holds ${held} bytes of the Keep's stdout`);
  assert.equal(outcome.kind, 'aborted');
});

test('a Keep that never reads its pipe gets no more of the host\'s stdin than its window', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'enarx-bounded-'));
  try {
    const file = join(dir, 'deaf-keep.mjs');
    // A stand-in Keep that holds its end of the pipe open and never reads it.
    writeFileSync(file, `import { Socket } from 'node:net';
new Socket({ fd: 3, readable: true, writable: true }).pause();
setInterval(() => {}, 1000);`);
    let pulled = 0;
    const stdin = new Readable({
      highWaterMark: 64 * 1024,
      read() {
        if (pulled >= 256 * WINDOW) return void this.push(null);
        pulled += 64 * 1024;
        this.push(Buffer.alloc(64 * 1024, 0x61));
      },
    });
    const abort = new AbortController();
    const run = startKeep('hello', [], { stdin, signal: abort.signal, launch: async () => ({ command: process.execPath, args: [file] }) });
    const taken = await settled(() => pulled);
    abort.abort();
    await run.outcome;
    assert.ok(taken <= WINDOW + SLACK, `the host pulled ${taken} bytes of stdin for a Keep that reads nothing`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
