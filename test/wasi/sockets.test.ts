import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, Eventtype, Fdflags, Riflags, Sdflags } from '../../src/wasi/constants.ts';
import { Guest } from '../helpers/wasi-guest.ts';
import { FakeConnection, FakeListener, FakeOutput } from '../helpers/fake-streams.ts';

let listener: FakeListener;
let conn: FakeConnection;
let g: Guest;
const LISTEN_FD = 3;
const CONN_FD = 4;

beforeEach(() => {
  listener = new FakeListener();
  conn = new FakeConnection();
  g = new Guest({
    maxDescriptors: 8,
    descriptors: [
      { kind: 'null', name: 'stdin' }, { kind: 'null', name: 'stdout' }, { kind: 'null', name: 'stderr' },
      { kind: 'listener', name: 'ingest', listener },
      { kind: 'connection', name: 'peer', connection: conn },
    ],
  });
});

function recv(fd: number, len: number, flags = 0): [number, string] | Promise<[number, string]> {
  const [iovs, n, [buf]] = g.iovs([len]);
  const out = g.alloc(4, 4), oflags = g.alloc(2, 2);
  const r = g.fns.sock_recv!(...([fd, iovs, n, flags, out, oflags] as never[]));
  const finish = (e: number): [number, string] => [e, e === 0 ? g.text(buf!, g.u32(out)) : ''];
  return typeof r === 'number' ? finish(r) : r.then(finish);
}

function send(fd: number, data: string, flags = 0): number | Promise<number> {
  const [iovs, n] = g.iovs([data]);
  const out = g.alloc(4, 4);
  return g.fns.sock_send!(...([fd, iovs, n, flags, out] as never[]));
}

test('sock_accept takes a pending connection as a new descriptor', () => {
  const peer = listener.connect();
  const out = g.alloc(4, 4);
  assert.equal(g.call('sock_accept', LISTEN_FD, 0, out), 0);
  const fd = g.u32(out);
  assert.equal(fd, 5);
  peer.input.push('ping');
  assert.deepEqual(recv(fd, 16), [0, 'ping']);
  assert.deepEqual(g.write(fd, 'pong'), [0, 4]);
  assert.equal(peer.output.text(), 'pong');
  const st = g.alloc(24);
  assert.equal(g.call('fd_fdstat_get', fd, st), 0);
  assert.equal(g.view.getUint8(st), 6, 'socket_stream');
});

test('sock_accept waits for a connection without blocking, and EAGAIN when non-blocking', async () => {
  const out = g.alloc(4, 4);
  const pending = g.callAsync('sock_accept', LISTEN_FD, 0, out);
  setTimeout(() => listener.connect(), 5);
  assert.equal(await pending, 0);
  assert.equal(g.u32(out), 5);
  assert.equal(g.call('fd_fdstat_set_flags', LISTEN_FD, Fdflags.NONBLOCK), 0);
  assert.equal(g.call('sock_accept', LISTEN_FD, 0, out), Errno.AGAIN);
});

test('sock_accept errors: not a socket, not listening, bad flags, descriptor limit', () => {
  const out = g.alloc(4, 4);
  assert.equal(g.call('sock_accept', 1, 0, out), Errno.NOTSOCK);
  assert.equal(g.call('sock_accept', CONN_FD, 0, out), Errno.INVAL);
  assert.equal(g.call('sock_accept', LISTEN_FD, 1, out), Errno.INVAL);
  assert.equal(g.call('sock_accept', 77, 0, out), Errno.BADF);
  for (let i = 0; i < 4; i++) listener.connect();
  assert.equal(g.call('sock_accept', LISTEN_FD, 0, out), 0);
  assert.equal(g.call('sock_accept', LISTEN_FD, 0, out), 0);
  assert.equal(g.call('sock_accept', LISTEN_FD, 0, out), 0);
  const extra = listener.pendingConnections();
  assert.equal(g.call('sock_accept', LISTEN_FD, 0, out), Errno.MFILE);
  assert.equal(listener.pendingConnections(), extra - 1, 'the connection refused for EMFILE is taken and closed');
});

