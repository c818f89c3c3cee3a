import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseCertificates } from '../../src/attestation/x509.ts';
import { runEnarx } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'enarx-test-root-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('enarx platform test-root create', () => {
  it('writes a Genoa test root, key 0600, and says how to trust it', async () => {
    const root = join(dir, 'genoa');
    const r = await runEnarx(['platform', 'test-root', 'create', '--dir', root, '--product', 'genoa']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`enarx steward serve --trust-test-root ${join(root, 'ark.pem')}`));
    assert.equal(statSync(join(root, 'vcek.key')).mode & 0o777, 0o600);
    const certs = parseCertificates(new Uint8Array(readFileSync(join(root, 'ark.pem'))));
    assert.deepEqual(certs.map((c) => c.isSelfIssued), [true, false], 'the ARK, then the ASK');
    assert.equal(JSON.parse(readFileSync(join(root, 'test-root.json'), 'utf8')).product, 'genoa');
  });

  it('refuses to overwrite a test root without --force, and --json prints one document', async () => {
    const root = join(dir, 'again');
    const first = await runEnarx(['platform', 'test-root', 'create', '--dir', root, '--json']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(JSON.parse(first.stdout).trust, join(root, 'ark.pem'));
    const key = readFileSync(join(root, 'vcek.key'), 'utf8');
    const second = await runEnarx(['platform', 'test-root', 'create', '--dir', root]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /already holds a test root.*--force/);
    assert.equal(readFileSync(join(root, 'vcek.key'), 'utf8'), key, 'nothing was replaced');
    const forced = await runEnarx(['platform', 'test-root', 'create', '--dir', root, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(readFileSync(join(root, 'vcek.key'), 'utf8'), key);
  });

  it('an unknown product is a usage error', async () => {
    const r = await runEnarx(['platform', 'test-root', 'create', '--dir', join(dir, 'x'), '--product', 'naples']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown product "naples"/);
  });
});
