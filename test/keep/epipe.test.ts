import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ENARX_BIN, REPO_ROOT } from '../helpers/paths.ts';

test('process Keep: a reader that goes away (| head) ends the run with 141 and no stack trace', () => {
  const rot13 = join(REPO_ROOT, 'examples', 'rot13.wasm');
  const script = `"${process.execPath}" "${ENARX_BIN}" run --backend process "${rot13}" < /dev/urandom 2>"$ERR" | head -c 10 >/dev/null; echo "\${PIPESTATUS[0]}"; cat "$ERR"`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ERR: `/tmp/enarx-epipe-${process.pid}.err` } });
  const [status, ...stderr] = r.stdout.split('\n');
  assert.equal(status, '141', r.stdout);
  assert.doesNotMatch(stderr.join('\n'), /EPIPE|at .*\.ts:\d+/);
});
