import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs, { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno, Oflags, Rights } from '../../src/wasi/constants.ts';
import { Guest } from '../helpers/wasi-guest.ts';

// As escape-race.test.ts does for path_open, for the operations that act by name: another host
// process swaps sandbox/sub, which the WASI layer has just walked, for a symlink to a directory
// outside, at the exact moment the host makes the call (inside the fs function it calls). The
// host names the file relative to the directory it checked (its working directory), so the call
// still acts on the guest's own directory, now at sub.moved; nothing outside is touched or read.
let root: string, sandbox: string, outside: string;
let g: Guest;
const FD = 3;
const restore: (() => void)[] = [];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'enarx-race-names-'));
  sandbox = join(root, 'sandbox');
  outside = join(root, 'outside');
  mkdirSync(join(sandbox, 'sub', 'd'), { recursive: true });
  mkdirSync(join(outside, 'd'), { recursive: true });
  writeFileSync(join(sandbox, 'sub', 'f.txt'), 'inside');
  writeFileSync(join(outside, 'f.txt'), 'SECRET, outside the preopen');
  writeFileSync(join(outside, 'secret-name.txt'), '');
  symlinkSync('f.txt', join(sandbox, 'sub', 'l'));
  symlinkSync('secret-target', join(outside, 'l'));
  g = new Guest({ descriptors: [
    { kind: 'null', name: 'stdin' }, { kind: 'null', name: 'stdout' }, { kind: 'null', name: 'stderr' },
    { kind: 'dir', name: '/', dir: { hostPath: sandbox, guestPath: '/', readonly: false } },
  ] });
});

afterEach(() => {
  for (const undo of restore.splice(0)) undo();
  g.host.close();
  rmSync(root, { recursive: true, force: true });
});

function swap(): void {
  renameSync(join(sandbox, 'sub'), join(sandbox, 'sub.moved'));
  symlinkSync(outside, join(sandbox, 'sub'));
}

/** The next call of fs[name] (or process.chdir) finds sub swapped for a symlink to outside. */
function swapOnNext(name: 'chdir' | keyof typeof fs): void {
  const owner = (name === 'chdir' ? process : fs) as unknown as Record<string, (...a: unknown[]) => unknown>;
  const real = owner[name]!;
  const put = () => (owner[name] = real);
  restore.push(put);
  owner[name] = (...args: unknown[]) => {
    put();
    swap();
    return real.apply(owner, args);
  };
}

const call2 = (fn: string, a: string, b: string) => {
  const [pa, la] = g.str(a);
  const [pb, lb] = g.str(b);
  return fn === 'path_link' ? g.call(fn, FD, 0, pa, la, FD, pb, lb) : g.call(fn, FD, pa, la, FD, pb, lb);
};

test('unlink: a swap at the call removes the guest\'s file, not the outside one', () => {
  swapOnNext('unlinkSync');
  assert.equal(g.pathCall('path_unlink_file', FD, 'sub/f.txt'), 0);
  assert.ok(existsSync(join(outside, 'f.txt')), 'the outside file is still there');
  assert.ok(!existsSync(join(sandbox, 'sub.moved', 'f.txt')));
});

test('remove directory, create directory: the swap does not reach outside', () => {
  swapOnNext('rmdirSync');
  assert.equal(g.pathCall('path_remove_directory', FD, 'sub/d'), 0);
  assert.ok(existsSync(join(outside, 'd')));
  assert.ok(!existsSync(join(sandbox, 'sub.moved', 'd')));
  rmSync(join(sandbox, 'sub'));
  renameSync(join(sandbox, 'sub.moved'), join(sandbox, 'sub'));
  swapOnNext('mkdirSync');
  assert.equal(g.pathCall('path_create_directory', FD, 'sub/new'), 0);
  assert.deepEqual(readdirSync(outside).toSorted(), ['d', 'f.txt', 'l', 'secret-name.txt']);
  assert.ok(statSync(join(sandbox, 'sub.moved', 'new')).isDirectory());
});

test('rename and link within a directory: the swap does not reach outside', () => {
  swapOnNext('renameSync');
  // The swap itself renames: the hook puts the real function back before it.
  assert.equal(call2('path_rename', 'sub/f.txt', 'sub/g.txt'), 0);
  assert.deepEqual(readdirSync(outside).toSorted(), ['d', 'f.txt', 'l', 'secret-name.txt']);
  assert.equal(readFileSync(join(sandbox, 'sub.moved', 'g.txt'), 'utf8'), 'inside');
  rmSync(join(sandbox, 'sub'));
  renameSync(join(sandbox, 'sub.moved'), join(sandbox, 'sub'));
  swapOnNext('linkSync');
  assert.equal(call2('path_link', 'sub/g.txt', 'sub/h.txt'), 0);
  assert.deepEqual(readdirSync(outside).toSorted(), ['d', 'f.txt', 'l', 'secret-name.txt']);
  assert.equal(readFileSync(join(sandbox, 'sub.moved', 'h.txt'), 'utf8'), 'inside');
});

test('symlink: the swap does not place a link outside', () => {
  swapOnNext('symlinkSync');
  const [pt, lt] = g.str('f.txt');
  const [pp, lp] = g.str('sub/s');
  assert.equal(g.call('path_symlink', pt, lt, FD, pp, lp), 0);
  assert.ok(!existsSync(join(outside, 's')));
  assert.ok(lstatSync(join(sandbox, 'sub.moved', 's')).isSymbolicLink());
});

