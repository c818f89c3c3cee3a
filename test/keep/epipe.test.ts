import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ENARX_BIN, REPO_ROOT } from '../helpers/paths.ts';
import { LAUNCHER_FLAGS } from '../helpers/cli.ts';

/** `enarx run --backend BACKEND rot13.wasm < /dev/urandom | head -c 10`: enarx's status and stderr. */
function intoHead(backend: string): { status: string; stderr: string } {
  const rot13 = join(REPO_ROOT, 'examples', 'rot13.wasm');
  const err = `/tmp/enarx-epipe-${process.pid}-${backend}.err`;
  const script = `"${process.execPath}" ${LAUNCHER_FLAGS.join(' ')} "${ENARX_BIN}" run --backend ${backend} "${rot13}" < /dev/urandom 2>"${err}" | head -c 10 >/dev/null; echo "\${PIPESTATUS[0]}"; cat "${err}"; rm -f "${err}"`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 60_000 });
  const [status, ...stderr] = r.stdout.split('\n');
  return { status: status!, stderr: stderr.join('\n') };
}

test('a reader that goes away (| head): the guest gets EPIPE on its next write, in the process Keep as in the nil Keep', () => {
  const nil = intoHead('nil');
  const proc = intoHead('process');
  // rot13 reports the failed write and exits 1; neither Keep kills it or prints a stack trace.
  assert.deepEqual(proc, nil);
  assert.equal(proc.status, '1');
  assert.match(proc.stderr, /^write: Broken pipe$/m);
  assert.doesNotMatch(proc.stderr, /at .*\.ts:\d+|enarx:/);
});
