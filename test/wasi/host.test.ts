import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync, symlinkSync, statSync, existsSync, lstatSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno, Filetype, Fdflags, Oflags, Rights, Whence, Clockid, Fstflags, Eventtype } from '../../src/wasi/constants.ts';
import { ProcExit } from '../../src/wasi/index.ts';
import { Guest } from '../helpers/wasi-guest.ts';
import { FakeInput, FakeOutput } from '../helpers/fake-streams.ts';

let dir: string;
let stdin: FakeInput;
let stdout: FakeOutput;
let g: Guest;
const DIR_FD = 3;
const READ_RIGHTS = Rights.FD_READ | Rights.FD_SEEK | Rights.FD_TELL | Rights.FD_FILESTAT_GET | Rights.FD_READDIR | Rights.POLL_FD_READWRITE;

function setup(options: { readonly?: boolean; maxDescriptors?: number } = {}) {
  stdin = new FakeInput();
  stdout = new FakeOutput();
  g = new Guest({
    args: ['prog', 'a b', 'ünï'],
    env: [['HOME', '/'], ['X', 'y=z']],
    maxDescriptors: options.maxDescriptors,
    descriptors: [
      { kind: 'input', name: 'stdin', stream: stdin },
      { kind: 'output', name: 'stdout', stream: stdout },
      { kind: 'null', name: 'stderr' },
      { kind: 'dir', name: '/sandbox', dir: { hostPath: dir, guestPath: '/sandbox', readonly: options.readonly ?? false } },
    ],
  });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'enarx-wasi-'));
  setup();
});
afterEach(() => {
  g.host.close();
  rmSync(dir, { recursive: true, force: true });
});

function openFile(path: string, oflags = 0, rights?: bigint, fdflags = 0): number {
  const [e, fd] = g.open(DIR_FD, path, { oflags, rights, fdflags });
  assert.equal(e, 0, `open ${path}: errno ${e}`);
  return fd;
}

describe('args and environ', () => {
  test('sizes and contents, NUL-terminated', () => {
    const count = g.alloc(4, 4), size = g.alloc(4, 4);
    assert.equal(g.call('args_sizes_get', count, size), 0);
    assert.equal(g.u32(count), 3);
    const bytes = g.u32(size);
    assert.equal(bytes, new TextEncoder().encode('prog\0a b\0ünï\0').length);
    const ptrs = g.alloc(12, 4), buf = g.alloc(bytes, 1);
    assert.equal(g.call('args_get', ptrs, buf), 0);
    assert.equal(g.text(g.u32(ptrs + 4), 3), 'a b');
    assert.equal(g.text(buf, bytes), 'prog\0a b\0ünï\0');
    assert.equal(g.call('environ_sizes_get', count, size), 0);
    assert.equal(g.u32(count), 2);
    const eptrs = g.alloc(8, 4), ebuf = g.alloc(g.u32(size), 1);
    assert.equal(g.call('environ_get', eptrs, ebuf), 0);
    assert.equal(g.text(g.u32(eptrs + 4), 5), 'X=y=z');
  });
  test('pointers outside memory give EFAULT', () => {
    const end = g.memory.buffer.byteLength;
    assert.equal(g.call('args_get', end - 2, 0), Errno.FAULT);
    assert.equal(g.call('environ_get', 0, end - 1), Errno.FAULT);
    assert.equal(g.call('args_sizes_get', end, 0), Errno.FAULT);
    assert.equal(g.call('environ_sizes_get', end - 3, 0), Errno.FAULT);
  });
});

describe('clocks, random, yield, exit', () => {
  test('clock_res_get and clock_time_get for every clock; unknown clock is EINVAL', () => {
    const out = g.alloc(8);
    for (const id of [Clockid.REALTIME, Clockid.MONOTONIC, Clockid.PROCESS_CPUTIME_ID, Clockid.THREAD_CPUTIME_ID]) {
      assert.equal(g.call('clock_res_get', id, out), 0);
      assert.ok(g.u64(out) > 0n);
      assert.equal(g.call('clock_time_get', id, 1n, out), 0);
    }
    assert.equal(g.call('clock_time_get', Clockid.REALTIME, 1n, out), 0);
    const ms = Number(g.u64(out) / 1_000_000n);
    assert.ok(Math.abs(ms - Date.now()) < 1000, 'realtime is wall-clock time');
    assert.equal(g.call('clock_time_get', Clockid.MONOTONIC, 0n, out), 0);
    const a = g.u64(out);
    assert.equal(g.call('clock_time_get', Clockid.MONOTONIC, 0n, out), 0);
    assert.ok(g.u64(out) >= a);
    assert.equal(g.call('clock_res_get', 4, out), Errno.INVAL);
    assert.equal(g.call('clock_time_get', 99, 0n, out), Errno.INVAL);
    assert.equal(g.call('clock_time_get', 0, 0n, g.memory.buffer.byteLength - 4), Errno.FAULT);
  });
  test('random_get fills the buffer; out of bounds is EFAULT', () => {
    const p = g.alloc(100000, 1);
    assert.equal(g.call('random_get', p, 100000), 0);
    const b = g.bytes(p, 100000);
    assert.ok(b.some((x) => x !== 0) && b.subarray(70000).some((x) => x !== 0));
    assert.equal(g.call('random_get', g.memory.buffer.byteLength - 1, 2), Errno.FAULT);
  });
  test('sched_yield succeeds; proc_exit unwinds with the code; proc_raise is ENOSYS', () => {
    assert.equal(g.call('sched_yield'), 0);
    assert.throws(() => g.call('proc_exit', 7), (e: unknown) => e instanceof ProcExit && e.code === 7);
    assert.equal(g.call('proc_raise', 2), Errno.NOSYS);
  });
});

