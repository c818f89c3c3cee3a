import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { decodeIntelQuote, verifySgxQuote, verifyTdxQuote, verifyIntelQuote } from '../../src/attestation/intel/index.ts';
import type { VerificationResult } from '../../src/attestation/types.ts';
import { icelake, mobilecoin, phalaSgx, phalaTdx, phalaTdxV5, read } from './intel-vectors.ts';

function assertVerified(r: VerificationResult): void {
  assert.equal(r.failure, null, `unexpected failure: ${JSON.stringify(r.failure)}`);
  assert.equal(r.verified, true);
  assert.equal(r.trustAnchor, 'intel-sgx-root');
}

test('SGX v3 (Phala): ConfigurationAndSWHardeningNeeded with the level and QE advisories', async () => {
  const v = phalaSgx();
  const r = await verifySgxQuote(v.quote, v.options);
  assertVerified(r);
  assert.equal(r.kind, 'sgx');
  assert.equal(r.tcbStatus, 'ConfigurationAndSWHardeningNeeded');
  assert.deepEqual(r.advisories, ['INTEL-SA-00289', 'INTEL-SA-00615']);
  assert.equal(r.measurement, '33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb');
  assert.equal(r.reportData, Buffer.concat([Buffer.from('Hello, world!'), Buffer.alloc(51)]).toString('hex'));
  assert.equal(r.debug, false);
  assert.equal(r.revocationChecked, true);
  assert.deepEqual(r.warnings, []);
  assert.equal(r.trailingBytes, 0);
  const c = r.claims as Record<string, any>;
  assert.equal(c.mrsigner, '815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6');
  assert.equal(c.isvProdId, 0);
  assert.equal(c.isvSvn, 0);
  assert.equal(c.cpuSvn, '0b0b1a18ffff04000000000000000000');
  assert.equal(c.miscSelect, 0);
  assert.equal(c.attributes.raw, '0500000000000000');
  assert.equal(c.attributes.flags, '0x0000000000000005');
  assert.equal(c.attributes.init, true);
  assert.equal(c.attributes.mode64bit, true);
  assert.equal(c.attributes.debug, false);
  assert.equal(c.xfrm, 'e700000000000000');
  assert.equal(c.fmspc, '00a067110000');
  assert.equal(c.pceId, '0000');
  assert.equal(c.pceSvn, 13);
  assert.deepEqual(c.tcbComponents, [11, 11, 2, 2, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(c.pckCpuSvn, '0b0b0202ff0100000000000000000000');
  assert.equal(c.ppid, 'd04ec06d4e6d92dc90d0ad3cf5ee2ddf');
  assert.equal(c.sgxType, 'Standard');
  assert.equal(c.pckIssuer, 'processor');
  assert.equal(c.qeSvn, 10);
  assert.equal(c.qeStatus, 'UpToDate');
  assert.equal(c.tcbDate, '2024-03-13T00:00:00Z');
  assert.equal(c.platformTcbStatus, 'ConfigurationAndSWHardeningNeeded');
  assert.equal(c.tcbEvaluationDataNumber, 17);
  assert.equal(c.headerQeSvn, 10);
  assert.equal(c.headerPceSvn, 15);
  assert.equal(c.userData, '3987622ee6968a54977c8626ef47123500000000');
  assert.equal(c.qeReport.mrenclave, '96b347a64e5a045e27369c26e6dcda51fd7c850e9b3a3a79e718f43261dee1e4');
});

test('SGX v3 (MobileCoin): the expired PCK CRL is rejected at step crl (strict, as Intel QVL)', async () => {
  const v = mobilecoin(true);
  const r = await verifySgxQuote(v.quote, v.options);
  assert.equal(r.verified, false);
  assert.equal(r.failure?.step, 'crl');
  assert.match(r.failure!.message, /expired at 2023-05-21T22:00:36Z/);
  assert.equal(r.tcbStatus, null);
  assert.equal(r.measurement, '840d61b0585dc8b4dc90f53af293c760fda06bee75978a6a86263ffb296423f4');
});

test('SGX v3 (MobileCoin) without the stale PCK CRL: SWHardeningNeeded, and the missing CRL is recorded', async () => {
  const v = mobilecoin(false);
  const r = await verifySgxQuote(v.quote, v.options);
  assertVerified(r);
  assert.equal(r.tcbStatus, 'SWHardeningNeeded');
  assert.deepEqual(r.advisories, ['INTEL-SA-00334', 'INTEL-SA-00615']);
  assert.equal((r.claims as any).tcbDate, '2023-02-15T00:00:00Z');
  assert.equal((r.claims as any).qeStatus, 'UpToDate');
  assert.equal(r.revocationChecked, false);
  assert.ok(r.warnings.some((w) => /no PCK CRL/.test(w)));
});

test('TDX v4 (Phala): UpToDate via TDX_01, 70 trailing zero bytes ignored and counted', async () => {
  const v = phalaTdx();
  const r = await verifyTdxQuote(v.quote, v.options);
  assertVerified(r);
  assert.equal(r.kind, 'tdx');
  assert.equal(r.tcbStatus, 'UpToDate');
  assert.deepEqual(r.advisories, []);
  assert.equal(r.trailingBytes, 70);
  assert.equal(r.debug, false);
  assert.equal(r.measurement, '91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7');
  assert.equal(
    r.reportData,
    '9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20',
  );
  const c = r.claims as Record<string, any>;
  assert.equal(c.teeTcbSvn, '06010300000000000000000000000000');
  assert.equal(c.mrSeam, '5b38e33a6487958b72c3c12a938eaa5e3fd4510c51aeeab58c7d5ecee41d7c436489d6c8e4f92f160b7cad34207b00c1');
  assert.equal(c.mrSignerSeam, '0'.repeat(96));
  assert.equal(c.seamAttributes, '0000000000000000');
  assert.equal(c.tdAttributes.raw, '0000001000000000');
  assert.equal(c.tdAttributes.septVeDisable, true);
  assert.equal(c.tdAttributes.debug, false);
  assert.equal(c.xfam, 'e702060000000000');
  assert.equal(c.rtmr0, '44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0');
  assert.equal(c.rtmr3, '0'.repeat(96));
  assert.equal(c.mrConfigId, '0'.repeat(96));
  assert.equal(c.fmspc, 'b0c06f000000');
  assert.equal(c.pceSvn, 11);
  assert.equal(c.sgxType, 'Scalable');
  assert.equal(c.pckIssuer, 'platform');
  assert.equal(c.qeSvn, 6);
  assert.equal(c.qeStatus, 'UpToDate');
  assert.equal(c.tcbDate, '2024-03-13T00:00:00Z');
  assert.deepEqual(c.tdxModule, { id: 'TDX_01', majorVersion: 1, isvSvn: 6, status: 'UpToDate', tcbDate: '2024-03-13T00:00:00Z', advisories: [] });
  assert.equal(c.mrServiceTd, undefined);
});

test('TDX v5 (TD report 1.5): rejected at step tcb because no TCB level matches; no fallback status', async () => {
  const v = phalaTdxV5();
  const r = await verifyTdxQuote(v.quote, v.options);
  assert.equal(r.verified, false);
  assert.equal(r.failure?.step, 'tcb');
  assert.match(r.failure!.message, /TCB not supported/);
  assert.equal(r.tcbStatus, null);
  assert.equal(r.trustAnchor, 'intel-sgx-root');
  const c = r.claims as Record<string, any>;
  assert.equal(c.quoteVersion, 5);
  assert.equal(c.bodyType, 'td15');
  assert.equal(c.teeTcbSvn, '07010300000000000000000000000000');
  assert.equal(c.teeTcbSvn2, '0d010300000000000000000000000000');
  assert.equal(c.mrServiceTd, '0'.repeat(96));
  assert.equal(c.fmspc, '90c06f000000');
  assert.deepEqual(c.tcbComponents, [3, 3, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(c.qeStatus, 'UpToDate');
  assert.equal(r.measurement, '273828c46252fcbdd8ad2dd907130222b03466d52a2911d70c1a5950895d6bd1ae451d382d5a9b1b4c0ed0e5ae9a3dbd');
});

for (const [which, advisories, tcbDate, platform] of [
  ['i5', ['INTEL-SA-00289', 'INTEL-SA-00381', 'INTEL-SA-00389', 'INTEL-SA-00477', 'INTEL-SA-00614', 'INTEL-SA-00615', 'INTEL-SA-00617', 'INTEL-SA-00657'], '2020-06-10T00:00:00Z', 'processor'],
  ['xeon', ['INTEL-SA-00586', 'INTEL-SA-00614', 'INTEL-SA-00615', 'INTEL-SA-00657'], '2021-11-10T00:00:00Z', 'platform'],
] as const) {
  test(`Enarx Keep on Ice Lake ${which}: OutOfDate, key bound in REPORTDATA, revocation checked`, async () => {
    const v = icelake(which);
    const r = await verifySgxQuote(v.quote, v.options);
    assertVerified(r);
    assert.equal(r.tcbStatus, 'OutOfDate');
    assert.deepEqual(r.advisories, advisories);
    assert.equal(r.measurement, '4046ea255f0455131a024e1265ac1ebd131fdbd1240f1712a00381f6f04e8c15');
    const spki = read('enarx-steward', 'extracted', `icelake-${which}`, 'spki.der');
    assert.equal(r.reportData, createHash('sha256').update(spki).digest('hex') + '0'.repeat(64));
    const c = r.claims as Record<string, any>;
    assert.equal(c.mrsigner, '7a49a07df0f8e90a6e1d9a63e3c696d9c844f0e3f8739b21daa640f99facc48a');
    assert.equal(c.miscSelect, 1);
    assert.equal(c.tcbDate, tcbDate);
    assert.equal(c.pckIssuer, platform);
    assert.equal(c.fmspc, which === 'i5' ? '00706e470000' : '00606a000000');
    assert.deepEqual(c.tcbComponents.slice(0, 6), which === 'i5' ? [6, 6, 2, 2, 2, 1] : [4, 4, 3, 3, 255, 255]);
    assert.equal(c.qeStatus, null, 'the Enarx evidence carries no QE identity');
    assert.ok(r.warnings.some((w) => /no QE identity/.test(w)));
    assert.equal(r.revocationChecked, true);
  });
}

test('decodeIntelQuote prints every field without verifying', () => {
  const d = decodeIntelQuote(read('attestation', 'tdx', 'phala-tdx-v4', 'quote.bin'));
  assert.equal(d.kind, 'tdx');
  assert.equal(d.length, 4936);
  assert.equal(d.trailingBytes, 70);
  assert.equal(d.claims.quoteVersion, 4);
  assert.equal(d.claims.certificationDataType, 5);
  assert.match(d.certificationData, /^-----BEGIN CERTIFICATE-----/);
  assert.equal(d.qeAuthData, Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('hex'));
  assert.equal(d.signature.length, 128);
  assert.ok(d.pck && !('error' in d.pck));
  assert.equal(d.pck.fmspc, 'b0c06f000000');
  assert.equal(d.pck.pceSvn, 11);
  assert.match(d.pck.issuer, /Intel SGX PCK Platform CA/);
});

test('verifySgxQuote refuses a TDX quote (and vice versa) at step parse', async () => {
  const tdx = phalaTdx();
  const r = await verifySgxQuote(tdx.quote, tdx.options);
  assert.equal(r.failure?.step, 'parse');
  assert.match(r.failure!.message, /TDX evidence, not SGX/);
  const sgx = phalaSgx();
  assert.equal((await verifyTdxQuote(sgx.quote, sgx.options)).failure?.step, 'parse');
  assert.equal((await verifyIntelQuote(sgx.quote, sgx.options)).verified, true);
});

test('a CRL of an unrelated issuer (AMD) is not used and does not stand in for the PCK CRL', async () => {
  const v = mobilecoin(false);
  const amdCrl = read('attestation', 'sev-snp', 'amd-roots', 'crl_vcek_milan.pem');
  const r = await verifySgxQuote(v.quote, { ...v.options, crls: [amdCrl] });
  assertVerified(r);
  assert.equal(r.revocationChecked, false);
  assert.ok(r.warnings.some((w) => /no PCK CRL/.test(w)));
});

test('an invalid now is a programming error, never a silently passed window', async () => {
  const v = phalaSgx();
  await assert.rejects(verifySgxQuote(v.quote, { ...v.options, now: new Date('not a date') }), TypeError);
});

test('remembered QE checks are keyed by the exact bytes: a tampered QE report is rejected after a good one', async () => {
  const v = phalaSgx();
  assert.equal((await verifySgxQuote(v.quote, v.options)).verified, true);
  for (const at of [822, 948, 500, 1014]) {
    const q = new Uint8Array(v.quote);
    q[at]! ^= 1;
    const r = await verifySgxQuote(q, v.options);
    assert.equal(r.verified, false, `byte ${at}`);
    assert.ok(r.failure?.step === 'signature' || r.failure?.step === 'binding', `byte ${at}: ${r.failure?.step}`);
  }
  assert.equal((await verifySgxQuote(v.quote, v.options)).verified, true);
});

test('the PCK certificate platform configuration (Platform CA, multi-package) reaches the claims for policy', async () => {
  const tdx = phalaTdx();
  const r = await verifyTdxQuote(tdx.quote, tdx.options);
  assertVerified(r);
  const c = r.claims as Record<string, any>;
  assert.equal(c.pckIssuer, 'platform');
  assert.equal(c.sgxType, 'Scalable');
  assert.deepEqual(c.pckConfiguration, { dynamicPlatform: true, cachedKeys: true, smtEnabled: true });
  // A Processor CA certificate carries no configuration: the claim is absent, never guessed.
  const sgx = phalaSgx();
  const s = await verifySgxQuote(sgx.quote, sgx.options);
  assertVerified(s);
  assert.equal((s.claims as Record<string, unknown>).pckConfiguration, undefined);
});
