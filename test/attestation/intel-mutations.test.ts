// The shared vectors, broken one way at a time (testdata README, "Deliberately broken variants"):
// each must be rejected at the step that names what broke.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyIntelQuote, type IntelVerifyOptions } from '../../src/attestation/intel/index.ts';
import { mergeCollateral, parseCollateralJson } from '../../src/attestation/intel/collateral.ts';
import { generateKeyPair, issueCertificate } from '../../src/attestation/testing/pki.ts';
import { toPem } from '../../src/attestation/x509.ts';
import type { VerificationStep } from '../../src/attestation/types.ts';
import { icelake, phalaSgx, phalaTdx, readText, type Vector } from './intel-vectors.ts';

function mutate(quote: Uint8Array, at: number, f: (b: number) => number = (b) => b ^ 1): Uint8Array {
  const out = new Uint8Array(quote);
  out[at] = f(out[at]!);
  return out;
}

async function rejects(quote: Uint8Array, options: IntelVerifyOptions, step: VerificationStep, message?: RegExp): Promise<void> {
  const r = await verifyIntelQuote(quote, options);
  assert.equal(r.verified, false, 'must not verify');
  assert.equal(r.failure?.step, step, `expected step ${step}, got ${JSON.stringify(r.failure)}`);
  if (message) assert.match(r.failure!.message, message);
}

/** Rebuilds a v3 quote with other certification data (sizes fixed up; nothing signed covers it). */
function withCertData(quote: Uint8Array, certData: Uint8Array): Uint8Array {
  const view = new DataView(quote.buffer, quote.byteOffset);
  const authLen = view.getUint16(1012, true);
  const typeAt = 1014 + authLen;
  const out = new Uint8Array(typeAt + 6 + certData.length);
  out.set(quote.subarray(0, typeAt + 2));
  const v = new DataView(out.buffer);
  v.setUint32(typeAt + 2, certData.length, true);
  out.set(certData, typeAt + 6);
  v.setUint32(432, out.length - 436, true);
  return out;
}

const certData = (quote: Uint8Array): Uint8Array => quote.subarray(1052, 436 + new DataView(quote.buffer, quote.byteOffset).getUint32(432, true));

