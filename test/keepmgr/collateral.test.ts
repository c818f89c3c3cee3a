/**
 * The keep manager's client verifies a --hardware Keep's bare quote or report: with the same
 * collateral settings as `steward serve`, it gets what the evidence lacks from the cache and a
 * (stand-in) AMD KDS / Intel PCS, and verifies again; --no-fetch-collateral keeps it offline.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { libraryVerifier } from '../../src/keepmgr/client.ts';
import * as fx from '../collateral/fixtures.ts';
import { closedUrl, startServer, type TestServer } from '../collateral/server.ts';
import { runEnarx } from '../helpers/cli.ts';
import { testdata } from '../helpers/paths.ts';

const tdxQuote = new Uint8Array(readFileSync(testdata('attestation', 'tdx', 'phala-tdx-v4', 'quote.bin')));
const TDX_NOW = new Date('2025-07-01T00:00:00Z');
const dir = mkdtempSync(join(tmpdir(), 'enarx-keepmgr-collateral-'));
let pcs: TestServer;
before(async () => {
  pcs = await startServer({ ...fx.phalaTdxRoutes(), ...fx.amdRoutes() });
});
after(async () => {
  await pcs.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the keep manager client's verifier obtains missing collateral", () => {
  it('a bare TDX quote verifies once the TCB info, QE identity and CRLs are fetched; without fetching it is missing collateral', async () => {
    const offline = await libraryVerifier({ now: TDX_NOW });
    const bare = await offline('tdx', tdxQuote, []);
    assert.equal(bare.verified, false);
    assert.equal(bare.failure?.code, 'missing-collateral');

    const fetching = await libraryVerifier({ now: TDX_NOW, collateral: { cacheDir: join(dir, 'tdx'), intelBaseUrl: pcs.url, intelCertsBaseUrl: pcs.url, retries: 0 } });
    const result = await fetching('tdx', tdxQuote, []);
    assert.equal(result.verified, true, String(result.failure?.message));
    assert.equal(result.revocationChecked, true);
    assert.notEqual(result.claims.qeStatus, undefined);
  });

  it('an SNP report without its VCEK: the VCEK is fetched by CHIP_ID and REPORTED_TCB, and the policy still applies', async () => {
    const fetching = await libraryVerifier({
      now: new Date('2025-12-06T00:00:00Z'),
      policy: '[snp]\nhash = ["' + '00'.repeat(48) + '"]\n',
      collateral: { cacheDir: join(dir, 'snp'), amdBaseUrl: pcs.url, retries: 0 },
    });
    const result = await fetching('snp', fx.milanV2Report, []);
    assert.equal(result.verified, true, String(result.failure?.message));
    assert.equal(result.policy?.accepted, false, 'verified evidence still meets the policy');
    assert.ok((pcs.hits.get(fx.MILAN_V2_VCEK_PATH) ?? 0) >= 1);
  });

  it('collateral that cannot be had is named in the refusal, with what to run: the Steward\'s messages, for this machine', async () => {
    const unreachable = await closedUrl();
    const fetching = await libraryVerifier({ now: TDX_NOW, collateral: { cacheDir: join(dir, 'none'), intelBaseUrl: unreachable, intelCertsBaseUrl: unreachable, retries: 0, timeoutMs: 2000 } });
    const result = await fetching('tdx', tdxQuote, []);
    assert.equal(result.verified, false);
    assert.equal(result.failure?.step, 'collateral');
    assert.equal(result.failure?.code, 'missing-collateral');
    assert.match(
      String(result.failure?.message),
      /^this client cannot obtain the collateral this TDX evidence needs: cannot fetch the TDX TCB info for FMSPC B0C06F000000: .*; run on this machine .*: enarx platform sgx cache-tcb --fmspc B0C06F000000 --tdx && enarx platform sgx cache-crl$/,
    );
  });

  it('a vendor that does not know the FMSPC (404): the evidence is at fault, and no command is suggested', async () => {
    const fetching = await libraryVerifier({ now: TDX_NOW, collateral: { cacheDir: join(dir, 'unknown'), intelBaseUrl: `${pcs.url}/nowhere`, intelCertsBaseUrl: pcs.url, retries: 0 } });
    const result = await fetching('tdx', tdxQuote, []);
    assert.equal(result.verified, false);
    assert.match(String(result.failure?.message), /^this client cannot obtain the collateral this TDX evidence needs: .*HTTP 404 \(not found: check the product, chip id, TCB or FMSPC\)/);
    assert.doesNotMatch(String(result.failure?.message), /enarx platform/);
  });

  it('evidence that verified keeps its result when its CRLs cannot be had, with a warning', async () => {
    const warnings: string[] = [];
    const unreachable = await closedUrl();
    const fetching = await libraryVerifier({
      now: new Date('2025-12-06T00:00:00Z'),
      collateral: { cacheDir: join(dir, 'nocrl'), amdBaseUrl: unreachable, retries: 0, timeoutMs: 2000 },
      warn: (m) => warnings.push(m),
    });
    const result = await fetching('snp', fx.milanV2Report, [fx.milanV2Vcek]);
    assert.equal(result.verified, true, String(result.failure?.message));
    assert.equal(result.revocationChecked, false);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /^verified without this client's own collateral: cannot fetch the Milan /);
  });

  it("a collateral host that never answers holds a verification no longer than the budget: it finishes, failing with the budget's message", async () => {
    // Per-download timeouts and retries far beyond the budget: only the budget can end the wait.
    const hanging = await startServer(Object.fromEntries(Object.entries(fx.phalaTdxRoutes()).map(([k, r]) => [k, { ...r, delayMs: 3_600_000 }])));
    try {
      const fetching = await libraryVerifier({
        now: TDX_NOW,
        collateral: { cacheDir: join(dir, 'budget'), intelBaseUrl: hanging.url, intelCertsBaseUrl: hanging.url, retries: 3, timeoutMs: 3_600_000 },
        collateralBudgetMs: 300,
      });
      const result = await fetching('tdx', tdxQuote, []);
      assert.equal(result.verified, false);
      assert.equal(result.failure?.step, 'collateral');
      assert.match(String(result.failure?.message), /^this client cannot obtain the collateral this TDX evidence needs: cannot fetch the TDX TCB info .*this client's collateral budget of 0\.3 s ran out \(--collateral-budget\)/);
    } finally {
      await hanging.close();
    }
  });

  it('enarx keep attest takes the collateral flags of steward serve, and refuses bad values before connecting', async () => {
    const help = await runEnarx(['keep', 'attest', '--help']);
    for (const flag of ['--collateral-dir', '--offline-collateral', '--no-fetch-collateral', '--kds-url', '--pcs-url', '--intel-certs-url', '--collateral-timeout', '--collateral-retries', '--collateral-budget']) {
      assert.ok(help.stdout.includes(flag), `${flag} in:\n${help.stdout}`);
    }
    const bad = await runEnarx(['keep', 'attest', '--keepmgr', 'unix:/nonexistent.sock', '--collateral-timeout', 'soon', 'k']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--collateral-timeout must be a non-negative number, got 'soon'/);
    const badBudget = await runEnarx(['keep', 'attest', '--keepmgr', 'unix:/nonexistent.sock', '--collateral-budget', 'forever', 'k']);
    assert.equal(badBudget.code, 2, badBudget.stderr);
    assert.match(badBudget.stderr, /--collateral-budget must be a non-negative number, got 'forever'/);
  });
});
