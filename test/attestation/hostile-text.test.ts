// Untrusted text (collateral JSON strings, certificate and CRL names) reaches rejection messages and
// warnings; whatever it holds, a message stays one bounded line, so it cannot forge output lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { verifyEvidence, oneLine } from '../../src/attestation/index.ts';
import { generateKeyPair, issueCertificate, issueCrl } from '../../src/attestation/testing/pki.ts';
import { toPem } from '../../src/attestation/x509.ts';
import { read, readText } from './intel-vectors.ts';

const lineBreaking = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function assertOneLine(text: string, what: string): void {
  assert.ok(!lineBreaking.test(text), `${what} holds a control character: ${JSON.stringify(text)}`);
  assert.ok(text.length <= 1000, `${what} is ${text.length} characters long`);
}

test('oneLine escapes every control and line-separator character and bounds the length', () => {
  assert.equal(oneLine('a\nb\r\u2028c\u0000'), 'a\\u000ab\\u000d\\u2028c\\u0000');
  assert.equal(oneLine('x'.repeat(5000)).length, 1000);
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 3000 }), (s) => assertOneLine(oneLine(s), 'oneLine')));
});

test('a collateral string with line breaks (tcbStatus, id) yields a one-line rejection', async () => {
  const quote = read('attestation', 'sgx', 'phala-sgx-v3', 'quote.bin');
  const combined = JSON.parse(readText('attestation', 'sgx', 'phala-sgx-v3', 'collateral.json')) as Record<string, string>;
  await fc.assert(
    fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 2000 }), fc.constantFrom('tcbStatus', 'id'), async (injected, field) => {
      const tcbInfo = JSON.parse(combined.tcb_info!) as Record<string, unknown> & { tcbLevels: Array<Record<string, unknown>> };
      if (field === 'id') tcbInfo.id = `SGX\n${injected}`;
      else tcbInfo.tcbLevels[0]!.tcbStatus = `UpToDate\r\n${injected}`;
      const collateral = JSON.stringify({ ...combined, tcb_info: JSON.stringify(tcbInfo) });
      const result = await verifyEvidence({ evidence: quote, collateral: [collateral], now: new Date('2025-07-01T00:00:00Z') });
      assert.equal(result.verified, false);
      assert.equal(result.failure?.step, 'parse');
      assertOneLine(result.failure!.message, 'failure message');
    }),
    { numRuns: 30 },
  );
});

test('certificate and CRL names with line breaks stay on one line in failures and warnings', async () => {
  const hostile = 'SEV-VCEK\nverified: true\u2028';
  const key = await generateKeyPair('rsa-pss');
  const root = await issueCertificate({
    subject: [['CN', `ARK-Milan\n${hostile}`]],
    subjectKey: key,
    notBefore: new Date('2020-01-01T00:00:00Z'),
    notAfter: new Date('2040-01-01T00:00:00Z'),
    ca: { pathLength: 1 },
    serial: 1,
  });
  const leafKey = await generateKeyPair('ec-p384');
  const leaf = await issueCertificate({
    subject: [['CN', hostile]],
    subjectKey: leafKey,
    issuer: { certificate: root, key },
    notBefore: new Date('2020-01-01T00:00:00Z'),
    notAfter: new Date('2040-01-01T00:00:00Z'),
    serial: 0,
  });
  const crl = await issueCrl({ issuer: { certificate: root, key }, thisUpdate: new Date('2024-01-01T00:00:00Z'), nextUpdate: new Date('2040-01-01T00:00:00Z'), revoked: [] });
  const report = read('attestation', 'sev-snp', 'milan-v2-gosevguest', 'report.bin');
  const result = await verifyEvidence({ evidence: report, certs: [toPem('CERTIFICATE', leaf.der), toPem('CERTIFICATE', root.der)], crls: [crl.der] });
  assert.equal(result.verified, false);
  assert.equal(result.failure?.step, 'chain');
  assertOneLine(result.failure!.message, 'failure message');
  for (const w of result.warnings) assertOneLine(w, 'warning');
  assert.match(result.failure!.message, /\\u000a/, 'the hostile name is quoted, escaped');
  // A genuine report with a CRL from that issuer: verified, and the warning naming the CRL is one line.
  const dir = ['attestation', 'sev-snp', 'milan-v2-gosevguest'];
  const genuine = await verifyEvidence({ evidence: read(...dir, 'report.bin'), certs: [read(...dir, 'vcek.der')], crls: [crl.der], now: new Date('2024-06-01T00:00:00Z') });
  assert.equal(genuine.verified, true, JSON.stringify(genuine.failure));
  const named = genuine.warnings.filter((w) => w.includes('does not apply'));
  assert.equal(named.length, 1, genuine.warnings.join(' | '));
  assert.match(named[0]!, /\\u000a/);
  for (const w of genuine.warnings) assertOneLine(w, 'warning');
});
