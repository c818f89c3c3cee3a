import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync, symlinkSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno, Oflags, Rights } from '../../src/wasi/constants.ts';
import { Guest } from '../helpers/wasi-guest.ts';

// Layout: ROOT/sandbox is the preopen, ROOT/outside holds what the guest must never reach.
let root: string, sandbox: string, outside: string;
let g: Guest;
const FD = 3;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'enarx-escape-'));
  sandbox = join(root, 'sandbox');
  outside = join(root, 'outside');
  mkdirSync(sandbox);
  mkdirSync(outside);
  mkdirSync(join(sandbox, 'sub'));
  writeFileSync(join(outside, 'secret.txt'), 'SECRET');
  writeFileSync(join(sandbox, 'inside.txt'), 'inside');
  symlinkSync('../outside', join(sandbox, 'dir-rel')); // directory symlink, relative
  symlinkSync(outside, join(sandbox, 'dir-abs')); // directory symlink, absolute
  symlinkSync('../outside/secret.txt', join(sandbox, 'file-rel')); // file symlink, relative
  symlinkSync(join(outside, 'secret.txt'), join(sandbox, 'file-abs')); // file symlink, absolute
  symlinkSync('../../outside', join(sandbox, 'sub', 'deep')); // escapes from a subdirectory
  symlinkSync('sub/..', join(sandbox, 'loop-ok')); // stays inside: allowed
  symlinkSync('..', join(sandbox, 'parent')); // the preopen's parent
  g = new Guest({ descriptors: [
    { kind: 'null', name: 'stdin' }, { kind: 'null', name: 'stdout' }, { kind: 'null', name: 'stderr' },
    { kind: 'dir', name: '/', dir: { hostPath: sandbox, guestPath: '/', readonly: false } },
  ] });
});

after(() => {
  // Nothing outside was created, changed or removed.
  assert.deepEqual(readdirSync(outside), ['secret.txt']);
  assert.equal(readFileSync(join(outside, 'secret.txt'), 'utf8'), 'SECRET');
  assert.deepEqual(readdirSync(root).sort(), ['outside', 'sandbox']);
  g.host.close();
  rmSync(root, { recursive: true, force: true });
});

const escapes = () => [
  '../outside/secret.txt',
  '..',
  'sub/../../outside/secret.txt',
  '/etc/passwd',
  `${root}/outside/secret.txt`,
  'dir-rel/secret.txt',
  'dir-abs/secret.txt',
  'file-rel',
  'file-abs',
  'sub/deep/secret.txt',
  'parent/outside/secret.txt',
  'parent',
];

const READ = Rights.FD_READ | Rights.FD_SEEK | Rights.FD_FILESTAT_GET;
const WRITE = READ | Rights.FD_WRITE;

test('reads through .., absolute paths and symlinks are refused with ENOTCAPABLE', () => {
  for (const path of escapes()) {
    assert.equal(g.open(FD, path, { rights: READ, follow: true })[0], Errno.NOTCAPABLE, path);
  }
});

test('writes and truncations through escapes are refused', () => {
  for (const path of escapes()) {
    assert.equal(g.open(FD, path, { rights: WRITE, oflags: Oflags.TRUNC, follow: true })[0], Errno.NOTCAPABLE, path);
  }
});

test('creates through escapes are refused: files, directories, symlinks', () => {
  for (const dir of ['..', 'dir-rel', 'dir-abs', 'sub/deep', 'parent', '/tmp', `${outside}`]) {
    const path = `${dir}/created`;
    assert.equal(g.open(FD, path, { rights: WRITE, oflags: Oflags.CREAT, follow: true })[0], Errno.NOTCAPABLE, path);
    assert.equal(g.pathCall('path_create_directory', FD, path), Errno.NOTCAPABLE, path);
    const [t, tl] = g.str('inside.txt');
    const [n, nl] = g.str(path);
    assert.equal(g.call('path_symlink', t, tl, FD, n, nl), Errno.NOTCAPABLE, path);
  }
});

test('a dangling symlink pointing outside cannot be created through', () => {
  symlinkSync('../outside/new-file', join(sandbox, 'dangling-out'));
  assert.equal(g.open(FD, 'dangling-out', { rights: WRITE, oflags: Oflags.CREAT, follow: true })[0], Errno.NOTCAPABLE);
  // Without following, the link itself is the final component: opening it is ELOOP, not a write outside.
  assert.equal(g.open(FD, 'dangling-out', { rights: WRITE, oflags: Oflags.CREAT, follow: false })[0], Errno.LOOP);
});