test('sock_recv: waits for data, peeks, waits for all, sees end of stream', async () => {
  const waiting = recv(CONN_FD, 16);
  assert.ok(waiting instanceof Promise);
  setTimeout(() => conn.input.push('hello'), 5);
  assert.deepEqual(await waiting, [0, 'hello']);
  conn.input.push('abcdef');
  assert.deepEqual(recv(CONN_FD, 3, Riflags.RECV_PEEK), [0, 'abc']);
  assert.deepEqual(recv(CONN_FD, 4, Riflags.RECV_PEEK), [0, 'abcd']);
  assert.deepEqual(recv(CONN_FD, 16), [0, 'abcdef']);
  const all = recv(CONN_FD, 6, Riflags.RECV_WAITALL);
  conn.input.push('12');
  setTimeout(() => conn.input.push('3456'), 5);
  assert.deepEqual(await all, [0, '123456']);
  conn.input.end();
  assert.deepEqual(recv(CONN_FD, 16), [0, '']);
});

test('sock_recv and fd_read take every chunk already buffered, up to the buffer size, and never wait for more', async () => {
  // As read(2) returns what the kernel holds: a TLS socket delivers 16 KiB records, one call takes several.
  for (const part of ['ab', 'cd', 'ef']) conn.input.push(part);
  assert.deepEqual(recv(CONN_FD, 5), [0, 'abcde']);
  assert.deepEqual(recv(CONN_FD, 16), [0, 'f'], 'the rest of a split chunk, then nothing more to wait for');
  conn.input.push('gh');
  conn.input.push('ij');
  assert.deepEqual(g.read(CONN_FD, 16), [0, 'ghij']);
  const waiting = recv(CONN_FD, 16);
  assert.ok(waiting instanceof Promise, 'an empty buffer still waits');
  setTimeout(() => conn.input.push('kl'), 5);
  assert.deepEqual(await waiting, [0, 'kl']);
  conn.input.push('mn');
  conn.input.end();
  assert.deepEqual(recv(CONN_FD, 16), [0, 'mn']);
  assert.deepEqual(recv(CONN_FD, 16), [0, '']);
});

test('sock_recv and sock_send errors', () => {
  assert.equal((recv(LISTEN_FD, 4) as [number, string])[0], Errno.NOTCONN);
  assert.equal((recv(1, 4) as [number, string])[0], Errno.NOTSOCK);
  assert.equal((recv(CONN_FD, 4, 8) as [number, string])[0], Errno.INVAL);
  assert.equal(send(CONN_FD, 'x', 1), Errno.INVAL);
  assert.equal(send(2, 'x'), Errno.NOTSOCK);
  assert.equal(send(LISTEN_FD, 'x'), Errno.NOTCONN);
  assert.equal(g.call('fd_fdstat_set_flags', CONN_FD, Fdflags.NONBLOCK), 0);
  assert.equal((recv(CONN_FD, 4) as [number, string])[0], Errno.AGAIN);
  conn.input.fail('ECONNRESET');
  assert.equal((recv(CONN_FD, 4) as [number, string])[0], Errno.CONNRESET);
});

test('sock_send writes; a full peer makes it wait until drained; EPIPE after shutdown', async () => {
  assert.equal(send(CONN_FD, 'data'), 0);
  assert.equal(conn.output.text(), 'data');
  const slow = new FakeOutput(4);
  const c2 = new FakeConnection();
  Object.defineProperty(c2, 'output', { value: slow });
  g.host.fds.add({ type: 'connection', connection: c2, peeked: null, readClosed: false, rightsBase: (1n << 30n) - 1n, rightsInheriting: 0n, fdflags: 0 });
  const pending = send(5, '0123456789');
  assert.ok(pending instanceof Promise, 'back-pressure suspends the guest');
  setTimeout(() => slow.drain(), 2);
  setTimeout(() => slow.drain(), 6);
  assert.equal(await pending, 0);
  assert.equal(slow.text(), '0123456789');
  assert.equal(g.call('sock_shutdown', CONN_FD, Sdflags.WR), 0);
  assert.deepEqual(conn.shutdowns, ['write']);
  assert.equal(send(CONN_FD, 'late'), Errno.PIPE);
});

