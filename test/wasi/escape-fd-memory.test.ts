import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno, Eventtype, Oflags, Rights } from '../../src/wasi/constants.ts';
import { errnoOf } from '../../src/wasi/errors.ts';
import { Guest } from '../helpers/wasi-guest.ts';

// Hostile guests that attack descriptors, guest-memory bounds and path encodings rather than the tree.
let root: string, sandbox: string;
let g: Guest;
const FD = 3;
const READ = Rights.FD_READ | Rights.FD_SEEK | Rights.FD_FILESTAT_GET;
const PAGE = 65536;

function fresh(maxDescriptors?: number): Guest {
  return new Guest({ maxDescriptors, descriptors: [
    { kind: 'null', name: 'stdin' }, { kind: 'null', name: 'stdout' }, { kind: 'null', name: 'stderr' },
    { kind: 'dir', name: '/', dir: { hostPath: sandbox, guestPath: '/', readonly: false } },
  ] });
}

before(() => {
  root = mkdtempSync(join(tmpdir(), 'enarx-escape2-'));
  sandbox = join(root, 'sandbox');
  mkdirSync(sandbox);
  writeFileSync(join(sandbox, 'f'), 'data');
  symlinkSync('f', join(sandbox, 'ln'));
  writeFileSync(join(root, 'secret'), 'SECRET');
  g = fresh();
});

after(() => {
  assert.deepEqual(readdirSync(root).sort(), ['sandbox', 'secret']);
  g.host.close();
  rmSync(root, { recursive: true, force: true });
});

test('fd confusion: renumbering onto or from a preopen, closed fds and stdio reuse', () => {
  const h = fresh();
  const [e, fd] = h.open(FD, 'f', { rights: READ });
  assert.equal(e, 0);
  assert.equal(h.call('fd_renumber', fd, 999), Errno.BADF, 'renumber onto an unused number');
  assert.equal(h.call('fd_renumber', 999, fd), Errno.BADF, 'renumber from an unused number');
  assert.equal(h.call('fd_renumber', fd, fd), 0, 'renumber onto itself changes nothing');
  assert.deepEqual(h.read(fd), [0, 'data']);
  // Replacing the preopen by a file: the preopen's capability is gone, not shared with the file.
  assert.equal(h.call('fd_renumber', fd, FD), 0);
  assert.equal(h.open(FD, 'f', { rights: READ })[0], Errno.NOTDIR);
  const out = h.alloc(8);
  assert.equal(h.call('fd_prestat_get', FD, out), Errno.BADF, 'a renumbered file is no preopen');
  assert.equal(h.call('fd_close', fd), Errno.BADF, 'the source number is closed');
  // Closing stdio, then an fd that reuses the number is the new file, not the old stream.
  assert.equal(h.call('fd_close', 1), 0);
  assert.equal(h.write(1, 'x')[0], Errno.BADF);
  for (const bad of [-1, 0x7fffffff, 0xffffffff]) assert.equal(h.call('fd_close', bad), Errno.BADF);
  h.host.close();
});

test('descriptor exhaustion ends in EMFILE and frees on close', () => {
  const h = fresh(16);
  const fds: number[] = [];
  for (;;) {
    const [e, fd] = h.open(FD, 'f', { rights: READ });
    if (e !== 0) {
      assert.equal(e, Errno.MFILE);
      break;
    }
    fds.push(fd);
    assert.ok(fds.length <= 16);
  }
  assert.equal(h.call('fd_close', fds.pop()!), 0);
  assert.equal(h.open(FD, 'f', { rights: READ })[0], 0);
  h.host.close();
});

test('every pointer is bounds-checked: EFAULT, never a host exception or a write outside memory', () => {
  const end = g.memory.buffer.byteLength;
  const [p, l] = g.str('f');
  const [lp, ll] = g.str('ln');
  const out = g.alloc(8);
  const cases: [string, (number | bigint)[]][] = [
    ['args_sizes_get', [end - 2, out]],
    ['environ_sizes_get', [out, 0xfffffffc]],
    ['clock_time_get', [0, 1n, end - 4]],
    ['random_get', [end - 10, 11]],
    ['random_get', [0xffffffff, 2]],
    ['fd_fdstat_get', [FD, end - 23]],
    ['fd_filestat_get', [FD, end - 63]],
    ['fd_prestat_get', [FD, end - 7]],
    ['fd_prestat_dir_name', [FD, end, 10]],
    ['path_open', [FD, 0, end - 1, 8, 0, READ, 0n, 0, out]],
    ['path_open', [FD, 0, p, l, 0, READ, 0n, 0, end - 3]],
    ['path_open', [FD, 0, 0xfffffff0, 0x20, 0, READ, 0n, 0, out]],
    ['path_filestat_get', [FD, 0, p, l, end - 1]],
    ['path_readlink', [FD, lp, ll, end - 1, 100, out]],
    ['fd_readdir', [FD, end - 10, 100, 0n, out]],
    ['poll_oneoff', [end - 10, out, 1, out]],
  ];
  for (const [name, args] of cases) assert.equal(g.call(name, ...args), Errno.FAULT, `${name}(${args.join(', ')})`);
  assert.equal(g.memory.buffer.byteLength, end, 'memory did not grow');
});

