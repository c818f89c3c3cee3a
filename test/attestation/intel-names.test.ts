// The QVL's naming rules for the Intel PKI: a PCK certificate is issued by the PCK Processor or
// Platform CA directly under the root, and collateral is signed by the TCB Signing certificate the
// root issued. A certificate of another role that chains to the root is not accepted in its place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyIntelQuote } from '../../src/attestation/intel/index.ts';
import { NOW, buildQuote, chainPem, makePki, qeIdentityJson, qeReport, sgxBody, signedCollateral, tcbInfoJson, type TestPki } from './intel-synthetic.ts';

const FMSPC = '30606a000000';
const COMPONENTS = [5, 5, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
const LEVELS = [{ sgx: COMPONENTS, pceSvn: 11, status: 'UpToDate' }];

async function verifyUnder(pki: TestPki) {
  const quote = await buildQuote({ version: 4, tee: 'sgx', body: sgxBody(), qeReport: qeReport(9), pck: pki.pck, chainPem: chainPem(pki) });
  const collateral = await signedCollateral(pki, tcbInfoJson({ id: 'SGX', fmspc: FMSPC, levels: LEVELS }), qeIdentityJson({ levels: [{ isvsvn: 8, status: 'UpToDate' }] }));
  return verifyIntelQuote(quote, { collateral, now: NOW, roots: [pki.anchor] });
}

const tcb = { fmspc: FMSPC, pceId: '0000', components: COMPONENTS, pceSvn: 11 };

test('the PCK Processor CA and Platform CA are both accepted as the PCK issuer', async () => {
  for (const ca of ['Test SGX PCK Platform CA', 'Test SGX PCK Processor CA']) {
    const r = await verifyUnder(await makePki(tcb, { ca }));
    assert.equal(r.failure, null, ca);
    assert.equal(r.verified, true);
  }
});

test('a PCK certificate issued by a CA of another role is rejected at step chain', async () => {
  const r = await verifyUnder(await makePki(tcb, { ca: 'Test SGX Other CA' }));
  assert.equal(r.verified, false);
  assert.equal(r.failure?.step, 'chain');
  assert.match(r.failure!.message, /PCK Processor or Platform CA.*Test SGX Other CA/);
});

test('collateral signed by a root-issued certificate that is not the TCB Signing certificate is rejected at step chain', async () => {
  const r = await verifyUnder(await makePki(tcb, { signer: 'Test SGX Some Service' }));
  assert.equal(r.verified, false);
  assert.equal(r.failure?.step, 'chain');
  assert.match(r.failure!.message, /not an Intel SGX TCB Signing certificate, so it cannot sign the TCB info/);
});
