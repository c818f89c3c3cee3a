import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { decode } from 'cborg';
import { attestKeep, provisionKeep, followOutput, openSession, KeepRefused, ApiError, ChannelError, KeepmgrClient, type OutputPayload } from '../../src/keepmgr/index.ts';
import { encryptProvision, generateOutputKeyPair } from '../../src/keepmgr/crypto.ts';
import { startTestDaemon, waitFor, WASM, type TestDaemon } from './helpers.ts';

let t: TestDaemon;
before(async () => {
  t = await startTestDaemon({ poolSize: 2, maxKeeps: 8 });
  await t.daemon.manager.poolReady();
});
after(() => t.close());

const text = (ps: OutputPayload[], stream: string) => Buffer.concat(ps.filter((p) => p.stream === stream).map((p) => ('data' in p ? p.data : new Uint8Array()))).toString();

test('create → attest → provision → sealed output, from the warm pool, with the daemon seeing only ciphertext', { timeout: 120_000 }, async () => {
  const keep = await t.client.create();
  assert.equal(keep.origin, 'pool');
  assert.equal(keep.state, 'ready');
  const attested = await attestKeep(t.client, keep.id, { allowUnattested: true });
  assert.equal(attested.kind, 'none');
  const secret = 'top secret stdin 7f3a';
  const session = await provisionKeep(t.client, attested, { wasm: WASM('hello'), config: 'args = ["a", "b"]\n', stdin: Buffer.from(secret) });
  const got: OutputPayload[] = [];
  const end = await followOutput(t.client, session, (p) => got.push(p));
  assert.deepEqual(end.exit, { code: 0, reason: null });
  assert.equal(text(got, 'stdout'), `hello from a Keep\n${secret}`);
  assert.equal(text(got, 'stderr'), 'argc=3\n');
  const info = await t.client.get(keep.id);
  assert.equal(info.state, 'exited');
  assert.equal(info.exitCode, 0);
  assert.deepEqual(info.attestation.verdict?.accepted, true);
  // What the host stored is ciphertext: the secret appears nowhere in its records.
  const stored = t.daemon.manager.store.records(keep.id, 0);
  assert.equal(stored.length, info.outputRecords);
  assert.ok(stored.length >= 4);
  for (const r of stored) assert.ok(!Buffer.from(r.ct).includes(Buffer.from('top secret')));
  // The record can be re-read later, from the session alone.
  const again: OutputPayload[] = [];
  const end2 = await followOutput(t.client, session, (p) => again.push(p), { follow: false });
  assert.equal(end2.exit?.code, 0);
  assert.equal(text(again, 'stdout'), text(got, 'stdout'));
});

test('the API speaks CBOR to clients that ask for it, with byte strings as bytes', { timeout: 120_000 }, async () => {
  const cbor = new KeepmgrClient({ ...t.client.options, format: 'cbor' });
  const { contracts } = await cbor.contracts();
  assert.equal(contracts[0]!.backend, 'process');
  const keep = await cbor.create({ limits: { memoryMiB: 200 } });
  assert.equal(keep.origin, 'cold');
  const ch = await cbor.challenge(keep.id, crypto.getRandomValues(new Uint8Array(32)));
  assert.ok(ch.publicKey instanceof Uint8Array && ch.publicKey.length > 90);
  assert.equal(ch.reportData.length, 64);
  const res = await cbor.call<Record<string, unknown>>('GET', `/keeps/${keep.id}`);
  assert.ok((res.attestation as Record<string, unknown>).publicKey instanceof Uint8Array);
  await cbor.stop(keep.id);
  const stopped = await cbor.get(keep.id);
  assert.equal(stopped.state, 'stopped');
  assert.equal(stopped.reason, 'stopped through the API');
  void decode;
});

test('a client refuses an unattested Keep unless told otherwise, stops it, and sends nothing', { timeout: 120_000 }, async () => {
  const keep = await t.client.create();
  await assert.rejects(attestKeep(t.client, keep.id), (err: unknown) => err instanceof KeepRefused && /offers no attestation/.test(err.message));
  const info = await t.client.get(keep.id);
  assert.equal(info.state, 'refused');
  assert.equal(info.attestation.verdict?.accepted, false);
  assert.equal(info.outputRecords, 0);
  await assert.rejects(t.client.provision(keep.id, 'a.b.c.d.e'), (e: unknown) => e instanceof ApiError && e.status === 409);
});

