import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeBeforeStreams } from '../../src/keep/process/adopted.ts';
import { runEnarx } from '../helpers/cli.ts';
import { REPO_ROOT } from '../helpers/paths.ts';

const ADOPTED = join(REPO_ROOT, 'src', 'keep', 'process', 'adopted.ts');

// A host whose Keep bin/enarx started: the sallyport's pipes on fds 3 and 4 and the Keep's stderr
// on fd 5, as bin/enarx lays them out (process substitutions reopened through /dev/fd); this Node
// also holds fd 7, the other end of fd 4's pipe, so that it can read what reached "the Keep".
// ('file': fd 4 is that file instead, which is not a pipe.)
const LAYOUT = 'exec 7<> <(:) 8<> <(:) 9<> <(:); if [[ $2 == file ]]; then exec 4>>"$3"; else exec 4>/dev/fd/7; fi; exec "$0" --input-type=module -e "$1" "$2" 3</dev/fd/8 5</dev/fd/9';

const HOST = `
const { adoptKeep, writeBeforeStreams } = await import(${JSON.stringify(ADOPTED)});
const { closeSync, readSync } = process.getBuiltinModule('node:fs');
const keep = adoptKeep(process.pid);
// More than any pipe holds (1 MiB at most unprivileged): the Keep is not reading.
const frames = [Buffer.alloc(100, 1), Buffer.alloc(4 << 20, 2)];
const out = {};
if (process.argv[1] === 'file') {
  out.file = writeBeforeStreams(keep, frames);
} else if (process.argv[1] === 'gone') {
  closeSync(7); // the only reader: the Keep is gone
  out.gone = writeBeforeStreams(keep, frames);
} else {
  out.first = writeBeforeStreams(keep, frames);
  out.full = writeBeforeStreams(keep, frames);
  const got = Buffer.alloc(out.first);
  for (let at = 0; at < got.length; ) at += readSync(7, got, at, got.length - at, null);
  out.inOrder = got.subarray(0, 100).every((b) => b === 1) && got.subarray(100).every((b) => b === 2);
  keep.stdio; // the streams exist now: the endpoint writes, not this
  out.afterStreams = writeBeforeStreams(keep, frames);
}
process.stdout.write(JSON.stringify(out));
process.exit(0);
`;

function host(mode: string, file = ''): Record<string, unknown> {
  const r = spawnSync('bash', ['-c', LAYOUT, process.execPath, HOST, mode, file], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

test('the hand-over to a Keep bin/enarx started takes what its pipe holds now, in order, and never waits for the Keep', () => {
  const { first, full, inOrder, afterStreams } = host('ready') as { first: number; full: number; inOrder: boolean; afterStreams: number };
  assert.ok(first >= 4096 && first < 100 + (4 << 20), `the pipe took part of it: ${first} bytes`);
  assert.equal(full, 0, 'a full pipe takes nothing, at once');
  assert.ok(inOrder, 'the bytes arrive as written');
  assert.equal(afterStreams, 0, 'once the streams exist, the endpoint writes');
  assert.deepEqual(host('gone'), { gone: 0 }, 'a Keep that is gone takes nothing, and the host does not fail');
  assert.equal(writeBeforeStreams(new EventEmitter() as unknown as ChildProcess, [Buffer.alloc(1)]), 0, 'only a Keep bin/enarx started');
  const dir = mkdtempSync(join(tmpdir(), 'enarx-adopted-'));
  try {
    const file = join(dir, 'not-a-pipe');
    writeFileSync(file, '');
    assert.deepEqual(host('file', file), { file: 0 }, 'a descriptor that is not a pipe is left to the endpoint');
    assert.equal(readFileSync(file).length, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a module larger than a pipe reaches a Keep bin/enarx started whole', async () => {
  const cache = mkdtempSync(join(tmpdir(), 'enarx-shell-keep-'));
  try {
    // hello.wasm with a 3 MiB custom section: the hand-over is three pipes' worth of frames.
    const hello = readFileSync(join(REPO_ROOT, 'examples', 'hello.wasm'));
    const name = Buffer.from('padding');
    const payload = Buffer.alloc(3 << 20, 0x5a);
    const body = Buffer.concat([Buffer.from([name.length]), name, payload]);
    const big = join(cache, 'big.wasm');
    writeFileSync(big, Buffer.concat([hello, Buffer.from([0]), leb128(body.length), body]));
    const run = () => runEnarx(['run', '--log-level', 'debug', big], { env: { ENARX_KEEP_CACHE: cache }, timeoutMs: 120_000, shell: true });
    for (let i = 0; i < 2; i++) assert.equal((await run()).code, 0); // builds the bundle, leaves the command
    for (let i = 0; i < 3; i++) {
      const r = await run();
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'Hello, world!\n');
      assert.match(r.stderr, /started early, by the shell launcher/);
    }
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

function leb128(n: number): Buffer {
  const bytes: number[] = [];
  do {
    const b = n & 0x7f;
    n >>>= 7;
    bytes.push(n ? b | 0x80 : b);
  } while (n);
  return Buffer.from(bytes);
}