test('sock_shutdown: read side ends reads; bad arguments', () => {
  conn.input.push('unread');
  assert.equal(g.call('sock_shutdown', CONN_FD, Sdflags.RD), 0);
  assert.deepEqual(recv(CONN_FD, 16), [0, '']);
  assert.equal(g.call('sock_shutdown', CONN_FD, 0), Errno.INVAL);
  assert.equal(g.call('sock_shutdown', CONN_FD, 4), Errno.INVAL);
  assert.equal(g.call('sock_shutdown', 1, Sdflags.WR), Errno.NOTSOCK);
  assert.equal(g.call('sock_shutdown', LISTEN_FD, Sdflags.WR), Errno.NOTCONN);
  assert.equal(g.call('sock_shutdown', CONN_FD, Sdflags.RD | Sdflags.WR), 0);
  assert.deepEqual(conn.shutdowns, ['read', 'both']);
});

test('fd_read and fd_write work on sockets; on a listener they are ENOTCONN', () => {
  conn.input.push('via fd_read');
  assert.deepEqual(g.read(CONN_FD), [0, 'via fd_read']);
  assert.deepEqual(g.write(CONN_FD, 'via fd_write'), [0, 12]);
  assert.equal(conn.output.text(), 'via fd_write');
  assert.equal(g.read(LISTEN_FD)[0], Errno.NOTCONN);
  assert.equal(g.write(LISTEN_FD, 'x')[0], Errno.NOTCONN);
});

test('poll_oneoff on a listener and a socket wakes on a connection or data', async () => {
  const subs = g.alloc(2 * 48);
  g.view.setBigUint64(subs, 1n, true);
  g.view.setUint8(subs + 8, Eventtype.FD_READ);
  g.view.setUint32(subs + 16, LISTEN_FD, true);
  g.view.setBigUint64(subs + 48, 2n, true);
  g.view.setUint8(subs + 56, Eventtype.FD_READ);
  g.view.setUint32(subs + 64, CONN_FD, true);
  const events = g.alloc(64), n = g.alloc(4, 4);
  const pending = g.callAsync('poll_oneoff', subs, events, 2, n);
  setTimeout(() => listener.connect(), 5);
  assert.equal(await pending, 0);
  assert.equal(g.u32(n), 1);
  assert.equal(g.u64(events), 1n);
  assert.equal(g.u64(events + 16), 1n, 'one pending connection');
  const out = g.alloc(4, 4);
  g.call('sock_accept', LISTEN_FD, 0, out);
  conn.input.push('xyz');
  assert.equal(g.call('poll_oneoff', subs, events, 2, n), 0);
  assert.equal(g.u32(n), 1);
  assert.equal(g.u64(events), 2n);
  assert.equal(g.u64(events + 16), 3n);
  // Writability of a socket
  g.view.setUint8(subs + 8, Eventtype.FD_WRITE);
  g.view.setUint32(subs + 16, CONN_FD, true);
  assert.equal(g.call('poll_oneoff', subs, events, 1, n), 0);
  assert.equal(g.view.getUint16(events + 8, true), 0);
});

test('closing the descriptors closes the capabilities', () => {
  assert.equal(g.call('fd_close', CONN_FD), 0);
  assert.ok(conn.closed);
  g.host.close();
  assert.ok(listener.closed);
});

test('an aborted run wakes a guest waiting on a socket', async () => {
  const controller = new AbortController();
  const c = new FakeConnection();
  const guest = new Guest({ signal: controller.signal, descriptors: [{ kind: 'connection', name: 'c', connection: c }] });
  const [iovs, n] = guest.iovs([8]);
  const out = guest.alloc(4, 4);
  const pending = guest.callAsync('fd_read', 0, iovs, n, out);
  setTimeout(() => controller.abort('stopped by SIGTERM'), 5);
  await assert.rejects(pending, /stopped by SIGTERM/);
});
