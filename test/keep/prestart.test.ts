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

/** Processes whose command line names `dir` (a Keep's bundle lives there). */
function processesUsing(dir: string): number[] {
  const { readdirSync: ls } = process.getBuiltinModule('node:fs');
  const pids: number[] = [];
  for (const name of ls('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(dir)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

test('the launcher starts a plain run\'s Keep itself, with the command the last run left, only while it is the host\'s', async () => {
  const cache = mkdtempSync(join(tmpdir(), 'enarx-launcher-keep-'));
  const file = join(cache, 'launcher-keep.json');
  const run = (...args: string[]) => runEnarx(['run', '--log-level', 'debug', ...args, example('hello')], { env: { ENARX_KEEP_CACHE: cache }, timeoutMs: 120_000 });
  try {
    const build = await run(); // builds the Keep's bundle: no Keep starts early
    assert.equal(build.code, 0, build.stderr);
    const first = await run();
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /started early, by the host/);
    const left = readFileSync(file, 'utf8');
    const command = JSON.parse(left) as { command: string; args: string[]; options: { env: object } };
    assert.ok(command.args.includes('--permission') && command.args.at(-1)!.startsWith(cache), 'the Keep command, with its bundle');
    assert.deepEqual(command.options.env, {});

    const second = await run();
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, 'Hello, world!\n');
    assert.match(second.stderr, /started early, by the launcher/);

    // A command that is no longer the host's (here one more Node flag) is killed, not used, and replaced.
    writeFileSync(file, JSON.stringify({ ...command, args: [...command.args.slice(0, -1), '--max-old-space-size=64', command.args.at(-1)] }));
    const changed = await run();
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stderr, /started early, by the host/);
    assert.equal(readFileSync(file, 'utf8'), left, 'the file holds the current command again');

    // So is one whose command matches but whose spawn differs (a file another version left).
    writeFileSync(file, JSON.stringify({ ...command, options: { ...command.options, stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] } }));
    const otherStdio = await run();
    assert.equal(otherStdio.code, 0, otherStdio.stderr);
    assert.match(otherStdio.stderr, /started early, by the host/);
    assert.equal(readFileSync(file, 'utf8'), left);

    // The file is a cache, not a configuration: nothing but Node (through setpriv) is started from it.
    writeFileSync(file, JSON.stringify({ ...command, command: '/bin/sh', args: ['-c', `touch ${join(cache, 'ran')}`] }));
    const foreign = await run();
    assert.equal(foreign.code, 0, foreign.stderr);
    assert.match(foreign.stderr, /started early, by the host/);
    assert.equal(processesUsing(join(cache, 'ran')).length, 0);
    assert.throws(() => readFileSync(join(cache, 'ran')), /ENOENT/);

    // A directory grant changes the Keep's command: the launcher leaves such runs to the host.
    const granted = await run('--dir', cache);
    assert.equal(granted.code, 0, granted.stderr);
    assert.match(granted.stderr, /started early, by the host/);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test('a Keep the launcher started is killed when the run does not take it (a usage error, help)', async () => {
  const cache = mkdtempSync(join(tmpdir(), 'enarx-launcher-keep-'));
  try {
    for (let i = 0; i < 2; i++) assert.equal((await runEnarx(['run', example('hello')], { env: { ENARX_KEEP_CACHE: cache }, timeoutMs: 120_000 })).code, 0);
    assert.ok(readFileSync(join(cache, 'launcher-keep.json'), 'utf8').length > 0, 'the launcher has a command to start');
    for (const args of [['run', '--help'], ['run', '--memory-limit']]) {
      const r = await runEnarx(args, { env: { ENARX_KEEP_CACHE: cache }, timeoutMs: 20_000 });
      assert.notEqual(r.stdout + r.stderr, '', args.join(' '));
      assert.equal(r.signal, null, `enarx ${args.join(' ')} exits on its own: the unused Keep does not hold it`);
    }
    // Killed by the launcher as it exits (and by the kernel with it); give the kernel a moment to reap.
    for (let i = 0; i < 50 && processesUsing(cache).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(processesUsing(cache), []);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

/** Waits until no process's command line names `dir` (the kernel may take a moment to reap). */
async function noneUsing(dir: string): Promise<number[]> {
  for (let i = 0; i < 100 && processesUsing(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  return processesUsing(dir);
}

test('bin/enarx starts a plain run\'s Keep before the host\'s Node, with the command the last run left, only while it is the host\'s', async () => {
  const cache = mkdtempSync(join(tmpdir(), 'enarx-shell-keep-'));
  const file = join(cache, 'launcher-keep.argv');
  const run = (...args: string[]) => runEnarx(['run', '--log-level', 'debug', ...args], { env: { ENARX_KEEP_CACHE: cache }, timeoutMs: 120_000, shell: true });
  try {
    for (let i = 0; i < 2; i++) assert.equal((await run(example('hello'))).code, 0); // builds the bundle, leaves the command
    const left = readFileSync(file, 'utf8');
    const json = JSON.parse(readFileSync(join(cache, 'launcher-keep.json'), 'utf8')) as { command: string; args: string[] };
    assert.equal(left, [json.command, ...json.args].map((a) => `${a}\0`).join(''), 'the same command as the JavaScript launcher\'s, NUL-separated');

    const adopted = await run(example('hello'));
    assert.equal(adopted.code, 0, adopted.stderr);
    assert.equal(adopted.stdout, 'Hello, world!\n');
    assert.match(adopted.stderr, /started early, by the shell launcher/);
    const code = await run(example('exitcode'), '7');
    assert.equal(code.code, 7, 'the guest\'s exit status, through an adopted Keep');

    // A command that is no longer the host's is killed, not used, and replaced.
    const argv = left.split('\0').slice(0, -1);
    writeFileSync(file, [...argv.slice(0, -1), '--max-old-space-size=64', argv.at(-1)!].map((a) => `${a}\0`).join(''));
    const changed = await run(example('hello'));
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stderr, /started early, by the host/);
    assert.equal(readFileSync(file, 'utf8'), left, 'the file holds the current command again');

    // The file is a cache, not a configuration: nothing but Node under the permission model,
    // through setpriv with its death signal, is started from it.
    const ran = join(cache, 'ran');
    for (const foreign of [['/bin/sh', '-c', `touch ${ran}`, '-', '-', '-', '-'], ['/usr/bin/setpriv', '--pdeathsig', 'KILL', '--', '/usr/bin/touch', '--permission', ran]]) {
      writeFileSync(file, foreign.map((a) => `${a}\0`).join(''));
      const r = await run(example('hello'));
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /shell launcher/);
      assert.throws(() => readFileSync(ran), /ENOENT/, foreign.join(' '));
    }

    // A directory grant or another backend: the shell launcher starts nothing.
    const granted = await run('--dir', cache, example('hello'));
    assert.equal(granted.code, 0, granted.stderr);
    assert.match(granted.stderr, /started early, by the host/);
    const nil = await run('--backend', 'nil', example('hello'));
    assert.equal(nil.code, 0, nil.stderr);
    assert.doesNotMatch(nil.stderr, /started early/);
    assert.deepEqual(await noneUsing(cache), [], 'no Keep is left behind');
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test('a Keep bin/enarx started dies with its host, its own death is reported, and an unused one is killed', async () => {
  const cache = mkdtempSync(join(tmpdir(), 'enarx-shell-keep-'));
  const env = { ENARX_KEEP_CACHE: cache };
  try {
    for (let i = 0; i < 2; i++) assert.equal((await runEnarx(['run', example('hello')], { env, timeoutMs: 120_000, shell: true })).code, 0);
    const keepRunning = async (child: ChildProcess): Promise<number> => {
      for (let i = 0; i < 300; i++) {
        const pids = processesUsing(cache).filter((p) => p !== child.pid);
        if (pids.length > 0) return pids[0]!;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('no Keep started');
    };
    const { spawnEnarx } = await import('../helpers/cli.ts');

    // The host is killed: the kernel kills its Keep (setpriv's death signal).
    const host = spawnEnarx(['run', example('sleep'), '60000'], { env, shell: true, stdio: 'ignore' });
    await keepRunning(host);
    host.kill('SIGKILL');
    await ended(host);
    assert.deepEqual(await noneUsing(cache), [], 'the Keep died with its host');

    // The Keep is killed: the host, which did not spawn it, still learns how it ended.
    const run = runEnarx(['run', example('sleep'), '60000'], { env, timeoutMs: 60_000, shell: true });
    const deadline = Date.now() + 30_000;
    let keep: number | undefined;
    while (keep === undefined && Date.now() < deadline) {
      // The Keep's command line names the cache; the host's (bin/enarx.js) does not.
      keep = processesUsing(cache).find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('--permission'));
      if (keep === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(keep, 'the Keep started');
    process.kill(keep, 'SIGKILL');
    const killed = await run;
    assert.equal(killed.code, 1);
    assert.match(killed.stderr, /the Keep was killed by SIGKILL before reporting an outcome/);

    // Not a run after all: the Keep is killed as the host exits.
    const help = await runEnarx(['run', '--help'], { env, timeoutMs: 20_000, shell: true });
    assert.equal(help.code, 0, help.stderr);
    assert.deepEqual(await noneUsing(cache), []);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test('bin/enarx runs bin/enarx.js with its shebang\'s Node flags, and the host takes only a Keep that is its own child', async () => {
  const { LAUNCHER_FLAGS } = await import('../helpers/cli.ts');
  const shell = readFileSync(join(REPO_ROOT, 'bin', 'enarx'), 'utf8');
  const exec = /^exec node ((?:--[\w-]+ )*)"\$bin\/enarx\.js" "\$@"$/m.exec(shell);
  assert.ok(exec, 'bin/enarx ends by exec-ing node with flags');
  assert.deepEqual(exec[1]!.trim().split(' '), LAUNCHER_FLAGS);
  // A variable naming another process (here init) is not a Keep this host started: ignored.
  const r = await runEnarx(['run', '--log-level', 'debug', example('hello')], { env: { ENARX_LAUNCHER_KEEP: `1 1 /usr/bin/setpriv\x1f--pdeathsig` }, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Hello, world!\n');
});

// What bin/enarx accepts from launcher-keep.argv, checked without a real Node: a stand-in `node`
// (first in PATH, and the program the argv names) reports whether the launcher exported a Keep
// for it, so the answer does not depend on how fast anything starts.
test('bin/enarx starts only setpriv with its exact walls and death signal, then Node under the permission model', async () => {
  const { spawnSync } = await import('node:child_process');
  const { chmodSync } = await import('node:fs');
  const { SETPRIV_WALLS } = await import('../../src/keep/process/launch.ts');
  const dir = mkdtempSync(join(tmpdir(), 'enarx-shell-argv-'));
  try {
    const node = join(dir, 'node');
    // As the host it prints what the launcher left it, and ends the Keep the launcher started (its child).
    writeFileSync(node, '#!/bin/sh\nprintf %s "$ENARX_LAUNCHER_KEEP"\nkill -9 $(cat /proc/$$/task/*/children) 2>/dev/null\nexit 0\n');
    chmodSync(node, 0o755);
    const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => { try { return readFileSync(p).length > 0; } catch { return false; } });
    const started = (argv: string[]): boolean => {
      writeFileSync(join(dir, 'launcher-keep.argv'), argv.map((a) => `${a}\0`).join(''));
      const r = spawnSync(join(REPO_ROOT, 'bin', 'enarx'), ['run', example('hello')], {
        env: { PATH: `${dir}:/usr/bin:/bin`, ENARX_KEEP_CACHE: dir },
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout !== '';
    };
    const rest = [node, '--permission', `--allow-fs-read=${dir}`, join(dir, 'keep.mjs')];
    const walls = [...SETPRIV_WALLS, '--pdeathsig', 'KILL', '--'];
    assert.ok(started([setpriv!, ...walls, ...rest]), 'positive control: the command the host writes is started');
    assert.equal(started([setpriv!, '--pdeathsig', 'KILL', '--', ...rest]), false, 'without no_new_privs and the capability drop (session 5\'s command)');
    assert.equal(started([setpriv!, '--reuid=0', ...walls, ...rest]), false, 'with another setpriv option');
    assert.equal(started([setpriv!, ...walls.filter((w) => w !== '--nnp'), ...rest]), false, 'with a wall missing');
    const other = process.geteuid?.() === 0 ? walls.filter((w) => w !== '--bounding-set=-all') : [...SETPRIV_WALLS, '--bounding-set=-all', '--pdeathsig', 'KILL', '--'];
    assert.equal(started([setpriv!, ...other, ...rest]), false, 'with the walls of a host of the other kind (root or not)');
    assert.equal(started([setpriv!, ...walls, node, '-e', 'x', 'y']), false, 'Node without the permission model');
    assert.equal(started([setpriv!, ...walls, '/bin/sh', '--permission', 'x', 'y']), false, 'another program');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