test('renames cannot move files in or out of the preopen', () => {
  const rename = (from: string, to: string) => {
    const [a, al] = g.str(from);
    const [b, bl] = g.str(to);
    return g.call('path_rename', FD, a, al, FD, b, bl);
  };
  assert.equal(rename('inside.txt', '../stolen.txt'), Errno.NOTCAPABLE);
  assert.equal(rename('inside.txt', 'dir-rel/stolen.txt'), Errno.NOTCAPABLE);
  assert.equal(rename('inside.txt', 'dir-abs/stolen.txt'), Errno.NOTCAPABLE);
  assert.equal(rename('../outside/secret.txt', 'got.txt'), Errno.NOTCAPABLE);
  assert.equal(rename('dir-rel/secret.txt', 'got.txt'), Errno.NOTCAPABLE);
  assert.equal(rename('sub/deep/secret.txt', 'got.txt'), Errno.NOTCAPABLE);
  assert.equal(rename('/etc/hostname', 'got.txt'), Errno.NOTCAPABLE);
  assert.equal(readFileSync(join(sandbox, 'inside.txt'), 'utf8'), 'inside');
});

test('hard links cannot reach outside files, nor be placed outside', () => {
  const link = (from: string, to: string, follow: boolean) => {
    const [a, al] = g.str(from);
    const [b, bl] = g.str(to);
    return g.call('path_link', FD, follow ? 1 : 0, a, al, FD, b, bl);
  };
  assert.equal(link('file-rel', 'hard', true), Errno.NOTCAPABLE);
  assert.equal(link('file-abs', 'hard', true), Errno.NOTCAPABLE);
  assert.equal(link('dir-rel/secret.txt', 'hard', false), Errno.NOTCAPABLE);
  assert.equal(link('../outside/secret.txt', 'hard', false), Errno.NOTCAPABLE);
  assert.equal(link('inside.txt', '../outside/hard', false), Errno.NOTCAPABLE);
  assert.equal(link('inside.txt', 'dir-abs/hard', false), Errno.NOTCAPABLE);
});

test('unlink, rmdir, stat, set_times and readlink through escapes are refused', () => {
  for (const path of ['dir-rel/secret.txt', 'dir-abs/secret.txt', '../outside/secret.txt', 'sub/deep/secret.txt']) {
    assert.equal(g.pathCall('path_unlink_file', FD, path), Errno.NOTCAPABLE, path);
    const [p, l] = g.str(path);
    const buf = g.alloc(64);
    assert.equal(g.call('path_filestat_get', FD, 1, p, l, buf), Errno.NOTCAPABLE, path);
    assert.equal(g.call('path_filestat_set_times', FD, 1, p, l, 0n, 0n, 8), Errno.NOTCAPABLE, path);
    assert.equal(g.call('path_readlink', FD, p, l, buf, 64, buf), Errno.NOTCAPABLE, path);
  }
  assert.equal(g.pathCall('path_remove_directory', FD, 'dir-rel/'), Errno.NOTCAPABLE);
  assert.equal(g.pathCall('path_remove_directory', FD, '../outside'), Errno.NOTCAPABLE);
});

test('a directory opened below the preopen cannot climb out either', () => {
  const [e, sub] = g.open(FD, 'sub', { oflags: Oflags.DIRECTORY, rights: Rights.PATH_OPEN | Rights.FD_READDIR });
  assert.equal(e, 0);
  assert.equal(g.open(sub, '../../outside/secret.txt', { rights: READ })[0], Errno.NOTCAPABLE);
  assert.equal(g.open(sub, 'deep/secret.txt', { rights: READ })[0], Errno.NOTCAPABLE);
  // As openat2(RESOLVE_BENEATH) and wasmtime: never above the directory the path is resolved from.
  assert.equal(g.open(sub, '../inside.txt', { rights: READ })[0], Errno.NOTCAPABLE);
});

test('symlinks that stay inside still work', () => {
  assert.equal(g.open(FD, 'loop-ok/inside.txt', { rights: READ })[0], 0);
  assert.equal(g.open(FD, 'sub/../inside.txt', { rights: READ })[0], 0);
});
