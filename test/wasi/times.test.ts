// File times at nanosecond precision: what the guest sets is what it reads back, although Node
// stores times only through a double (see src/wasi/times.ts).
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fstflags, Lookupflags, Oflags, Rights } from '../../src/wasi/constants.ts';
import fc from 'fast-check';
import { GuestTimes, OMIT_TIME, secondsFor, storedNs } from '../../src/wasi/times.ts';
import { Guest } from '../helpers/wasi-guest.ts';

const DIR_FD = 3;
const RIGHTS = Rights.FD_READ | Rights.FD_WRITE | Rights.FD_FILESTAT_GET | Rights.FD_FILESTAT_SET_TIMES;
// Today's dates are not exact in a double of seconds: about 240 ns apart.
const ODD_NS = 1_700_000_000_123_456_789n; // 2023, before any test run

let dir: string;
let g: Guest;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'enarx-times-'));
  g = new Guest({ descriptors: [{ kind: 'null', name: 'stdin' }, { kind: 'null', name: 'stdout' }, { kind: 'null', name: 'stderr' }, { kind: 'dir', name: '/d', dir: { hostPath: dir, guestPath: '/d', readonly: false } }] });
});
afterEach(() => {
  g.host.close();
  rmSync(dir, { recursive: true, force: true });
});

function fdTimes(fd: number): { atim: bigint; mtim: bigint } {
  const buf = g.alloc(64);
  assert.equal(g.call('fd_filestat_get', fd, buf), 0);
  return { atim: g.u64(buf + 40), mtim: g.u64(buf + 48) };
}

function pathTimes(path: string, follow = false): { atim: bigint; mtim: bigint } {
  const buf = g.alloc(64);
  const [p, l] = g.str(path);
  assert.equal(g.call('path_filestat_get', DIR_FD, follow ? Lookupflags.SYMLINK_FOLLOW : 0, p, l, buf), 0);
  return { atim: g.u64(buf + 40), mtim: g.u64(buf + 48) };
}

function open(path: string): number {
  const [e, fd] = g.open(DIR_FD, path, { oflags: Oflags.CREAT, rights: RIGHTS });
  assert.equal(e, 0);
  return fd;
}

test('a time set on a descriptor reads back to the nanosecond, and the time left alone does not move', () => {
  const fd = open('f');
  const before = fdTimes(fd);
  const mtim = before.mtim - 100n;
  assert.equal(g.call('fd_filestat_set_times', fd, 0n, mtim, Fstflags.MTIM), 0);
  assert.deepEqual(fdTimes(fd), { atim: before.atim, mtim });
  assert.deepEqual(pathTimes('f'), { atim: before.atim, mtim });
  // The file system holds the closest time Node can store (a double's step is about 238 ns
  // today), and the access time the guest left alone exactly as it was (UTIME_OMIT).
  const onDisk = statSync(join(dir, 'f'), { bigint: true });
  assert.ok(onDisk.mtimeNs - mtim <= 120n && mtim - onDisk.mtimeNs <= 120n, `${onDisk.mtimeNs} vs ${mtim}`);
  assert.equal(onDisk.atimeNs, before.atim);
});

test('times set through a path, with and without following a symlink, read back exactly', () => {
  writeFileSync(join(dir, 'target'), 'x');
  symlinkSync('target', join(dir, 'link'));
  const [p, l] = g.str('link');
  assert.equal(g.call('path_filestat_set_times', DIR_FD, 0, p, l, ODD_NS, ODD_NS + 1n, Fstflags.ATIM | Fstflags.MTIM), 0);
  assert.deepEqual(pathTimes('link'), { atim: ODD_NS, mtim: ODD_NS + 1n });
  assert.notEqual(pathTimes('link', true).mtim, ODD_NS + 1n, 'the target was not touched');
  assert.equal(g.call('path_filestat_set_times', DIR_FD, Lookupflags.SYMLINK_FOLLOW, p, l, 0n, ODD_NS + 7n, Fstflags.MTIM), 0);
  assert.equal(pathTimes('link', true).mtim, ODD_NS + 7n);
  assert.equal(pathTimes('target').mtim, ODD_NS + 7n);
});

test('a later change to the file shows its real time again', () => {
  const fd = open('g');
  assert.equal(g.call('fd_filestat_set_times', fd, 0n, ODD_NS, Fstflags.MTIM), 0);
  assert.equal(fdTimes(fd).mtim, ODD_NS);
  // Another program sets another time: that time shows, not the remembered one.
  utimesSync(join(dir, 'g'), 1000, 2000);
  assert.deepEqual(fdTimes(fd), { atim: 1_000_000_000_000n, mtim: 2_000_000_000_000n });
  // A write by the guest moves mtime to now.
  assert.equal(g.call('fd_filestat_set_times', fd, 0n, ODD_NS, Fstflags.MTIM), 0);
  assert.equal(g.write(fd, 'more')[0], 0);
  assert.notEqual(fdTimes(fd).mtim, ODD_NS);
  // "Now" is the clock's, not a remembered value.
  assert.equal(g.call('fd_filestat_set_times', fd, 0n, ODD_NS, Fstflags.MTIM), 0);
  assert.equal(g.call('fd_filestat_set_times', fd, 0n, 0n, Fstflags.MTIM_NOW), 0);
  assert.ok(fdTimes(fd).mtim > ODD_NS);
});

