// Azure confidential VMs: the HCL report's runtime data (vTPM keys, VM configuration) must be what
// the hardware report's REPORT_DATA hashes. Real SNP and TDX evidence from shared/testdata, wrapped
// in HCL reports built here (their runtime data is ours, so the real reports must refuse it), and
// reports signed under a local test root for the accepting paths.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { testdata } from '../helpers/paths.ts';
import { azureHclFromFile, decodeEvidence, detectEvidenceKind, evidenceFromFile, hardwareEvidence, parseAzureHcl, verifyEvidence } from '../../src/attestation/index.ts';
import { createTestSnpChain, createTestSnpReport, type TestSnpChain } from '../../src/attestation/testing/snp.ts';
import { hclReport, reportDataFor, RUNTIME } from './azure-hcl.ts';
import { buildQuote, chainPem, makePki, NOW, qeIdentityJson, qeReport, signedCollateralJson, tcbInfoJson, tdBody } from './intel-synthetic.ts';

const file = (...p: string[]) => new Uint8Array(readFileSync(testdata('attestation', ...p)));
const utf8 = (s: string) => new TextEncoder().encode(s);

describe('Azure HCL report: real evidence with runtime data it was not made for', () => {
  const genoa = file('sev-snp', 'genoa-v3-azure-trustee', 'report.bin');
  const inputs = {
    certs: [file('sev-snp', 'genoa-v3-azure-trustee', 'vcek.pem'), file('sev-snp', 'amd-roots', 'ask_ark_genoa.pem')],
    crls: [file('sev-snp', 'amd-roots', 'crl_vcek_genoa.pem')],
    now: new Date('2025-06-01T00:00:00Z'),
  };

  test('the SNP report inside verifies, and the foreign runtime data is refused at binding', async () => {
    const alone = await verifyEvidence({ evidence: genoa, ...inputs });
    assert.equal(alone.verified, true, alone.failure?.message ?? "");
    const hcl = hclReport(genoa);
    assert.equal(detectEvidenceKind(hcl), 'snp');
    assert.equal(evidenceFromFile(hcl), hcl, 'the HCL report stays whole, so that its runtime data can be checked');
    assert.deepEqual(hardwareEvidence(hcl), genoa);
    const wrapped = await verifyEvidence({ evidence: hcl, ...inputs });
    assert.equal(wrapped.verified, false);
    assert.equal(wrapped.failure?.step, 'binding');
    assert.match(wrapped.failure!.message, /Azure HCL runtime data is not the data this evidence was made for.*report data starts b581f12e29a2d7d6/);
    assert.equal(wrapped.measurement, alone.measurement);
    assert.equal(wrapped.claims.azure, undefined, 'unbound runtime data yields no claims');
    // The report's own failures come first: a flipped signature byte is a signature failure, not a binding one.
    const broken = hcl.slice();
    broken[32 + 0x2a0] = broken[32 + 0x2a0]! ^ 1;
    assert.equal((await verifyEvidence({ evidence: broken, ...inputs })).failure?.step, 'signature');
  });

  test('decode shows the report and the runtime data, unverified', () => {
    const decoded = decodeEvidence(hclReport(genoa));
    assert.equal(decoded.kind, 'snp');
    assert.equal(decoded.measurement, decodeEvidence(genoa).measurement);
    const azure = decoded.claims.azure as Record<string, any>;
    assert.equal(azure.reportType, 'snp');
    assert.equal(azure.akPub.n, 'ak-modulus');
    assert.equal(azure.ekPub.n, 'ek-modulus');
    assert.deepEqual(azure.vmConfiguration, { 'console-enabled': true, 'secure-boot': true, 'tpm-enabled': true, vmUniqueId: 'A1B2' });
  });

  test('a TD quote with an Azure TDX HCL report: full Intel verification, then the binding refuses foreign runtime data', async () => {
    const quote = file('tdx', 'phala-tdx-v4', 'quote.bin');
    const intel = { collateral: [file('tdx', 'phala-tdx-v4', 'collateral.json')], now: new Date('2025-07-01T00:00:00Z') };
    const tdx = hclReport(new Uint8Array(1024), { type: 'tdx' });
    const r = await verifyEvidence({ evidence: quote, azureHcl: tdx, ...intel });
    assert.equal(r.tcbStatus, 'UpToDate');
    assert.equal(r.verified, false);
    assert.equal(r.failure?.step, 'binding');
    // A TDX HCL report alone is not evidence: the message says what to verify instead.
    for (const outcome of [await verifyEvidence({ evidence: tdx }), { failure: { step: 'parse', message: (() => { try { decodeEvidence(tdx); } catch (e) { return (e as Error).message; } return ''; })() } }]) {
      assert.equal(outcome.failure?.step, 'parse');
      assert.match(outcome.failure!.message, /Azure HCL report holding a TDX TDREPORT.*TD quote.*--azure-hcl/);
    }
    assert.equal((await verifyEvidence({ evidence: tdx })).kind, 'tdx');
    // The HCL report must be for the evidence's TEE, and be one.
    const wrongTee = await verifyEvidence({ evidence: quote, azureHcl: hclReport(file('sev-snp', 'genoa-v3-azure-trustee', 'report.bin')), ...intel });
    assert.match(wrongTee.failure!.message, /holds an SEV-SNP report, but the evidence is an Intel TDX quote/);
    const notHcl = await verifyEvidence({ evidence: quote, azureHcl: new Uint8Array(2600), ...intel });
    assert.equal(notHcl.failure?.step, 'parse');
    const twice = await verifyEvidence({ evidence: hclReport(genoa), azureHcl: hclReport(genoa), ...inputs });
    assert.match(twice.failure!.message, /already/);
  });
});