test('wasm passes i32 and i64 to JS as signed: negative views of unsigned arguments mean what the guest meant', () => {
  // What a guest's 0xfffffff8, fd 0xffffffff or offset 2^64-1 look like when they reach JS.
  const out = g.alloc(8);
  const [p, l] = g.str('f');
  assert.equal(g.call('fd_fdstat_get', -1, out), Errno.BADF);
  assert.equal(g.call('fd_fdstat_get', FD, -8), Errno.FAULT, 'a pointer near 4 GiB is out of bounds, not a host exception');
  assert.equal(g.call('clock_time_get', 0, 1n, -4), Errno.FAULT);
  assert.equal(g.call('path_open', FD, 0, p, -1, 0, READ, 0n, 0, out), Errno.FAULT);
  const [e, fd] = g.open(FD, 'f', { rights: READ | Rights.FD_WRITE | Rights.FD_FILESTAT_SET_SIZE | Rights.FD_ADVISE | Rights.FD_TELL });
  assert.equal(e, 0);
  const [iov, n] = g.iovs([4]);
  assert.equal(g.call('fd_pread', fd, iov, n, -1n, out), Errno.INVAL, 'offset 2^64-1');
  assert.equal(g.call('fd_read', fd, iov, -1, out), Errno.INVAL, 'iovec count 2^32-1');
  assert.equal(g.call('fd_filestat_set_size', fd, -1n), Errno.FBIG);
  assert.equal(g.call('fd_advise', fd, -1n, 1n, 0), Errno.INVAL);
  // fd_seek's delta alone is signed.
  assert.equal(g.call('fd_seek', fd, -1n, 2, out), 0);
  assert.equal(g.u64(out), 3n, 'one byte before the end of "data"');
  assert.equal(g.call('fd_seek', fd, -5n, 1, out), Errno.INVAL);
  assert.equal(g.call('fd_close', fd), 0);
});

test('iovecs: out-of-range buffers, wrapping lengths and huge counts are refused before any I/O', () => {
  const [e, fd] = g.open(FD, 'f', { rights: READ | Rights.FD_WRITE });
  assert.equal(e, 0);
  const end = g.memory.buffer.byteLength;
  const out = g.alloc(4, 4);
  const iov = g.alloc(16, 4);
  const put = (buf: number, len: number) => {
    g.view.setUint32(iov, buf, true);
    g.view.setUint32(iov + 4, len, true);
  };
  for (const [buf, len] of [[end - 1, 2], [0xffffffff, 1], [16, 0xffffffff], [end, 1]] as const) {
    put(buf, len);
    assert.equal(g.call('fd_read', fd, iov, 1, out), Errno.FAULT, `read ${buf}+${len}`);
    assert.equal(g.call('fd_write', fd, iov, 1, out), Errno.FAULT, `write ${buf}+${len}`);
    assert.equal(g.call('fd_pwrite', fd, iov, 1, 0n, out), Errno.FAULT);
  }
  assert.notEqual(g.call('fd_write', fd, iov, 0x20000000, out), 0, 'count * 8 wrapping 32 bits');
  assert.notEqual(g.call('fd_read', fd, iov, 0xffffffff, out), 0);
  assert.notEqual(g.call('fd_write', fd, end - 4, 1, out), 0, 'iovec array itself out of range');
  put(16, 0);
  assert.equal(g.call('fd_write', fd, iov, 1, out), 0, 'an empty write is fine');
  assert.equal(g.u32(out), 0);
  assert.equal(g.call('fd_close', fd), 0);
});

