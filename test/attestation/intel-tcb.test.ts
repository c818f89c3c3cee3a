// TCB evaluation, revocation and trust-anchor behaviour on evidence made under a local test root.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyIntelQuote, verifyTdxQuote } from '../../src/attestation/intel/index.ts';
import type { VerificationResult } from '../../src/attestation/types.ts';
import type { Crl } from '../../src/attestation/x509.ts';
import {
  NOW,
  buildQuote,
  chainPem,
  makePki,
  qeIdentityJson,
  qeReport,
  sgxBody,
  signedCollateral,
  tcbInfoJson,
  tdBody,
  type LevelSpec,
  type TestPki,
} from './intel-synthetic.ts';

const FMSPC = '30606a000000';
const PCK_COMPONENTS = [5, 5, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
const pad = (xs: number[]) => [...xs, ...Array(16 - xs.length).fill(0)];

let pki: TestPki;
let crls: Crl[];
before(async () => {
  pki = await makePki({ fmspc: FMSPC, pceId: '0000', components: PCK_COMPONENTS, pceSvn: 11 });
  crls = [await pki.crl('root'), await pki.crl('ca')];
});

const SGX_LEVELS: LevelSpec[] = [
  { sgx: pad([6, 6, 2, 2, 4, 1, 0, 3]), pceSvn: 11, status: 'UpToDate', date: '2025-06-01T00:00:00Z' },
  { sgx: pad([5, 5, 2, 2, 4, 1, 0, 3]), pceSvn: 11, status: 'SWHardeningNeeded', date: '2025-03-01T00:00:00Z', advisories: ['INTEL-SA-00002'] },
  { sgx: pad([5, 5, 2, 2, 4, 1, 0, 3]), pceSvn: 10, status: 'OutOfDate', date: '2024-01-01T00:00:00Z', advisories: ['INTEL-SA-00001', 'INTEL-SA-00002'] },
];
const QE_LEVELS = [
  { isvsvn: 8, status: 'UpToDate' },
  { isvsvn: 5, status: 'OutOfDate', advisories: ['INTEL-SA-00100'] },
];

async function sgx(o: {
  levels?: LevelSpec[];
  qeSvn?: number;
  qeLevels?: typeof QE_LEVELS;
  crls?: Crl[];
  roots?: 'test' | 'pinned';
  attributes?: string;
  flip?: number;
}): Promise<VerificationResult> {
  const quote = await buildQuote({
    version: 3,
    tee: 'sgx',
    body: sgxBody({ attributes: o.attributes }),
    qeReport: qeReport(o.qeSvn ?? 9),
    pck: pki.pck,
    chainPem: chainPem(pki),
  });
  const collateral = await signedCollateral(
    pki,
    tcbInfoJson({ id: 'SGX', fmspc: FMSPC, levels: o.levels ?? SGX_LEVELS }),
    qeIdentityJson({ levels: o.qeLevels ?? QE_LEVELS }),
    o.crls ?? crls,
  );
  if (o.flip !== undefined) quote[o.flip]! ^= 1;
  return verifyIntelQuote(quote, { collateral, now: NOW, roots: o.roots === 'pinned' ? undefined : [pki.anchor] });
}

describe('under a test root the tests trust explicitly', () => {
  test('a consistent quote verifies, anchored at the test root, with revocation checked', async () => {
    const r = await sgx({});
    assert.equal(r.failure, null);
    assert.equal(r.verified, true);
    assert.equal(r.trustAnchor, 'test:intel');
    assert.equal(r.tcbStatus, 'SWHardeningNeeded');
    assert.deepEqual(r.advisories, ['INTEL-SA-00002']);
    assert.equal(r.revocationChecked, true);
    assert.equal((r.claims as any).tcbDate, '2025-03-01T00:00:00Z');
  });

  test('the same evidence is rejected at step chain when only the pinned Intel root is trusted', async () => {
    const r = await sgx({ roots: 'pinned' });
    assert.equal(r.verified, false);
    assert.equal(r.failure?.step, 'chain');
    assert.match(r.failure!.message, /not a pinned trust anchor/);
  });

  test('a PCK certificate listed on the PCK CRL is rejected at step crl', async () => {
    const r = await sgx({ crls: [await pki.crl('root'), await pki.crl('ca', [pki.pck.certificate])] });
    assert.equal(r.failure?.step, 'crl');
    assert.match(r.failure!.message, /revoked/);
  });

  test('a PCK CA revoked by the root CA CRL is rejected at step crl', async () => {
    const r = await sgx({ crls: [await pki.crl('root', [pki.ca.certificate]), await pki.crl('ca')] });
    assert.equal(r.failure?.step, 'crl');
    assert.match(r.failure!.message, /PCK Platform CA.*revoked/);
  });

  test('a TCB signing certificate revoked by the root CA CRL is rejected at step crl', async () => {
    const r = await sgx({ crls: [await pki.crl('root', [pki.tcbSigner.certificate]), await pki.crl('ca')] });
    assert.equal(r.failure?.step, 'crl');
    assert.match(r.failure!.message, /TCB Signing.*revoked/);
  });

  test('a CRL outside its update window is rejected at step crl', async () => {
    const stale = await pki.crl('ca', [], { thisUpdate: new Date('2025-01-01T00:00:00Z'), nextUpdate: new Date('2025-02-01T00:00:00Z') });
    const r = await sgx({ crls: [await pki.crl('root'), stale] });
    assert.equal(r.failure?.step, 'crl');
    assert.match(r.failure!.message, /expired/);
  });

  test('without CRLs the quote verifies and says revocation was not checked', async () => {
    const r = await sgx({ crls: [] });
    assert.equal(r.verified, true);
    assert.equal(r.revocationChecked, false);
    assert.equal(r.warnings.filter((w) => /CRL/.test(w)).length, 2);
  });
});

describe('quote versions', () => {
  for (const version of [4, 5] as const) {
    test(`an SGX quote v${version} (${version === 5 ? 'body type 1' : 'TEE type 0'}) verifies`, async () => {
      const quote = await buildQuote({ version, tee: 'sgx', body: sgxBody({ mrenclave: '5a'.repeat(32) }), qeReport: qeReport(9), pck: pki.pck, chainPem: chainPem(pki) });
      const collateral = await signedCollateral(pki, tcbInfoJson({ id: 'SGX', fmspc: FMSPC, levels: SGX_LEVELS }), qeIdentityJson({ levels: QE_LEVELS }), crls);
      const r = await verifyIntelQuote(quote, { collateral, now: NOW, roots: [pki.anchor] });
      assert.equal(r.failure, null);
      assert.equal(r.kind, 'sgx');
      assert.equal(r.measurement, '5a'.repeat(32));
      assert.equal((r.claims as any).quoteVersion, version);
      assert.equal(r.tcbStatus, 'SWHardeningNeeded');
    });
  }

  test('a TDX quote v5 with a TD report 1.0 body (type 2) verifies', async () => {
    const quote = await buildQuote({
      version: 5,
      tee: 'tdx',
      body: tdBody({ teeTcbSvn: '05010300000000000000000000000000' }),
      qeReport: qeReport(9, 2),
      pck: pki.pck,
      chainPem: chainPem(pki),
    });
    const info = tcbInfoJson({
      id: 'TDX',
      fmspc: FMSPC,
      levels: [{ sgx: pad([5, 5, 2, 2, 4, 1, 0, 3]), pceSvn: 11, tdx: pad([4, 1, 3]), status: 'UpToDate' }],
      tdxModuleIdentities: [{ id: 'TDX_01', levels: [{ isvsvn: 5, status: 'UpToDate' }] }],
    });
    const collateral = await signedCollateral(pki, info, qeIdentityJson({ id: 'TD_QE', isvProdId: 2, levels: QE_LEVELS }), crls);
    const r = await verifyTdxQuote(quote, { collateral, now: NOW, roots: [pki.anchor] });
    assert.equal(r.failure, null);
    assert.equal(r.tcbStatus, 'UpToDate');
    assert.equal((r.claims as any).bodyType, 'td10');
    assert.equal(r.measurement, '33'.repeat(48));
  });
});

describe('TCB level evaluation (Intel QVL semantics)', () => {
  test('QE OutOfDate turns SWHardeningNeeded into OutOfDate and unites the advisories', async () => {
    const r = await sgx({ qeSvn: 6 });
    assert.equal(r.tcbStatus, 'OutOfDate');
    assert.deepEqual(r.advisories, ['INTEL-SA-00002', 'INTEL-SA-00100']);
    assert.equal((r.claims as any).qeStatus, 'OutOfDate');
    assert.equal(r.verified, true, 'OutOfDate is a verdict for policy, not a verification failure');
  });

  test('QE OutOfDate turns ConfigurationNeeded into OutOfDateConfigurationNeeded', async () => {
    const levels = [{ ...SGX_LEVELS[1]!, status: 'ConfigurationNeeded' }];
    const r = await sgx({ qeSvn: 6, levels });
    assert.equal(r.tcbStatus, 'OutOfDateConfigurationNeeded');
  });

  test('a Revoked QE level makes the quote Revoked and unverified', async () => {
    const r = await sgx({ qeSvn: 6, qeLevels: [QE_LEVELS[0]!, { isvsvn: 5, status: 'Revoked' }] });
    assert.equal(r.tcbStatus, 'Revoked');
    assert.equal(r.verified, false);
    assert.equal(r.failure?.step, 'tcb');
  });

  test('a Revoked platform level makes the quote unverified', async () => {
    const r = await sgx({ levels: [{ ...SGX_LEVELS[1]!, status: 'Revoked' }] });
    assert.equal(r.tcbStatus, 'Revoked');
    assert.equal(r.verified, false);
  });

  test('a QE ISVSVN below every QE level is rejected at step tcb', async () => {
    const r = await sgx({ qeSvn: 4 });
    assert.equal(r.failure?.step, 'tcb');
    assert.equal(r.tcbStatus, null);
  });

  test('as in the QVL, a bad quote signature is reported before an unsupported QE ISVSVN', async () => {
    const r = await sgx({ qeSvn: 4, flip: 436 });
    assert.equal(r.failure?.step, 'signature');
  });

  test('no platform level matching is rejected at step tcb, never a fallback to the lowest level', async () => {
    const r = await sgx({ levels: [SGX_LEVELS[0]!] });
    assert.equal(r.failure?.step, 'tcb');
    assert.match(r.failure!.message, /TCB not supported/);
  });

  test('levels are matched highest first whatever order the JSON lists them in', async () => {
    const r = await sgx({ levels: [SGX_LEVELS[2]!, SGX_LEVELS[1]!, SGX_LEVELS[0]!] });
    assert.equal(r.tcbStatus, 'SWHardeningNeeded');
  });

  test('a lower PCESVN than the level requires moves to the next level', async () => {
    const r = await sgx({ levels: [{ ...SGX_LEVELS[1]!, pceSvn: 12 }, SGX_LEVELS[2]!] });
    assert.equal(r.tcbStatus, 'OutOfDate');
    assert.deepEqual(r.advisories, ['INTEL-SA-00001', 'INTEL-SA-00002']);
  });

  test('a debug enclave verifies but reports debug (policy decides)', async () => {
    const r = await sgx({ attributes: '0700000000000000e700000000000000' });
    assert.equal(r.verified, true);
    assert.equal(r.debug, true);
    assert.equal((r.claims as any).attributes.debug, true);
  });
});

describe('TDX: module identity, TDX components and TD 1.5 relaunch', () => {
  const TDX_LEVELS: LevelSpec[] = [
    { sgx: pad([5, 5, 2, 2, 4, 1, 0, 3]), pceSvn: 11, tdx: pad([4, 1, 3]), status: 'UpToDate' },
    { sgx: pad([5, 5, 2, 2, 4, 1, 0, 3]), pceSvn: 11, tdx: pad([2, 0, 2]), status: 'OutOfDate', advisories: ['INTEL-SA-00300'] },
  ];
  const MODULES = [
    {
      id: 'TDX_01',
      levels: [
        { isvsvn: 5, status: 'UpToDate' },
        { isvsvn: 3, status: 'OutOfDate', advisories: ['INTEL-SA-00400'] },
      ],
    },
  ];

  async function tdx(o: { version?: 4 | 5; teeTcbSvn: string; teeTcbSvn2?: string; mrSignerSeam?: string; modules?: typeof MODULES; qeId?: string; flip?: number }) {
    const quote = await buildQuote({
      version: o.version ?? 4,
      tee: 'tdx',
      body: tdBody({ teeTcbSvn: o.teeTcbSvn, teeTcbSvn2: o.teeTcbSvn2, mrSignerSeam: o.mrSignerSeam }),
      qeReport: qeReport(9, 2),
      pck: pki.pck,
      chainPem: chainPem(pki),
    });
    const collateral = await signedCollateral(
      pki,
      tcbInfoJson({ id: 'TDX', fmspc: FMSPC, levels: TDX_LEVELS, tdxModuleIdentities: o.modules ?? MODULES }),
      qeIdentityJson({ id: o.qeId ?? 'TD_QE', isvProdId: 2, levels: QE_LEVELS }),
      crls,
    );
    if (o.flip !== undefined) quote[o.flip]! ^= 1;
    return verifyTdxQuote(quote, { collateral, now: NOW, roots: [pki.anchor] });
  }

  test('module OutOfDate turns an UpToDate TDX level into OutOfDate, with the module advisories', async () => {
    const r = await tdx({ teeTcbSvn: '04010300000000000000000000000000' });
    assert.equal(r.failure, null);
    assert.equal(r.tcbStatus, 'OutOfDate');
    assert.deepEqual(r.advisories, ['INTEL-SA-00400']);
    assert.deepEqual((r.claims as any).tdxModule, {
      id: 'TDX_01',
      majorVersion: 1,
      isvSvn: 4,
      status: 'OutOfDate',
      tcbDate: '2025-01-01T00:00:00Z',
      advisories: ['INTEL-SA-00400'],
    });
  });

  test('TDX components are compared from index 2 when the module major version is non-zero', async () => {
    const r = await tdx({ teeTcbSvn: '05010200000000000000000000000000' });
    assert.equal(r.tcbStatus, 'OutOfDate', 'component 2 is 2 < 3: the second level');
    assert.deepEqual(r.advisories, ['INTEL-SA-00300']);
  });

  test('a module major version 0 compares every TDX component and skips the module identity', async () => {
    const r = await tdx({ teeTcbSvn: '04000300000000000000000000000000' });
    assert.equal(r.tcbStatus, 'OutOfDate', 'component 1 is 0 < 1: the second level');
    assert.equal((r.claims as any).tdxModule.id, null);
  });

  test('a module version without an identity in the TCB info is rejected at step identity', async () => {
    const r = await tdx({ teeTcbSvn: '05020300000000000000000000000000' });
    assert.equal(r.failure?.step, 'identity');
    assert.match(r.failure!.message, /TDX_02/);
  });

  test('an MRSIGNERSEAM other than the module identity is rejected at step identity', async () => {
    const r = await tdx({ teeTcbSvn: '05010300000000000000000000000000', mrSignerSeam: '01'.repeat(48) });
    assert.equal(r.failure?.step, 'identity');
    assert.match(r.failure!.message, /MRSIGNERSEAM/);
  });

  test('as in the QVL, the module identity is checked before the QE report signature', async () => {
    const r = await tdx({ teeTcbSvn: '05010300000000000000000000000000', mrSignerSeam: '01'.repeat(48), flip: 1154 });
    assert.equal(r.failure?.step, 'identity');
    const ok = await tdx({ teeTcbSvn: '05010300000000000000000000000000', flip: 1154 });
    assert.equal(ok.failure?.step, 'signature');
  });

  test('an SGX QE identity is not accepted for a TDX quote', async () => {
    const r = await tdx({ teeTcbSvn: '05010300000000000000000000000000', qeId: 'QE' });
    assert.equal(r.failure?.step, 'identity');
  });

  test('TD 1.5: an out-of-date module with an up-to-date TEE_TCB_SVN2 only needs a relaunch', async () => {
    const r = await tdx({ version: 5, teeTcbSvn: '04010300000000000000000000000000', teeTcbSvn2: '05010300000000000000000000000000' });
    assert.equal(r.failure, null);
    assert.equal(r.tcbStatus, 'TDRelaunchAdvised');
    assert.equal((r.claims as any).bodyType, 'td15');
  });

  test('TD 1.5 without an up-to-date TEE_TCB_SVN2 stays OutOfDate', async () => {
    const r = await tdx({ version: 5, teeTcbSvn: '04010300000000000000000000000000', teeTcbSvn2: '04010300000000000000000000000000' });
    assert.equal(r.tcbStatus, 'OutOfDate');
  });
});
