// A --hardware keep manager finds its platform's attestation interface at start, as `enarx run`
// does, and tells its Keeps their evidence kind (for the curve of a Steward key). Gramine's
// /dev/attestation is a set of plain files, so a directory can stand in for it; what it returns
// here is a recorded real quote, which cannot carry a fresh Keep's report data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

test('a --hardware source inside Gramine (DCAP) tells Keeps "sgx", and collects from the configured interface', async () => {
  const root = mkdtempSync(join(tmpdir(), 'enarx-fake-gramine-'));
  try {
    writeFileSync(join(root, 'attestation_type'), 'dcap\n');
    writeFileSync(join(root, 'user_report_data'), new Uint8Array(64));
    copyFileSync(testdata('attestation', 'sgx', 'phala-sgx-v3', 'quote.bin'), join(root, 'quote'));
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
  const { readFileSync } = await import('node:fs');
  const extracted = (f: string) => new Uint8Array(readFileSync(testdata('enarx-steward', 'extracted', 'icelake-i5', f)));
  const root = mkdtempSync(join(tmpdir(), 'enarx-fake-gramine-'));
  try {
    writeFileSync(join(root, 'attestation_type'), 'dcap\n');
    writeFileSync(join(root, 'user_report_data'), new Uint8Array(64));
    copyFileSync(testdata('enarx-steward', 'extracted', 'icelake-i5', 'quote.bin'), join(root, 'quote'));
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
