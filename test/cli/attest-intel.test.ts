// `enarx attest verify` on Intel evidence with raw Intel PCS collateral, as a user runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runEnarx } from '../helpers/cli.ts';
import { testdata } from '../helpers/paths.ts';

const M = (f: string) => testdata('attestation', 'sgx', 'mobilecoin-sgx-v3', f);
const PCS = ['--collateral', M('tcb_info_fmspc_00906ED50000.json'), '--collateral', M('qe_identity.json'), '--cert', M('tcb_signing_cert.pem')];
const KEYS = ['kind', 'verified', 'tcbStatus', 'advisories', 'debug', 'measurement', 'reportData', 'claims', 'failure', 'policy'];

test('raw PCS TCB info + QE identity + signing cert + CRLs: the expired PCK CRL rejects (exit 1, step crl)', async () => {
  const r = await runEnarx(['attest', 'verify', '--evidence', M('quote.bin'), ...PCS, '--crl', M('root_ca_crl.der'), '--crl', M('pck_crl_processor.der'), '--now', '2023-07-20T00:00:00Z', '--json']);
  assert.equal(r.code, 1, r.stderr);
  const out = JSON.parse(r.stdout);
  for (const k of KEYS) assert.ok(k in out, `missing key ${k}`);
  assert.equal(out.verified, false);
  assert.equal(out.failure.step, 'crl');
  assert.equal(out.measurement, '840d61b0585dc8b4dc90f53af293c760fda06bee75978a6a86263ffb296423f4');
});

test('the same without the stale PCK CRL verifies (exit 0) as SWHardeningNeeded, and says what was not checked', async () => {
  const r = await runEnarx(['attest', 'verify', '--evidence', M('quote.bin'), ...PCS, '--crl', M('root_ca_crl.der'), '--now', '2023-07-20T00:00:00Z', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.verified, true);
  assert.equal(out.tcbStatus, 'SWHardeningNeeded');
  assert.deepEqual(out.advisories, ['INTEL-SA-00334', 'INTEL-SA-00615']);
  assert.equal(out.claims.fmspc, '00906ed50000');
  assert.match(r.stderr, /no PCK CRL given/);
});

test('a quote without its TCB info is missing collateral (exit 2) and the message names the FMSPC', async () => {
  const r = await runEnarx(['attest', 'verify', '--evidence', M('quote.bin'), '--now', '2023-07-20T00:00:00Z']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /00906ed50000/);
});

test('human-readable output by default', async () => {
  const r = await runEnarx(['attest', 'verify', '--evidence', M('quote.bin'), ...PCS, '--crl', M('root_ca_crl.der'), '--now', '2023-07-20T00:00:00Z']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Intel SGX quote: VERIFIED/);
  assert.match(r.stdout, /SWHardeningNeeded/);
});
