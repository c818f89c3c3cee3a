// bin/enarx gives a plain run's stdout a 1 MiB buffer, as it does the sallyport's pipes: the host
// relays the guest's output to its own fd 1, and with a small buffer there it waits for the reader
// every 64-200 KiB. A pipe gets 1 MiB (F_SETPIPE_SZ), a socket a 1 MiB send buffer (SO_SNDBUF,
// which the kernel doubles, up to net.core.wmem_max). Both are properties of the descriptor's open
// file, so a command run after enarx on the same stdout reads them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ENARX_SHELL_BIN, REPO_ROOT } from '../helpers/paths.ts';
import { runEnarx } from '../helpers/cli.ts';

const hello = join(REPO_ROOT, 'examples', 'hello.wasm');

/** Runs `bash -c SCRIPT` with $0 the shell launcher, stdout a socket pair (Node's 'pipe'). */
function bash(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script, ENARX_SHELL_BIN], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('bin/enarx gives a plain run\'s stdout 1 MiB: a pipe\'s size, a socket\'s send buffer', { skip: !existsSync('/usr/bin/perl') || process.platform !== 'linux', timeout: 180_000 }, async () => {
  const cache = mkdtempSync(join(tmpdir(), 'enarx-shell-stdout-'));
  const env = { ENARX_KEEP_CACHE: cache };
  try {
    for (let i = 0; i < 2; i++) assert.equal((await runEnarx(['run', hello], { env, shell: true, timeoutMs: 120_000 })).code, 0); // leaves the Keep's command
    const run = `"$0" run --log-level debug ${hello}`;
    // A pipe: the run's stdout, then its size (F_GETPIPE_SZ) as seen after the run.
    const piped = await bash(`{ ${run}; perl -e 'print "size ", fcntl(STDOUT, 1032, 0), "\\n"'; } | cat`, env);
    assert.equal(piped.code, 0, piped.stderr);
    assert.match(piped.stderr, /started early, by the shell launcher/, 'positive control: the launcher started the Keep');
    assert.equal(piped.stdout, 'Hello, world!\nsize 1048576\n');
    // A socket: its send buffer (SO_SNDBUF), doubled by the kernel, up to twice wmem_max.
    const sock = await bash(`${run} && perl -e 'print "sndbuf ", unpack("i", getsockopt(STDOUT, 1, 7)), "\\n"'`, env);
    assert.equal(sock.code, 0, sock.stderr);
    assert.match(sock.stderr, /started early, by the shell launcher/);
    const wmemMax = Number(readFileSync('/proc/sys/net/core/wmem_max', 'utf8'));
    const sndbuf = Number(/^Hello, world!\nsndbuf (\d+)\n$/.exec(sock.stdout)?.[1]);
    assert.equal(sndbuf, 2 * Math.min(1 << 20, wmemMax), sock.stdout);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
