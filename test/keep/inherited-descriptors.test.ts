import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runEnarx, spawnEnarx } from '../helpers/cli.ts';
import { REPO_ROOT } from '../helpers/paths.ts';
import { assertUnprivileged, statusField } from '../helpers/process-keep.ts';

/** The process's children (/proc/PID/task/TID/children). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    } catch {
      // the thread ended
    }
  }
  return out;
}

// A descriptor enarx inherits without close-on-exec (a shell's `40<FILE`, a build tool's pipe)
// would pass on to the process Keep, where the permission model, which checks paths, would not
// stop the Keep's JavaScript from reading it. enarx closes such descriptors before it starts a Keep.
test('a process Keep does not inherit the descriptors or the environment of its host, and may read only its bundle', { skip: process.platform !== 'linux' }, async () => {
  await keepDoesNotInherit('host');
});

// The same for the Keep the shell launcher (bin/enarx) starts before the host's Node: the shell
// passes on what it inherited unless it closes it.
test('a Keep bin/enarx starts does not inherit the descriptors or the environment of its caller either', { skip: process.platform !== 'linux' }, async () => {
  const cache = mkdtempSync(join(tmpdir(), 'enarx-inherit-cache-'));
  try {
    const env = { ENARX_KEEP_CACHE: cache };
    // The first run builds the bundle, the second leaves the command the shell starts.
    for (let i = 0; i < 2; i++) assert.equal((await runEnarx(['run', join(REPO_ROOT, 'examples', 'hello.wasm')], { env, timeoutMs: 120_000, shell: true })).code, 0);
    await keepDoesNotInherit('shell', env);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

// bin/enarx.js closes what it inherited only before it starts a process: here the Keep the host
// starts in place of one bin/enarx started that it does not adopt (a command no longer its own).
test('nor does the Keep a host starts in place of the one bin/enarx started', { skip: process.platform !== 'linux' }, async () => {
  const cache = mkdtempSync(join(tmpdir(), 'enarx-inherit-cache-'));
  try {
    const env = { ENARX_KEEP_CACHE: cache };
    for (let i = 0; i < 2; i++) assert.equal((await runEnarx(['run', join(REPO_ROOT, 'examples', 'hello.wasm')], { env, timeoutMs: 120_000, shell: true })).code, 0);
    const file = join(cache, 'launcher-keep.argv');
    const argv = readFileSync(file, 'utf8').split('\0').slice(0, -1);
    writeFileSync(file, [...argv.slice(0, -1), '--max-old-space-size=64', argv.at(-1)!].map((a) => `${a}\0`).join(''));
    await keepDoesNotInherit('replaced', env);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

/** The process Keep that enarx process `child` started (Node run with --permission), once there is one. */
async function keepOf(child: ChildProcess, stderr: () => string): Promise<number> {
  let keep: number | undefined;
  for (let i = 0; i < 300 && keep === undefined && child.exitCode === null; i++) {
    keep = childrenOf(child.pid!).find((pid) => {
      try {
        // Node itself: setpriv's command line names --permission too, until it execs Node, and
        // it drops its capabilities only just before.
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return argv[0]!.endsWith('/node') && argv.includes('--permission');
      } catch {
        return false;
      }
    });
    if (keep === undefined) await sleep(50);
  }
  assert.ok(keep !== undefined, `the Keep process was found: ${stderr()}`);
  return keep;
}

/** A running Keep's --allow flags, and its bundle's directory. */
function grantsOf(keep: number): { allow: string[]; bundleDir: string } {
  const argv = readFileSync(`/proc/${keep}/cmdline`, 'utf8').split('\0');
  const bundle = argv.at(-2)!;
  assert.match(bundle, /\/keep\.mjs$/);
  return { allow: argv.filter((a) => a.startsWith('--allow')), bundleDir: dirname(bundle) };
}

