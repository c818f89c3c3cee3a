import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { evaluatePolicy, parsePolicy, PolicyError } from '../../src/attestation/policy/index.ts';
import { testdata } from '../helpers/paths.ts';
import { type StewardVector, stewardResult } from './steward-vectors.ts';

// The full matrix of shared/testdata/enarx-steward/README.md §5-§7: every policy file against the
// evidence of each real Enarx CSR. PASS, or REJECT with the first reason Enarx's Steward gives.
const NOT_UPTODATE = 'sgx TCB report shows firmware not `UpToDate`';
const SIGNER = 'sgx untrusted enarx signer 7a49a07df0f8e90a6e1d9a63e3c696d9c844f0e3f8739b21daa640f99facc48a';
const AUTHOR = 'snp untrusted enarx author_key_digest';
const advisories = (...ids: string[]) => `sgx TCB report has additional advisories: ${ids.map((n) => `INTEL-SA-${n}`).join(', ')}`;

type Outcome = 'PASS' | string;
const MATRIX: Record<string, Record<StewardVector, Outcome>> = {
  'steward.toml': { 'icelake-i5': 'PASS', 'icelake-xeon': 'PASS', milan: 'PASS' },
  'tests/sgx-bad-signer.toml': { 'icelake-i5': SIGNER, 'icelake-xeon': SIGNER, milan: 'PASS' },
  'tests/sgx-bad-enclave-version.toml': {
    'icelake-i5': 'sgx untrusted enclave security version',
    'icelake-xeon': 'sgx untrusted enclave security version',
    milan: 'PASS',
  },
  'tests/sgx-extra-tcb-advisories.toml': {
    'icelake-i5': advisories('00289', '00381', '00389', '00477', '00614', '00615', '00617', '00657'),
    'icelake-xeon': advisories('00586', '00614', '00615', '00657'),
    milan: 'PASS',
  },
  'tests/snp-bad-author-key.toml': { 'icelake-i5': NOT_UPTODATE, 'icelake-xeon': NOT_UPTODATE, milan: AUTHOR },
  'tests/snp-bad-abi-version.toml': { 'icelake-i5': NOT_UPTODATE, 'icelake-xeon': NOT_UPTODATE, milan: 'snp minimum abi not met' },
  'tests/snp-blacklisted-id-key.toml': { 'icelake-i5': NOT_UPTODATE, 'icelake-xeon': NOT_UPTODATE, milan: AUTHOR },
  'parse/empty.toml': { 'icelake-i5': NOT_UPTODATE, 'icelake-xeon': NOT_UPTODATE, milan: 'PASS' },
  'parse/config-both-sections.toml': {
    'icelake-i5': SIGNER,
    'icelake-xeon': SIGNER,
    milan: AUTHOR,
  },
  'parse/sgx-features-misc-select.toml': { 'icelake-i5': SIGNER, 'icelake-xeon': SIGNER, milan: 'PASS' },
  'parse/snp-flags.toml': { 'icelake-i5': NOT_UPTODATE, 'icelake-xeon': NOT_UPTODATE, milan: AUTHOR },
  'parse/snp-abi-semver.toml': { 'icelake-i5': NOT_UPTODATE, 'icelake-xeon': NOT_UPTODATE, milan: AUTHOR },
  'derived/sgx-hash-to-blacklist.toml': { 'icelake-i5': 'sgx untrusted enarx hash', 'icelake-xeon': 'sgx untrusted enarx hash', milan: 'PASS' },
  'derived/sgx-product-id-1.toml': {
    'icelake-i5': 'sgx untrusted enclave product id 0',
    'icelake-xeon': 'sgx untrusted enclave product id 0',
    milan: 'PASS',
  },
  'derived/sgx-no-advisories.toml': { 'icelake-i5': NOT_UPTODATE, 'icelake-xeon': NOT_UPTODATE, milan: 'PASS' },
  'derived/sgx-advisories-xeon-level-only.toml': {
    'icelake-i5': advisories('00289', '00381', '00389', '00477', '00617'),
    'icelake-xeon': 'PASS',
    milan: 'PASS',
  },
  'derived/snp-abi-1.52.toml': { 'icelake-i5': 'PASS', 'icelake-xeon': 'PASS', milan: 'snp minimum abi not met' },
  'derived/snp-id-key-not-allowed.toml': {
    'icelake-i5': 'PASS',
    'icelake-xeon': 'PASS',
    milan: 'snp untrusted enarx id_key_digest not in list of allowed key digests',
  },
  'derived/snp-id-key-blacklisted.toml': { 'icelake-i5': 'PASS', 'icelake-xeon': 'PASS', milan: 'snp untrusted enarx id_key_digest in blacklist' },
  'derived/snp-hash-to-blacklist.toml': { 'icelake-i5': 'PASS', 'icelake-xeon': 'PASS', milan: 'snp untrusted enarx hash' },
  'derived/snp-platform-tsme.toml': { 'icelake-i5': 'PASS', 'icelake-xeon': 'PASS', milan: 'snp unexpected platform info flags' },
};

