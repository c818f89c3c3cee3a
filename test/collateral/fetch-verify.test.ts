import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runEnarx } from '../helpers/cli.ts';
import { testdata } from '../helpers/paths.ts';
import * as fx from './fixtures.ts';
import { closedUrl, startServer, type TestServer } from './server.ts';

let server: TestServer;
let cacheDir: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  server = await startServer({ ...fx.amdRoutes(), ...fx.phalaTdxRoutes() });
  cacheDir = mkdtempSync(join(tmpdir(), 'enarx-fetch-'));
  env = { ENARX_KDS_URL: server.url, ENARX_PCS_URL: server.url, ENARX_INTEL_CERTS_URL: server.url, ENARX_COLLATERAL_DIR: cacheDir };
});
after(async () => {
  await server.close();
  rmSync(cacheDir, { recursive: true, force: true });
});

describe('enarx attest verify --fetch', () => {
  it('verifies an SNP report with the VCEK, chain and CRL fetched for it, then from the cache offline', async () => {
    const report = testdata('attestation', 'sev-snp', 'milan-v2-gosevguest', 'report.bin');
    const r = await runEnarx(['attest', 'verify', '--evidence', report, '--fetch', '--now', '2025-12-06T00:00:00Z', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.verified, true);
    assert.equal(out.claims.verification.revocationChecked, true);
    assert.equal(server.hits.get(fx.MILAN_V2_VCEK_PATH), 1);
    const offline = await runEnarx(['attest', 'verify', '--evidence', report, '--offline', '--now', '2025-12-06T00:00:00Z'], {
      env: { ...env, ENARX_KDS_URL: await closedUrl() },
    });
    assert.equal(offline.code, 0, offline.stderr);
    assert.match(offline.stdout, /^AMD SEV-SNP report: VERIFIED/);
  });
  it('verifies a TDX quote with the TCB info, QE identity and CRLs fetched for its FMSPC', async () => {
    const quote = testdata('attestation', 'tdx', 'phala-tdx-v4', 'quote.bin');
    const r = await runEnarx(['attest', 'verify', '--evidence', quote, '--fetch', '--now', '2025-07-01T00:00:00Z', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.verified, true);
    assert.equal(out.tcbStatus, 'UpToDate');
    assert.equal(server.hits.get(`/tdx/certification/v4/tcb?fmspc=${fx.TDX_FMSPC}`), 1);
  });
  it('reports collateral it cannot get as missing (exit 2), in one line', async () => {
    const quote = testdata('attestation', 'sgx', 'phala-sgx-v3', 'quote.bin');
    const r = await runEnarx(['attest', 'verify', '--evidence', quote, '--offline', '--json'], { env });
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^enarx: the SGX TCB info for FMSPC 00A067110000 is not in the cache \(.*\); go online to fetch it \(fill the cache while online first\)\n$/);
  });
  it('--collateral-budget bounds all downloads together: a KDS that never answers ends it with exit 2 and one line naming the flag', async () => {
    const hanging = await startServer(Object.fromEntries(Object.entries(fx.amdRoutes()).map(([path, route]) => [path, { ...route, delayMs: 3_600_000 }])));
    const dir = mkdtempSync(join(tmpdir(), 'enarx-fetch-budget-'));
    try {
      const report = testdata('attestation', 'sev-snp', 'milan-v2-gosevguest', 'report.bin');
      const r = await runEnarx(['attest', 'verify', '--evidence', report, '--fetch', '--collateral-budget', '0.5', '--now', '2025-12-06T00:00:00Z'], {
        env: { ...env, ENARX_KDS_URL: hanging.url, ENARX_COLLATERAL_DIR: dir },
      });
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /this verification's collateral budget of 0\.5 s ran out \(--collateral-budget\)/);
      assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('enarx: ')).length, 1, r.stderr);
      const bad = await runEnarx(['attest', 'verify', '--evidence', report, '--fetch', '--collateral-budget', 'soon'], { env });
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--collateral-budget must be a non-negative number, got 'soon'/);
    } finally {
      await hanging.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