test('a process Keep with a --dir may read its bundle and that directory, and write only that directory', { skip: process.platform !== 'linux' }, async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'enarx-grant-')));
  try {
    const child = spawnEnarx(['run', '--backend', 'process', '--dir', `${dir}::/data`, join(REPO_ROOT, 'examples', 'sleep.wasm'), '4000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const keep = await keepOf(child, () => stderr);
    const { allow, bundleDir } = grantsOf(keep);
    assert.deepEqual(allow.toSorted(), [`--allow-fs-read=${bundleDir}`, `--allow-fs-read=${dir}`, `--allow-fs-write=${dir}`].toSorted());
    assertUnprivileged(keep, 'the host-spawned Keep');
    child.kill('SIGTERM');
    await exited;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** `how` the Keep starts: by the host, by bin/enarx, or by the host in place of the one bin/enarx started. */
async function keepDoesNotInherit(how: 'host' | 'shell' | 'replaced', env: NodeJS.ProcessEnv = {}): Promise<void> {
  const shell = how !== 'host';
  const dir = mkdtempSync(join(tmpdir(), 'enarx-inherit-'));
  const secret = join(dir, 'host-secret.txt');
  writeFileSync(secret, 'SECRET');
  const fd = openSync(secret, 'r');
  try {
    // Node marks some low-numbered inherited descriptors close-on-exec at start-up, not high ones.
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
    for (let i = 3; i < 40; i++) stdio.push('ignore');
    stdio.push(fd);
    const child = spawnEnarx(['run', '--backend', 'process', '--log-level', 'debug', join(REPO_ROOT, 'examples', 'sleep.wasm'), '4000'], { stdio, shell, env });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    if (how === 'replaced') {
      // Not bin/enarx's Keep, which the host kills (a zombie then, which keepOf passes over).
      for (let i = 0; i < 600 && !/started early/.test(stderr) && child.exitCode === null; i++) await sleep(50);
      assert.match(stderr, /started early, by the host/);
    }
    const keep = await keepOf(child, () => stderr);
    const held = readdirSync(`/proc/${keep}/fd`).map((n) => {
      try {
        return `${n} -> ${readlinkSync(`/proc/${keep}/fd/${n}`)}`;
      } catch {
        return `${n} -> ?`;
      }
    });
    // The sallyport: a socket pair's end, or (from the shell launcher) a pipe, with one back on fd 4.
    assert.ok(held.some((l) => (how === 'shell' ? /^3 -> pipe:/ : /^3 -> socket:/).test(l)), `positive control: the sallyport is fd 3: ${held.join(', ')}`);
    assert.ok(!held.some((l) => l.endsWith(secret)), `the Keep holds the host's file: ${held.join(', ')}`);
    // And nothing else of the host's: an empty environment (the host's has PATH, HOME, tokens...),
    // and the permission model granting reads of its bundle's directory only (no --dir here).
    assert.equal(readFileSync(`/proc/${keep}/environ`, 'utf8'), '', 'the Keep\'s environment is empty');
    const { allow, bundleDir } = grantsOf(keep);
    assert.deepEqual(allow, [`--allow-fs-read=${bundleDir}`]);
    // Nor its privileges: the kernel gives the Keep no capability and no way to gain one by exec,
    // though its host (root, here) holds them all.
    assertUnprivileged(keep, 'the Keep');
    if (process.geteuid?.() === 0) assert.notEqual(statusField(child.pid!, 'CapEff'), '0000000000000000', 'positive control: the host holds capabilities');
    // The shell's Keep runs before the host's Node is up: the host takes it before it is stopped.
    for (let i = 0; how === 'shell' && i < 600 && !/started early/.test(stderr) && child.exitCode === null; i++) await sleep(50);
    if (how === 'shell') assert.match(stderr, /started early, by the shell launcher/);
    // Its pipes hold a sallyport window, not 64 KiB: bin/enarx has perl resize them (bash cannot).
    if (how === 'shell' && existsSync('/usr/bin/perl')) {
      for (const n of [3, 4]) {
        const size = execFileSync('/usr/bin/perl', ['-e', `open(my $p, "+<", "/proc/${keep}/fd/${n}") or die "$!"; print fcntl($p, 1032, 0)`], { encoding: 'utf8' });
        assert.equal(Number(size), 1 << 20, `the Keep's fd ${n} holds 1 MiB`);
      }
    }
    child.kill('SIGTERM');
    await exited;
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The pipe inode a descriptor of `pid` names ('pipe:[N]'), or undefined. */
function pipeOf(pid: number, fd: number | string): string | undefined {
  try {
    return /^pipe:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
  } catch {
    return undefined;
  }
}

/** How many of `pid`'s descriptors name pipe `inode`. */
function endsHeld(pid: number, inode: string): number {
  return readdirSync(`/proc/${pid}/fd`).filter((n) => pipeOf(pid, n) === inode).length;
}

// A run whose Keep the host starts itself (an Enarx.toml's) gets the two pipes bin/enarx made for
// it instead of a socket pair: the Keep holds only its ends, as its fds 3 and 4, the host only
// its own, and the bytes a TLS client sends come back exact.
test('a Keep the host starts for an Enarx.toml run gets the shell launcher\'s spare pipes, and nothing else of its caller', { skip: process.platform !== 'linux' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'enarx-spare-'));
  const secret = join(dir, 'host-secret.txt');
  writeFileSync(secret, 'SECRET');
  const fd = openSync(secret, 'r');
  const config = join(dir, 'Enarx.toml');
  writeFileSync(config, '[[files]]\nkind = "null"\nname = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n[[files]]\nname = "ingest"\nkind = "listen"\nprot = "tls"\naddr = "127.0.0.1"\nport = 0\n');
  try {
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
    for (let i = 3; i < 40; i++) stdio.push('ignore');
    stdio.push(fd);
    const child = spawnEnarx(['run', '--log-level', 'info', '--wasmcfgfile', config, join(REPO_ROOT, 'examples', 'echo-server.wasm'), 'ingest', '1'], { stdio, shell: true });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const keep = await keepOf(child, () => stderr);
    const [toKeep, fromKeep] = [pipeOf(keep, 3), pipeOf(keep, 4)];
    assert.ok(toKeep && fromKeep && toKeep !== fromKeep, `the Keep's fds 3 and 4 are two pipes: ${readlinkSync(`/proc/${keep}/fd/3`)}, ${readlinkSync(`/proc/${keep}/fd/4`)}`);
    for (const inode of [toKeep, fromKeep]) {
      assert.equal(endsHeld(keep, inode), 1, 'the Keep holds one end of each');
      assert.equal(endsHeld(child.pid!, inode), 1, 'the host holds one end of each, not the Keep\'s');
    }
    const held = readdirSync(`/proc/${keep}/fd`).map((n) => readlinkSync(`/proc/${keep}/fd/${n}`));
    assert.ok(!held.includes(secret), `the Keep holds the host's file: ${held.join(', ')}`);
    if (existsSync('/usr/bin/perl')) {
      for (const n of [3, 4]) {
        const size = execFileSync('/usr/bin/perl', ['-e', `open(my $p, "+<", "/proc/${keep}/fd/${n}") or die "$!"; print fcntl($p, 1032, 0)`], { encoding: 'utf8' });
        assert.equal(Number(size), 1 << 20, `the Keep's fd ${n} holds 1 MiB`);
      }
    }
    for (let i = 0; i < 600 && !/port \d+/.test(stderr); i++) await sleep(50);
    const port = Number(/bound to \S+ port (\d+)/.exec(stderr)?.[1]);
    const sent = randomBytes(3 * 1024 * 1024 + 17);
    const echoed = await new Promise<Buffer>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => socket.end(sent));
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.on('end', () => resolve(Buffer.concat(chunks)));
      socket.on('error', reject);
    });
    assert.ok(echoed.equals(sent), `echoed ${echoed.length} of ${sent.length} bytes exactly`);
    assert.equal(await exited, 0, stderr);
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

// ENARX_LAUNCHER_PIPES from elsewhere, naming what are not two pipes: nothing is taken, and none of
// it reaches the Keep, which gets its socket pair.
test('descriptors that are not the launcher\'s two pipes are not taken as the sallyport', { skip: process.platform !== 'linux' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'enarx-spare-'));
  const secret = join(dir, 'host-secret.txt');
  writeFileSync(secret, 'SECRET');
  const fd = openSync(secret, 'r');
  try {
    const child = spawnEnarx(['run', '--backend', 'process', '--dir', dir, join(REPO_ROOT, 'examples', 'sleep.wasm'), '4000'], { stdio: ['ignore', 'pipe', 'pipe', fd, fd, fd, fd], env: { ENARX_LAUNCHER_PIPES: '1' } });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const keep = await keepOf(child, () => stderr);
    assert.match(readlinkSync(`/proc/${keep}/fd/3`), /^socket:/);
    const held = readdirSync(`/proc/${keep}/fd`).map((n) => readlinkSync(`/proc/${keep}/fd/${n}`));
    assert.ok(!held.includes(secret), `the Keep holds the host's file: ${held.join(', ')}`);
    assert.equal(readFileSync(`/proc/${keep}/environ`, 'utf8'), '');
    child.kill('SIGTERM');
    await exited;
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});
