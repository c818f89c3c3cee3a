import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parsePolicy } from '../../src/attestation/policy/index.ts';
import { parseCertificate, parseCertificates, verifySigned } from '../../src/attestation/x509.ts';
import { parseCsr, readCertificateOrigin } from '../../src/pki/index.ts';
import { listen, type Steward, StewardRefusal } from '../../src/steward/index.ts';
import { testdata } from '../helpers/paths.ts';
import { debugSteward, NOW, productionCa, productionSteward, type RealCsr, realCsr } from './helpers.ts';

// Every real Enarx CSR (shared/testdata/enarx-steward) against every policy of README §5-§7, through
// a production-mode Steward at the README's time, with the real SNP and SGX verifiers. PASS, or the
// refusal with the first reason Enarx's Steward gives.
const UPTODATE = 'sgx TCB report shows firmware not `UpToDate`';
const SIGNER = 'sgx untrusted enarx signer 7a49a07df0f8e90a6e1d9a63e3c696d9c844f0e3f8739b21daa640f99facc48a';
const AUTHOR = 'snp untrusted enarx author_key_digest';
const SA = (...ids: string[]) => `sgx TCB report has additional advisories: ${ids.map((n) => `INTEL-SA-${n}`).join(', ')}`;
const P = 'PASS';

/** policy file: [i5, xeon, milan] */
const EXPECTED: Record<string, [string, string, string]> = {
  'steward.toml': [P, P, P],
  'tests/sgx-bad-signer.toml': [SIGNER, SIGNER, P],
  'tests/sgx-bad-enclave-version.toml': ['sgx untrusted enclave security version', 'sgx untrusted enclave security version', P],
  'tests/sgx-extra-tcb-advisories.toml': [SA('00289', '00381', '00389', '00477', '00614', '00615', '00617', '00657'), SA('00586', '00614', '00615', '00657'), P],
  'tests/snp-bad-author-key.toml': [UPTODATE, UPTODATE, AUTHOR],
  'tests/snp-bad-abi-version.toml': [UPTODATE, UPTODATE, 'snp minimum abi not met'],
  'tests/snp-blacklisted-id-key.toml': [UPTODATE, UPTODATE, AUTHOR],
  'parse/empty.toml': [UPTODATE, UPTODATE, P],
  'parse/config-both-sections.toml': [SIGNER, SIGNER, AUTHOR],
  'parse/sgx-features-misc-select.toml': [SIGNER, SIGNER, P],
  'parse/snp-flags.toml': [UPTODATE, UPTODATE, AUTHOR],
  'parse/snp-abi-semver.toml': [UPTODATE, UPTODATE, AUTHOR],
  'derived/sgx-hash-to-blacklist.toml': ['sgx untrusted enarx hash', 'sgx untrusted enarx hash', P],
  'derived/sgx-product-id-1.toml': ['sgx untrusted enclave product id 0', 'sgx untrusted enclave product id 0', P],
  'derived/sgx-no-advisories.toml': [UPTODATE, UPTODATE, P],
  'derived/sgx-advisories-xeon-level-only.toml': [SA('00289', '00381', '00389', '00477', '00617'), P, P],
  'derived/snp-abi-1.52.toml': [P, P, 'snp minimum abi not met'],
  'derived/snp-id-key-not-allowed.toml': [P, P, 'snp untrusted enarx id_key_digest not in list of allowed key digests'],
  'derived/snp-id-key-blacklisted.toml': [P, P, 'snp untrusted enarx id_key_digest in blacklist'],
  'derived/snp-hash-to-blacklist.toml': [P, P, 'snp untrusted enarx hash'],
  'derived/snp-platform-tsme.toml': [P, P, 'snp unexpected platform info flags'],
};
const COLUMNS: RealCsr[] = ['icelake-i5', 'icelake-xeon', 'milan'];
const policy = (file: string) => parsePolicy(readFileSync(testdata('enarx-steward', 'policies', file), 'utf8'));

