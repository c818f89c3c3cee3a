// The host's side of symlink creation for a process Keep (Node's permission model lets no
// sandboxed process create symlinks): a hostile Keep must not get a link that leads out of its
// grants, now or after it renames things.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SymlinkViolation, createSymlinkForKeep, writableRoots } from '../../src/keep/process/symlink.ts';

let root: string, grant: string, roots: string[];

before(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'enarx-symlink-')));
  grant = join(root, 'grant');
  mkdirSync(join(grant, 'sub'), { recursive: true });
  mkdirSync(join(root, 'outside'));
  symlinkSync('sub', join(grant, 'via')); // a symlinked directory inside the grant
  roots = writableRoots([grant, join(root, 'missing')]);
});
after(() => rmSync(root, { recursive: true, force: true }));

test('the writable roots are the real paths of the grants that exist', () => {
  assert.deepEqual(roots, [grant]);
});

test('a descending link in a real directory of the grant is created as asked', () => {
  assert.equal(createSymlinkForKeep(roots, 'sub/file', join(grant, 'l1')), null);
  assert.equal(readlinkSync(join(grant, 'l1')), 'sub/file');
  assert.equal(createSymlinkForKeep(roots, 'x', join(grant, 'sub', 'l2')), null);
  assert.equal(createSymlinkForKeep(roots, 'x', join(grant, 'sub', 'l2')), 'EEXIST');
  assert.equal(createSymlinkForKeep(roots, 'x', join(grant, 'nodir', 'l3')), 'ENOENT');
});

test('targets that climb, stay put or are absolute are refused with EPERM and nothing is created', () => {
  for (const target of ['..', '../outside', 'sub/../..', '.', './x', '/etc', 'a/./b', '', '//', 'a\0b']) {
    const link = join(grant, `bad-${Buffer.from(target).toString('hex')}`);
    assert.equal(createSymlinkForKeep(roots, target, link), 'EPERM', JSON.stringify(target));
    assert.equal(existsSync(link) || isLink(link), false);
  }
});

test('a link in a directory reached through a symlink is refused: the Keep resolves paths to real ones', () => {
  assert.equal(createSymlinkForKeep(roots, 'x', join(grant, 'via', 'l4')), 'EACCES');
  assert.equal(isLink(join(grant, 'sub', 'l4')), false);
});

test('a link outside every writable grant, or at a path that is not normalised, is a violation', () => {
  const cases = [
    join(root, 'outside', 'l'),
    join(root, 'l'),
    `${grant}-sibling/l`,
    `${grant}/../outside/l`,
    `${grant}/./l`,
    `${grant}/sub/`,
    'relative/l',
    '/',
    `${grant}/a\0b`,
  ];
  for (const path of cases) {
    assert.throws(() => createSymlinkForKeep(roots, 'x', path), SymlinkViolation, path);
  }
  assert.equal(isLink(join(root, 'outside', 'l')), false);
  // The grant itself is not an entry that can be replaced by a link.
  assert.throws(() => createSymlinkForKeep([], 'x', join(grant, 'l5')), SymlinkViolation);
});

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