describe('Azure HCL report: runtime data bound to a report signed under a test root', () => {
  let chain: TestSnpChain;
  const now = new Date('2026-01-01T00:00:00Z');
  before(async () => {
    chain = await createTestSnpChain({ product: 'genoa' });
  });
  const verify = (evidence: Uint8Array, azureHcl?: Uint8Array) =>
    verifyEvidence({ evidence, ...(azureHcl ? { azureHcl } : {}), certs: [chain.leaf.der, chain.ask.der], now, trustedTestRoots: [{ name: 'azure', certificate: chain.ark.der }] });

  for (const hash of ['SHA-256', 'SHA-384', 'SHA-512'] as const) {
    test(`${hash}: REPORT_DATA hashes the runtime data, whose vTPM keys and VM configuration become claims`, async () => {
      const report = await createTestSnpReport(chain, { reportData: reportDataFor(RUNTIME, hash) });
      const r = await verify(hclReport(report, { hash }));
      assert.equal(r.verified, true, r.failure?.message ?? "");
      const azure = r.claims.azure as Record<string, any>;
      assert.equal(azure.runtimeDataHash, hash);
      assert.deepEqual(azure.akPub, { kid: 'HCLAkPub', key_ops: ['sign'], kty: 'RSA', e: 'AQAB', n: 'ak-modulus' });
      assert.equal(azure.vmConfiguration['secure-boot'], true);
      assert.equal(azure.userData, '00'.repeat(64));
      assert.ok(r.warnings.some((w) => /vTPM quote \(PCRs\) is not verified/.test(w)));
      // The same HCL report given beside the raw report binds the same way.
      assert.equal((await verify(report, hclReport(report, { hash }))).verified, true);
      // One changed byte of runtime data (a different vTPM key) breaks the binding.
      const forged = hclReport(report, { hash, runtime: utf8(RUNTIME.replace('ak-modulus', 'ak-modulos')) });
      const refused = await verify(forged);
      assert.equal(refused.failure?.step, 'binding');
      assert.equal(refused.verified, false);
    });
  }

  test('runtime data that is not JSON still binds, with a warning and no keys; trailing NULs are hashed but not parsed', async () => {
    const odd = utf8('not json');
    const r = await verify(hclReport(await createTestSnpReport(chain, { reportData: reportDataFor(odd) }), { runtime: odd }));
    assert.equal(r.verified, true, r.failure?.message ?? "");
    assert.equal((r.claims.azure as any).akPub, null);
    assert.ok(r.warnings.some((w) => /not JSON/.test(w)));
    const nul = new Uint8Array([...utf8(RUNTIME), 0, 0]);
    const n = await verify(hclReport(await createTestSnpReport(chain, { reportData: reportDataFor(nul) }), { runtime: nul }));
    assert.equal((n.claims.azure as any).akPub.n, 'ak-modulus');
  });

  test('report data after the hash that is not zero is a warning; control characters in the runtime data come out escaped', async () => {
    const data = reportDataFor(RUNTIME);
    data[40] = 1;
    const r = await verify(hclReport(await createTestSnpReport(chain, { reportData: data })));
    assert.equal(r.verified, true);
    assert.ok(r.warnings.some((w) => /after the runtime data's SHA-256 is not zero/.test(w)));
    const hostile = JSON.stringify({ keys: [{ kid: 'HCLAkPub', kty: 'RSA', n: 'x\u001b]52;c;AAAA\u0007' }], 'vm-configuration': { 'secure-boot': 'yes\u001b[2J' } });
    const h = await verify(hclReport(await createTestSnpReport(chain, { reportData: reportDataFor(hostile) }), { runtime: utf8(hostile) }));
    const azure = h.claims.azure as Record<string, any>;
    assert.equal(azure.akPub.n, 'x\\u001b]52;c;AAAA\\u0007');
    assert.equal(azure.vmConfiguration['secure-boot'], 'yes\\u001b[2J');
  });

  test('a TD quote made under a test root binds a TDX HCL report', async () => {
    const runtime = RUNTIME.replace('A1B2', 'TDX-VM');
    const pki = await makePki({ fmspc: '30606a000000', pceId: '0000', components: [5, 5, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0], pceSvn: 11 });
    const body = tdBody({ teeTcbSvn: '05010300000000000000000000000000' });
    body.set(reportDataFor(runtime), 520);
    const quote = await buildQuote({ version: 4, tee: 'tdx', body, qeReport: qeReport(9, 2), pck: pki.pck, chainPem: chainPem(pki) });
    const levels = [{ sgx: [5, 5, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0], pceSvn: 11, tdx: [0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], status: 'UpToDate' }];
    const info = tcbInfoJson({ id: 'TDX', fmspc: '30606a000000', levels, tdxModuleIdentities: [{ id: 'TDX_01', levels: [{ isvsvn: 5, status: 'UpToDate' }] }] });
    const collateral = [await signedCollateralJson(pki, info, qeIdentityJson({ id: 'TD_QE', isvProdId: 2, levels: [{ isvsvn: 8, status: 'UpToDate' }] }))];
    const roots = [{ name: 'intel', certificate: pki.root.certificate.der }];
    const tdx = hclReport(new Uint8Array(1024), { type: 'tdx', runtime: utf8(runtime) });
    const r = await verifyEvidence({ evidence: quote, azureHcl: tdx, collateral, now: NOW, trustedTestRoots: roots });
    assert.equal(r.verified, true, r.failure?.message ?? "");
    assert.equal((r.claims.azure as any).reportType, 'tdx');
    assert.equal((r.claims.azure as any).vmConfiguration.vmUniqueId, 'TDX-VM');
    const other = hclReport(new Uint8Array(1024), { type: 'tdx' });
    assert.equal((await verifyEvidence({ evidence: quote, azureHcl: other, collateral, now: NOW, trustedTestRoots: roots })).failure?.step, 'binding');
  });
});

describe('Azure HCL report parsing (untrusted bytes)', () => {
  const genoa = file('sev-snp', 'genoa-v3-azure-trustee', 'report.bin');

  test('only an HCLA header with a known report type and hash type, and runtime data that fits, is an HCL report', () => {
    const hcl = hclReport(genoa);
    assert.equal(parseAzureHcl(hcl)?.reportType, 'snp');
    assert.equal(parseAzureHcl(hcl)?.runtimeData.length, RUNTIME.length);
    for (const [offset, value] of [[0, 0x414c4349], [1216 + 8, 3], [1216 + 12, 0], [1216 + 12, 4], [1216 + 16, RUNTIME.length + 65]] as const) {
      const other = hcl.slice();
      new DataView(other.buffer).setUint32(offset, value, true);
      assert.equal(parseAzureHcl(other), undefined, `u32 @${offset} = ${value}`);
      assert.equal(detectEvidenceKind(other), undefined);
    }
    assert.equal(parseAzureHcl(hcl.subarray(0, 1235)), undefined);
    // Hex and base64 text of an HCL report are read like the raw bytes.
    assert.deepEqual(evidenceFromFile(utf8(Buffer.from(hcl).toString('base64'))), hcl);
    const tdx = hclReport(new Uint8Array(1024), { type: 'tdx' });
    assert.deepEqual(azureHclFromFile(utf8(Buffer.from(tdx).toString('hex'))), tdx);
    assert.equal(azureHclFromFile(utf8('hello')), undefined);
  });

  test('property: random and mutated HCL reports never throw from detection or parsing, and verification always returns a result', async () => {
    const hcl = hclReport(genoa);
    const mutated = fc.tuple(fc.array(fc.tuple(fc.nat(hcl.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(hcl.length)).map(([edits, cut]) => {
      const b = hcl.slice(0, Math.max(cut, 1200));
      for (const [at, v] of edits) if (at < b.length) b[at] = v;
      return b;
    });
    const random = fc.uint8Array({ maxLength: 3000 }).map((b) => {
      const out = new Uint8Array(b);
      out.set(utf8('HCLA').subarray(0, Math.min(4, out.length)));
      return out;
    });
    fc.assert(
      fc.property(fc.oneof(mutated, random), (bytes) => {
        const parsed = parseAzureHcl(bytes);
        if (parsed) assert.ok(parsed.runtimeData.byteOffset + parsed.runtimeData.length <= bytes.byteOffset + bytes.length);
        detectEvidenceKind(bytes);
        evidenceFromFile(bytes);
        hardwareEvidence(bytes);
      }),
      { numRuns: 500 },
    );
    await fc.assert(
      fc.asyncProperty(mutated, async (bytes) => {
        const r = await verifyEvidence({ evidence: bytes, now: new Date('2025-06-01T00:00:00Z') });
        assert.equal(typeof r.verified, 'boolean');
        if (!r.verified) assert.ok(r.failure?.step);
      }),
      { numRuns: 60 },
    );
  });
});
