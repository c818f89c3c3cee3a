import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { runEnarx } from '../helpers/cli.ts';
import { ENARX_BIN } from '../helpers/paths.ts';

test('--version prints the version and nothing else', async () => {
  const r = await runEnarx(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
  assert.equal(r.stderr, '');
});

test('an unknown command is a usage error (exit 2)', async () => {
  const r = await runEnarx(['no-such-command']);
  assert.equal(r.code, 2);
  assert.notEqual(r.stderr, '');
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
