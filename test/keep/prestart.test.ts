import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { keepBundle } from '../../src/keep/process/launch.ts';
import { discardPrestarted, prestartKeep, takePrestarted } from '../../src/keep/process/prestart.ts';
import { runProcessKeep } from '../../src/keep/process/host.ts';
import { runEnarx } from '../helpers/cli.ts';
import { REPO_ROOT } from '../helpers/paths.ts';

const example = (name: string) => join(REPO_ROOT, 'examples', `${name}.wasm`);

const ended = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => child.once('exit', () => resolve()));

test('an early Keep is handed to the run with the same grants, and a run with other grants starts its own', async () => {
  await keepBundle();
  const dir = mkdtempSync(join(tmpdir(), 'enarx-prestart-'));
  try {
    prestartKeep({ readDirs: [dir], writeDirs: [dir] });
    const early = takePrestarted({ readDirs: [dir], writeDirs: [] });
    assert.equal(early, undefined, 'different grants: not handed over');
    assert.equal(takePrestarted({ readDirs: [dir], writeDirs: [dir] }), undefined, 'it was discarded, not kept for later');

    prestartKeep({ readDirs: [], writeDirs: [] });
    const pids: number[] = [];
    const outcome = await runProcessKeep({
      module: readFileSync(example('hello')),
      args: ['hello.wasm'],
      env: [],
      files: [{ kind: 'null', name: 'stdin' }, { kind: 'null', name: 'stdout' }, { kind: 'null', name: 'stderr' }],
      onSpawn: (pid) => pids.push(pid),
    });
    assert.deepEqual(outcome, { kind: 'exit', code: 0 });
    assert.equal(pids.length, 1);
    assert.equal(takePrestarted({ readDirs: [], writeDirs: [] }), undefined, 'the run took the early Keep');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an early Keep the run does not take is killed', async () => {
  await keepBundle();
  prestartKeep({ readDirs: [], writeDirs: [] });
  const child = takePrestarted({ readDirs: [], writeDirs: [] })!;
  assert.ok(child.pid);
  child.kill('SIGKILL');
  await ended(child);
  prestartKeep({ readDirs: [], writeDirs: [] });
  discardPrestarted();
  assert.equal(takePrestarted({ readDirs: [], writeDirs: [] }), undefined);
});

test('enarx run: the process Keep with --dir grants, and a failed run, behave as before', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'enarx-prestart-'));
  try {
    const ok = await runEnarx(['run', '--backend', 'process', '--dir', `${dir}::/data`, example('fileio'), '/data']);
    assert.equal(ok.code, 0, ok.stderr);
    const missing = await runEnarx(['run', join(dir, 'missing.wasm')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read module .*missing\.wasm: no such file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an early Keep of a stale bundle is never used: the run builds and starts a current one', async () => {
  // The index names a bundle whose sources changed since (its stamp no longer matches); that
  // bundle would exit 42 if it ever ran a workload.
  const cache = mkdtempSync(join(tmpdir(), 'enarx-prestart-cache-'));
  try {
    mkdirSync(join(cache, '0123456789abcdef'));
    writeFileSync(join(cache, '0123456789abcdef', 'keep.mjs'), 'process.exit(42);\n');
    writeFileSync(join(cache, 'current.json'), JSON.stringify({ inputs: [join(REPO_ROOT, 'src', 'keep', 'process', 'main.ts')], stamp: 'stale', dir: '0123456789abcdef' }));
    const run = await runEnarx(['run', '--backend', 'process', example('hello')], { env: { ENARX_KEEP_CACHE: cache }, timeoutMs: 120_000 });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'Hello, world!\n');
    const index = JSON.parse(readFileSync(join(cache, 'current.json'), 'utf8')) as { dir: string };
    assert.notEqual(index.dir, '0123456789abcdef', 'a current bundle was built');
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
