import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError, KeepmgrClient } from '../../src/keepmgr/index.ts';
import { generateKeyPair, issueCertificate, type TestKeyPair } from '../../src/attestation/testing/pki.ts';
import type { Certificate } from '../../src/attestation/x509.ts';
import { startTestDaemon, tempDir, type TestDaemon } from './helpers.ts';

const pem = (label: string, der: Uint8Array) => `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ${label}-----\n`;
const keyPem = async (k: TestKeyPair) => pem('PRIVATE KEY', new Uint8Array(await crypto.subtle.exportKey('pkcs8', k.privateKey)));
const when = { notBefore: new Date(Date.now() - 86_400_000), notAfter: new Date(Date.now() + 86_400_000) };

async function ca(name: string): Promise<{ cert: Certificate; key: TestKeyPair }> {
  const key = await generateKeyPair('ec-p256');
  return { key, cert: await issueCertificate({ subject: [['CN', name]], subjectKey: key, ca: {}, ...when }) };
}

async function leaf(issuer: { cert: Certificate; key: TestKeyPair }, cn: string): Promise<{ cert: string; key: string }> {
  const key = await generateKeyPair('ec-p256');
  const cert = await issueCertificate({ subject: [['CN', cn]], subjectKey: key, issuer: { certificate: issuer.cert, key: issuer.key }, serial: 7, ...when });
  return { cert: pem('CERTIFICATE', cert.der), key: await keyPem(key) };
}

let t: TestDaemon;
let tenants: Awaited<ReturnType<typeof ca>>;
before(async () => {
  tenants = await ca('keepmgr tenants');
  const dir = tempDir();
  writeFileSync(join(dir, 'tenant-ca.pem'), pem('CERTIFICATE', tenants.cert.der));
  t = await startTestDaemon({ dataDir: dir, poolSize: 0, clientCa: join(dir, 'tenant-ca.pem') });
});
after(() => t.close());

test('client certificates from the configured CA authenticate as cert:<CN>, each seeing only its own Keeps', { timeout: 120_000 }, async () => {
  const carol = new KeepmgrClient({ url: t.daemon.url!, ca: t.ca, ...(await leaf(tenants, 'carol')) });
  const dave = new KeepmgrClient({ url: t.daemon.url!, ca: t.ca, ...(await leaf(tenants, 'dave')) });
  assert.equal((await carol.info()).principal, 'cert:carol');
  const k = await carol.create();
  assert.equal(k.owner, 'cert:carol');
  assert.deepEqual((await dave.list()).keeps, []);
  await assert.rejects(dave.get(k.id), (e: unknown) => e instanceof ApiError && e.status === 404);
  await carol.stop(k.id);
});

test('a certificate from another CA, or none, is not an identity', { timeout: 120_000 }, async () => {
  const stranger = new KeepmgrClient({ url: t.daemon.url!, ca: t.ca, ...(await leaf(await ca('someone else'), 'mallory')) });
  await assert.rejects(stranger.info(), (e: unknown) => e instanceof ApiError && e.status === 401);
  const nobody = new KeepmgrClient({ url: t.daemon.url!, ca: t.ca });
  await assert.rejects(nobody.info(), (e: unknown) => e instanceof ApiError && e.status === 401);
});
