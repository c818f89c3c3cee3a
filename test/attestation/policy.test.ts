import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { evaluatePolicy, parsePolicy, PolicyError, VersionReq } from '../../src/attestation/policy/index.ts';
import type { VerificationResult } from '../../src/attestation/types.ts';
import { testdata } from '../helpers/paths.ts';
import { stewardResult } from './steward-vectors.ts';

const D32 = 'ab'.repeat(32);
const D48 = 'cd'.repeat(48);

function rejects(text: string, message: RegExp): void {
  assert.throws(() => parsePolicy(text), (err: unknown) => err instanceof PolicyError && message.test(err.message) && !err.message.includes('\n'));
}

describe('policy parsing: bad input', () => {
  it('names an unknown key and its section', () => {
    rejects(`[sgx]\nsigner = ["${D32}"]\nsigners = []\n`, /^\[sgx\] unknown key 'signers'$/);
    rejects(`[snp]\nsigner = ["${D48}"]\nmin_tcb = { bootloader = 1, ucode = 2 }\n`, /^\[snp\] min_tcb: unknown key 'ucode'/);
  });
  it('names an unknown section', () => {
    rejects(`[kvm]\nx = 1\n`, /^unknown section or key 'kvm'/);
    rejects(`debug = true\n`, /^unknown section or key 'debug'/);
  });
  it('reports TOML syntax errors on one line with a position', () => {
    rejects(`[sgx\nsigner = 1`, /^invalid TOML at line 1, column \d+: /);
  });
  it('checks types, ranges and names', () => {
    rejects(`[sgx]\nsigner = "${D32}"\n`, /^\[sgx\] signer: expected an array of hex strings$/);
    rejects(`[sgx]\nsigner = [1]\n`, /^\[sgx\] signer\[0\]: expected a hex string$/);
    rejects(`[sgx]\nsigner = ["zz${D32.slice(2)}"]\n`, /^\[sgx\] signer\[0\]: invalid hex/);
    rejects(`[sgx]\nsigner = ["${D32}"]\nenclave_security_version = 65536\n`, /enclave_security_version: expected an integer from 0 to 65535$/);
    rejects(`[sgx]\nsigner = ["${D32}"]\nenclave_product_id = -1\n`, /enclave_product_id: expected an integer/);
    rejects(`[sgx]\nsigner = ["${D32}"]\nfeatures = ["Debug", "Turbo"]\n`, /features: unknown value "Turbo" \(expected one of/);
    rejects(`[sgx]\nsigner = ["${D32}"]\nmisc_select = "EXINFO"\n`, /misc_select: expected an array of names/);
    rejects(`[sgx]\nsigner = ["${D32}"]\ntcb_status = ["Revoked"]\n`, /tcb_status: a Revoked TCB can never be accepted$/);
    rejects(`[sgx]\nsigner = ["${D32}"]\ntcb_status = ["Fine"]\n`, /tcb_status: unknown TCB status 'Fine'/);
    rejects(`[sgx]\nsigner = ["${D32}"]\ndebug = "yes"\n`, /^\[sgx\] debug: expected true or false$/);
    rejects(`[snp]\nsigner = ["${D48}"]\nplatform_info_flags = "SMT"\n`, /platform_info_flags: unknown value "SMT"/);
    rejects(`[snp]\nsigner = ["${D48}"]\npolicy_flags = ["MigrateMA", "Reserved", "X"]\n`, /policy_flags: unknown value "X"/);
    rejects(`[snp]\nsigner = ["${D48}"]\nabi = ">=1.x.3"\n`, /^\[snp\] abi: invalid version requirement/);
    rejects(`[snp]\nsigner = ["${D48}"]\nabi = ""\n`, /^\[snp\] abi: empty version requirement$/);
    rejects(`[snp]\nsigner = ["${D48}"]\nvmpl = [4]\n`, /vmpl\[0\]: expected an integer from 0 to 3$/);
    rejects(`[snp]\nsigner = ["${D32}"]\n`, /signer\[0\]: expected digest to have length of 48, got 32$/);
    rejects(`[tdx]\nmr_seam = ["${D48}"]\n`, /^\[tdx\]: one of `hash`, `hash_blacklist`, `rtmr0`/);
    rejects(`[tdx]\nhash = ["${D48}"]\nmin_tee_tcb_svn = "0102"\n`, /min_tee_tcb_svn: expected digest to have length of 16, got 2$/);
    rejects(`sgx = 1\n`, /^'sgx' must be a table/);
  });
  it('never throws anything but a PolicyError on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          parsePolicy(text);
        } catch (err) {
          if (!(err instanceof PolicyError)) throw err;
        }
      }),
      { numRuns: 500 },
    );
  });
  it('never throws anything but a PolicyError on arbitrary values of known keys', () => {
    const key = fc.constantFrom('signer', 'hash', 'features', 'abi', 'policy_flags', 'min_tcb', 'vmpl', 'tcb_status', 'debug', 'platform_info_flags');
    const value = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.array(fc.oneof(fc.string(), fc.integer())), fc.constant('{ a = 1 }'));
    fc.assert(
      fc.property(fc.constantFrom('snp', 'sgx', 'tdx'), key, value, (section, k, v) => {
        const literal = typeof v === 'string' && v.startsWith('{') ? v : JSON.stringify(v);
        try {
          parsePolicy(`[${section}]\n${k} = ${literal}\n`);
        } catch (err) {
          if (!(err instanceof PolicyError)) throw err;
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('VersionReq (Rust semver semantics)', () => {
  const v = (s: string) => {
    const [major, minor, patch] = s.split('.').map(Number);
    return { major: major!, minor: minor!, patch: patch! };
  };
  const cases: [string, string, boolean][] = [
    ['>=1.51', '1.51.0', true],
    ['>=1.51', '1.50.0', false],
    ['>=1.52', '1.51.0', false],
    ['>254.0', '1.51.0', false],
    ['>1', '1.99.0', false],
    ['>1', '2.0.0', true],
    ['>1.0', '1.1.0', true],
    ['1.0', '1.51.0', true],
    ['1.0', '2.0.0', false],
    ['^0.2', '0.2.9', true],
    ['^0.2', '0.3.0', false],
    ['^0.0.3', '0.0.4', false],
    ['~1.2', '1.2.7', true],
    ['~1.2', '1.3.0', false],
    ['<=1.2', '1.2.9', true],
    ['<1.2', '1.2.0', false],
    ['=1.2', '1.2.5', true],
    ['1.*', '1.9.0', true],
    ['1.*', '2.0.0', false],
    ['*', '0.0.0', true],
    ['>=1.0, <2', '1.5.0', true],
    ['>=1.0, <2', '2.0.0', false],
  ];
  for (const [req, version, expected] of cases) {
    it(`${req} ${expected ? 'matches' : 'does not match'} ${version}`, () => {
      assert.equal(VersionReq.parse(req).matches(v(version)), expected);
    });
  }
  it('displays like Rust', () => {
    assert.equal(VersionReq.parse('1.0').toString(), '^1.0');
    assert.equal(VersionReq.parse('>=1.51').toString(), '>=1.51');
    assert.equal(VersionReq.parse('1.*').toString(), '1.*');
  });
});

function withClaims(base: VerificationResult, patch: Partial<VerificationResult>, claims: Record<string, unknown> = {}): VerificationResult {
  return { ...base, ...patch, claims: { ...base.claims, ...claims } };
}

describe('policy evaluation beyond Enarx', async () => {
  const milan = await stewardResult('milan');
  const i5 = await stewardResult('icelake-i5');
  const snpSigner = `signer = ["${(milan.claims.authorKeyDigest as string).toUpperCase()}"]`;

  it('never accepts evidence that did not verify', () => {
    const failed = withClaims(milan, { verified: false, failure: { step: 'signature', message: 'bad report signature' } });
    assert.deepEqual(evaluatePolicy(parsePolicy(''), failed), {
      accepted: false,
      reasons: ['the evidence did not verify (signature: bad report signature)'],
    });
  });
  it('refuses debug guests unless debug = true, with or without a section', () => {
    const dbg = withClaims(milan, { debug: true });
    assert.match(evaluatePolicy(parsePolicy(''), dbg).reasons[0]!, /^snp guest policy permits debugging/);
    assert.match(evaluatePolicy(parsePolicy(`[snp]\n${snpSigner}\n`), dbg).reasons[0]!, /set debug = true in \[snp\]/);
    assert.deepEqual(evaluatePolicy(parsePolicy(`[snp]\n${snpSigner}\ndebug = true\n`), dbg), { accepted: true, reasons: [] });
    const sgxDbg = withClaims(i5, { debug: true });
    assert.match(evaluatePolicy(parsePolicy(`[sgx]\nsigner = ["${i5.claims.mrsigner}"]\nallowed_advisories = ["x"]\n`), sgxDbg).reasons[0]!, /^sgx enclave has the DEBUG attribute/);
  });
  it('requires revocation checks when asked', () => {
    const unchecked = withClaims(milan, { revocationChecked: false });
    assert.deepEqual(evaluatePolicy(parsePolicy(`[snp]\n${snpSigner}\n`), unchecked), { accepted: true, reasons: [] });
    const out = evaluatePolicy(parsePolicy(`[snp]\n${snpSigner}\nrequire_revocation = true\n`), unchecked);
    assert.equal(out.accepted, false);
    assert.match(out.reasons[0]!, /^snp revocation was not checked/);
  });
  it('checks minimum TCB, guest SVN, firmware, VMPL, host data and the signer deny-list', () => {
    const ok = `[snp]\n${snpSigner}\nmin_tcb = { bootloader = 2, tee = 0, snp = 6, microcode = 93 }\nmin_guest_svn = 1\nfirmware = ">=1.51.3"\nvmpl = [0]\nhost_data = ["${'00'.repeat(32)}"]\n`;
    assert.deepEqual(evaluatePolicy(parsePolicy(ok), milan), { accepted: true, reasons: [] });
    const bad = `[snp]\n${snpSigner}\nsigner_blacklist = ["${milan.claims.authorKeyDigest}"]\nmin_tcb = { microcode = 94 }\nmin_guest_svn = 2\nfirmware = ">=1.52"\nvmpl = [1, 2]\nhost_data = ["${'11'.repeat(32)}"]\n`;
    assert.deepEqual(evaluatePolicy(parsePolicy(bad), milan).reasons, [
      'snp untrusted enarx author_key_digest in signer_blacklist',
      'snp reported TCB microcode SPL 93 is below the minimum 94',
      'snp guest SVN 1 is below the minimum 2',
      'snp firmware 1.51.3 does not meet >=1.52',
      'snp report VMPL 0 is not one of 1, 2',
      'snp host_data not in the allowed list',
    ]);
  });
  it('enforces policy_flags: the guest may enable only the listed flags', () => {
    const out = evaluatePolicy(parsePolicy(`[snp]\n${snpSigner}\npolicy_flags = ["SingleSocket"]\n`), milan);
    assert.deepEqual(out.reasons, ['snp guest policy enables SMT, which policy_flags does not list']);
  });
  it('reports a missing claim instead of accepting', () => {
    const bare = withClaims(milan, {}, { authorKeyDigest: undefined });
    const out = evaluatePolicy(parsePolicy(`[snp]\n${snpSigner}\n`), bare);
    assert.deepEqual(out.reasons, ["the verification result has no 'authorKeyDigest' claim"]);
  });
  it('tcb_status lists the accepted statuses, combined with allowed_advisories', () => {
    const signer = `signer = ["${i5.claims.mrsigner}"]`;
    assert.deepEqual(evaluatePolicy(parsePolicy(`[sgx]\n${signer}\ntcb_status = ["OutOfDate"]\n`), i5), { accepted: true, reasons: [] });
    assert.deepEqual(evaluatePolicy(parsePolicy(`[sgx]\n${signer}\ntcb_status = ["UpToDate", "SWHardeningNeeded"]\n`), i5).reasons, [
      'sgx TCB status OutOfDate is not one of UpToDate, SWHardeningNeeded',
    ]);
  });
  it('never throws on arbitrary claims: it accepts or gives reasons', async () => {
    const policies = ['steward.toml', 'derived/snp-abi-1.52.toml', 'tests/sgx-extra-tcb-advisories.toml'].map((f) =>
      parsePolicy(readFileSync(testdata('enarx-steward', 'policies', f), 'utf8')),
    );
    policies.push(parsePolicy(`[tdx]\nhash = ["${'aa'.repeat(48)}"]\nrtmr0 = ["${'bb'.repeat(48)}"]\nmin_tee_tcb_svn = "${'01'.repeat(16)}"\n`));
    const value = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant('0x1f'), fc.dictionary(fc.string(), fc.string()));
    fc.assert(
      fc.property(fc.constantFrom('snp', 'sgx', 'tdx'), fc.dictionary(fc.constantFrom('policy', 'authorKeyDigest', 'authorKeyEn', 'mrsigner', 'isvSvn', 'attributes', 'rtmr0', 'teeTcbSvn', 'platformInfo', 'reportedTcb'), value), fc.boolean(), (kind, claims, debug) => {
        for (const p of policies) {
          const out = evaluatePolicy(p, { ...milan, kind: kind as 'snp', debug, claims, tcbStatus: 'UpToDate' });
          assert.equal(out.accepted, out.reasons.length === 0);
        }
      }),
      { numRuns: 300 },
    );
  });
  it('checks minimum QE SVN, PCE SVN and TCB evaluation data number for Intel quotes', () => {
    const signer = `signer = ["${i5.claims.mrsigner}"]\nallowed_advisories = ["INTEL-SA-00289", "INTEL-SA-00381", "INTEL-SA-00389", "INTEL-SA-00477", "INTEL-SA-00614", "INTEL-SA-00615", "INTEL-SA-00617", "INTEL-SA-00657"]`;
    const ok = `[sgx]\n${signer}\nmin_qe_svn = 9\nmin_pce_svn = 10\nmin_tcb_evaluation_data_number = 14\n`;
    assert.deepEqual(evaluatePolicy(parsePolicy(ok), i5), { accepted: true, reasons: [] });
    const bad = `[sgx]\n${signer}\nmin_qe_svn = 10\nmin_pce_svn = 11\nmin_tcb_evaluation_data_number = 15\n`;
    assert.deepEqual(evaluatePolicy(parsePolicy(bad), i5).reasons, [
      'sgx QE SVN 9 is below the minimum 10',
      'sgx PCE SVN 10 is below the minimum 11',
      'sgx TCB evaluation data number 14 is below the minimum 15',
    ]);
  });
  it('evaluates [tdx]: MRTD, RTMRs, MRSEAM, TEE_TCB_SVN, status', () => {
    const tdx: VerificationResult = {
      ...i5,
      kind: 'tdx',
      tcbStatus: 'UpToDate',
      advisories: [],
      measurement: 'aa'.repeat(48),
      claims: { rtmr0: 'bb'.repeat(48), rtmr1: '00'.repeat(48), mrSeam: 'cc'.repeat(48), teeTcbSvn: '06010300000000000000000000000000' },
    };
    const ok = `[tdx]\nhash = ["${'AA'.repeat(48)}"]\nrtmr0 = ["${'bb'.repeat(48)}"]\nmr_seam = ["${'cc'.repeat(48)}"]\nmin_tee_tcb_svn = "06010300000000000000000000000000"\n`;
    assert.deepEqual(evaluatePolicy(parsePolicy(ok), tdx), { accepted: true, reasons: [] });
    const bad = `[tdx]\nhash_blacklist = ["${'aa'.repeat(48)}"]\nrtmr1 = ["${'bb'.repeat(48)}"]\nmin_tee_tcb_svn = "07000000000000000000000000000000"\n`;
    assert.deepEqual(evaluatePolicy(parsePolicy(bad), { ...tdx, tcbStatus: 'OutOfDate' }).reasons, [
      `tdx MRTD ${'aa'.repeat(48)} in hash_blacklist`,
      `tdx untrusted rtmr1 ${'00'.repeat(48)}`,
      'tdx TEE_TCB_SVN 06010300000000000000000000000000 is below min_tee_tcb_svn at byte 0',
      'tdx TCB report shows firmware not `UpToDate`',
    ]);
    assert.deepEqual(evaluatePolicy(parsePolicy(''), tdx), { accepted: true, reasons: [] });
  });
});