test('a host that swaps one Keep\'s ciphertext into another, or replays it, is caught by the Keep', { timeout: 120_000 }, async () => {
  const a = await t.client.create();
  const b = await t.client.create();
  const attA = await attestKeep(t.client, a.id, { allowUnattested: true });
  const attB = await attestKeep(t.client, b.id, { allowUnattested: true });
  const { publicJwk } = await generateOutputKeyPair();
  const jweForA = await encryptProvision(attA.publicKey, { keepId: a.id, nonce: attA.nonce, wasm: WASM('hello'), config: null, stdin: new Uint8Array(), outputKey: publicJwk });
  // Swap: A's ciphertext delivered to B.
  await assert.rejects(t.client.provision(b.id, jweForA), (e: unknown) => e instanceof ApiError && e.status === 422 && /addressed to Keep/.test(e.message));
  // Even with the kid rewritten, B cannot open what was encrypted to A's key.
  const [h, ...rest] = jweForA.split('.');
  const header = JSON.parse(Buffer.from(h!, 'base64url').toString());
  const forged = [Buffer.from(JSON.stringify({ ...header, kid: b.id })).toString('base64url'), ...rest].join('.');
  await assert.rejects(t.client.provision(b.id, forged), (e: unknown) => e instanceof ApiError && /does not decrypt/.test(e.message));
  // Stale challenge: a JWE made for an older nonce of this same Keep.
  const reAtt = await attestKeep(t.client, a.id, { allowUnattested: true });
  await assert.rejects(t.client.provision(a.id, jweForA), (e: unknown) => e instanceof ApiError && /another challenge/.test(e.message));
  // The genuine provisioning goes through once; a replay of it is refused.
  const session = await provisionKeep(t.client, reAtt, { wasm: WASM('hello'), config: null });
  const lastJwe = await encryptProvision(reAtt.publicKey, { keepId: a.id, nonce: reAtt.nonce, wasm: WASM('hello'), config: null, stdin: new Uint8Array(), outputKey: publicJwk });
  await t.client.provision(a.id, lastJwe).then(
    () => assert.fail('replayed provisioning was accepted'),
    (e: unknown) => assert.ok(e instanceof ApiError && (/already provisioned/.test(e.message) || e.status === 409), String(e)),
  );
  const end = await followOutput(t.client, session, () => {});
  assert.equal(end.exit?.code, 0);
  await t.client.stop(b.id);
  void attB;
});

test('the client detects dropped, reordered, replayed and altered output records', { timeout: 120_000 }, async () => {
  const keep = await t.client.create();
  const att = await attestKeep(t.client, keep.id, { allowUnattested: true });
  const session = await provisionKeep(t.client, att, { wasm: WASM('hello'), config: null, stdin: Buffer.from('x'.repeat(10)) });
  await waitFor(async () => (await t.client.get(keep.id)).state === 'exited', 10_000, 'the Keep to exit');
  const records = t.daemon.manager.store.records(keep.id, 0);
  assert.ok(records.length >= 4);
  const play = async (seq: typeof records) => {
    const reader = await openSession(session);
    for (const r of seq) await reader.open(r);
    return reader;
  };
  await play(records); // the genuine order opens
  await assert.rejects(play([records[0]!, records[2]!]), (e: unknown) => e instanceof ChannelError && /where 1 was expected/.test(e.message));
  await assert.rejects(play([records[1]!, records[0]!]), ChannelError);
  await assert.rejects(play([records[0]!, records[0]!]), (e: unknown) => e instanceof ChannelError && /again/.test(e.message));
  const altered = { seq: 0, ct: Uint8Array.from(records[0]!.ct, (b, i) => (i === 3 ? b ^ 1 : b)) };
  await assert.rejects(play([altered]), (e: unknown) => e instanceof ChannelError && /authentication/.test(e.message));
  // A record relabelled with another sequence number does not authenticate either.
  await assert.rejects(play([records[0]!, { seq: 1, ct: records[2]!.ct }]), (e: unknown) => e instanceof ChannelError && /authentication/.test(e.message));
  // Records of another Keep do not open under this session.
  const reader = await play(records);
  await assert.rejects(reader.open({ seq: records.length, ct: records[0]!.ct }), ChannelError);
});

test('a workload that traps ends with a sealed exit record that says so', { timeout: 120_000 }, async () => {
  const keep = await t.client.create();
  const att = await attestKeep(t.client, keep.id, { allowUnattested: true });
  const session = await provisionKeep(t.client, att, { wasm: WASM('crash'), config: null });
  const got: OutputPayload[] = [];
  const end = await followOutput(t.client, session, (p) => got.push(p));
  assert.equal(end.exit?.code, 134);
  assert.match(end.exit?.reason ?? '', /wasm trap: unreachable/);
  assert.equal(text(got, 'stdout'), 'about to crash\n');
});

test('a Keep process that dies is recorded as crashed, and its client learns it had no sealed exit', { timeout: 120_000 }, async () => {
  const keep = await t.client.create();
  const att = await attestKeep(t.client, keep.id, { allowUnattested: true });
  const session = await provisionKeep(t.client, att, { wasm: WASM('spin'), config: null });
  await waitFor(async () => (await t.client.get(keep.id)).outputRecords > 0, 10_000, 'first output');
  process.kill((await t.client.get(keep.id)).pid!, 'SIGSEGV');
  const end = await followOutput(t.client, session, () => {});
  assert.equal(end.exit, null);
  assert.equal(end.host?.state, 'crashed');
  assert.match(String(end.host?.reason), /SIGSEGV/);
});

test('an Enarx.toml the Keep cannot honour ends with a sealed reason: bad TOML, or a host directory', { timeout: 120_000 }, async () => {
  for (const [config, why] of [
    ['args = [', /Enarx\.toml/],
    ['[[files]]\nkind = "dir"\nname = "data"\npath = "/tmp"\n', /no host directories/],
  ] as const) {
    const keep = await t.client.create();
    const att = await attestKeep(t.client, keep.id, { allowUnattested: true });
    const session = await provisionKeep(t.client, att, { wasm: WASM('hello'), config });
    const end = await followOutput(t.client, session, () => {});
    assert.equal(end.exit?.code, 1);
    assert.match(end.exit?.reason ?? '', why);
  }
});