async function outcome(steward: Steward, csr: RealCsr): Promise<string> {
  try {
    const issued = await steward.issue(realCsr(csr));
    const origin = readCertificateOrigin(issued.certificate)!;
    assert.equal(origin.tee, csr === 'milan' ? 'snp' : 'sgx');
    assert.equal(origin.stewardDebug, false);
    assert.equal(origin.testRoot, false);
    assert.equal(origin.trustAnchor, csr === 'milan' ? 'amd-milan' : 'intel-sgx-root');
    assert.equal(origin.identity, undefined, 'Enarx keeps send no identity: no workload name');
    return P;
  } catch (err) {
    if (!(err instanceof StewardRefusal)) throw err;
    assert.equal(err.problem.status, 400);
    assert.equal(err.problem.step, 'policy', err.problem.detail);
    assert.equal(err.problem.type, 'urn:enarx:steward:problem:policy-refused');
    return err.problem.detail;
  }
}

describe('real Enarx CSRs through a production Steward (README §7 matrix)', () => {
  for (const [file, expected] of Object.entries(EXPECTED)) {
    it(`${file}: ${expected.map((e, i) => `${COLUMNS[i]} ${e === P ? 'PASS' : 'REJECT'}`).join(', ')}`, async () => {
      const steward = await productionSteward({ policy: policy(file) });
      assert.equal(steward.mode, 'production');
      for (const [i, csr] of COLUMNS.entries()) assert.equal(await outcome(steward, csr), expected[i], `${file} × ${csr}`);
    });
  }

  it('refuses every real CSR at the real time: stale CRLs, TCB info and TCB signing certificate', async () => {
    const steward = await productionSteward({ policy: policy('steward.toml'), now: () => new Date() });
    for (const csr of COLUMNS) {
      await assert.rejects(steward.issue(realCsr(csr)), (err: StewardRefusal) => {
        assert.equal(err.problem.type, 'urn:enarx:steward:problem:evidence-rejected');
        assert.ok(['chain', 'crl', 'collateral'].includes(err.problem.step), `${csr}: ${err.problem.step} ${err.problem.detail}`);
        return true;
      });
    }
  });

  it('serves them over HTTP as Enarx does: DER SEQUENCE OF Certificate [issuer chain, leaf]', async () => {
    const steward = await productionSteward({ policy: policy('steward.toml') });
    const running = await listen(steward, { addr: '127.0.0.1', port: 0 });
    try {
      const ca = await productionCa();
      for (const csr of COLUMNS) {
        const res = await fetch(running.url, { method: 'POST', headers: { 'content-type': 'application/pkcs10' }, body: Buffer.from(realCsr(csr)) });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), 'application/pkix-pkipath');
        const certs = parseCertificates(new Uint8Array(await res.arrayBuffer()));
        assert.deepEqual(certs.slice(0, 2).map((c) => c.der), [ca.root, ca.chain[0]]);
        const leaf = certs[2]!;
        assert.equal(await verifySigned(leaf, certs[1]!), true, 'the leaf is signed by the Steward CA');
        const csrSpki = parseCsr(realCsr(csr)).spki;
        assert.deepEqual(leaf.spki, csrSpki);
        assert.ok(leaf.notBefore <= NOW && leaf.notAfter > NOW);
      }
    } finally {
      await running.close();
    }
  });

  it('a debug-mode Steward (the README CA is self-signed) still checks the key binding and says debug', async () => {
    const steward = await debugSteward({ policy: policy('steward.toml') });
    assert.equal(steward.mode, 'debug');
    const issued = await steward.issue(realCsr('milan'));
    assert.equal(readCertificateOrigin(issued.certificate)!.stewardDebug, true);
    const leaf = parseCertificate(issued.certificate);
    assert.equal(leaf.issuer.text, steward.caCertificate.subject.text);
  });
});
