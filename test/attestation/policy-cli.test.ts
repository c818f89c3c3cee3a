import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runEnarx } from '../helpers/cli.ts';
import { testdata } from '../helpers/paths.ts';

const x = (...p: string[]) => testdata('enarx-steward', 'extracted', ...p);
const policy = (f: string) => testdata('enarx-steward', 'policies', f);
const NOW = ['--now', '2023-02-01T00:00:00Z'];
const MILAN = ['attest', 'verify', '--evidence', x('milan', 'report.bin'), '--cert', x('milan', 'vcek.der'), '--crl', x('milan', 'crl-milan.der'), ...NOW];
const I5 = [
  'attest', 'verify', '--evidence', x('icelake-i5', 'quote.bin'), '--collateral', x('icelake-i5', 'tcb-info.json'),
  '--cert', x('icelake-i5', 'tcb-signing.der'), '--crl', x('icelake-i5', 'crl-root.der'), '--crl', x('icelake-i5', 'crl-pck-processor.der'), ...NOW,
];
const tmp = mkdtempSync(join(tmpdir(), 'enarx-policy-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('enarx attest verify --policy', () => {
  it('fills policy and exits 0 when the policy accepts', async () => {
    const r = await runEnarx([...MILAN, '--policy', policy('steward.toml'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.verified, true);
    assert.deepEqual(out.policy, { accepted: true, reasons: [] });
  });
  it('exits 1 with the reasons when it refuses verified evidence', async () => {
    const r = await runEnarx([...I5, '--policy', policy('tests/sgx-bad-enclave-version.toml'), '--json']);
    assert.equal(r.code, 1, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.verified, true);
    assert.deepEqual(out.policy, {
      accepted: false,
      reasons: ['sgx untrusted enclave security version', 'sgx TCB report shows firmware not `UpToDate`'],
    });
    const human = await runEnarx([...I5, '--policy', policy('derived/sgx-no-advisories.toml')]);
    assert.equal(human.code, 1);
    assert.match(human.stdout, /^policy: REFUSED\n {2}- sgx TCB report shows firmware not `UpToDate`\n$/m);
  });
  it('never accepts evidence that did not verify', async () => {
    const r = await runEnarx(['attest', 'verify', '--evidence', x('milan', 'report.bin'), '--cert', x('milan', 'vcek.der'), '--now', '2031-01-01T00:00:00Z', '--policy', policy('parse/empty.toml'), '--json']);
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout);
    assert.equal(out.verified, false);
    assert.equal(out.policy.accepted, false);
    assert.match(out.policy.reasons[0], /^the evidence did not verify \(chain: /);
  });
  it('refuses a bad policy file before verifying, with exit 2 and the key named', async () => {
    const bad = join(tmp, 'bad.toml');
    writeFileSync(bad, '[snp]\nsigner = []\nmeasurement = "x"\n');
    const r = await runEnarx([...MILAN, '--policy', bad, '--json']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^enarx: policy .*bad\.toml: \[snp\] unknown key 'measurement'/);
    const missing = await runEnarx([...MILAN, '--policy', join(tmp, 'nope.toml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read policy file/);
  });
});