test('poll_oneoff refuses zero and huge subscription counts without allocating them', () => {
  const out = g.alloc(8);
  const subs = g.alloc(48);
  const events = g.alloc(32);
  assert.equal(g.call('poll_oneoff', subs, events, 0, out), Errno.INVAL);
  assert.equal(g.call('poll_oneoff', subs, events, 0xffffffff, out), Errno.FAULT);
  assert.notEqual(g.call('poll_oneoff', subs, events, 0x05555556, out), 0, 'count * 48 wrapping 32 bits');
  // A read subscription on a closed descriptor reports EBADF in the event, not a host failure.
  g.view.setBigUint64(subs, 7n, true);
  g.view.setUint8(subs + 8, Eventtype.FD_READ);
  g.view.setUint32(subs + 16, 12345, true);
  assert.equal(g.call('poll_oneoff', subs, events, 1, out), 0);
  assert.equal(g.u32(out), 1);
  assert.equal(g.u64(events), 7n);
  assert.equal(g.view.getUint16(events + 8, true), Errno.BADF);
});

test('sock_* on files, directories, stdio and closed descriptors', () => {
  const [e, fd] = g.open(FD, 'f', { rights: READ });
  assert.equal(e, 0);
  const out = g.alloc(8);
  const [iov, n] = g.iovs([4]);
  for (const target of [fd, FD, 0, 1, 777]) {
    const want = target === 777 ? Errno.BADF : Errno.NOTSOCK;
    assert.equal(g.call('sock_recv', target, iov, n, 0, out, out + 4), want, `recv on ${target}`);
    assert.equal(g.call('sock_send', target, iov, n, 0, out), want, `send on ${target}`);
    assert.equal(g.call('sock_shutdown', target, 3), want, `shutdown on ${target}`);
    assert.equal(g.call('sock_accept', target, 0, out), want, `accept on ${target}`);
  }
  assert.equal(g.call('fd_close', fd), 0);
});

test('path encodings: NUL, non-UTF-8, empty, overlong, "." and trailing slashes on files', () => {
  const open = (path: string | Uint8Array, oflags = 0) => {
    const [p, l] = g.str(path);
    const out = g.alloc(4, 4);
    return g.call('path_open', FD, 0, p, l, oflags, READ, 0n, 0, out);
  };
  assert.equal(open('f\0/../../secret'), Errno.INVAL);
  assert.equal(open(new Uint8Array([0x66, 0xff])), Errno.ILSEQ);
  assert.equal(open(new Uint8Array([0xc0, 0xae, 0xc0, 0xae, 0x2f, 0x73])), Errno.ILSEQ, 'overlong "../" encoding');
  assert.equal(open(''), Errno.NOENT);
  assert.equal(open('f/'), Errno.NOTDIR);
  assert.equal(open('f/.'), Errno.NOTDIR);
  assert.equal(open('./f'), 0);
  assert.equal(open('.//./f'), 0);
  assert.equal(open('a/'.repeat(3000) + 'f'), Errno.NOENT);
  const long = 'x'.repeat(300);
  assert.equal(open(long, Oflags.CREAT), Errno.NAMETOOLONG);
  assert.equal(open('../' + 'sandbox/f'), Errno.NOTCAPABLE);
  assert.deepEqual(readdirSync(sandbox).sort(), ['f', 'ln']);
});

test("the process Keep's permission-model refusals reach the guest as EACCES, not EIO", () => {
  const denied = Object.assign(new Error('fs.symlink API requires full fs.read and fs.write permissions.'), { code: 'ERR_ACCESS_DENIED' });
  assert.equal(errnoOf(denied), Errno.ACCES);
  assert.equal(errnoOf(Object.assign(new Error('x'), { code: 'ERR_SOMETHING_ELSE' })), Errno.IO);
});

test('the preopen itself cannot be renamed, replaced, unlinked, removed or linked through "." or "x/.."', () => {
  mkdirSync(join(sandbox, 'd'));
  const [dot, dotLen] = g.str('.');
  const [up, upLen] = g.str('d/..');
  const [dst, dstLen] = g.str('d/x');
  const [d, dLen] = g.str('d');
  assert.equal(g.call('path_rename', FD, dot, dotLen, FD, dst, dstLen), Errno.BUSY);
  assert.equal(g.call('path_rename', FD, up, upLen, FD, dst, dstLen), Errno.BUSY);
  assert.equal(g.call('path_rename', FD, d, dLen, FD, dot, dotLen), Errno.BUSY);
  assert.equal(g.call('path_unlink_file', FD, dot, dotLen), Errno.ISDIR);
  assert.equal(g.call('path_remove_directory', FD, up, upLen), Errno.BUSY);
  assert.equal(g.call('path_link', FD, 0, dot, dotLen, FD, dst, dstLen), Errno.PERM);
  assert.deepEqual(readdirSync(join(sandbox, 'd')), []);
  assert.equal(g.call('path_remove_directory', FD, d, dLen), 0);
});
