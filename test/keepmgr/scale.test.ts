import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ApiError, attestKeep, provisionKeep, followOutput } from '../../src/keepmgr/index.ts';
import { pidAlive, startTestDaemon, waitFor, WASM, type TestDaemon } from './helpers.ts';

let t: TestDaemon | undefined;
after(() => t?.close());

const pss = (pid: number) => Number(/Pss:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024;

test('100 Keeps on one host: all live and isolated, memory measured, the 101st refused, all stopped cleanly', { timeout: 120_000 }, async () => {
  t = await startTestDaemon({ poolSize: 0, maxKeeps: 100, memoryBudgetMiB: 100 * 256 });
  const ids: string[] = [];
  for (let batch = 0; batch < 10; batch++) {
    const made = await Promise.all(Array.from({ length: 10 }, () => t!.client.create()));
    ids.push(...made.map((k) => k.id));
  }
  await assert.rejects(t.client.create(), (e: unknown) => e instanceof ApiError && e.status === 503 && /100 of 100/.test(e.message));
  await waitFor(async () => (await t!.client.list()).keeps.filter((k) => k.state === 'ready' && k.pid !== null).length === 100, 60_000, '100 ready Keeps');
  const keeps = (await t.client.list()).keeps;
  const pids = keeps.map((k) => k.pid!);
  assert.equal(new Set(pids).size, 100, 'each Keep is its own process');
  const totalPss = pids.reduce((n, p) => n + pss(p), 0);
  const perKeepMiB = totalPss / 100 / 1048576;
  process.stderr.write(`# 100 idle Keeps: ${(totalPss / 1048576).toFixed(0)} MiB PSS in all, ${perKeepMiB.toFixed(1)} MiB each\n`);
  assert.ok(perKeepMiB < 48, `an idle Keep costs ${perKeepMiB.toFixed(1)} MiB PSS`);
  // One of them still does real work while the other 99 sit there.
  const att = await attestKeep(t.client, ids[42]!, { allowUnattested: true });
  const session = await provisionKeep(t.client, att, { wasm: WASM('hello'), config: null, stdin: Buffer.from('99 neighbours\n') });
  let out = '';
  const end = await followOutput(t.client, session, (p) => {
    if (p.stream === 'stdout') out += Buffer.from(p.data).toString();
  });
  assert.equal(end.exit?.code, 0);
  assert.equal(out, 'hello from a Keep\n99 neighbours\n');
  await t.close();
  t = undefined;
  await waitFor(() => pids.every((p) => !pidAlive(p)), 10_000, 'every Keep process to exit');
});
