import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, attestKeep, provisionKeep, followOutput } from '../../src/keepmgr/index.ts';
import { startTestDaemon, waitFor, WASM, type TestDaemon } from './helpers.ts';

let t: TestDaemon;
before(async () => {
  t = await startTestDaemon({ poolSize: 0 });
});
after(() => t.close());

async function runTo(wasm: string, limits: Record<string, number>) {
  const keep = await t.client.create({ limits });
  const att = await attestKeep(t.client, keep.id, { allowUnattested: true });
  const session = await provisionKeep(t.client, att, { wasm: WASM(wasm), config: null });
  const end = await followOutput(t.client, session, () => {});
  return { end, info: await t.client.get(keep.id) };
}

test('a workload that wants more memory than its Keep allows sees allocation fail inside the Keep', { timeout: 120_000 }, async () => {
  const keep = await t.client.create({ limits: { memoryMiB: 160 } });
  const att = await attestKeep(t.client, keep.id, { allowUnattested: true });
  const session = await provisionKeep(t.client, att, { wasm: WASM('memhog'), config: null });
  let out = '';
  const end = await followOutput(t.client, session, (p) => {
    if ('data' in p) out += Buffer.from(p.data).toString();
  });
  assert.equal(end.exit?.code, 3);
  const mib = Number(/malloc failed after (\d+) MiB/.exec(out)?.[1]);
  assert.ok(mib > 16 && mib <= 64, `linear memory stopped at ${mib} MiB of the 64 the 160 MiB limit leaves`);
});

test('a Keep process whose resident memory goes over its limit is killed by the host: exit 137, the limit named', { timeout: 120_000 }, async () => {
  // Below what Node itself needs (the API refuses such a limit); the host's RSS watch is the backstop.
  const { KeepProcess } = await import('../../src/keepmgr/keep/host.ts');
  const { evidenceSource } = await import('../../src/keepmgr/keep/evidence.ts');
  const env = { evidence: await evidenceSource({ kind: 'none' }), steward: null, listenAddress: '127.0.0.1' };
  // The process Keep's own RSS watch (src/keep/process/host.ts) ends it; nothing here samples.
  const k = await KeepProcess.start(env, { memoryMiB: 48, cpuSeconds: 10, descriptors: 64 }).catch((err: Error) => err);
  // Node alone is about that size: the Keep may be stopped before it is even ready.
  if (k instanceof Error) {
    assert.match(k.message, /went over its rss limit/);
    return;
  }
  const end = await new Promise<import('../../src/keepmgr/keep/host.ts').KeepEnd>((resolve) => (k.ended ? resolve(k.ended) : k.on('end', resolve)));
  assert.deepEqual(end.cause, { kind: 'limit', limit: 'memory' });
  assert.equal(end.code, 137);
});

test('a Keep that uses up its CPU time is killed by the kernel: exit 137, the limit named', { timeout: 120_000 }, async () => {
  const { end, info } = await runTo('spin', { cpuSeconds: 1 });
  assert.equal(end.exit, null);
  assert.equal(info.state, 'killed');
  assert.equal(info.exitCode, 137);
  assert.match(info.reason!, /cpu limit/);
});

test('the Keep process runs under the permission model with its descriptor limit', { timeout: 120_000 }, async () => {
  const keep = await t.client.create({ limits: { descriptors: 40 } });
  const { readFileSync } = await import('node:fs');
  await waitFor(async () => (await t.client.get(keep.id)).pid !== null, 10_000, 'the Keep to start');
  const pid = (await t.client.get(keep.id)).pid!;
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  assert.ok(cmdline.includes('--permission'));
  assert.ok(!cmdline.some((a) => a.startsWith('--allow-child-process') || a.startsWith('--allow-worker') || a.startsWith('--allow-net') || a.startsWith('--allow-fs-write')));
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  assert.match(limits, /Max open files\s+40\s+40/);
  await t.client.stop(keep.id);
});

test('a --hardware Keep on a host with no TEE interface refuses the challenge and says what is missing', { timeout: 120_000 }, async () => {
  const hw = await startTestDaemon({ poolSize: 0, evidence: { kind: 'hardware' } });
  try {
    const keep = await hw.client.create();
    await assert.rejects(hw.client.challenge(keep.id, crypto.getRandomValues(new Uint8Array(32))), (e: unknown) => e instanceof ApiError && e.status === 422 && /no evidence: .*(configfs-tsm|tsm|attestation)/i.test(e.message));
    assert.equal((await hw.client.contracts()).contracts[0]!.evidence, 'hardware');
  } finally {
    await hw.close();
  }
});
