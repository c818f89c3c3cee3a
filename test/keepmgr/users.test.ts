/**
 * Keeps under users of their own: a daemon running as root starts each Keep with its own uid
 * and gid, so one Keep cannot signal (or ptrace) another. These tests need root; elsewhere they
 * are skipped, and the daemon's contracts say Keeps share a user, and why.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startTestDaemon, pidAlive, waitFor, type TestDaemon } from './helpers.ts';
import { assertUnprivileged } from '../helpers/process-keep.ts';

const ROOT = process.getuid?.() === 0;
const SKIP = ROOT ? false : 'needs root: only a root daemon can start Keeps under other users';

let t: TestDaemon;
before(async () => {
  t = await startTestDaemon({ poolSize: 1, keepUsers: { first: 3_100_000, count: 1000 } }).catch((err: Error) => {
    if (ROOT) throw err;
    return startTestDaemon({ poolSize: 0 });
  });
});
after(() => t.close());

function ids(pid: number): { uid: number; gid: number; groups: string } {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const field = (name: string) => /^(\S+):\s+(.*)$/m.exec(status.split('\n').find((l) => l.startsWith(`${name}:`)) ?? '')?.[2] ?? '';
  return { uid: Number(field('Uid').split(/\s+/)[0]), gid: Number(field('Gid').split(/\s+/)[0]), groups: field('Groups').trim() };
}

/** Sends `signal` to `target` as the given user, as a process of another Keep would. */
function killAs(user: { uid: number; gid: number }, signal: string, target: number) {
  return spawnSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', 'kill', `-${signal}`, String(target)], { encoding: 'utf8' });
}

test('each Keep runs as its own uid and gid, without supplementary groups', { timeout: 120_000, skip: SKIP }, async () => {
  const a = await t.client.create();
  const b = await t.client.create();
  await waitFor(async () => (await t.client.get(a.id)).pid !== null && (await t.client.get(b.id)).pid !== null, 60_000, 'both Keeps to start');
  const [ia, ib] = [ids((await t.client.get(a.id)).pid!), ids((await t.client.get(b.id)).pid!)];
  for (const i of [ia, ib]) {
    assert.ok(i.uid >= 3_100_000 && i.uid < 3_101_000, `uid ${i.uid} is in the configured range`);
    assert.equal(i.gid, i.uid);
    assert.equal(i.groups, '');
  }
  assert.notEqual(ia.uid, ib.uid);
  // And the kernel gives them nothing more: no capability (an empty bounding set too), no_new_privs.
  for (const id of [a.id, b.id]) assertUnprivileged((await t.client.get(id)).pid!, `Keep ${id}`);
  const contract = (await t.client.contracts()).contracts[0]!;
  assert.deepEqual(contract.isolation, { users: 'per-keep' });
  await Promise.all([t.client.stop(a.id), t.client.stop(b.id)]);
});

test('one Keep cannot signal another: the kernel refuses a kill from one Keep\'s user to the other\'s process', { timeout: 120_000, skip: SKIP }, async () => {
  const a = await t.client.create();
  const b = await t.client.create();
  await waitFor(async () => (await t.client.get(a.id)).pid !== null && (await t.client.get(b.id)).pid !== null, 60_000, 'both Keeps to start');
  const pidA = (await t.client.get(a.id)).pid!;
  const pidB = (await t.client.get(b.id)).pid!;
  const userA = ids(pidA);
  // Control: the check can succeed (a Keep's user may probe its own process)...
  const own = killAs(userA, '0', pidA);
  assert.equal(own.status, 0, own.stderr);
  // ...but not touch another Keep's.
  for (const signal of ['0', 'TERM', 'KILL']) {
    const other = killAs(userA, signal, pidB);
    assert.notEqual(other.status, 0, `kill -${signal} from Keep A's user reached Keep B`);
    assert.match(other.stderr, /not permitted/i);
  }
  assert.ok(pidAlive(pidB));
  assert.equal((await t.client.get(b.id)).state, 'ready');
  await Promise.all([t.client.stop(a.id), t.client.stop(b.id)]);
});

// A root daemon told not to use per-Keep users runs its Keeps as root: the kernel still gives them
// no capability, so root's uid buys them only what it owns.
test('a root daemon\'s Keeps hold no capability and run with no_new_privs, even without users of their own', { timeout: 120_000, skip: SKIP }, async () => {
  const shared = await startTestDaemon({ poolSize: 1, keepUsers: null });
  try {
    const k = await shared.client.create();
    await waitFor(async () => (await shared.client.get(k.id)).pid !== null, 60_000, 'the Keep to start');
    const pid = (await shared.client.get(k.id)).pid!;
    assert.equal(readFileSync(`/proc/${pid}/status`, 'latin1').match(/^Uid:\s+(\d+)/m)?.[1], '0', 'positive control: the Keep runs as root');
    assertUnprivileged(pid, 'the Keep');
    await shared.client.stop(k.id);
  } finally {
    await shared.close();
  }
});

test('without per-Keep users the contracts say Keeps share one user, and why', { timeout: 120_000, skip: ROOT ? false : undefined }, async () => {
  const shared = await startTestDaemon({ poolSize: 0, keepUsers: null });
  try {
    const isolation = (await shared.client.contracts()).contracts[0]!.isolation as { users: string; reason?: string };
    assert.equal(isolation.users, 'shared');
    assert.match(isolation.reason ?? '', /turned off|not run as root|cannot reach/);
  } finally {
    await shared.close();
  }
});
