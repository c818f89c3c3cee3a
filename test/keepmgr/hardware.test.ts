// A --hardware keep manager finds its platform's attestation interface at start, as `enarx run`
// does, and tells its Keeps their evidence kind (for the curve of a Steward key). Gramine's
// /dev/attestation is a set of plain files, so a directory can stand in for it; what it returns
// here is a recorded real quote, which cannot carry a fresh Keep's report data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evidenceSource } from '../../src/keepmgr/keep/evidence.ts';
import { testdata } from '../helpers/paths.ts';

/** Runs `fn` with the hardware interfaces moved to `gramine` and `tsm`, as ENARX_GRAMINE_ROOT / ENARX_TSM_REPORT_ROOT do. */
async function withInterfaces(gramine: string, tsm: string, fn: () => Promise<void>): Promise<void> {
  const saved = { ENARX_GRAMINE_ROOT: process.env.ENARX_GRAMINE_ROOT, ENARX_TSM_REPORT_ROOT: process.env.ENARX_TSM_REPORT_ROOT };
  process.env.ENARX_GRAMINE_ROOT = gramine;
  process.env.ENARX_TSM_REPORT_ROOT = tsm;
  try {
    await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** A directory that stands in for Gramine's /dev/attestation (DCAP), whose quote is `quote`. */
function fakeGramine(quote: Uint8Array): string {
  const root = mkdtempSync(join(tmpdir(), 'enarx-fake-gramine-'));
  writeFileSync(join(root, 'attestation_type'), 'dcap\n');
  writeFileSync(join(root, 'user_report_data'), new Uint8Array(64));
  writeFileSync(join(root, 'quote'), quote);
  return root;
}

test('a --hardware source inside Gramine (DCAP) tells Keeps "sgx", and collects from the configured interface', async () => {
  const root = fakeGramine(readFileSync(testdata('attestation', 'sgx', 'phala-sgx-v3', 'quote.bin')));
  try {
    await withInterfaces(root, join(root, 'no-configfs-tsm-here'), async () => {
      const source = await evidenceSource({ kind: 'hardware' });
      assert.equal(source.kind, 'hardware');
      assert.equal(source.keepKind, 'sgx');
      // The interface is the configured one: it was asked (the report data was written) and its
      // recorded quote is refused because it does not carry this report data.
      const reportData = crypto.getRandomValues(new Uint8Array(64));
      await assert.rejects(source.collect(reportData), /report data/i);
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a --hardware source on a machine without an attestation interface tells Keeps nothing, and says why at the challenge', async () => {
  const root = mkdtempSync(join(tmpdir(), 'enarx-no-tee-'));
  try {
    await withInterfaces(join(root, 'attestation'), join(root, 'tsm'), async () => {
      const source = await evidenceSource({ kind: 'hardware' });
      assert.equal(source.keepKind, null);
      await assert.rejects(source.collect(new Uint8Array(64)), /no attestation interface found/);
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a --hardware source answers its Keeps with their CSR's evidence: the quote and the host's collateral, in Enarx's encoding", async () => {
  const { parseCsr } = await import('../../src/pki/index.ts');
  const { ENARX_CRL_URLS } = await import('../../src/collateral/index.ts');
  const extracted = (f: string) => new Uint8Array(readFileSync(testdata('enarx-steward', 'extracted', 'icelake-i5', f)));
  const root = fakeGramine(extracted('quote.bin'));
  try {
    const asked: unknown[] = [];
    const warnings: string[] = [];
    await withInterfaces(root, join(root, 'no-configfs-tsm-here'), async () => {
      const source = await evidenceSource({ kind: 'hardware' }, {
        warn: (m) => warnings.push(m),
        collateral: async (request) => {
          asked.push(request);
          const crls = [
            { url: ENARX_CRL_URLS.intelRoot, crl: extracted('crl-root.der') },
            { url: ENARX_CRL_URLS.intelPck('processor'), crl: extracted('crl-pck-processor.der') },
            { url: ENARX_CRL_URLS.intelPck('platform'), crl: extracted('crl-pck-platform.der') },
          ];
          const tcb = { certs: [extracted('tcb-signing.der'), new Uint8Array(readFileSync(testdata('enarx-steward', 'roots', 'sgx', 'root.der')))], report: extracted('tcb-info.json') };
          return { collateral: { leaf: null, crls, tcb, qe: null }, missing: ['the QE identity is not needed'] };
        },
      });
      // The report data the recorded quote carries (SHA-256 of the real CSR's key), as a challenge would have it.
      const quote = extracted('quote.bin');
      const got = await source.collect(quote.slice(368, 432));
      assert.deepEqual(got.evidence, quote);
      assert.deepEqual(asked, [{ kind: 'sgx', fmspc: '00706E470000', ca: 'processor' }]);
      assert.deepEqual(got.forKeep, parseCsr(new Uint8Array(readFileSync(testdata('enarx-steward', 'csr', 'icelake.signed.tcb.crl.single.i5.csr')))).evidence[0]!.der);
      assert.deepEqual(warnings, ["collateral for a Keep's CSR: the QE identity is not needed"]);

      // A host without collateral still answers, with the quote alone in Enarx's structure.
      const bare = await evidenceSource({ kind: 'hardware' }, { warn: (m) => warnings.push(m), collateral: async () => Promise.reject(new Error('offline')) });
      const alone = await bare.collect(quote.slice(368, 432));
      const { decodeSgxEvidence } = await import('../../src/pki/index.ts');
      assert.deepEqual(decodeSgxEvidence(alone.forKeep), { quote, crls: [], tcb: { certs: [], report: new Uint8Array(0) } });
      assert.match(warnings.at(-1)!, /^a Keep's CSR goes without collateral \(offline\)/);
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("keepmgr serve's collateral settings reach a --hardware source, and each Keep's CSR has its own download budget", async () => {
  const { startServer } = await import('../collateral/server.ts');
  const { runEnarx } = await import('../helpers/cli.ts');
  const quote = new Uint8Array(readFileSync(testdata('enarx-steward', 'extracted', 'icelake-i5', 'quote.bin')));
  const root = fakeGramine(quote);
  // Answers nothing for an hour (closed with the test): a collateral host that hangs.
  const hanging = await startServer({ '/sgx/certification/v4/tcb?fmspc=00706E470000': { body: '{}', delayMs: 3_600_000 } });
  const unknown = await startServer({});
  try {
    await withInterfaces(root, join(root, 'no-configfs-tsm-here'), async () => {
      // The configured PCS is asked (its 404 names it), not the environment's.
      const warnings: string[] = [];
      const urls = (url: string) => ({ intelBaseUrl: url, intelCertsBaseUrl: url });
      const asked = await evidenceSource({ kind: 'hardware' }, { warn: (m) => warnings.push(m), collateralSettings: { options: { cacheDir: join(root, 'cache-a'), ...urls(unknown.url), retries: 0 } } });
      await asked.collect(quote.slice(368, 432));
      assert.match(warnings.join('\n'), new RegExp(`${unknown.url.replaceAll('.', '\\.')}/sgx/certification/v4/tcb\\?fmspc=00706E470000 answered HTTP 404`));

      // A hanging PCS: every Keep's collection finishes once its budget is spent, saying so once each.
      const budgeted: string[] = [];
      const source = await evidenceSource({ kind: 'hardware' }, {
        warn: (m) => budgeted.push(m),
        collateralSettings: { budgetMs: 300, options: { cacheDir: join(root, 'cache-b'), ...urls(hanging.url), timeoutMs: 3_600_000 } },
      });
      for (let keep = 0; keep < 2; keep++) {
        const got = await source.collect(quote.slice(368, 432));
        const { decodeSgxEvidence } = await import('../../src/pki/index.ts');
        assert.deepEqual(decodeSgxEvidence(got.forKeep).tcb, { certs: [], report: new Uint8Array(0) });
      }
      const said = budgeted.filter((m) => m.includes('budget'));
      assert.equal(said.length, 2, budgeted.join('\n'));
      for (const m of said) assert.match(m, /^collateral for a Keep's CSR: the host's collateral budget of 0\.3 s ran out \(--collateral-budget\): the Keep goes on without the TCB info, /);
    });
    const help = await runEnarx(['keepmgr', 'serve', '--help']);
    for (const flag of ['--collateral-dir', '--offline-collateral', '--no-fetch-collateral', '--pcs-url', '--collateral-timeout', '--collateral-budget']) assert.ok(help.stdout.includes(flag), flag);
    const bad = await runEnarx(['keepmgr', 'serve', '--data-dir', join(root, 'data'), '--collateral-budget', 'soon']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--collateral-budget must be a non-negative number, got 'soon'/);
  } finally {
    await Promise.all([hanging.close(), unknown.close()]);
    rmSync(root, { recursive: true, force: true });
  }
});
