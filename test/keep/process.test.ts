import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { exitStatus } from '../../src/keep/process/host.ts';
import { diesWithHost } from '../../src/keep/process/launch.ts';
import { STDIO, startKeep } from '../helpers/process-keep.ts';
import { REPO_ROOT } from '../helpers/paths.ts';
import { pidAlive } from '../helpers/pids.ts';

test('hello runs in a separate process and its output crosses the sallyport', async () => {
  let pid = 0;
  const run = startKeep('hello', [], { onSpawn: (p) => (pid = p) });
  run.stdin.end();
  assert.deepEqual(await run.outcome, { kind: 'exit', code: 0 });
  assert.equal(run.stdout(), 'Hello, world!\n');
  assert.ok(pid > 0 && pid !== process.pid);
});

test('stdin is relayed with flow control: 3 MiB through rot13 arrive intact', async () => {
  const run = startKeep('rot13', []);
  const input = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < input.length; i++) input[i] = 97 + (i % 26);
  run.stdin.end(input);
  assert.deepEqual(await run.outcome, { kind: 'exit', code: 0 });
  const out = run.stdout();
  assert.equal(out.length, input.length);
  assert.equal(out.slice(0, 26), 'nopqrstuvwxyzabcdefghijklm');
});

test('exit codes pass through, a trap is reported with its reason', async () => {
  const exit = startKeep('exitcode', ['7']);
  exit.stdin.end();
  assert.deepEqual(await exit.outcome, { kind: 'exit', code: 7 });
  const trap = startKeep('trap', []);
  trap.stdin.end();
  const outcome = await trap.outcome;
  assert.equal(outcome.kind, 'trap');
  assert.match((outcome as { message: string }).message, /^wasm trap: .*divide by zero/);
  assert.equal(exitStatus(outcome), 134);
});

test('a module that cannot start is an error, not a crash', async () => {
  const run = startKeep('hello', [], { module: new TextEncoder().encode('definitely not wasm') });
  run.stdin.end();
  const outcome = await run.outcome;
  assert.equal(outcome.kind, 'error');
  assert.match((outcome as { message: string }).message, /not a WebAssembly module/);
  assert.equal(exitStatus(outcome), 1);
});

test('a Keep killed from outside is reported as a crash and the host carries on', async () => {
  const run = startKeep('sleep', ['10000'], { onSpawn: (pid) => setTimeout(() => process.kill(pid, 'SIGKILL'), 300) });
  const outcome = await run.outcome;
  assert.equal(outcome.kind, 'crash');
  assert.match((outcome as { message: string }).message, /killed by SIGKILL before reporting an outcome/);
});

test('the wall-time limit stops the Keep with 137 and names the limit', async () => {
  const started = performance.now();
  const run = startKeep('sleep', ['10000'], { limits: { wallTimeMs: 400 } });
  const outcome = await run.outcome;
  assert.deepEqual(outcome, { kind: 'limit', limit: 'wall-time', message: 'the Keep went over its wall-time limit (400ms)' });
  assert.equal(exitStatus(outcome), 137);
  assert.ok(performance.now() - started < 5000);
});

test('the RSS limit stops a Keep that grows past it', async () => {
  const run = startKeep('memhog', ['1024'], { limits: { rss: 160 * 1024 * 1024 } });
  const outcome = await run.outcome;
  assert.equal(outcome.kind, 'limit');
  assert.equal((outcome as { limit: string }).limit, 'rss');
  assert.match((outcome as { message: string }).message, /over its rss limit \(\d+\.\d MiB > 160\.0 MiB\)/);
});

test('the linear-memory limit makes memory.grow fail inside the Keep, as in the nil Keep', async () => {
  const run = startKeep('memhog', ['64'], { limits: { memory: 16 * 1024 * 1024 } });
  run.stdin.end();
  assert.deepEqual(await run.outcome, { kind: 'exit', code: 3 });
  const got = Number(/allocated (\d+) MiB/.exec(run.stdout())?.[1]);
  assert.ok(got > 0 && got < 16, run.stdout());
});

test('the descriptors limit bounds the guest fd table', async () => {
  const run = startKeep('hello', [], { limits: { descriptors: 3 }, files: [...STDIO, { kind: 'null', name: 'extra' }] });
  const outcome = await run.outcome;
  assert.equal(outcome.kind, 'error');
  assert.match((outcome as { message: string }).message, /4 descriptors configured, above the limit of 3/);
});

test('the Keep runs under the permission model: no net, no children, no workers, no addons, reads only its code', async () => {
  let pid = 0;
  const run = startKeep('sleep', ['2000'], { onSpawn: (p) => (pid = p) });
  await new Promise((r) => setTimeout(r, 300));
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
  process.kill(pid, 'SIGKILL');
  await run.outcome;
  assert.ok(argv.includes('--permission'));
  for (const flag of ['--allow-net', '--allow-child-process', '--allow-worker', '--allow-addons', '--allow-wasi']) {
    assert.ok(!argv.some((a) => a.startsWith(flag)), `${flag} must not be given`);
  }
  const reads = argv.filter((a) => a.startsWith('--allow-fs-read='));
  assert.equal(reads.length, 1);
  assert.match(reads[0]!, /enarx-keep/);
  assert.ok(!argv.some((a) => a.startsWith('--allow-fs-write')));
  const env = readFileSync(`/proc/${process.pid}/environ`, 'latin1');
  assert.ok(env.length > 0);
});

test('no orphan: when the host is killed with SIGKILL, its Keep dies too', { skip: !diesWithHost && 'setpriv is not installed' }, async () => {
  const script = `
    import { runProcessKeep } from ${JSON.stringify(`${REPO_ROOT}/src/keep/process/host.ts`)};
    import { readFileSync } from 'node:fs';
    await runProcessKeep({ module: readFileSync(${JSON.stringify(`${REPO_ROOT}/examples/sleep.wasm`)}), args: ['sleep', '20000'], env: [],
      files: [{ kind: 'stdout', name: 'stdout' }], onSpawn: (pid) => console.log(pid) });`;
  const host = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const keepPid = await new Promise<number>((resolve) => host.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
  assert.ok(keepPid > 0);
  assert.ok(pidAlive(keepPid));
  host.kill('SIGKILL');
  const deadline = Date.now() + 3000;
  while (pidAlive(keepPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(pidAlive(keepPid), false, 'the Keep outlived its host');
});
