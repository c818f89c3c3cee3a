/**
 * Keeps under their own users read the Keep bundle from a world-readable copy when the cache is
 * closed to them; the daemon removes that copy when it closes, so daemon restarts leave nothing
 * behind in the temporary directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { shareBundle } from '../../src/keepmgr/users.ts';

test('a bundle others cannot read is shared as a readable copy, removed by release; a readable one is used as it is', () => {
  const root = mkdtempSync(join(tmpdir(), 'enarx-share-bundle-'));
  try {
    const closed = join(root, 'closed', 'build');
    mkdirSync(closed, { recursive: true });
    writeFileSync(join(closed, 'keep.mjs'), 'export {};\n');
    writeFileSync(join(closed, 'chunk-1.mjs'), 'export const x = 1;\n');
    chmodSync(join(root, 'closed'), 0o700);
    const copy = shareBundle(join(closed, 'keep.mjs'));
    assert.notEqual(dirname(copy.file), closed);
    assert.equal(statSync(dirname(copy.file)).mode & 0o777, 0o755);
    assert.equal(statSync(copy.file).mode & 0o777, 0o644);
    assert.equal(readFileSync(join(dirname(copy.file), 'chunk-1.mjs'), 'utf8'), 'export const x = 1;\n');
    copy.release();
    assert.equal(existsSync(dirname(copy.file)), false, 'the copy is gone');
    assert.equal(existsSync(join(closed, 'keep.mjs')), true, 'the cache is untouched');

    chmodSync(join(root, 'closed'), 0o755);
    chmodSync(root, 0o755);
    const same = shareBundle(join(closed, 'keep.mjs'));
    assert.equal(same.file, join(closed, 'keep.mjs'));
    same.release();
    assert.equal(existsSync(join(closed, 'keep.mjs')), true);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
