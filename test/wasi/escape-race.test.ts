import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs, { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync, symlinkSync, renameSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno, Oflags, Rights } from '../../src/wasi/constants.ts';
import { Guest } from '../helpers/wasi-guest.ts';

// Another process on the host, with write access to the preopened tree (say, a user sharing the
// directory with the workload), swaps a directory the WASI layer has just checked for a symlink to
// a place outside, before the host opens the file below it. The test makes that swap at the exact
// moment: inside fs.openSync, which the host calls right after its check.
let root: string, sandbox: string, outside: string;
let g: Guest;
const FD = 3;
const READ = Rights.FD_READ | Rights.FD_SEEK | Rights.FD_FILESTAT_GET;
const WRITE = READ | Rights.FD_WRITE;
const realOpen = fs.openSync;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'enarx-race-'));
  sandbox = join(root, 'sandbox');
  outside = join(root, 'outside');
  mkdirSync(join(sandbox, 'sub'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(sandbox, 'sub', 'f.txt'), 'inside');
  writeFileSync(join(outside, 'f.txt'), 'SECRET');
  g = new Guest({ descriptors: [
    { kind: 'null', name: 'stdin' }, { kind: 'null', name: 'stdout' }, { kind: 'null', name: 'stderr' },
    { kind: 'dir', name: '/', dir: { hostPath: sandbox, guestPath: '/', readonly: false } },
  ] });
});

afterEach(() => {
  fs.openSync = realOpen;
  g.host.close();
  rmSync(root, { recursive: true, force: true });
});

/** The next open of a path below sandbox/sub finds sub swapped for a symlink to outside. */
function swapOnOpen(): void {
  fs.openSync = ((path: fs.PathLike, ...rest: never[]) => {
    if (String(path).startsWith(join(sandbox, 'sub') + '/')) {
      fs.openSync = realOpen;
      renameSync(join(sandbox, 'sub'), join(sandbox, 'sub.moved'));
      symlinkSync(outside, join(sandbox, 'sub'));
    }
    return (realOpen as (...a: unknown[]) => number)(path, ...rest);
  }) as typeof fs.openSync;
}

test('a directory swapped for a symlink between the check and the open: the read is refused', () => {
  swapOnOpen();
  const [errno, fd] = g.open(FD, 'sub/f.txt', { rights: READ });
  if (errno === 0) assert.fail(`the guest opened the outside file and read ${JSON.stringify(g.read(fd)[1])}`);
  assert.equal(errno, Errno.NOTCAPABLE);
  assert.ok(fs.lstatSync(join(sandbox, 'sub')).isSymbolicLink(), 'the swap happened');
});

test('... a write with O_TRUNC neither truncates nor writes the outside file', () => {
  swapOnOpen();
  const [errno, fd] = g.open(FD, 'sub/f.txt', { rights: WRITE, oflags: Oflags.TRUNC });
  if (errno === 0) g.write(fd, 'OVERWRITTEN');
  assert.equal(errno, Errno.NOTCAPABLE);
  assert.equal(readFileSync(join(outside, 'f.txt'), 'utf8'), 'SECRET');
});

test('... a create leaves no file outside', () => {
  swapOnOpen();
  const [errno] = g.open(FD, 'sub/new.txt', { rights: WRITE, oflags: Oflags.CREAT });
  assert.equal(errno, Errno.NOTCAPABLE);
  assert.deepEqual(readdirSync(outside), ['f.txt']);
});

test('... a create that meets an existing outside file neither removes nor changes it', () => {
  writeFileSync(join(outside, 'new.txt'), 'KEEP');
  swapOnOpen();
  const [errno] = g.open(FD, 'sub/new.txt', { rights: WRITE, oflags: Oflags.CREAT | Oflags.TRUNC });
  assert.equal(errno, Errno.NOTCAPABLE);
  assert.equal(readFileSync(join(outside, 'new.txt'), 'utf8'), 'KEEP');
});

test('without a swap, the same opens work (positive control)', () => {
  assert.equal(g.open(FD, 'sub/f.txt', { rights: READ })[0], 0);
  assert.equal(g.open(FD, 'sub/f.txt', { rights: WRITE, oflags: Oflags.TRUNC })[0], 0);
  assert.equal(readFileSync(join(sandbox, 'sub', 'f.txt'), 'utf8'), '');
  assert.equal(g.open(FD, 'sub/new.txt', { rights: WRITE, oflags: Oflags.CREAT })[0], 0);
});