test('GuestTimes: bounded, keeps a time not set again, forgets exact matches, trusts only rounding', () => {
  const times = new GuestTimes();
  const st = (ino: number, atimeNs: bigint, mtimeNs: bigint) => ({ dev: 1n, ino: BigInt(ino), atimeNs, mtimeNs }) as never;
  // What the file system keeps for a time asked through Node (the nearest double, truncated).
  const kept = (ns: bigint) => storedNs(secondsFor(ns));
  const [a1, m1, a2] = [ODD_NS, ODD_NS + 1n, ODD_NS + 5n];
  times.record(st(1, kept(a1), kept(m1)), a1, m1);
  assert.deepEqual(times.times(st(1, kept(a1), kept(m1))), { atimeNs: a1, mtimeNs: m1 });
  times.record(st(1, kept(a2), kept(m1)), a2, undefined); // only atime set again: mtime's pair stays
  assert.deepEqual(times.times(st(1, kept(a2), kept(m1))), { atimeNs: a2, mtimeNs: m1 });
  times.record(st(1, 40n, kept(m1)), 40n, undefined); // stored exactly: nothing to remember for atime
  assert.deepEqual(times.times(st(1, 40n, kept(m1))), { atimeNs: 40n, mtimeNs: m1 });
  assert.deepEqual(times.times(st(2, kept(a1), kept(m1))), { atimeNs: kept(a1), mtimeNs: kept(m1) }, 'another file');
  // A file system that kept something else than the rounding (clamped to its range, or coarser
  // than a nanosecond) is reported as it is: the asked time is not remembered.
  times.record(st(3, 15_032_385_535_000_000_000n, 2_000_000_000n), (1n << 64n) - 1n, 2_000_000_001n);
  assert.deepEqual(times.times(st(3, 15_032_385_535_000_000_000n, 2_000_000_000n)), { atimeNs: 15_032_385_535_000_000_000n, mtimeNs: 2_000_000_000n });
  for (let i = 100; i < 100 + 5000; i++) times.record(st(i, kept(a1), kept(a1)), a1, a1);
  assert.deepEqual(times.times(st(1, 40n, kept(m1))), { atimeNs: 40n, mtimeNs: kept(m1) }, 'the oldest entry was evicted');
  assert.deepEqual(times.times(st(5099, kept(a1), kept(a1))), { atimeNs: a1, mtimeNs: a1 });
});

test('secondsFor: the double whose libuv conversion lands nearest, exact where a double can be', () => {
  // Before 2^22 s (February 1970) a double resolves below a nanosecond: every time is exact.
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 22n) * 1_000_000_000n - 1n }), (ns) => storedNs(secondsFor(ns)) === ns));
  // Later, within half of a double's step (2^-22 s near today, 2^-20 s until 2255), and never
  // further than the plain division Number(ns) / 1e9.
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: 9_000_000_000_000_000_000n }), (ns) => {
    const error = (s: number) => { const d = storedNs(s) - ns; return d < 0n ? -d : d; };
    const got = error(secondsFor(ns));
    const step = Math.max(1, 2 ** (Math.floor(Math.log2(Number(ns) / 1e9)) - 52) * 1e9);
    return got <= BigInt(Math.ceil(step / 2)) + 1n && got <= error(Number(ns) / 1e9);
  }));
  // ODD_NS sits between two storable times, 73 ns below and 165 ns above.
  assert.equal(storedNs(secondsFor(ODD_NS)) - ODD_NS, -73n);
  assert.equal(storedNs(secondsFor(ODD_NS + 200n)) - ODD_NS, 165n);
});

test('storedNs models what the kernel keeps; OMIT_TIME leaves a time exactly as it was', () => {
  const path = join(dir, 'model');
  writeFileSync(path, 'x');
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: 4_000_000_000_000_000_000n }), (ns) => {
    const seconds = secondsFor(ns);
    utimesSync(path, seconds, seconds);
    return statSync(path, { bigint: true }).mtimeNs === storedNs(seconds);
  }), { numRuns: 200 });
  utimesSync(path, 1000.000000123, 2000);
  const before = statSync(path, { bigint: true });
  utimesSync(path, OMIT_TIME, 3000);
  const after = statSync(path, { bigint: true });
  assert.equal(after.atimeNs, before.atimeNs);
  assert.equal(after.mtimeNs, 3_000_000_000_000n);
});
