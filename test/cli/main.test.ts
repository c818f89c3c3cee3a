import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { runEnarx, spawnEnarx } from '../helpers/cli.ts';
import { ENARX_BIN } from '../helpers/paths.ts';

test('--version prints the version and nothing else', async () => {
  const r = await runEnarx(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
  assert.equal(r.stderr, '');
});

test('an unknown command is a usage error (exit 2): one line that says what to do', async () => {
  const r = await runEnarx(['no-such-command']);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, "enarx: unknown command 'no-such-command' (run 'enarx --help' for usage)\n");
});

test('a mistyped command gets a suggestion on the same line', async () => {
  const r = await runEnarx(['stewrd']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, "enarx: unknown command 'stewrd' (did you mean steward?)\n");
});

test('an unknown option is a usage error (exit 2), one line', async () => {
  const r = await runEnarx(['config', 'init', '--no-such-flag']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^enarx: unknown option '--no-such-flag' \(run 'enarx --help' for usage\)\n$/);
});

test('enarx alone, or a command group alone, prints its help on stderr and exits 2', async () => {
  for (const args of [[], ['steward']]) {
    const r = await runEnarx(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^Usage: enarx/);
  }
});

test('--help prints on stdout and exits 0', async () => {
  const r = await runEnarx(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Usage: enarx/);
  assert.equal(r.stderr, '');
});

test('an old Node gets one clear message, not a syntax error', () => {
  // Simulate an old runtime by overriding the reported version before the launcher runs.
  const r = spawnSync(
    process.execPath,
    ['--import', 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.1.0"})', ENARX_BIN, '--version'],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 1);
  assert.match(r.stderr, /needs Node\.js 26 or newer, but this is Node\.js 20\.1\.0/);
  assert.match(r.stderr, /npx enarx/);
});

test('a server that fails to start exits, even though it had started helpers (keepmgr warm pool)', async () => {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'enarx-km-'));
  const r = await runEnarx(['keepmgr', 'serve', '--data-dir', dir, '--listen', '127.0.0.1:99999'], { timeoutMs: 30_000 });
  assert.equal(r.signal, null, 'it exited by itself, not by the test timeout');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /did not start: .*99999/);
});

test('a reader that closes early (| head) ends enarx quietly: exit 0, no Node trace', async () => {
  for (const args of [['keepmgr', 'serve', '--help'], ['attest', 'decode', '--json', '--evidence', 'no-such-file']]) {
    const child = spawnEnarx(args);
    // Closed before enarx has started, so its first write meets a closed pipe.
    child.stdout!.destroy();
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.doesNotMatch(stderr, /node:events|Unhandled 'error' event|EPIPE/, stderr);
    if (args[0] === 'keepmgr') assert.equal(code, 0, stderr);
  }
});
