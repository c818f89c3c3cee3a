// Attacks on the sandbox's edges: a read-only preopen next to a writable one (hard links,
// times, renames, descriptors opened below it), O_CREAT|O_EXCL through dangling symlinks,
// symlinks that would climb once moved, rights and flags escalation, overlong and malformed
// names in every path argument, and host sockets and FIFOs met as files. Each test checks the
// errno and that nothing outside, or in the read-only tree, changed.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno, Fdflags, Fstflags, Oflags, Rights } from '../../src/wasi/constants.ts';
import { Guest } from '../helpers/wasi-guest.ts';

/** Every right a directory can hold: what a guest asks for when it opens one "with everything". */
const DIR_ASK = Rights.PATH_OPEN | Rights.PATH_CREATE_FILE | Rights.PATH_CREATE_DIRECTORY | Rights.PATH_UNLINK_FILE |
  Rights.PATH_REMOVE_DIRECTORY | Rights.PATH_RENAME_SOURCE | Rights.PATH_RENAME_TARGET | Rights.PATH_SYMLINK |
  Rights.PATH_LINK_SOURCE | Rights.PATH_LINK_TARGET | Rights.PATH_FILESTAT_SET_TIMES | Rights.FD_FILESTAT_SET_TIMES | Rights.FD_READDIR;
const RW = 3;
const RO = 4;
let root: string, rw: string, ro: string, outside: string;
let g: Guest;
let roMtime: number;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'enarx-attacks-'));
  rw = join(root, 'rw');
  ro = join(root, 'ro');
  outside = join(root, 'outside');
  for (const d of [rw, ro, join(ro, 'sub'), outside]) mkdirSync(d);
  writeFileSync(join(ro, 'precious'), 'PRECIOUS');
  writeFileSync(join(ro, 'sub', 'deep'), 'DEEP');
  writeFileSync(join(outside, 'secret'), 'SECRET');
  symlinkSync(join(outside, 'new'), join(rw, 'abs-dangling')); // put there by the host, not the guest
  roMtime = statSync(ro).mtimeMs;
  g = new Guest({ descriptors: [
    { kind: 'null', name: 'stdin' }, { kind: 'null', name: 'stdout' }, { kind: 'null', name: 'stderr' },
    { kind: 'dir', name: '/rw', dir: { hostPath: rw, guestPath: '/rw', readonly: false } },
    { kind: 'dir', name: '/ro', dir: { hostPath: ro, guestPath: '/ro', readonly: true } },
  ] });
});

afterEach(() => {
  g.host.close();
  assert.deepEqual(readdirSync(outside), ['secret'], 'nothing created outside');
  assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'SECRET');
  assert.deepEqual(readdirSync(ro).sort(), ['precious', 'sub'], 'nothing created in the read-only tree');
  assert.equal(readFileSync(join(ro, 'precious'), 'utf8'), 'PRECIOUS');
  assert.equal(readFileSync(join(ro, 'sub', 'deep'), 'utf8'), 'DEEP');
  assert.equal(statSync(ro).mtimeMs, roMtime, 'the read-only preopen was not touched');
  rmSync(root, { recursive: true, force: true });
});

const link = (fromFd: number, from: string, toFd: number, to: string, follow = 0) => {
  const [a, al] = g.str(from);
  const [b, bl] = g.str(to);
  return g.call('path_link', fromFd, follow, a, al, toFd, b, bl);
};

test('a hard link out of the read-only tree into the writable one is EROFS: it would make the file writable', () => {
  assert.equal(link(RO, 'precious', RW, 'stolen'), Errno.ROFS);
  assert.equal(link(RO, 'sub/deep', RW, 'stolen', 1), Errno.ROFS);
  const [e, sub] = g.open(RO, 'sub', { oflags: Oflags.DIRECTORY, rights: Rights.PATH_LINK_SOURCE | Rights.PATH_OPEN });
  assert.equal(e, 0);
  assert.equal(link(sub, 'deep', RW, 'stolen'), Errno.ROFS);
  assert.equal(existsSync(join(rw, 'stolen')), false);
  // Inside the writable tree, hard links work.
  writeFileSync(join(rw, 'mine'), 'x');
  assert.equal(link(RW, 'mine', RW, 'mine2'), 0);
});

