import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from 'cborg';
import { ApiError, attestKeep } from '../../src/keepmgr/index.ts';
import { raw, startTestDaemon, type TestDaemon } from './helpers.ts';

let t: TestDaemon;
before(async () => {
  t = await startTestDaemon({ poolSize: 0, maxKeeps: 3, memoryBudgetMiB: 2048 });
});
after(() => t.close());

function problem(r: { status: number; headers: Record<string, unknown>; json: () => any }, status: number, detail: RegExp): void {
  assert.equal(r.status, status);
  assert.equal(r.headers['content-type'], 'application/problem+json');
  const p = r.json();
  assert.equal(p.status, status);
  assert.match(p.type, /^https:\/\/enarx\.dev\/keepmgr\/problems\//);
  assert.match(p.detail, detail);
  assert.ok(!p.detail.includes('\n'));
}

test('authentication: no token, a wrong token, and another tenant\'s Keep', { timeout: 120_000 }, async () => {
  problem(await raw(t, 'GET', '/api/v1/keeps', { token: null }), 401, /Bearer/);
  problem(await raw(t, 'GET', '/api/v1/keeps', { token: 'not-a-valid-token-at-all' }), 401, /not valid/);
  const mine = await t.tenant.create();
  const theirs = await t.client.create();
  // A tenant sees only its own Keeps; an admin sees all.
  assert.deepEqual((await t.tenant.list()).keeps.map((k) => k.id), [mine.id]);
  assert.ok((await t.client.list()).keeps.some((k) => k.id === mine.id));
  await assert.rejects(t.tenant.get(theirs.id), (e: unknown) => e instanceof ApiError && e.status === 404);
  await assert.rejects(t.tenant.stop(theirs.id), (e: unknown) => e instanceof ApiError && e.status === 404);
  assert.equal((await t.client.get(theirs.id)).state === 'stopped', false);
  await t.client.stop(theirs.id);
  await t.tenant.stop(mine.id);
});

test('bad requests get one-line problem+json answers and change nothing', { timeout: 120_000 }, async () => {
  const before = (await t.client.list()).keeps.length;
  problem(await raw(t, 'POST', '/api/v1/keeps', { body: '{"limits":', headers: { 'content-type': 'application/json' } }), 400, /not valid JSON/);
  problem(await raw(t, 'POST', '/api/v1/keeps', { body: Buffer.from([0xff, 0x00]), headers: { 'content-type': 'application/cbor' } }), 400, /not valid CBOR/);
  problem(await raw(t, 'POST', '/api/v1/keeps', { body: '[]', headers: { 'content-type': 'application/json' } }), 400, /map\/object/);
  problem(await raw(t, 'POST', '/api/v1/keeps', { body: 'x', headers: { 'content-type': 'text/plain' } }), 415, /application\/json/);
  problem(await raw(t, 'POST', '/api/v1/keeps', { body: '{"backnd":"process"}', headers: { 'content-type': 'application/json' } }), 400, /unknown field 'backnd'/);
  problem(await raw(t, 'POST', '/api/v1/keeps', { body: '{"backend":"sgx"}', headers: { 'content-type': 'application/json' } }), 400, /not offered/);
  problem(await raw(t, 'POST', '/api/v1/keeps', { body: '{"limits":{"memoryMiB":-1}}', headers: { 'content-type': 'application/json' } }), 400, /memoryMiB must be an integer/);
  problem(await raw(t, 'POST', '/api/v1/keeps', { body: '{"limits":{"cpuSeconds":1.5}}', headers: { 'content-type': 'application/json' } }), 400, /cpuSeconds/);
  problem(await raw(t, 'POST', '/api/v1/keeps', { body: encode({ limits: { descriptors: 1e9 } }), headers: { 'content-type': 'application/cbor' } }), 400, /descriptors/);
  problem(await raw(t, 'POST', '/api/v1/keeps', { body: 'x'.repeat(70_000), headers: { 'content-type': 'application/json' } }), 413, /exceeds/);
  problem(await raw(t, 'PUT', '/api/v1/keeps'), 405, /not allowed/);
  problem(await raw(t, 'GET', '/api/v2/keeps'), 404, /speaks API v1/);
  problem(await raw(t, 'GET', '/api/v1/keeps/not-a-uuid'), 404, /no Keep/);
  problem(await raw(t, 'GET', '/api/v1/keeps/00000000-0000-4000-8000-000000000000'), 404, /no Keep/);
  problem(await raw(t, 'GET', '/api/v1/nothing'), 404, /no such endpoint/);
  assert.equal((await t.client.list()).keeps.length, before);

  const keep = await t.client.create();
  const challenge = (body: string) => raw(t, 'POST', `/api/v1/keeps/${keep.id}/challenge`, { body, headers: { 'content-type': 'application/json' } });
  problem(await challenge('{}'), 400, /nonce/);
  problem(await challenge('{"nonce":"c2hvcnQ"}'), 400, /32 fresh random bytes/);
  problem(await challenge('{"nonce":"!!!"}'), 400, /nonce/);
  problem(await challenge(`{"nonce":"${'A'.repeat(43)}","extra":1}`), 400, /unknown field 'extra'/);
  const provision = (body: string, type = 'application/jose') => raw(t, 'POST', `/api/v1/keeps/${keep.id}/provision`, { body, headers: { 'content-type': type } });
  problem(await provision('not a jwe'), 400, /compact JWE/);
  problem(await provision('{"jwe":5}', 'application/json'), 400, /compact JWE string/);
  problem(await provision('aaaa.bbbb.cccc.dddd.eeee'), 422, /before a challenge/);
  problem(await raw(t, 'GET', `/api/v1/keeps/${keep.id}/output?from=-1`), 400, /sequence number/);
  problem(await raw(t, 'GET', `/api/v1/keeps/${keep.id}/output?follow=yes`), 400, /true or false/);
  problem(await raw(t, 'PUT', `/api/v1/keeps/${keep.id}/verdict`, { body: '{"accepted":"yes","reasons":[]}', headers: { 'content-type': 'application/json' } }), 400, /verdict/);
  // After all that, the Keep still works.
  const att = await attestKeep(t.client, keep.id, { allowUnattested: true });
  assert.equal(att.kind, 'none');
  problem(await provision('aaaa.bbbb.cccc.dddd.eeee'), 422, /Keep refused: provisioning message is not a compact JWE|does not decrypt|not a compact JWE/);
  await t.client.stop(keep.id);
});

test('admission control refuses with 503, Retry-After and a reason once the host is full', { timeout: 120_000 }, async () => {
  const live = await Promise.all([t.client.create(), t.client.create(), t.client.create()]);
  const r = await raw(t, 'POST', '/api/v1/keeps', { body: '{}', headers: { 'content-type': 'application/json' } });
  problem(r, 503, /host full: 3 of 3 Keeps are live/);
  assert.equal(r.headers['retry-after'], '10');
  const contracts = await t.client.contracts();
  assert.equal((contracts.contracts[0] as any).capacity.free, 0);
  await t.client.stop(live[0]!.id);
  // Memory budget: 2048 MiB committed at most; two live Keeps hold 512.
  await assert.rejects(t.client.create({ limits: { memoryMiB: 1600 } }), (e: unknown) => e instanceof ApiError && e.status === 503 && /MiB of Keep memory/.test(e.message));
  const ok = await t.client.create({ limits: { memoryMiB: 1024 } });
  for (const k of [...live.slice(1), ok]) await t.client.stop(k.id);
});

test('the Unix socket serves the same API to local administrators without a token', { timeout: 120_000 }, async () => {
  const { KeepmgrClient } = await import('../../src/keepmgr/index.ts');
  const local = new KeepmgrClient({ url: `unix:${t.daemon.socketPath}` });
  const info = await local.info();
  assert.equal(info.principal, 'local');
  assert.equal(info.admin, true);
  assert.ok(Array.isArray((await local.list()).keeps));
});

test('the dashboard and health endpoints are served without credentials, and hold no data', { timeout: 120_000 }, async () => {
  const page = await raw(t, 'GET', '/', { token: null });
  assert.equal(page.status, 200);
  assert.match(page.text, /<title>enarx keep manager<\/title>/);
  assert.match(String(page.headers['content-security-policy']), /default-src 'none'/);
  assert.equal((await raw(t, 'GET', '/health', { token: null })).text, 'ok\n');
});