test('stat, readlink, set times: nothing is read from, or changed in, outside', () => {
  swapOnNext('lstatSync');
  const [p, l] = g.str('sub/f.txt');
  const out = g.alloc(64);
  assert.equal(g.call('path_filestat_get', FD, 0, p, l, out), 0);
  assert.equal(new DataView(g.bytes(out, 64).slice().buffer).getBigUint64(32, true), BigInt('inside'.length), 'the size of the guest\'s file, not the outside one\'s');
  rmSync(join(sandbox, 'sub'));
  renameSync(join(sandbox, 'sub.moved'), join(sandbox, 'sub'));

  swapOnNext('readlinkSync');
  const [lp, ll] = g.str('sub/l');
  const buf = g.alloc(64);
  const n = g.alloc(4, 4);
  assert.equal(g.call('path_readlink', FD, lp, ll, buf, 64, n), 0);
  assert.equal(g.text(buf, new DataView(g.bytes(n, 4).slice().buffer).getUint32(0, true)), 'f.txt');
  rmSync(join(sandbox, 'sub'));
  renameSync(join(sandbox, 'sub.moved'), join(sandbox, 'sub'));

  const before = statSync(join(outside, 'f.txt')).mtimeMs;
  swapOnNext('lutimesSync');
  // FSTFLAGS_MTIM (4): mtime to 1000 s.
  assert.equal(g.call('path_filestat_set_times', FD, 0, p, l, 0n, 1_000_000_000_000n, 4), 0);
  assert.equal(statSync(join(outside, 'f.txt')).mtimeMs, before, 'the outside file\'s time is unchanged');
  assert.equal(statSync(join(sandbox, 'sub.moved', 'f.txt')).mtimeMs, 1_000_000);
});

test('readdir of a directory descriptor lists the guest\'s directory, never the outside one', () => {
  const [errno, dirfd] = g.open(FD, 'sub', { oflags: Oflags.DIRECTORY, rights: Rights.FD_READDIR | Rights.PATH_OPEN });
  assert.equal(errno, 0);
  swapOnNext('readdirSync');
  const buf = g.alloc(4096);
  const used = g.alloc(4, 4);
  assert.equal(g.call('fd_readdir', dirfd, buf, 4096, 0n, used), 0);
  const listing = Buffer.from(g.bytes(buf, new DataView(g.bytes(used, 4).slice().buffer).getUint32(0, true))).toString('latin1');
  assert.doesNotMatch(listing, /secret-name/);
  assert.match(listing, /f\.txt/);
});

test('a swap before the host enters the directory is refused (ENOTCAPABLE), and outside is untouched', () => {
  swapOnNext('chdir');
  assert.equal(g.pathCall('path_unlink_file', FD, 'sub/f.txt'), Errno.NOTCAPABLE);
  assert.ok(existsSync(join(outside, 'f.txt')));
  assert.ok(existsSync(join(sandbox, 'sub.moved', 'f.txt')));
});

test('without a swap the same operations work (positive control), and the working directory is put back', () => {
  const cwd = process.cwd();
  assert.equal(g.pathCall('path_create_directory', FD, 'sub/new'), 0);
  assert.equal(call2('path_rename', 'sub/f.txt', 'sub/new/g.txt'), 0);
  assert.equal(readFileSync(join(sandbox, 'sub', 'new', 'g.txt'), 'utf8'), 'inside');
  assert.equal(call2('path_link', 'sub/new/g.txt', 'h.txt'), 0);
  assert.equal(g.pathCall('path_unlink_file', FD, 'h.txt'), 0);
  assert.equal(g.pathCall('path_unlink_file', FD, 'sub/new/g.txt'), 0);
  assert.equal(g.pathCall('path_remove_directory', FD, 'sub/new'), 0);
  assert.deepEqual(readdirSync(join(sandbox, 'sub')).toSorted(), ['d', 'l']);
  assert.equal(process.cwd(), cwd);
});

// The process Keep's permission model disables futimes: the host sets a file's times by the name
// it was opened at, after checking that the name is still that file. The check and the call both
// happen inside the file's directory, so a swap between them reaches nothing outside.
test('set times through a descriptor, by name where futimes is refused: the swap does not reach outside', () => {
  const [errno, fd] = g.open(FD, 'sub/f.txt', { rights: Rights.FD_FILESTAT_SET_TIMES | Rights.FD_READ });
  assert.equal(errno, 0);
  const realFutimes = fs.futimesSync;
  restore.push(() => (fs.futimesSync = realFutimes));
  fs.futimesSync = () => {
    throw Object.assign(new Error('Access to this API has been restricted'), { code: 'ERR_ACCESS_DENIED' });
  };
  const before = statSync(join(outside, 'f.txt')).mtimeMs;
  swapOnNext('lutimesSync');
  assert.equal(g.call('fd_filestat_set_times', fd, 0n, 1_000_000_000_000n, 4), 0);
  assert.equal(statSync(join(outside, 'f.txt')).mtimeMs, before, 'the outside file\'s time is unchanged');
  assert.equal(statSync(join(sandbox, 'sub.moved', 'f.txt')).mtimeMs, 1_000_000);
});