describe('fd_* on stdio and files', () => {
  test('fd_write to stdout and null; stdin is not writable', () => {
    assert.deepEqual(g.write(1, 'hello'), [0, 5]);
    assert.equal(stdout.text(), 'hello');
    assert.deepEqual(g.write(2, 'gone'), [0, 4]);
    assert.equal(g.write(0, 'x')[0], Errno.BADF);
    assert.equal(g.write(42, 'x')[0], Errno.BADF);
    assert.equal(g.write(DIR_FD, 'x')[0], Errno.ISDIR);
  });
  test('fd_write gathers several iovecs', () => {
    const [iovs, n] = g.iovs(['ab', '', 'cde']);
    const out = g.alloc(4, 4);
    assert.equal(g.call('fd_write', 1, iovs, n, out), 0);
    assert.equal(g.u32(out), 5);
    assert.equal(stdout.text(), 'abcde');
    assert.equal(g.call('fd_write', 1, g.memory.buffer.byteLength - 4, 1, out), Errno.FAULT);
  });
  test('fd_read from stdin with data, at end, from null; stdout is not readable', () => {
    stdin.push('line\n');
    assert.deepEqual(g.read(0), [0, 'line\n']);
    stdin.end();
    assert.deepEqual(g.read(0), [0, '']);
    assert.deepEqual(g.read(2), [0, '']);
    assert.equal(g.read(1)[0], Errno.BADF);
    assert.equal(g.read(DIR_FD)[0], Errno.ISDIR);
  });
  test('fd_read scatters into several iovecs', () => {
    stdin.push('abcdef');
    const [iovs, n, [p1, p2]] = g.iovs([2, 10]);
    const out = g.alloc(4, 4);
    assert.equal(g.call('fd_read', 0, iovs, n, out), 0);
    assert.equal(g.u32(out), 6);
    assert.equal(g.text(p1!, 2) + g.text(p2!, 4), 'abcdef');
  });
  test('a non-blocking stdin with no data gives EAGAIN', () => {
    assert.equal(g.call('fd_fdstat_set_flags', 0, Fdflags.NONBLOCK), 0);
    assert.equal(g.read(0)[0], Errno.AGAIN);
  });
  test('files: write, seek, tell, read, pread, pwrite', () => {
    const fd = openFile('f.txt', Oflags.CREAT);
    assert.deepEqual(g.write(fd, 'hello world'), [0, 11]);
    const pos = g.alloc(8);
    assert.equal(g.call('fd_tell', fd, pos), 0);
    assert.equal(g.u64(pos), 11n);
    assert.equal(g.call('fd_seek', fd, 6n, Whence.SET, pos), 0);
    assert.deepEqual(g.read(fd), [0, 'world']);
    assert.equal(g.call('fd_seek', fd, -5n, Whence.END, pos), 0);
    assert.equal(g.u64(pos), 6n);
    assert.equal(g.call('fd_seek', fd, -1n, Whence.CUR, pos), 0);
    assert.equal(g.u64(pos), 5n);
    assert.equal(g.call('fd_seek', fd, -100n, Whence.CUR, pos), Errno.INVAL);
    assert.equal(g.call('fd_seek', fd, 0n, 7, pos), Errno.INVAL);
    const [iovs, n, [buf]] = g.iovs([5]);
    const out = g.alloc(4, 4);
    assert.equal(g.call('fd_pread', fd, iovs, n, 0n, out), 0);
    assert.equal(g.text(buf!, g.u32(out)), 'hello');
    const [wiovs, wn] = g.iovs(['HELLO']);
    assert.equal(g.call('fd_pwrite', fd, wiovs, wn, 0n, out), 0);
    assert.equal(g.call('fd_tell', fd, pos), 0);
    assert.equal(g.u64(pos), 5n, 'pread/pwrite leave the position alone');
    assert.equal(readFileSync(join(dir, 'f.txt'), 'utf8'), 'HELLO world');
    assert.equal(g.call('fd_pread', 0, iovs, n, 0n, out), Errno.SPIPE);
    assert.equal(g.call('fd_pwrite', 1, wiovs, wn, 0n, out), Errno.SPIPE);
    assert.equal(g.call('fd_seek', 0, 0n, Whence.SET, pos), Errno.SPIPE);
    assert.equal(g.call('fd_seek', DIR_FD, 0n, Whence.SET, pos), Errno.ISDIR);
    assert.equal(g.call('fd_tell', 1, pos), Errno.SPIPE);
  });
  test('append mode writes at the end whatever the position', () => {
    writeFileSync(join(dir, 'log'), 'one\n');
    const fd = openFile('log', 0, undefined, Fdflags.APPEND);
    const pos = g.alloc(8);
    assert.equal(g.call('fd_seek', fd, 0n, Whence.SET, pos), 0);
    g.write(fd, 'two\n');
    assert.equal(readFileSync(join(dir, 'log'), 'utf8'), 'one\ntwo\n');
    // pwrite on an append descriptor is allowed and leaves the position alone (POSIX or Linux placement).
    const [iovs, n] = g.iovs(['x']);
    assert.equal(g.call('fd_tell', fd, pos), 0);
    const before = g.u64(pos);
    assert.equal(g.call('fd_pwrite', fd, iovs, n, 0n, g.alloc(4, 4)), 0);
    assert.equal(g.call('fd_tell', fd, pos), 0);
    assert.equal(g.u64(pos), before);
    // Append can be switched off (and on) after open: then writes land at the position again.
    assert.equal(g.call('fd_fdstat_set_flags', fd, 0), 0);
    assert.equal(g.call('fd_seek', fd, 0n, Whence.SET, pos), 0);
    g.write(fd, 'ONE');
    assert.equal(readFileSync(join(dir, 'log'), 'utf8').slice(0, 4), 'ONE\n');
    assert.equal(g.call('fd_fdstat_set_flags', fd, Fdflags.APPEND), 0);
    g.write(fd, 'end');
    assert.ok(readFileSync(join(dir, 'log'), 'utf8').endsWith('end'));
  });
  test('a file opened read-only refuses writes and size changes', () => {
    writeFileSync(join(dir, 'ro'), 'data');
    const fd = openFile('ro', 0, READ_RIGHTS);
    assert.equal(g.write(fd, 'x')[0], Errno.BADF);
    assert.equal(g.call('fd_filestat_set_size', fd, 0n), Errno.NOTCAPABLE);
    assert.deepEqual(g.read(fd), [0, 'data']);
  });
  test('fd_close closes once; then EBADF', () => {
    const fd = openFile('c', Oflags.CREAT);
    assert.equal(g.call('fd_close', fd), 0);
    assert.equal(g.call('fd_close', fd), Errno.BADF);
    assert.equal(g.write(fd, 'x')[0], Errno.BADF);
  });
  test('fd_advise and fd_allocate', () => {
    const fd = openFile('a', Oflags.CREAT);
    assert.equal(g.call('fd_advise', fd, 0n, 100n, 1), 0);
    assert.equal(g.call('fd_advise', fd, 0n, 100n, 9), Errno.INVAL);
    assert.equal(g.call('fd_advise', 1, 0n, 0n, 0), Errno.SPIPE);
    assert.equal(g.call('fd_advise', 99, 0n, 0n, 0), Errno.BADF);
    assert.equal(g.call('fd_allocate', fd, 10n, 90n), 0);
    assert.equal(statSync(join(dir, 'a')).size, 100);
    assert.equal(g.call('fd_allocate', fd, 0n, 10n), 0);
    assert.equal(statSync(join(dir, 'a')).size, 100, 'allocate never shrinks');
    assert.equal(g.call('fd_allocate', fd, 0n, 0n), Errno.INVAL);
    assert.equal(g.call('fd_allocate', DIR_FD, 0n, 1n), Errno.ISDIR);
  });
  test('fd_sync and fd_datasync on files and directories; streams are EINVAL', () => {
    const fd = openFile('s', Oflags.CREAT);
    assert.equal(g.call('fd_sync', fd), 0);
    assert.equal(g.call('fd_datasync', fd), 0);
    assert.equal(g.call('fd_sync', DIR_FD), 0);
    assert.equal(g.call('fd_sync', 1), Errno.NOTCAPABLE);
    assert.equal(g.call('fd_datasync', 77), Errno.BADF);
  });
  test('fd_fdstat_get reports type, flags and rights', () => {
    const st = g.alloc(24);
    assert.equal(g.call('fd_fdstat_get', 0, st), 0);
    assert.equal(g.view.getUint8(st), Filetype.CHARACTER_DEVICE);
    assert.equal(g.call('fd_fdstat_get', DIR_FD, st), 0);
    assert.equal(g.view.getUint8(st), Filetype.DIRECTORY);
    assert.ok((g.u64(st + 8) & Rights.PATH_OPEN) !== 0n);
    const fd = openFile('x', Oflags.CREAT, undefined, Fdflags.APPEND);
    assert.equal(g.call('fd_fdstat_get', fd, st), 0);
    assert.equal(g.view.getUint8(st), Filetype.REGULAR_FILE);
    assert.equal(g.view.getUint16(st + 2, true), Fdflags.APPEND);
    assert.equal(g.call('fd_fdstat_get', 50, st), Errno.BADF);
  });
  test('fd_fdstat_set_flags: nonblock settable, unknown bits EINVAL, sync flags ENOTSUP', () => {
    assert.equal(g.call('fd_fdstat_set_flags', 1, Fdflags.NONBLOCK), 0);
    assert.equal(g.call('fd_fdstat_set_flags', 1, 0x100), Errno.INVAL);
    assert.equal(g.call('fd_fdstat_set_flags', 1, Fdflags.SYNC), Errno.NOTSUP);
    assert.equal(g.call('fd_fdstat_set_flags', 9, 0), Errno.BADF);
  });
  test('fd_fdstat_set_rights only drops rights, and dropped rights are enforced', () => {
    const fd = openFile('r', Oflags.CREAT);
    assert.equal(g.call('fd_fdstat_set_rights', fd, Rights.FD_READ, 0n), 0);
    assert.equal(g.write(fd, 'x')[0], Errno.BADF);
    const pos = g.alloc(8);
    assert.equal(g.call('fd_seek', fd, 0n, Whence.SET, pos), Errno.NOTCAPABLE);
    assert.equal(g.call('fd_fdstat_set_rights', fd, Rights.FD_READ | Rights.FD_WRITE, 0n), Errno.NOTCAPABLE);
    assert.equal(g.call('fd_fdstat_set_rights', DIR_FD, 0n, 0n), 0);
    assert.equal(g.open(DIR_FD, 'r')[0], Errno.NOTCAPABLE);
  });
  test('fd_filestat_get, set_size and set_times', () => {
    const fd = openFile('st', Oflags.CREAT);
    g.write(fd, '12345');
    const buf = g.alloc(64);
    assert.equal(g.call('fd_filestat_get', fd, buf), 0);
    assert.equal(g.view.getUint8(buf + 16), Filetype.REGULAR_FILE);
    assert.equal(g.u64(buf + 32), 5n);
    assert.equal(g.u64(buf + 24), 1n);
    assert.equal(g.call('fd_filestat_set_size', fd, 2n), 0);
    assert.equal(statSync(join(dir, 'st')).size, 2);
    assert.equal(g.call('fd_filestat_set_times', fd, 0n, 1_000_000_000_000n, Fstflags.MTIM), 0);
    assert.equal(statSync(join(dir, 'st')).mtimeMs, 1_000_000);
    assert.equal(g.call('fd_filestat_set_times', fd, 0n, 0n, Fstflags.ATIM | Fstflags.ATIM_NOW), Errno.INVAL);
    assert.equal(g.call('fd_filestat_set_times', fd, 0n, 0n, Fstflags.MTIM_NOW), 0);
    assert.ok(Math.abs(statSync(join(dir, 'st')).mtimeMs - Date.now()) < 5000);
    assert.equal(g.call('fd_filestat_get', 1, buf), 0);
    assert.equal(g.view.getUint8(buf + 16), Filetype.CHARACTER_DEVICE);
    assert.equal(g.call('fd_filestat_get', DIR_FD, buf), 0);
    assert.equal(g.view.getUint8(buf + 16), Filetype.DIRECTORY);
    assert.equal(g.call('fd_filestat_set_size', DIR_FD, 0n), Errno.ISDIR);
    assert.equal(g.call('fd_filestat_set_times', 1, 0n, 0n, 0), Errno.NOTCAPABLE);
    assert.equal(g.call('fd_filestat_get', 99, buf), Errno.BADF);
  });
  test('fd_prestat_get and fd_prestat_dir_name', () => {
    const ps = g.alloc(8);
    assert.equal(g.call('fd_prestat_get', DIR_FD, ps), 0);
    assert.equal(g.view.getUint8(ps), 0);
    assert.equal(g.u32(ps + 4), '/sandbox'.length);
    const name = g.alloc(16, 1);
    assert.equal(g.call('fd_prestat_dir_name', DIR_FD, name, 8), 0);
    assert.equal(g.text(name, 8), '/sandbox');
    assert.equal(g.call('fd_prestat_dir_name', DIR_FD, name, 3), Errno.NAMETOOLONG);
    assert.equal(g.call('fd_prestat_get', 1, ps), Errno.BADF);
    assert.equal(g.call('fd_prestat_get', 4, ps), Errno.BADF);
    const sub = openFile('.', Oflags.DIRECTORY, READ_RIGHTS | Rights.PATH_OPEN);
    assert.equal(g.call('fd_prestat_get', sub, ps), Errno.BADF, 'a directory opened later is not a preopen');
  });
  test('fd_renumber moves a descriptor over an open one', () => {
    const a = openFile('a', Oflags.CREAT);
    const b = openFile('b', Oflags.CREAT);
    assert.equal(g.call('fd_renumber', a, b), 0);
    g.write(b, 'to-a');
    assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'to-a');
    assert.equal(g.write(a, 'x')[0], Errno.BADF);
    assert.equal(g.call('fd_renumber', b, 40), Errno.BADF);
    assert.equal(g.call('fd_renumber', 40, b), Errno.BADF);
  });
  test('fd_readdir lists entries with cookies, and truncates to the buffer', () => {
    writeFileSync(join(dir, 'b.txt'), 'x');
    mkdirSync(join(dir, 'a-dir'));
    symlinkSync('b.txt', join(dir, 'c-link'));
    const buf = g.alloc(4096, 8);
    const used = g.alloc(4, 4);
    assert.equal(g.call('fd_readdir', DIR_FD, buf, 4096, 0n, used), 0);
    const entries: { name: string; type: number; next: bigint }[] = [];
    for (let at = buf; at < buf + g.u32(used);) {
      const len = g.u32(at + 16);
      entries.push({ next: g.u64(at), type: g.view.getUint8(at + 20), name: g.text(at + 24, len) });
      at += 24 + len;
    }
    assert.deepEqual(entries.map((e) => e.name), ['.', '..', 'a-dir', 'b.txt', 'c-link']);
    assert.deepEqual(entries.map((e) => e.type).slice(2), [Filetype.DIRECTORY, Filetype.REGULAR_FILE, Filetype.SYMBOLIC_LINK]);
    assert.equal(g.call('fd_readdir', DIR_FD, buf, 4096, entries[2]!.next, used), 0);
    assert.equal(g.text(buf + 24, 5), 'b.txt');
    assert.equal(g.call('fd_readdir', DIR_FD, buf, 30, 0n, used), 0);
    assert.equal(g.u32(used), 30, 'a full buffer tells the guest to ask again with a bigger one');
    const fd = openFile('b.txt');
    assert.equal(g.call('fd_readdir', fd, buf, 100, 0n, used), Errno.NOTDIR);
  });
});

