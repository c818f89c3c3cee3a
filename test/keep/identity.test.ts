import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { createSelfSignedIdentity, selfSignedIdentityProvider } from '../../src/keep/identity.ts';

test('the self-signed identity matches Enarx: CN=localhost, one year, 16-byte serial, server+client auth', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const id = createSelfSignedIdentity({ now });
  assert.equal(id.issuer, 'self-signed');
  assert.equal(id.certificateChain.length, 1);
  const cert = new X509Certificate(id.certificateChain[0]!);
  assert.equal(cert.subject, 'CN=localhost');
  assert.equal(cert.issuer, 'CN=localhost');
  assert.equal(new Date(cert.validFrom).toISOString(), now.toISOString());
  assert.equal(new Date(cert.validTo).getTime() - now.getTime(), 365 * 24 * 3600 * 1000);
  assert.equal(cert.serialNumber.length, 32);
  assert.equal(cert.ca, false);
  assert.deepEqual(cert.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  assert.ok(cert.checkHost('localhost'));
  assert.ok(cert.checkIP('127.0.0.1'));
  assert.ok(cert.verify(cert.publicKey), 'self-signature verifies');
  assert.ok(cert.checkPrivateKey(createPrivateKey(id.privateKey)));
  assert.equal(createPublicKey(id.privateKey).asymmetricKeyDetails?.namedCurve, 'prime256v1');
});

test('P-384 keys sign with SHA-384, and each identity has its own key and serial', () => {
  const a = createSelfSignedIdentity({ algorithm: 'P-384' });
  const b = createSelfSignedIdentity({ algorithm: 'P-384' });
  const ca = new X509Certificate(a.certificateChain[0]!);
  assert.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
  assert.ok(ca.verify(ca.publicKey));
  assert.notEqual(ca.serialNumber, new X509Certificate(b.certificateChain[0]!).serialNumber);
  assert.notEqual(a.privateKey, b.privateKey);
});

test('the provider makes the identity once, on first use', async () => {
  const provider = selfSignedIdentityProvider();
  const [x, y] = await Promise.all([provider.identity(), provider.identity()]);
  assert.equal(x, y);
});