describe('SGX v3 (Phala) mutations', () => {
  const v: Vector = phalaSgx();
  test('13: a flipped REPORTDATA byte breaks the quote signature', () => rejects(mutate(v.quote, 368), v.options, 'signature', /quote signature/));
  test('14: a flipped byte of the quote signature', () => rejects(mutate(v.quote, 436), v.options, 'signature', /quote signature/));
  test('15: a flipped attestation key byte breaks the QE report binding', () => rejects(mutate(v.quote, 500), v.options, 'binding'));
  test('16: a flipped QE report byte breaks the QE report signature', () => rejects(mutate(v.quote, 822), v.options, 'signature', /QE report/));
  test('17: a flipped QE authentication data byte breaks the binding', () => rejects(mutate(v.quote, 1014), v.options, 'binding'));
  test('a flipped QE report signature byte', () => rejects(mutate(v.quote, 948), v.options, 'signature', /QE report/));
  test('a flipped MRENCLAVE byte', () => rejects(mutate(v.quote, 112), v.options, 'signature'));
  test('a flipped header byte (user data)', () => rejects(mutate(v.quote, 30), v.options, 'signature'));
  test('18: certification data type 4 without a PCK chain given', () =>
    rejects(mutate(v.quote, 1046, () => 4), v.options, 'collateral', /carries no PCK certificate/));
  test('18b: certification data type 4 verifies when the PCK chain is given separately', async () => {
    const r = await verifyIntelQuote(mutate(v.quote, 1046, () => 4), { ...v.options, certs: [certData(v.quote)] });
    assert.equal(r.failure, null);
    assert.equal(r.tcbStatus, 'ConfigurationAndSWHardeningNeeded');
  });
  test('19: a signature data length past the end is a parse error', () => {
    const q = new Uint8Array(v.quote);
    new DataView(q.buffer).setUint32(432, 0xffffffff, true);
    return rejects(q, v.options, 'parse', /exceeds/);
  });
  test('an unknown version, key type, TEE type or QE vendor is a parse error', async () => {
    await rejects(mutate(v.quote, 0, () => 6), v.options, 'parse', /version 6/);
    await rejects(mutate(v.quote, 2, () => 3), v.options, 'parse', /key type 3/);
    await rejects(mutate(v.quote, 4, () => 0x81), v.options, 'parse', /version 3 quote must be an SGX/);
    await rejects(mutate(v.quote, 12), v.options, 'parse', /vendor/);
  });
  test('20: a tampered TCB info (tcbEvaluationDataNumber) breaks its signature', () => {
    const json = JSON.parse(readText('attestation', 'sgx', 'phala-sgx-v3', 'collateral.json'));
    json.tcb_info = json.tcb_info.replace('"tcbEvaluationDataNumber":17', '"tcbEvaluationDataNumber":18');
    return rejects(v.quote, { ...v.options, collateral: parseCollateralJson(JSON.stringify(json)).collateral }, 'signature', /TCB info signature/);
  });
  test('20b: re-serialised (pretty-printed) TCB info no longer matches its signature', () => {
    const json = JSON.parse(readText('attestation', 'sgx', 'phala-sgx-v3', 'collateral.json'));
    json.tcb_info = JSON.stringify(JSON.parse(json.tcb_info), null, 2);
    return rejects(v.quote, { ...v.options, collateral: parseCollateralJson(JSON.stringify(json)).collateral }, 'signature');
  });
  test('20c: a tampered QE identity breaks its signature', () => {
    const json = JSON.parse(readText('attestation', 'sgx', 'phala-sgx-v3', 'collateral.json'));
    json.qe_identity = json.qe_identity.replace('"isvsvn":8', '"isvsvn":1');
    return rejects(v.quote, { ...v.options, collateral: parseCollateralJson(JSON.stringify(json)).collateral }, 'signature', /QE identity signature/);
  });
  test('21: the TDX TCB info for an SGX quote does not match (TCB info id / FMSPC)', () => {
    const collateral = { ...v.options.collateral!, tcbInfo: phalaTdx().options.collateral!.tcbInfo };
    return rejects(v.quote, { ...v.options, collateral }, 'collateral', /does not apply to an SGX quote/);
  });
  test('the whole TDX collateral for an SGX quote: its Platform CA CRL is not for this PCK', () =>
    rejects(v.quote, { ...v.options, collateral: phalaTdx().options.collateral }, 'crl', /not by the PCK certificate's issuer/));
  test('21b: a TD_QE identity for an SGX quote is an identity mismatch', () => {
    const sgx = v.options.collateral!;
    const tdx = phalaTdx().options.collateral!;
    const collateral = { ...sgx, qeIdentity: tdx.qeIdentity };
    return rejects(v.quote, { ...v.options, collateral }, 'identity', /TD_QE/);
  });
  test('22: now past the QE identity nextUpdate (the earliest) is a collateral rejection', () =>
    rejects(v.quote, phalaSgx('2025-07-19T10:01:19Z').options, 'collateral', /QE identity expired/));
  test('now before the TCB info issueDate is a collateral rejection', () =>
    rejects(v.quote, phalaSgx('2025-06-19T10:56:10Z').options, 'collateral', /TCB info is not valid before/));
  test('now past the PCK certificate notAfter is a chain rejection', () => rejects(v.quote, phalaSgx('2030-09-21T00:00:00Z').options, 'chain', /expired/));
  test('without TCB info the quote is rejected at step collateral, naming the FMSPC', () =>
    rejects(v.quote, { now: v.options.now }, 'collateral', /no TCB info given for FMSPC 00a067110000/));
  test('23: a self-signed look-alike root in the PCK chain fails the pinned root comparison', async () => {
    const key = await generateKeyPair('ec-p256');
    const fake = await issueCertificate({
      subject: [['CN', 'Intel SGX Root CA'], ['O', 'Intel Corporation'], ['L', 'Santa Clara'], ['ST', 'CA'], ['C', 'US']],
      subjectKey: key,
      notBefore: new Date('2018-01-01T00:00:00Z'),
      notAfter: new Date('2049-01-01T00:00:00Z'),
      ca: {},
    });
    const pem = new TextDecoder().decode(certData(v.quote)).replace(/\0+$/, '');
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)!;
    const swapped = blocks[0]! + blocks[1]! + toPem('CERTIFICATE', fake.der);
    await rejects(withCertData(v.quote, new TextEncoder().encode(swapped)), v.options, 'chain', /not a pinned trust anchor/);
  });
  test('a PCK chain without its intermediate does not chain to the root', async () => {
    const pem = new TextDecoder().decode(certData(v.quote));
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)!;
    await rejects(withCertData(v.quote, new TextEncoder().encode(blocks[0]! + blocks[2]!)), v.options, 'chain');
  });
});