describe('path_* functions', () => {
  test('path_open: create, exclusive, truncate, directory, missing', () => {
    assert.equal(g.open(DIR_FD, 'missing')[0], Errno.NOENT);
    const fd = openFile('new', Oflags.CREAT | Oflags.EXCL);
    g.write(fd, 'abc');
    assert.equal(g.open(DIR_FD, 'new', { oflags: Oflags.CREAT | Oflags.EXCL })[0], Errno.EXIST);
    openFile('new', Oflags.TRUNC);
    assert.equal(statSync(join(dir, 'new')).size, 0);
    assert.equal(g.open(DIR_FD, 'new', { oflags: Oflags.DIRECTORY })[0], Errno.NOTDIR);
    assert.equal(g.open(DIR_FD, 'new/')[0], Errno.NOTDIR);
    mkdirSync(join(dir, 'd'));
    assert.equal(g.open(DIR_FD, 'd', { rights: Rights.FD_WRITE })[0], Errno.ISDIR);
    assert.equal(g.open(DIR_FD, 'd', { oflags: Oflags.CREAT, rights: READ_RIGHTS })[0], Errno.ISDIR);
    assert.equal(g.open(DIR_FD, 'x', { oflags: 0x40 })[0], Errno.INVAL);
    assert.equal(g.open(DIR_FD, 'x', { fdflags: 0x100 })[0], Errno.INVAL);
    assert.equal(g.open(DIR_FD, 'x', { oflags: Oflags.CREAT | Oflags.DIRECTORY })[0], Errno.INVAL);
    // Nor with an existing directory or file: O_DIRECTORY never goes with O_CREAT, O_EXCL or O_TRUNC.
    mkdirSync(join(dir, 'existing-dir'), { recursive: true });
    writeFileSync(join(dir, 'existing-file'), 'keep me');
    for (const extra of [Oflags.CREAT, Oflags.EXCL, Oflags.TRUNC]) {
      assert.equal(g.open(DIR_FD, 'existing-dir', { oflags: Oflags.DIRECTORY | extra })[0], Errno.INVAL);
      assert.equal(g.open(DIR_FD, 'existing-file', { oflags: Oflags.DIRECTORY | extra })[0], Errno.INVAL);
    }
    assert.equal(readFileSync(join(dir, 'existing-file'), 'utf8'), 'keep me');
    assert.equal(g.open(DIR_FD, '')[0], Errno.NOENT);
    assert.equal(g.open(1, 'x')[0], Errno.NOTDIR);
    assert.equal(g.open(DIR_FD, 'bad\0name')[0], Errno.INVAL);
    const [p] = g.str(new Uint8Array([0xff, 0xfe]));
    const out = g.alloc(4, 4);
    assert.equal(g.call('path_open', DIR_FD, 0, p, 2, 0, 0n, 0n, 0, out), Errno.ILSEQ);
  });
  test('path_open relative to an opened subdirectory', () => {
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'in.txt'), 'inner');
    const sub = openFile('sub', Oflags.DIRECTORY, READ_RIGHTS | Rights.PATH_OPEN);
    const [e, fd] = g.open(sub, 'in.txt');
    assert.equal(e, 0);
    assert.deepEqual(g.read(fd), [0, 'inner']);
    // As openat2(RESOLVE_BENEATH): never above the directory descriptor, even while inside the preopen.
    assert.equal(g.open(sub, '../sub/in.txt')[0], Errno.NOTCAPABLE);
    assert.equal(g.open(sub, 'x/../in.txt')[0], Errno.NOENT);
  });
  test('path_open of a directory with FD_WRITE is EISDIR; with read rights it opens', () => {
    mkdirSync(join(dir, 'd'));
    assert.equal(g.open(DIR_FD, 'd', { oflags: Oflags.DIRECTORY, rights: Rights.FD_READ | Rights.FD_WRITE })[0], Errno.ISDIR);
    assert.equal(g.open(DIR_FD, '.', { oflags: Oflags.DIRECTORY, rights: Rights.FD_READ | Rights.FD_WRITE })[0], Errno.ISDIR);
    assert.equal(g.open(DIR_FD, 'd', { oflags: Oflags.DIRECTORY, rights: Rights.FD_READ })[0], 0);
  });
  test('fd_filestat_set_times: a read-only descriptor keeps the right; "time and now" together is EINVAL', () => {
    writeFileSync(join(dir, 't'), 'x');
    const fd = openFile('t', 0, Rights.FD_READ | Rights.FD_FILESTAT_SET_TIMES);
    assert.equal(g.call('fd_filestat_set_times', fd, 100n, 200n, Fstflags.MTIM | Fstflags.MTIM_NOW), Errno.INVAL);
    assert.equal(g.call('fd_filestat_set_times', fd, 100n, 200n, Fstflags.ATIM | Fstflags.ATIM_NOW), Errno.INVAL);
    assert.equal(g.call('fd_filestat_set_times', fd, 0n, 5_000_000_000n, Fstflags.MTIM), 0);
    assert.equal(statSync(join(dir, 't')).mtimeMs, 5000);
  });
  test('path_open without symlink_follow refuses a final symlink (ELOOP), with it follows', () => {
    writeFileSync(join(dir, 'target'), 'T');
    symlinkSync('target', join(dir, 'link'));
    assert.equal(g.open(DIR_FD, 'link', { follow: false })[0], Errno.LOOP);
    const [e, fd] = g.open(DIR_FD, 'link', { follow: true });
    assert.equal(e, 0);
    assert.deepEqual(g.read(fd), [0, 'T']);
  });
  test('symlink loops end in ELOOP', () => {
    symlinkSync('loop2', join(dir, 'loop1'));
    symlinkSync('loop1', join(dir, 'loop2'));
    assert.equal(g.open(DIR_FD, 'loop1')[0], Errno.LOOP);
  });
  test('the descriptor limit gives EMFILE', () => {
    g.host.close();
    setup({ maxDescriptors: 5 });
    writeFileSync(join(dir, 'f'), '');
    assert.equal(g.open(DIR_FD, 'f')[0], 0);
    assert.equal(g.open(DIR_FD, 'f')[0], Errno.MFILE);
  });
  test('path_create_directory and path_remove_directory', () => {
    assert.equal(g.pathCall('path_create_directory', DIR_FD, 'newdir'), 0);
    assert.ok(statSync(join(dir, 'newdir')).isDirectory());
    assert.equal(g.pathCall('path_create_directory', DIR_FD, 'newdir'), Errno.EXIST);
    assert.equal(g.pathCall('path_create_directory', DIR_FD, 'no/such'), Errno.NOENT);
    writeFileSync(join(dir, 'newdir', 'f'), '');
    assert.equal(g.pathCall('path_remove_directory', DIR_FD, 'newdir'), Errno.NOTEMPTY);
    assert.equal(g.pathCall('path_remove_directory', DIR_FD, 'newdir/f'), Errno.NOTDIR);
    rmSync(join(dir, 'newdir', 'f'));
    assert.equal(g.pathCall('path_remove_directory', DIR_FD, 'newdir'), 0);
    assert.equal(existsSync(join(dir, 'newdir')), false);
    assert.equal(g.pathCall('path_remove_directory', DIR_FD, 'newdir'), Errno.NOENT);
    mkdirSync(join(dir, 'kept'));
    const [opened, kept] = g.open(DIR_FD, 'kept', { oflags: Oflags.DIRECTORY, rights: Rights.PATH_REMOVE_DIRECTORY | Rights.PATH_OPEN });
    assert.equal(opened, 0);
    assert.equal(g.pathCall('path_remove_directory', kept, '.'), Errno.INVAL, "rmdir('.') through a descriptor below the preopen");
    assert.equal(g.pathCall('path_remove_directory', DIR_FD, 'kept/.'), Errno.INVAL);
    assert.equal(g.pathCall('path_remove_directory', DIR_FD, 'kept/./'), Errno.INVAL);
    assert.equal(statSync(join(dir, 'kept')).isDirectory(), true);
    assert.equal(g.pathCall('path_remove_directory', DIR_FD, '.'), Errno.BUSY);
  });
  test('path_filestat_get follows symlinks only when asked', () => {
    writeFileSync(join(dir, 'file'), 'abc');
    symlinkSync('file', join(dir, 'sl'));
    const [p, l] = g.str('sl');
    const buf = g.alloc(64);
    assert.equal(g.call('path_filestat_get', DIR_FD, 0, p, l, buf), 0);
    assert.equal(g.view.getUint8(buf + 16), Filetype.SYMBOLIC_LINK);
    assert.equal(g.call('path_filestat_get', DIR_FD, 1, p, l, buf), 0);
    assert.equal(g.view.getUint8(buf + 16), Filetype.REGULAR_FILE);
    assert.equal(g.u64(buf + 32), 3n);
    const [m, ml] = g.str('nope');
    assert.equal(g.call('path_filestat_get', DIR_FD, 0, m, ml, buf), Errno.NOENT);
    const [f, fl] = g.str('file/');
    assert.equal(g.call('path_filestat_get', DIR_FD, 0, f, fl, buf), Errno.NOTDIR);
  });
  test('path_filestat_set_times', () => {
    writeFileSync(join(dir, 't'), '');
    const [p, l] = g.str('t');
    assert.equal(g.call('path_filestat_set_times', DIR_FD, 0, p, l, 2_000_000_000_000n, 3_000_000_000_000n, Fstflags.ATIM | Fstflags.MTIM), 0);
    const st = statSync(join(dir, 't'));
    assert.equal(st.atimeMs, 2_000_000);
    assert.equal(st.mtimeMs, 3_000_000);
    assert.equal(g.call('path_filestat_set_times', DIR_FD, 0, p, l, 0n, 0n, Fstflags.MTIM | Fstflags.MTIM_NOW), Errno.INVAL);
    const [m, ml] = g.str('missing');
    assert.equal(g.call('path_filestat_set_times', DIR_FD, 0, m, ml, 0n, 0n, Fstflags.MTIM_NOW), Errno.NOENT);
    // A trailing slash names a directory: a file under it is ENOTDIR (utimensat(2)), and keeps its times.
    const [slash, slashLen] = g.str('t/');
    const before = statSync(join(dir, 't'), { bigint: true }).mtimeNs;
    assert.equal(g.call('path_filestat_set_times', DIR_FD, 0, slash, slashLen, 0n, 5_000_000_000_000n, Fstflags.MTIM), Errno.NOTDIR);
    assert.equal(statSync(join(dir, 't'), { bigint: true }).mtimeNs, before);
  });
  test('path_link makes a hard link; directories and existing targets are refused', () => {
    writeFileSync(join(dir, 'orig'), 'o');
    const [a, al] = g.str('orig');
    const [b, bl] = g.str('copy');
    assert.equal(g.call('path_link', DIR_FD, 0, a, al, DIR_FD, b, bl), 0);
    assert.equal(statSync(join(dir, 'orig')).nlink, 2);
    assert.equal(g.call('path_link', DIR_FD, 0, a, al, DIR_FD, b, bl), Errno.EXIST);
    mkdirSync(join(dir, 'dd'));
    const [d, dl] = g.str('dd');
    const [e, el] = g.str('dd2');
    assert.equal(g.call('path_link', DIR_FD, 0, d, dl, DIR_FD, e, el), Errno.PERM);
    const [m, ml] = g.str('missing');
    assert.equal(g.call('path_link', DIR_FD, 0, m, ml, DIR_FD, e, el), Errno.NOENT);
    // A trailing slash names a directory: a file under it is ENOTDIR, as link(2) says.
    const [slash, slashLen] = g.str('orig/');
    const [f, fl] = g.str('copy2');
    assert.equal(g.call('path_link', DIR_FD, 0, slash, slashLen, DIR_FD, f, fl), Errno.NOTDIR);
    assert.equal(existsSync(join(dir, 'copy2')), false);
  });
  test('path_readlink returns the target, truncated to the buffer', () => {
    symlinkSync('some/target', join(dir, 'rl'));
    writeFileSync(join(dir, 'plain'), '');
    const [p, l] = g.str('rl');
    const buf = g.alloc(64, 1), used = g.alloc(4, 4);
    assert.equal(g.call('path_readlink', DIR_FD, p, l, buf, 64, used), 0);
    assert.equal(g.text(buf, g.u32(used)), 'some/target');
    assert.equal(g.call('path_readlink', DIR_FD, p, l, buf, 4, used), 0);
    assert.equal(g.u32(used), 4);
    const [f, fl] = g.str('plain');
    assert.equal(g.call('path_readlink', DIR_FD, f, fl, buf, 64, used), Errno.INVAL);
  });
  test('path_rename moves files and directories', () => {
    writeFileSync(join(dir, 'from'), 'f');
    const [a, al] = g.str('from');
    const [b, bl] = g.str('to');
    assert.equal(g.call('path_rename', DIR_FD, a, al, DIR_FD, b, bl), 0);
    assert.equal(readFileSync(join(dir, 'to'), 'utf8'), 'f');
    assert.equal(g.call('path_rename', DIR_FD, a, al, DIR_FD, b, bl), Errno.NOENT);
    mkdirSync(join(dir, 'full'));
    writeFileSync(join(dir, 'full', 'x'), '');
    mkdirSync(join(dir, 'other'));
    const [o, ol] = g.str('other');
    const [fu, ful] = g.str('full');
    assert.equal(g.call('path_rename', DIR_FD, o, ol, DIR_FD, fu, ful), Errno.NOTEMPTY);
    assert.equal(g.call('path_rename', DIR_FD, b, bl, DIR_FD, o, ol), Errno.ISDIR);
  });
  test('path_symlink creates relative links; absolute targets are refused', () => {
    const [t, tl] = g.str('a/b');
    const [n, nl] = g.str('newlink');
    assert.equal(g.call('path_symlink', t, tl, DIR_FD, n, nl), 0);
    assert.equal(readlinkSync(join(dir, 'newlink')), 'a/b');
    assert.equal(g.call('path_symlink', t, tl, DIR_FD, n, nl), Errno.EXIST);
    const [abs, absl] = g.str('/etc/passwd');
    const [n2, n2l] = g.str('abslink');
    assert.equal(g.call('path_symlink', abs, absl, DIR_FD, n2, n2l), Errno.NOTCAPABLE);
    assert.equal(existsSync(join(dir, 'abslink')), false);
  });
  test("path_symlink refuses targets with '.' or '..' (EPERM): only links that lead down, as in the process Keep", () => {
    for (const target of ['..', '../x', 'a/../b', '.', './a', 'a/.', '']) {
      const [t, tl] = g.str(target);
      const [n, nl] = g.str('climber');
      assert.equal(g.call('path_symlink', t, tl, DIR_FD, n, nl), target === '' ? Errno.NOENT : Errno.PERM, JSON.stringify(target));
      assert.equal(existsSync(join(dir, 'climber')), false);
    }
  });
  test('path_unlink_file removes files and links, not directories', () => {
    writeFileSync(join(dir, 'gone'), '');
    symlinkSync('nowhere', join(dir, 'dangling'));
    mkdirSync(join(dir, 'adir'));
    assert.equal(g.pathCall('path_unlink_file', DIR_FD, 'gone'), 0);
    assert.equal(existsSync(join(dir, 'gone')), false);
    assert.equal(g.pathCall('path_unlink_file', DIR_FD, 'dangling'), 0);
    assert.throws(() => lstatSync(join(dir, 'dangling')));
    assert.equal(g.pathCall('path_unlink_file', DIR_FD, 'adir'), Errno.ISDIR);
    assert.equal(g.pathCall('path_unlink_file', DIR_FD, 'gone'), Errno.NOENT);
  });
  test('a read-only preopen refuses every change with EROFS, and still reads', () => {
    g.host.close();
    writeFileSync(join(dir, 'keep'), 'safe');
    setup({ readonly: true });
    assert.equal(g.open(DIR_FD, 'new', { oflags: Oflags.CREAT })[0], Errno.ROFS);
    assert.equal(g.open(DIR_FD, 'keep', { oflags: Oflags.TRUNC })[0], Errno.ROFS);
    assert.equal(g.open(DIR_FD, 'keep', { rights: Rights.FD_WRITE })[0], Errno.ROFS);
    assert.equal(g.pathCall('path_create_directory', DIR_FD, 'd'), Errno.ROFS);
    assert.equal(g.pathCall('path_unlink_file', DIR_FD, 'keep'), Errno.ROFS);
    assert.equal(g.pathCall('path_remove_directory', DIR_FD, 'keep'), Errno.ROFS);
    const [a, al] = g.str('keep');
    const [b, bl] = g.str('moved');
    assert.equal(g.call('path_rename', DIR_FD, a, al, DIR_FD, b, bl), Errno.ROFS);
    assert.equal(g.call('path_link', DIR_FD, 0, a, al, DIR_FD, b, bl), Errno.ROFS);
    assert.equal(g.call('path_symlink', a, al, DIR_FD, b, bl), Errno.ROFS);
    assert.equal(g.call('path_filestat_set_times', DIR_FD, 0, a, al, 0n, 0n, Fstflags.MTIM_NOW), Errno.ROFS);
    const [e, fd] = g.open(DIR_FD, 'keep', { rights: READ_RIGHTS });
    assert.equal(e, 0);
    assert.deepEqual(g.read(fd), [0, 'safe']);
    assert.equal(readFileSync(join(dir, 'keep'), 'utf8'), 'safe');
  });
});