test('times on the read-only preopen itself, or on anything below it, are refused', () => {
  const now = Fstflags.ATIM_NOW | Fstflags.MTIM_NOW;
  assert.equal(g.call('fd_filestat_set_times', RO, 0n, 0n, now), Errno.ROFS);
  for (const path of ['.', 'precious', 'sub', 'sub/deep', 'sub/..']) {
    const [p, l] = g.str(path);
    assert.equal(g.call('path_filestat_set_times', RO, 0, p, l, 0n, 0n, now), Errno.ROFS, path);
  }
  // Descriptors opened below get no right to ask.
  const [e1, dir] = g.open(RO, 'sub', { oflags: Oflags.DIRECTORY, rights: DIR_ASK });
  assert.equal(e1, 0);
  assert.equal(g.call('fd_filestat_set_times', dir, 0n, 0n, now), Errno.NOTCAPABLE);
  const [e2, file] = g.open(RO, 'precious', { rights: Rights.FD_READ | Rights.FD_FILESTAT_SET_TIMES });
  assert.equal(e2, 0);
  assert.equal(g.call('fd_filestat_set_times', file, 0n, 0n, now), Errno.NOTCAPABLE);
});

test('unlink, rename, rmdir, mkdir, symlink and truncating opens in the read-only tree are EROFS, from the preopen or below', () => {
  const [opened, sub] = g.open(RO, 'sub', { oflags: Oflags.DIRECTORY, rights: DIR_ASK });
  assert.equal(opened, 0);
  for (const [fd, file, dir] of [[RO, 'precious', 'sub'], [sub, 'deep', '.']] as const) {
    assert.equal(g.pathCall('path_unlink_file', fd, file), Errno.ROFS);
    assert.equal(g.pathCall('path_create_directory', fd, 'new'), Errno.ROFS);
    assert.equal(g.pathCall('path_remove_directory', fd, dir), Errno.ROFS);
    const [a, al] = g.str(file);
    const [b, bl] = g.str('renamed');
    assert.equal(g.call('path_rename', fd, a, al, RW, b, bl), Errno.ROFS);
    assert.equal(g.call('path_rename', RW, b, bl, fd, a, al), Errno.ROFS);
    assert.equal(g.call('path_symlink', a, al, fd, b, bl), Errno.ROFS);
    assert.equal(g.open(fd, file, { oflags: Oflags.TRUNC })[0], Errno.ROFS);
    assert.equal(g.open(fd, 'created', { oflags: Oflags.CREAT })[0], Errno.ROFS);
    assert.equal(g.open(fd, file, { fdflags: Fdflags.APPEND })[0], Errno.ROFS);
  }
});

test('O_CREAT|O_EXCL through a dangling symlink is EEXIST and creates nothing, followed or not', () => {
  symlinkSync('target', join(rw, 'dangling'));
  for (const follow of [true, false]) {
    assert.equal(g.open(RW, 'dangling', { oflags: Oflags.CREAT | Oflags.EXCL, follow })[0], Errno.EXIST);
    assert.equal(g.open(RW, 'abs-dangling', { oflags: Oflags.CREAT | Oflags.EXCL, follow })[0], Errno.EXIST);
  }
  assert.equal(existsSync(join(rw, 'target')), false);
  // Without O_EXCL, following a dangling link creates its target: inside the tree only.
  assert.equal(g.open(RW, 'dangling', { oflags: Oflags.CREAT })[0], 0);
  assert.equal(existsSync(join(rw, 'target')), true);
  assert.equal(g.open(RW, 'abs-dangling', { oflags: Oflags.CREAT })[0], Errno.NOTCAPABLE);
});

test('a symlink the guest makes cannot be turned into a way out by moving it', () => {
  mkdirSync(join(rw, 'a', 'b'), { recursive: true });
  const [t, tl] = g.str('b');
  const [l, ll] = g.str('a/link');
  assert.equal(g.call('path_symlink', t, tl, RW, l, ll), 0);
  // Climbing targets, which a later rename would aim elsewhere, are refused outright.
  for (const target of ['../..', 'b/../../..', '.', '..']) {
    const [c, cl] = g.str(target);
    const [n, nl] = g.str('a/climb');
    assert.equal(g.call('path_symlink', c, cl, RW, n, nl), Errno.PERM, target);
  }
  const [to, tol] = g.str('moved');
  assert.equal(g.call('path_rename', RW, l, ll, RW, to, tol), 0);
  // Moved to the top, it points at rw/b, which does not exist: never at anything above.
  assert.equal(g.open(RW, 'moved', { follow: true })[0], Errno.NOENT);
});