const policyText = (file: string) => readFileSync(testdata('enarx-steward', 'policies', file), 'utf8');

describe('enarx-steward policy matrix (README §7)', () => {
  for (const [file, row] of Object.entries(MATRIX)) {
    for (const [vector, expected] of Object.entries(row) as [StewardVector, Outcome][]) {
      it(`${file} × ${vector}: ${expected === 'PASS' ? 'PASS' : `REJECT ${expected}`}`, async () => {
        const outcome = evaluatePolicy(parsePolicy(policyText(file)), await stewardResult(vector));
        if (expected === 'PASS') {
          assert.deepEqual(outcome, { accepted: true, reasons: [] });
        } else {
          assert.equal(outcome.accepted, false);
          assert.equal(outcome.reasons[0], expected);
        }
      });
    }
  }

  it('covers every policy file in the folder', async () => {
    const { readdirSync } = await import('node:fs');
    const all = ['steward.toml'];
    for (const dir of ['tests', 'parse', 'derived']) {
      for (const f of readdirSync(testdata('enarx-steward', 'policies', dir))) all.push(`${dir}/${f}`);
    }
    const parseErrors = new Set(PARSE_ERRORS.map(([f]) => f));
    assert.deepEqual(all.filter((f) => !parseErrors.has(f) && !(f in MATRIX)), []);
  });
});

// Policies that must not parse (README §6, §7), with the key the error must name.
const PARSE_ERRORS: [string, RegExp][] = [
  ['parse/sgx-empty-table.toml', /^\[sgx\]: one of `signer`, `hash`, `hash_blacklist` must be specified$/],
  ['parse/snp-empty-table.toml', /^\[snp\]: one of `signer`, `hash`, `hash_blacklist` must be specified$/],
  ['parse/sgx-signer-too-short.toml', /^\[sgx\] signer\[0\]: expected digest to have length of 32, got 31$/],
  ['parse/snp-signer-too-short.toml', /^\[snp\] signer\[0\]: expected digest to have length of 48, got 47$/],
  ['derived/sgx-hash-and-blacklist-overlap.toml', /^\[sgx\] hash_blacklist: same hash `4046ea25[0-9a-f]+` in both `hash` and `hash_blacklist`$/],
  ['steward.toml.example', /^\[snp\] (signer|hash)\[0\]: expected digest to have length of 48, got 0$/],
];

describe('enarx-steward policies that must not parse (README §6)', () => {
  for (const [file, message] of PARSE_ERRORS) {
    it(file, () => {
      assert.throws(() => parsePolicy(policyText(file)), (err: unknown) => err instanceof PolicyError && message.test(err.message));
    });
  }
});

describe('enarx-steward policies that parse (README §6)', () => {
  it('config-both-sections: flags 0x1b, abi >1.0, features absent', () => {
    const p = parsePolicy(policyText('parse/config-both-sections.toml'));
    assert.equal(p.snp?.policyFlags, 0x1b);
    assert.equal(p.snp?.platformInfoFlags, null);
    assert.equal(p.snp?.abi?.toString(), '>1.0');
    assert.deepEqual(p.snp?.signer, ['e368c18e60842db9325778532dd81594d732078bf01aa91686be40333da639e08733b910bd057bdda50d715968b075ce']);
    assert.deepEqual(p.sgx?.signer, ['2eba0f494f428e799c22d6f12778aebea4dc8d991f9e63fd3cddd57ac6eb5dd9']);
    assert.equal(p.sgx?.features, null);
    assert.equal(p.sgx?.enclaveSecurityVersion, null);
    assert.equal(p.sgx?.enclaveProductId, null);
    assert.equal(p.sgx?.miscSelect, 0);
    assert.deepEqual(p.sgx?.allowedAdvisories, []);
    assert.equal(p.tdx, null);
  });
  it('empty: no sections', () => {
    assert.deepEqual(parsePolicy(''), { snp: null, sgx: null, tdx: null, azure: null });
  });
  it('sgx-features-misc-select: DEBUG|INIT|MODE64BIT, EXINFO', () => {
    const p = parsePolicy(policyText('parse/sgx-features-misc-select.toml'));
    assert.equal(p.sgx?.features, 0x7n);
    assert.equal(p.sgx?.miscSelect, 1);
  });
  it('snp-flags: SME, SingleSocket|Debug|Reserved', () => {
    const p = parsePolicy(policyText('parse/snp-flags.toml'));
    assert.equal(p.snp?.platformInfoFlags, 1);
    assert.equal(p.snp?.policyFlags, 0x1a);
  });
  it('snp-abi-semver: a bare version is a caret requirement', () => {
    assert.equal(parsePolicy(policyText('parse/snp-abi-semver.toml')).snp?.abi?.toString(), '^1.0');
  });
  it('upper-case hex digests are accepted and normalised', () => {
    assert.deepEqual(parsePolicy(policyText('tests/sgx-bad-signer.toml')).sgx?.signer, [
      '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',
    ]);
  });
});
