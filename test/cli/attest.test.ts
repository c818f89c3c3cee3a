import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hclReport } from '../attestation/azure-hcl.ts';
import { runEnarx } from '../helpers/cli.ts';
import { testdata } from '../helpers/paths.ts';

const T = (...p: string[]) => testdata('attestation', ...p);
const KEYS = ['kind', 'verified', 'tcbStatus', 'advisories', 'debug', 'measurement', 'reportData', 'claims', 'failure', 'policy'];

test('attest verify --json: exactly the documented keys, exit 0 when verified (SNP, DER VCEK + PEM chain + CRL)', async () => {
  const r = await runEnarx(['attest', 'verify', '--evidence', T('sev-snp', 'milan-v2-gosevguest', 'report.bin'), '--cert', T('sev-snp', 'milan-v2-gosevguest', 'vcek.der'), '--cert', T('sev-snp', 'amd-roots', 'ask_ark_milan.pem'), '--crl', T('sev-snp', 'amd-roots', 'crl_vcek_milan.pem'), '--now', '2025-12-06T00:00:00Z', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(out), KEYS);
  assert.equal(out.kind, 'snp');
  assert.equal(out.verified, true);
  assert.equal(out.tcbStatus, null);
  assert.deepEqual(out.advisories, []);
  assert.equal(out.debug, true);
  assert.equal(out.measurement, 'b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01');
  assert.equal(out.failure, null);
  assert.equal(out.policy, null);
  assert.equal(out.claims.product, 'milan');
  assert.equal(out.claims.verification.trustAnchor, 'amd-milan');
  assert.equal(out.claims.verification.revocationChecked, true);
  assert.equal(r.stderr, '');
});

test('attest verify: a rejection exits 1 with the step (JSON and human), detection without --kind', async () => {
  const args = ['attest', 'verify', '--evidence', T('sev-snp', 'genoa-v3-azure-trustee', 'report.bin'), '--cert', T('sev-snp', 'genoa-v3-azure-trustee', 'vcek.pem'), '--cert', T('sev-snp', 'amd-roots', 'ask_ark_milan.pem'), '--now', '2025-06-01T00:00:00Z'];
  const json = await runEnarx([...args, '--json']);
  assert.equal(json.code, 1);
  const out = JSON.parse(json.stdout);
  assert.deepEqual(Object.keys(out), KEYS);
  assert.equal(out.verified, false);
  assert.equal(out.failure.step, 'chain');
  const human = await runEnarx(args);
  assert.equal(human.code, 1);
  assert.match(human.stdout, /^AMD SEV-SNP report: REJECTED at step 'chain'/);
});

test('attest verify: SGX with combined collateral, TDX with a TCB level that is not supported', async () => {
  const sgx = await runEnarx(['attest', 'verify', '--evidence', T('sgx', 'phala-sgx-v3', 'quote.bin'), '--collateral', T('sgx', 'phala-sgx-v3', 'collateral.json'), '--now', '2025-07-01T00:00:00Z', '--json']);
  assert.equal(sgx.code, 0, sgx.stderr);
  const out = JSON.parse(sgx.stdout);
  assert.equal(out.kind, 'sgx');
  assert.equal(out.tcbStatus, 'ConfigurationAndSWHardeningNeeded');
  assert.deepEqual(out.advisories, ['INTEL-SA-00289', 'INTEL-SA-00615']);
  const tdx = await runEnarx(['attest', 'verify', '--evidence', T('tdx', 'phala-tdx-v5-tcb-not-supported', 'quote.bin'), '--kind', 'tdx', '--collateral', T('tdx', 'phala-tdx-v5-tcb-not-supported', 'collateral.json'), '--now', '2026-03-01T00:00:00Z', '--json']);
  assert.equal(tdx.code, 1);
  assert.equal(JSON.parse(tdx.stdout).failure.step, 'tcb');
});

test('attest verify exits 2 for an unreadable file, bad flags and missing collateral; 1 for evidence that does not parse', async () => {
  const missingFile = await runEnarx(['attest', 'verify', '--evidence', '/nonexistent/report.bin']);
  assert.equal(missingFile.code, 2);
  assert.match(missingFile.stderr, /cannot read evidence file '\/nonexistent\/report.bin': no such file/);
  const badNow = await runEnarx(['attest', 'verify', '--evidence', T('sev-snp', 'milan-v2-gosevguest', 'report.bin'), '--now', 'yesterday']);
  assert.equal(badNow.code, 2);
  assert.match(badNow.stderr, /not an RFC 3339 time/);
  const badKind = await runEnarx(['attest', 'verify', '--evidence', T('sev-snp', 'milan-v2-gosevguest', 'report.bin'), '--kind', 'tpm']);
  assert.equal(badKind.code, 2);
  const noVcek = await runEnarx(['attest', 'verify', '--evidence', T('sev-snp', 'milan-v2-gosevguest', 'report.bin'), '--json']);
  assert.equal(noVcek.code, 2);
  const out = JSON.parse(noVcek.stdout);
  assert.deepEqual(Object.keys(out), KEYS);
  assert.equal(out.failure.step, 'collateral');
  assert.match(out.failure.message, /kdsintf\.amd\.com/);
  const notEvidence = await runEnarx(['attest', 'verify', '--evidence', T('README.md'), '--json']);
  assert.equal(notEvidence.code, 1);
  assert.equal(JSON.parse(notEvidence.stdout).failure.step, 'parse');
});

test('attest decode prints every field (human and JSON) and fails cleanly on non-evidence', async () => {
  const human = await runEnarx(['attest', 'decode', '--evidence', T('sev-snp', 'milan-v3-vlek-aws-trustee', 'report.bin')]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^AMD SEV-SNP report \(not verified\)/);
  assert.match(human.stdout, /reportedTcb\.microcode: 217/);
  assert.match(human.stdout, /signingKey: vlek/);
  const json = await runEnarx(['attest', 'decode', '--evidence', T('tdx', 'phala-tdx-v4', 'quote.bin'), '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.equal(JSON.parse(json.stdout).kind, 'tdx');
  const bad = await runEnarx(['attest', 'decode', '--evidence', T('README.md')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^enarx: .*not attestation evidence/);
  assert.equal(bad.stdout, '');
});

test('attest verify --cert accepts the SEV-SNP certificate table a Keep collects (configfs-tsm auxblob)', async () => {
  const { buildCertTable } = await import('../../src/keep/hardware/certtable.ts');
  const { parseCertificates } = await import('../../src/attestation/x509.ts');
  const [ask, ark] = parseCertificates(readFileSync(T('sev-snp', 'amd-roots', 'ask_ark_milan.pem')));
  const table = buildCertTable([
    { guid: '63da758d-e664-4564-adc5-f4b93be8accd', der: readFileSync(T('sev-snp', 'milan-v2-gosevguest', 'vcek.der')) },
    { guid: '4ab7b379-bbac-4fe4-a02f-05aef327c782', der: ask!.der },
    { guid: 'c0b406a4-a803-4952-9743-3fb6014cd0ae', der: ark!.der },
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'enarx-attest-'));
  try {
    writeFileSync(join(dir, 'auxblob'), table);
    writeFileSync(join(dir, 'broken'), table.subarray(0, 40));
    const ok = await runEnarx(['attest', 'verify', '--evidence', T('sev-snp', 'milan-v2-gosevguest', 'report.bin'), '--cert', join(dir, 'auxblob'), '--now', '2025-12-06T00:00:00Z', '--json']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(JSON.parse(ok.stdout).verified, true);
    const bad = await runEnarx(['attest', 'verify', '--evidence', T('sev-snp', 'milan-v2-gosevguest', 'report.bin'), '--cert', join(dir, 'broken'), '--json']);
    assert.equal(bad.code, 1);
    const out = JSON.parse(bad.stdout);
    assert.deepEqual(Object.keys(out), KEYS);
    assert.equal(out.failure.step, 'parse');
    assert.match(out.failure.message, /broken: .*certificate table/i);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('attest decode and verify take evidence written as hex (0x-prefixed or not) or base64, as many tools store it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'enarx-evidence-text-'));
  try {
    const report = readFileSync(T('sev-snp', 'milan-v2-gosevguest', 'report.bin'));
    const quote = readFileSync(T('sgx', 'phala-sgx-v3', 'quote.bin'));
    const hexFile = join(dir, 'report.hex');
    writeFileSync(hexFile, `0x${report.toString('hex').replace(/(.{64})/g, '$1\n')}\n`);
    const b64File = join(dir, 'quote.b64');
    writeFileSync(b64File, quote.toString('base64url'));
    const verified = await runEnarx(['attest', 'verify', '--evidence', hexFile, '--cert', T('sev-snp', 'milan-v2-gosevguest', 'vcek.der'), '--now', '2025-12-06T00:00:00Z', '--json']);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(JSON.parse(verified.stdout).measurement, 'b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01');
    const decoded = await runEnarx(['attest', 'decode', '--evidence', b64File, '--json']);
    assert.equal(decoded.code, 0, decoded.stderr);
    assert.equal(JSON.parse(decoded.stdout).kind, 'sgx');
    // Hex of something that is not evidence is still refused, with the size of the file as given.
    const notEvidence = join(dir, 'zeros.hex');
    writeFileSync(notEvidence, '00'.repeat(1184));
    const bad = await runEnarx(['attest', 'decode', '--evidence', notEvidence]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /not attestation evidence.*\(2368 bytes\)/);
    // Text beyond 1 MiB is not decoded, and the error says so (here a report's hex padded with blank lines).
    const large = join(dir, 'large.hex');
    writeFileSync(large, `${report.toString('hex')}${'\n'.repeat(1 << 20)}`);
    for (const command of ['decode', 'verify']) {
      const tooLarge = await runEnarx(['attest', command, '--evidence', large]);
      assert.equal(tooLarge.code, 1, tooLarge.stderr);
      assert.match(tooLarge.stderr, /large\.hex: 1050944 bytes of text; evidence written as hex or base64 text is decoded only up to 1 MiB/);
      assert.equal(tooLarge.stdout, '');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('attest verify and decode read an Azure HCL report whole, and --azure-hcl binds one to a TD quote', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'enarx-azure-'));
  try {
    // Real reports, with runtime data they were not made for: the signature holds, the binding does not.
    const snpHcl = join(dir, 'hcl-snp.bin');
    writeFileSync(snpHcl, hclReport(readFileSync(T('sev-snp', 'genoa-v3-azure-trustee', 'report.bin'))));
    const snp = await runEnarx(['attest', 'verify', '--evidence', snpHcl, '--cert', T('sev-snp', 'genoa-v3-azure-trustee', 'vcek.pem'), '--now', '2025-06-01T00:00:00Z', '--json']);
    assert.equal(snp.code, 1, snp.stderr);
    assert.equal(JSON.parse(snp.stdout).failure.step, 'binding');
    const decoded = await runEnarx(['attest', 'decode', '--evidence', snpHcl]);
    assert.equal(decoded.code, 0, decoded.stderr);
    assert.match(decoded.stdout, /^ {2}azure\.akPub\.n: ak-modulus$/m);
    assert.match(decoded.stdout, /^ {2}azure\.vmConfiguration\.secure-boot: true$/m);
    const tdxHcl = join(dir, 'hcl-tdx.b64');
    writeFileSync(tdxHcl, Buffer.from(hclReport(new Uint8Array(1024), { type: 'tdx' })).toString('base64'));
    const quote = ['--evidence', T('tdx', 'phala-tdx-v4', 'quote.bin'), '--collateral', T('tdx', 'phala-tdx-v4', 'collateral.json'), '--now', '2025-07-01T00:00:00Z'];
    const tdx = await runEnarx(['attest', 'verify', ...quote, '--azure-hcl', tdxHcl, '--json']);
    assert.equal(tdx.code, 1, tdx.stderr);
    const out = JSON.parse(tdx.stdout);
    assert.deepEqual(Object.keys(out), KEYS);
    assert.equal(out.tcbStatus, 'UpToDate');
    assert.equal(out.failure.step, 'binding');
    // A TDX HCL report is not evidence on its own; --azure-hcl must be one.
    const alone = await runEnarx(['attest', 'verify', '--evidence', tdxHcl]);
    assert.equal(alone.code, 1);
    assert.match(alone.stdout, /TDX TDREPORT, which only the local CPU can check.*--azure-hcl/);
    const notHcl = await runEnarx(['attest', 'verify', ...quote, '--azure-hcl', T('tdx', 'phala-tdx-v4', 'collateral.json')]);
    assert.equal(notHcl.code, 2);
    assert.match(notHcl.stderr, /is not an Azure HCL report/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('attest verify takes evidence inside a JSON document, with the certificates and the HCL report it carries', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'enarx-json-evidence-'));
  try {
    const report = readFileSync(T('sev-snp', 'genoa-v3-azure-trustee', 'report.bin'));
    const evidence = join(dir, 'evidence.json');
    writeFileSync(evidence, JSON.stringify({ report: Array.from(report), vcek: readFileSync(T('sev-snp', 'genoa-v3-azure-trustee', 'vcek.pem'), 'utf8') }));
    const ok = await runEnarx(['attest', 'verify', '--evidence', evidence, '--now', '2025-06-01T00:00:00Z', '--json']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(JSON.parse(ok.stdout).claims.product, 'genoa');
    const decoded = await runEnarx(['attest', 'decode', '--evidence', evidence, '--json']);
    assert.equal(JSON.parse(decoded.stdout).kind, 'snp');
    // An HCL report in the file and another through --azure-hcl: which one is meant is a usage error.
    const tdx = hclReport(new Uint8Array(1024), { type: 'tdx' });
    const both = join(dir, 'tdx.json');
    writeFileSync(both, JSON.stringify({ td_quote: readFileSync(T('tdx', 'phala-tdx-v4', 'quote.bin')).toString('base64'), hcl_report: Buffer.from(tdx).toString('base64') }));
    writeFileSync(join(dir, 'hcl.bin'), tdx);
    const twice = await runEnarx(['attest', 'verify', '--evidence', both, '--azure-hcl', join(dir, 'hcl.bin')]);
    assert.equal(twice.code, 2);
    assert.match(twice.stderr, /carries an Azure HCL report \(beside td_quote\) and --azure-hcl gives another/);
    const bound = await runEnarx(['attest', 'verify', '--evidence', both, '--collateral', T('tdx', 'phala-tdx-v4', 'collateral.json'), '--now', '2025-07-01T00:00:00Z', '--json']);
    assert.equal(JSON.parse(bound.stdout).failure.step, 'binding');
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, '{"pcrs": []}');
    const refused = await runEnarx(['attest', 'verify', '--evidence', empty]);
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, /JSON document in which no field holds evidence/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('attest verify reads a Keep certificate request (real Enarx CSRs): its evidence and collateral, then the key binding the Steward checks', async () => {
  const csr = (name: string) => testdata('enarx-steward', 'csr', name);
  const now = '2023-02-01T00:00:00Z';
  const snp = await runEnarx(['attest', 'verify', '--evidence', csr('milan.signed.crl.csr'), '--now', now, '--json']);
  assert.equal(snp.code, 0, snp.stdout + snp.stderr);
  const out = JSON.parse(snp.stdout);
  assert.deepEqual(Object.keys(out), KEYS);
  assert.equal(out.kind, 'snp');
  assert.equal(out.claims.verification.trustAnchor, 'amd-milan');
  const sgx = await runEnarx(['attest', 'verify', '--evidence', csr('icelake.signed.tcb.crl.single.i5.csr'), '--now', now, '--json']);
  assert.equal(sgx.code, 0, sgx.stdout + sgx.stderr);
  assert.equal(JSON.parse(sgx.stdout).kind, 'sgx');
  assert.equal(JSON.parse(sgx.stdout).claims.verification.revocationChecked, true, 'the CRLs the CSR carries are used');
  const dir = mkdtempSync(join(tmpdir(), 'enarx-attest-csr-'));
  try {
    // The same CSR as PEM; then with one byte of the signed request changed: the self-signature fails after the evidence verified.
    const der = readFileSync(csr('milan.signed.crl.csr'));
    const pem = join(dir, 'keep.pem');
    writeFileSync(pem, `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`);
    assert.equal((await runEnarx(['attest', 'verify', '--evidence', pem, '--now', now])).code, 0);
    const forged = Buffer.from(der);
    forged[forged.length - 1] = forged[forged.length - 1]! ^ 1; // the last byte of the request's own signature
    writeFileSync(join(dir, 'forged.csr'), forged);
    const bad = await runEnarx(['attest', 'verify', '--evidence', join(dir, 'forged.csr'), '--now', now, '--json']);
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.equal(JSON.parse(bad.stdout).failure.step, 'signature');
    assert.match(JSON.parse(bad.stdout).failure.message, /self-signature does not verify/);
    const decoded = await runEnarx(['attest', 'decode', '--evidence', csr('icelake.signed.tcb.crl.multi.xeon.csr'), '--json']);
    assert.equal(JSON.parse(decoded.stdout).kind, 'sgx');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