test('flags and rights cannot be raised: append on a read-only descriptor still cannot write; sync flags cannot be toggled', () => {
  writeFileSync(join(rw, 'f'), 'data');
  const [e, fd] = g.open(RW, 'f', { rights: Rights.FD_READ | Rights.FD_FDSTAT_SET_FLAGS });
  assert.equal(e, 0);
  assert.equal(g.call('fd_fdstat_set_flags', fd, Fdflags.APPEND), 0);
  assert.equal(g.write(fd, 'x')[0], Errno.BADF);
  assert.equal(g.call('fd_fdstat_set_rights', fd, Rights.FD_READ | Rights.FD_WRITE, 0n), Errno.NOTCAPABLE);
  const [, noFlags] = g.open(RW, 'f', { rights: Rights.FD_READ });
  assert.equal(g.call('fd_fdstat_set_flags', noFlags, Fdflags.NONBLOCK), Errno.NOTCAPABLE);
  const [, synced] = g.open(RW, 'f', { rights: Rights.FD_WRITE | Rights.FD_FDSTAT_SET_FLAGS, fdflags: Fdflags.DSYNC });
  assert.equal(g.call('fd_fdstat_set_flags', synced, 0), Errno.NOTSUP, 'O_DSYNC cannot be switched off in the host descriptor');
  assert.equal(g.call('fd_fdstat_set_flags', synced, Fdflags.DSYNC | Fdflags.APPEND), 0);
  assert.equal(readFileSync(join(rw, 'f'), 'utf8'), 'data');
});

test('a file renumbered over a preopen is no directory; the preopen renumbered elsewhere keeps its sandbox', () => {
  writeFileSync(join(rw, 'f'), 'data');
  const [, file] = g.open(RW, 'f', { rights: Rights.FD_READ });
  assert.equal(g.call('fd_renumber', file, RO), 0);
  assert.equal(g.open(RO, 'precious')[0], Errno.NOTDIR);
  assert.equal(g.call('fd_renumber', RW, 1), 0);
  assert.equal(g.open(1, '../outside/secret')[0], Errno.NOTCAPABLE);
  assert.equal(g.open(1, 'f')[0], 0);
});

test('overlong and malformed names in every path argument are refused before anything changes', () => {
  const huge = 'a/'.repeat(60_000);
  assert.equal(g.pathCall('path_create_directory', RW, huge), Errno.NOENT);
  assert.equal(g.pathCall('path_create_directory', RW, 'x'.repeat(256)), Errno.NAMETOOLONG);
  const [t, tl] = g.str('t'.repeat(4096));
  const [n, nl] = g.str('n');
  assert.equal(g.call('path_symlink', t, tl, RW, n, nl), Errno.NAMETOOLONG);
  writeFileSync(join(rw, 'f'), '');
  const [f, fl] = g.str('f');
  for (const [bad, errno] of [[Uint8Array.of(0x61, 0, 0x62), Errno.INVAL], [Uint8Array.of(0x61, 0xff), Errno.ILSEQ]] as const) {
    const [b, bl] = g.str(bad);
    assert.equal(g.call('path_symlink', b, bl, RW, n, nl), errno, 'symlink target');
    assert.equal(g.call('path_symlink', f, fl, RW, b, bl), errno, 'symlink name');
    assert.equal(g.call('path_link', RW, 0, f, fl, RW, b, bl), errno, 'link name');
    assert.equal(g.call('path_rename', RW, f, fl, RW, b, bl), errno, 'rename target');
  }
  assert.deepEqual(readdirSync(rw).sort(), ['abs-dangling', 'f']);
});

test('host sockets and FIFOs in a preopen are met as files: errors, never a hang or a host exception', async () => {
  const socketPath = join(rw, 'sock');
  const server: Server = await new Promise((resolve) => {
    const s = createServer();
    s.listen(socketPath, () => resolve(s));
  });
  try {
    execFileSync('mkfifo', [join(rw, 'fifo')]);
    const [sockOpen] = g.open(RW, 'sock', { rights: Rights.FD_READ | Rights.FD_WRITE });
    assert.equal(sockOpen, Errno.NXIO);
    assert.equal(g.open(RW, 'fifo', { rights: Rights.FD_WRITE })[0], Errno.NXIO, 'a FIFO without a reader');
    const [e, fifo] = g.open(RW, 'fifo', { rights: Rights.FD_READ | Rights.FD_SEEK });
    assert.equal(e, 0);
    const [readErr] = g.read(fifo);
    assert.ok(readErr === Errno.SPIPE || readErr === Errno.AGAIN, `read on a FIFO: ${readErr}`);
    for (const name of ['sock', 'fifo']) {
      const [p, l] = g.str(name);
      const out = g.alloc(64);
      assert.equal(g.call('path_filestat_get', RW, 0, p, l, out), 0);
      assert.equal(lstatSync(join(rw, name)).isFile(), false);
    }
  } finally {
    server.close();
  }
});
