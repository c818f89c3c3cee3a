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

test('a --hardware source inside Gramine (DCAP) tells Keeps "sgx", and collects from the configured interface', async () => {
  const root = mkdtempSync(join(tmpdir(), 'enarx-fake-gramine-'));
  const saved = { gramine: process.env.ENARX_GRAMINE_ROOT, tsm: process.env.ENARX_TSM_REPORT_ROOT };
  try {
    writeFileSync(join(root, 'attestation_type'), 'dcap\n');
    writeFileSync(join(root, 'user_report_data'), new Uint8Array(64));
    copyFileSync(testdata('attestation', 'sgx', 'phala-sgx-v3', 'quote.bin'), join(root, 'quote'));
    process.env.ENARX_GRAMINE_ROOT = root;
    process.env.ENARX_TSM_REPORT_ROOT = join(root, 'no-configfs-tsm-here');
    const source = await evidenceSource({ kind: 'hardware' });
    assert.equal(source.kind, 'hardware');
    assert.equal(source.keepKind, 'sgx');
    // The interface is the configured one: it was asked (the report data was written) and its
    // recorded quote is refused because it does not carry this report data.
    const reportData = crypto.getRandomValues(new Uint8Array(64));
    await assert.rejects(source.collect(reportData), /report data/i);
  } finally {
    if (saved.gramine === undefined) delete process.env.ENARX_GRAMINE_ROOT;
    else process.env.ENARX_GRAMINE_ROOT = saved.gramine;
    if (saved.tsm === undefined) delete process.env.ENARX_TSM_REPORT_ROOT;
    else process.env.ENARX_TSM_REPORT_ROOT = saved.tsm;
    rmSync(root, { recursive: true, force: true });
  }
});

test('a --hardware source on a machine without an attestation interface tells Keeps nothing, and says why at the challenge', async () => {
  const root = mkdtempSync(join(tmpdir(), 'enarx-no-tee-'));
  const saved = { gramine: process.env.ENARX_GRAMINE_ROOT, tsm: process.env.ENARX_TSM_REPORT_ROOT };
  try {
    process.env.ENARX_GRAMINE_ROOT = join(root, 'attestation');
    process.env.ENARX_TSM_REPORT_ROOT = join(root, 'tsm');
    const source = await evidenceSource({ kind: 'hardware' });
    assert.equal(source.keepKind, null);
    await assert.rejects(source.collect(new Uint8Array(64)), /no attestation interface found/);
  } finally {
    if (saved.gramine === undefined) delete process.env.ENARX_GRAMINE_ROOT;
    else process.env.ENARX_GRAMINE_ROOT = saved.gramine;
    if (saved.tsm === undefined) delete process.env.ENARX_TSM_REPORT_ROOT;
    else process.env.ENARX_TSM_REPORT_ROOT = saved.tsm;
    rmSync(root, { recursive: true, force: true });
  }
});
