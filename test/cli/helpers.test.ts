// test/helpers/cli.ts runs enarx as `npx enarx` does, and serves long-running commands to tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENARX_BIN, REPO_ROOT } from '../helpers/paths.ts';
import { LAUNCHER_FLAGS, launcherFlags, serveEnarx, spawnEnarx } from '../helpers/cli.ts';

test("the launcher's shebang flags are the ones tests run with", () => {
  const shebang = readFileSync(ENARX_BIN, 'utf8').split('\n')[0]!;
  assert.equal(shebang, `#!/usr/bin/env -S node ${LAUNCHER_FLAGS.join(' ')}`);
  assert.ok(LAUNCHER_FLAGS.includes('--no-concurrent-recompilation'));
  // A code-generation flag on the command line makes V8 refuse Node's code cache for built-ins.
  assert.deepEqual(LAUNCHER_FLAGS.filter((f) => /liftoff|turbo|wasm|code-generation/.test(f)), []);
  assert.deepEqual(launcherFlags('#!/usr/bin/env -S node\n'), []);
  assert.throws(() => launcherFlags('#!/usr/bin/node --no-liftoff\n'), /does not start with/);
});

test('spawnEnarx starts Node with the launcher flags, as the shebang would', async () => {
  const child = spawnEnarx(['run', '--backend', 'nil', join(REPO_ROOT, 'examples', 'sleep.wasm'), '60000']);
  try {
    const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
    assert.deepEqual(cmdline.slice(1, 1 + LAUNCHER_FLAGS.length + 1), [...LAUNCHER_FLAGS, ENARX_BIN]);
  } finally {
    child.kill('SIGKILL');
  }
});

test('serveEnarx: a command that exits before its JSON document fails the test with its stderr', async () => {
  await assert.rejects(serveEnarx(['keepmgr', 'serve', '--json', '--pool', 'many']), /enarx keepmgr serve exited \(2\) before printing its JSON document; stderr:\n.*--pool must be an integer/s);
});

test('serveEnarx: the first JSON document, then a clean stop', async () => {
  const home = mkdtempSync(join(tmpdir(), 'enarx-serve-helper-'));
  try {
    const served = await serveEnarx<{ url: string }>(['steward', 'serve', '--port', '0', '--json'], { env: { XDG_DATA_HOME: home } });
    assert.match(served.doc.url, /^https?:\/\/127\.0\.0\.1:\d+/);
    assert.equal(await served.stop(), 0);
    assert.equal(await served.exited, 0);
    assert.equal(await served.stop(), 0, 'stopping again is harmless');
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