describe('poll_oneoff', () => {
  function subscribe(subs: ({ clock: bigint; abs?: boolean } | { read: number } | { write: number })[]): number {
    const p = g.alloc(subs.length * 48);
    subs.forEach((s, i) => {
      const at = p + i * 48;
      g.view.setBigUint64(at, BigInt(i + 100), true);
      if ('clock' in s) {
        g.view.setUint8(at + 8, Eventtype.CLOCK);
        g.view.setUint32(at + 16, Clockid.MONOTONIC, true);
        g.view.setBigUint64(at + 24, s.clock, true);
        g.view.setUint16(at + 40, s.abs ? 1 : 0, true);
      } else {
        g.view.setUint8(at + 8, 'read' in s ? Eventtype.FD_READ : Eventtype.FD_WRITE);
        g.view.setUint32(at + 16, 'read' in s ? s.read : s.write, true);
      }
    });
    return p;
  }
  test('ready descriptors answer at once, with nbytes; unknown fds report EBADF in the event', () => {
    writeFileSync(join(dir, 'ten'), '0123456789');
    const fd = openFile('ten');
    stdin.push('abc');
    const subs = subscribe([{ read: 0 }, { write: 1 }, { read: fd }, { read: 99 }, { clock: 10_000_000_000n }]);
    const events = g.alloc(5 * 32), n = g.alloc(4, 4);
    assert.equal(g.call('poll_oneoff', subs, events, 5, n), 0);
    assert.equal(g.u32(n), 4);
    const got = Array.from({ length: 4 }, (_, i) => ({
      userdata: g.u64(events + i * 32), error: g.view.getUint16(events + i * 32 + 8, true), nbytes: g.u64(events + i * 32 + 16),
    }));
    assert.deepEqual(got.map((e) => e.userdata), [100n, 101n, 102n, 103n]);
    assert.equal(got[0]!.nbytes, 3n);
    assert.equal(got[2]!.nbytes, 10n);
    assert.equal(got[3]!.error, Errno.BADF);
  });
  test('a clock alone waits without blocking the event loop', async () => {
    const subs = subscribe([{ clock: 30_000_000n }]);
    const events = g.alloc(32), n = g.alloc(4, 4);
    let ticked = false;
    setTimeout(() => (ticked = true), 5);
    const t0 = performance.now();
    const r = g.fns.poll_oneoff!(subs as never, events as never, 1 as never, n as never);
    assert.ok(r instanceof Promise, 'waiting returns a promise for JSPI to suspend on');
    assert.equal(await r, 0);
    assert.ok(performance.now() - t0 >= 29);
    assert.ok(ticked, 'timers ran while the guest waited');
    assert.equal(g.u32(n), 1);
    assert.equal(g.view.getUint8(events + 10), Eventtype.CLOCK);
  });
  test('an absolute deadline in the past fires at once', () => {
    const subs = subscribe([{ clock: 1n, abs: true }]);
    const events = g.alloc(32), n = g.alloc(4, 4);
    assert.equal(g.call('poll_oneoff', subs, events, 1, n), 0);
    assert.equal(g.u32(n), 1);
  });
  test('stdin readiness wakes a waiting poll; end of stream is a hangup', async () => {
    const subs = subscribe([{ read: 0 }]);
    const events = g.alloc(32), n = g.alloc(4, 4);
    const r = g.callAsync('poll_oneoff', subs, events, 1, n);
    setTimeout(() => stdin.push('late'), 5);
    assert.equal(await r, 0);
    assert.equal(g.u64(events + 16), 4n);
    g.read(0);
    stdin.end();
    assert.equal(g.call('poll_oneoff', subs, events, 1, n), 0);
    assert.equal(g.view.getUint16(events + 24, true), 1, 'hangup flag');
  });
  test('a clock centuries away waits quietly (no timer overflow, no busy loop) until another event comes', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const subs = subscribe([{ clock: 1n << 62n }, { read: 0 }]);
      const events = g.alloc(64), n = g.alloc(4, 4);
      const r = g.callAsync('poll_oneoff', subs, events, 2, n);
      setTimeout(() => stdin.push('x'), 30);
      assert.equal(await r, 0);
      assert.equal(g.u32(n), 1);
      assert.equal(g.u64(events), 101n);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(warnings, []);
    } finally {
      process.off('warning', onWarning);
    }
  });
  test('no subscriptions is EINVAL; bad pointers EFAULT; unknown tag EINVAL', () => {
    const events = g.alloc(32), n = g.alloc(4, 4);
    assert.equal(g.call('poll_oneoff', 0, events, 0, n), Errno.INVAL);
    assert.equal(g.call('poll_oneoff', g.memory.buffer.byteLength - 10, events, 1, n), Errno.FAULT);
    const subs = subscribe([{ read: 0 }]);
    g.view.setUint8(subs + 8, 9);
    assert.equal(g.call('poll_oneoff', subs, events, 1, n), Errno.INVAL);
  });
});

test('the host provides exactly the functions of wasi_snapshot_preview1', () => {
  const preview1 = `args_get args_sizes_get clock_res_get clock_time_get environ_get environ_sizes_get fd_advise fd_allocate
    fd_close fd_datasync fd_fdstat_get fd_fdstat_set_flags fd_fdstat_set_rights fd_filestat_get fd_filestat_set_size
    fd_filestat_set_times fd_pread fd_prestat_dir_name fd_prestat_get fd_pwrite fd_read fd_readdir fd_renumber fd_seek
    fd_sync fd_tell fd_write path_create_directory path_filestat_get path_filestat_set_times path_link path_open
    path_readlink path_remove_directory path_rename path_symlink path_unlink_file poll_oneoff proc_exit proc_raise
    random_get sched_yield sock_accept sock_recv sock_send sock_shutdown`.split(/\s+/);
  assert.deepEqual(Object.keys(g.fns).sort(), preview1.sort());
});