describe('TDX v4 (Phala) mutations', () => {
  const v = phalaTdx();
  test('13: a flipped REPORTDATA byte', () => rejects(mutate(v.quote, 568), v.options, 'signature', /quote signature/));
  test('a flipped MRTD byte', () => rejects(mutate(v.quote, 184), v.options, 'signature'));
  test('14: a flipped quote signature byte', () => rejects(mutate(v.quote, 636), v.options, 'signature'));
  test('15: a flipped attestation key byte', () => rejects(mutate(v.quote, 700), v.options, 'binding'));
  test('16: a flipped QE report byte (isvsvn)', () => rejects(mutate(v.quote, 1028), v.options, 'signature', /QE report/));
  test('17: a flipped QE auth data byte', () => rejects(mutate(v.quote, 1220), v.options, 'binding'));
  test('18: inner certification data type 5 -> 4', () => rejects(mutate(v.quote, 1252, () => 4), v.options, 'collateral'));
  test('the outer certification data type must be 6', () => rejects(mutate(v.quote, 764, () => 5), v.options, 'parse', /type 6/));
  test('19: sig_data_len 0xFFFFFFFF', () => {
    const q = new Uint8Array(v.quote);
    new DataView(q.buffer).setUint32(632, 0xffffffff, true);
    return rejects(q, v.options, 'parse');
  });
  test('a QE report certification data size that disagrees with the signature data', () => rejects(mutate(v.quote, 766), v.options, 'parse'));
  test('22: now past the PCK CRL nextUpdate (the earliest) is a crl rejection', () =>
    rejects(v.quote, phalaTdx('2025-07-19T10:00:36Z').options, 'crl', /expired/));
  test('24: the PCK CRL of the Processor CA for a Platform CA PCK is rejected', () => {
    const sgxCrls = parseCollateralJson(readText('attestation', 'sgx', 'phala-sgx-v3', 'collateral.json')).collateral.crls!;
    const collateral = { ...v.options.collateral!, crls: sgxCrls };
    return rejects(v.quote, { ...v.options, collateral }, 'crl', /not by the PCK certificate's issuer/);
  });
  test('an SGX TCB info for a TDX quote does not match', () => {
    const collateral = mergeCollateral([{ tcbInfo: phalaSgx().options.collateral!.tcbInfo }, { qeIdentity: v.options.collateral!.qeIdentity }]);
    return rejects(v.quote, { ...v.options, collateral }, 'collateral', /does not apply to a TDX quote/);
  });
  test('the SGX QE identity for a TDX quote is an identity mismatch', () => {
    const collateral = { ...v.options.collateral!, qeIdentity: phalaSgx().options.collateral!.qeIdentity };
    return rejects(v.quote, { ...v.options, collateral }, 'identity', /"QE" does not apply to an TDX quote/);
  });
  test('a v4 quote relabelled v5 is not mis-parsed as v4', () => rejects(mutate(v.quote, 0, () => 5), v.options, 'parse'));
});

describe('swapped certificates', () => {
  test("the Xeon's PCK chain in the i5 quote: FMSPC no longer matches the TCB info", async () => {
    const i5 = icelake('i5');
    const xeon = icelake('xeon');
    await rejects(withCertData(i5.quote, certData(xeon.quote)), i5.options, 'collateral', /FMSPC/);
  });
  test("the Xeon's PCK chain and collateral for the i5 quote: the QE report signature fails", async () => {
    const i5 = icelake('i5');
    const xeon = icelake('xeon');
    await rejects(withCertData(i5.quote, certData(xeon.quote)), xeon.options, 'signature', /QE report signature/);
  });
  test('a look-alike TCB signing certificate from another CA does not chain to the Intel root', async () => {
    const validity = { notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2030-01-01T00:00:00Z') };
    const caKey = await generateKeyPair('ec-p256');
    const ca = await issueCertificate({ subject: [['CN', 'Intel SGX Root CA']], subjectKey: caKey, ca: {}, ...validity });
    const signer = await issueCertificate({
      subject: [['CN', 'Intel SGX TCB Signing']],
      subjectKey: await generateKeyPair('ec-p256'),
      issuer: { certificate: ca, key: caKey },
      ...validity,
    });
    const v = icelake('i5');
    const collateral = { ...v.options.collateral!, certs: [signer] };
    await rejects(v.quote, { ...v.options, collateral }, 'chain');
  });
});
