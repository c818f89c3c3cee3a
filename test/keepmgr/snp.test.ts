import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { attestKeep, provisionKeep, followOutput, KeepRefused, KeepmgrClient, type Challenge } from '../../src/keepmgr/index.ts';
import { libraryVerifier } from '../../src/keepmgr/client.ts';
import { parseSnpReport } from '../../src/attestation/index.ts';
import { createTestSnpChain } from '../../src/attestation/testing/snp.ts';
import { startTestDaemon, tempDir, WASM, type TestDaemon } from './helpers.ts';

let t: TestDaemon;
let arkPem: string;
before(async () => {
  const snpDir = join(tempDir(), 'snp');
  t = await startTestDaemon({ poolSize: 1, softwareSnp: snpDir });
  arkPem = readFileSync(t.daemon.testRootPath!, 'utf8');
});
after(() => t.close());

const trusting = () => libraryVerifier({ trustedTestRoots: [{ name: 'keepmgr', pem: arkPem }] });

test('full flow with software SNP-format evidence under a test root the client trusts explicitly', { timeout: 120_000 }, async () => {
  const keep = await t.client.create();
  const att = await attestKeep(t.client, keep.id, { verifier: await trusting() });
  assert.equal(att.kind, 'snp');
  assert.equal(att.result?.verified, true);
  assert.equal(att.result?.trustAnchor, 'test:keepmgr');
  // The report data binds the Keep's key (Enarx's SHA-384 key hash) and this challenge.
  const spkiHash = Buffer.from(await crypto.subtle.digest('SHA-384', new Uint8Array(att.publicKey))).toString('hex');
  assert.equal(att.result!.reportData.slice(0, 96), spkiHash);
  const session = await provisionKeep(t.client, att, { wasm: WASM('hello'), config: null, stdin: Buffer.from('attested\n') });
  let out = '';
  const end = await followOutput(t.client, session, (p) => {
    if (p.stream === 'stdout') out += Buffer.from(p.data).toString();
  });
  assert.equal(end.exit?.code, 0);
  assert.equal(out, 'hello from a Keep\nattested\n');
  const info = await t.client.get(keep.id);
  assert.equal(info.attestation.kind, 'snp');
  assert.match(info.attestation.verdict!.reasons[0]!, /snp evidence verified under test:keepmgr/);
});

test('a client that does not trust the test root refuses the Keep, which is stopped before any workload byte', { timeout: 120_000 }, async () => {
  const keep = await t.client.create();
  await assert.rejects(attestKeep(t.client, keep.id, { verifier: await libraryVerifier() }), (e: unknown) => e instanceof KeepRefused && /^chain: /.test(e.reasons[0]!));
  const info = await t.client.get(keep.id);
  assert.equal(info.state, 'refused');
  assert.equal(info.outputRecords, 0);
});

test('a policy that pins another measurement refuses the Keep, naming the reason', { timeout: 120_000 }, async () => {
  const keep = await t.client.create();
  const policy = `[snp]\nhash = ["${'ab'.repeat(48)}"]\n`;
  const verifier = await libraryVerifier({ policy, trustedTestRoots: [{ name: 'keepmgr', pem: arkPem }] });
  await assert.rejects(attestKeep(t.client, keep.id, { verifier }), (e: unknown) => e instanceof KeepRefused && e.reasons.some((r) => r.startsWith('policy: ')));
  // The Keep's own measurement, pinned, is accepted.
  const good = await t.client.create();
  const ch = await t.client.challenge(good.id, crypto.getRandomValues(new Uint8Array(32)));
  const measurement = Buffer.from(parseSnpReport(ch.evidence).measurement).toString('hex');
  const pinned = await libraryVerifier({ policy: `[snp]\nhash = ["${measurement}"]\n`, trustedTestRoots: [{ name: 'keepmgr', pem: arkPem }] });
  const att = await attestKeep(t.client, good.id, { verifier: pinned });
  assert.equal(att.result?.policy?.accepted, true);
  await t.client.stop(good.id);
});

/** A keep manager that answers every challenge with evidence it kept from another Keep. */
class ReplayingHost extends KeepmgrClient {
  replay: Challenge | undefined;
  override async challenge(id: string, nonce: Uint8Array): Promise<Challenge> {
    const real = await super.challenge(id, nonce);
    return this.replay ? { ...this.replay } : real;
  }
}

test('evidence replayed from another Keep (or an older challenge) fails the binding check', { timeout: 120_000 }, async () => {
  const host = new ReplayingHost(t.client.options);
  const a = await host.create();
  const b = await host.create();
  host.replay = await t.client.challenge(a.id, crypto.getRandomValues(new Uint8Array(32)));
  await assert.rejects(attestKeep(host, b.id, { verifier: await trusting() }), (e: unknown) => e instanceof KeepRefused && e.reasons.some((r) => r.startsWith('binding: ')));
  // Same Keep, stale challenge: the evidence answered an older nonce.
  await assert.rejects(attestKeep(host, a.id, { verifier: await trusting() }), (e: unknown) => e instanceof KeepRefused && e.reasons.some((r) => r.startsWith('binding: ')));
  // And evidence with its key swapped for the host's own does not bind either.
  host.replay = { ...(await t.client.challenge((await t.client.create()).id, crypto.getRandomValues(new Uint8Array(32)))), publicKey: (await crypto.subtle.exportKey('spki', (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-384' }, true, ['deriveBits'])).publicKey)) as unknown as Uint8Array };
  host.replay.publicKey = new Uint8Array(host.replay.publicKey);
  const c = await host.create();
  await assert.rejects(attestKeep(host, c.id, { verifier: await trusting() }), (e: unknown) => e instanceof KeepRefused && e.reasons.some((r) => r.startsWith('binding: ')));
  assert.equal((await t.client.get(c.id)).state, 'refused');
});

test('evidence from a chain under a different test root is refused even when signed well', { timeout: 120_000 }, async () => {
  const other = await createTestSnpChain();
  const keep = await t.client.create();
  const verifier = await libraryVerifier({ trustedTestRoots: [{ name: 'other', pem: `-----BEGIN CERTIFICATE-----\n${Buffer.from(other.ark.der).toString('base64')}\n-----END CERTIFICATE-----\n` }] });
  await assert.rejects(attestKeep(t.client, keep.id, { verifier }), (e: unknown) => e instanceof KeepRefused && /^chain: /.test(e.reasons[0]!));
});
