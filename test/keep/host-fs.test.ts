// What a process Keep's host does on its behalf (Node's permission model refuses symlink
// creation and fsync to the Keep): a hostile Keep must not get a link that leads out of its
// grants, now or after it renames things, nor make the host touch anything outside them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostFsViolation, createSymlinkForKeep, realRoots, syncFileForKeep } from '../../src/keep/process/host-fs.ts';

let root: string, grant: string, roots: string[];

before(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'enarx-symlink-')));
  grant = join(root, 'grant');
  mkdirSync(join(grant, 'sub'), { recursive: true });
  mkdirSync(join(root, 'outside'));
  symlinkSync('sub', join(grant, 'via')); // a symlinked directory inside the grant
  roots = realRoots([grant, join(root, 'missing')]);
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
    assert.throws(() => createSymlinkForKeep(roots, 'x', path), HostFsViolation, path);
  }
  assert.equal(isLink(join(root, 'outside', 'l')), false);
  // The grant itself is not an entry that can be replaced by a link.
  assert.throws(() => createSymlinkForKeep([], 'x', join(grant, 'l5')), HostFsViolation);
});

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

test('fsync of a file in a grant, while it is still the file the Keep opened', () => {
  const file = join(grant, 'data');
  writeFileSync(file, 'x');
  const st = statSync(file, { bigint: true });
  const dev = String(st.dev), ino = String(st.ino);
  assert.equal(syncFileForKeep(roots, file, dev, ino, false), null);
  assert.equal(syncFileForKeep(roots, file, dev, ino, true), null);
  assert.equal(syncFileForKeep(roots, file, dev, String(st.ino + 1n), false), 'ESTALE');
  assert.equal(syncFileForKeep(roots, join(grant, 'missing'), dev, ino, false), 'ENOENT');
  assert.equal(syncFileForKeep(roots, join(grant, 'sub'), dev, ino, false), 'EINVAL');
  symlinkSync('data', join(grant, 'data-link'));
  assert.equal(syncFileForKeep(roots, join(grant, 'data-link'), dev, ino, false), 'ELOOP');
  execFileSync('mkfifo', [join(grant, 'fifo')]);
  assert.equal(syncFileForKeep(roots, join(grant, 'fifo'), dev, ino, false), 'EINVAL', 'a FIFO is opened without blocking and refused');
});

test('fsync through a directory symlink that the host left in the grant touches nothing outside', () => {
  // The Keep resolves paths to real ones, so an honest request never crosses a symlink: one that
  // does could make the host open (a device's open can act) and probe files outside the grants.
  const secret = join(root, 'outside', 'probe');
  writeFileSync(secret, '');
  const st = statSync(secret, { bigint: true });
  symlinkSync(join(root, 'outside'), join(grant, 'out'));
  assert.equal(syncFileForKeep(roots, join(grant, 'out', 'probe'), String(st.dev), String(st.ino), false), 'EACCES');
  assert.equal(syncFileForKeep(roots, join(grant, 'via', 'x'), '1', '1', false), 'EACCES');
});

test('fsync outside every grant, or of a path that is not normalised, is a violation', () => {
  writeFileSync(join(root, 'outside', 'f'), '');
  for (const path of [join(root, 'outside', 'f'), `${grant}/../outside/f`, 'relative', '/']) {
    assert.throws(() => syncFileForKeep(roots, path, '1', '1', false), HostFsViolation, path);
  }
});
