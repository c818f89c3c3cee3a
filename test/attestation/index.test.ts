import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { testdata } from '../helpers/paths.ts';
import { hclReport } from './azure-hcl.ts';
import { decodeEvidence, detectEvidenceKind, evidenceFromFile, parseCrlInputs, verifyEvidence, VERIFICATION_STEPS } from '../../src/attestation/index.ts';
import { loadIntelCollateral } from '../../src/attestation/intel/index.ts';
import { createTestSnpChain, createTestSnpReport } from '../../src/attestation/testing/snp.ts';
import { parseCertificates, parseCrl, toPem } from '../../src/attestation/x509.ts';

const file = (...p: string[]) => new Uint8Array(readFileSync(testdata('attestation', ...p)));

test('kind detection: SNP reports, SGX and TDX quotes, and nothing else', () => {
  assert.equal(detectEvidenceKind(file('sev-snp', 'milan-v2-gosevguest', 'report.bin')), 'snp');
  assert.equal(detectEvidenceKind(file('sev-snp', 'genoa-v3-azure-trustee', 'report.bin')), 'snp');
  assert.equal(detectEvidenceKind(file('sgx', 'phala-sgx-v3', 'quote.bin')), 'sgx');
  assert.equal(detectEvidenceKind(file('tdx', 'phala-tdx-v4', 'quote.bin')), 'tdx');
  assert.equal(detectEvidenceKind(file('tdx', 'phala-tdx-v5-tcb-not-supported', 'quote.bin')), 'tdx');
  assert.equal(detectEvidenceKind(new Uint8Array(1184)), undefined);
  assert.equal(detectEvidenceKind(new Uint8Array(10)), undefined);
});

test('verifyEvidence dispatches SNP and Intel evidence, takes PEM/DER inputs, and names the kind on every failure', async () => {
  const snp = await verifyEvidence({
    evidence: file('sev-snp', 'genoa-v3-azure-trustee', 'report.bin'),
    certs: [file('sev-snp', 'genoa-v3-azure-trustee', 'vcek.pem'), new TextDecoder().decode(file('sev-snp', 'amd-roots', 'ask_ark_genoa.pem'))],
    crls: [file('sev-snp', 'amd-roots', 'crl_vcek_genoa.pem')],
    now: new Date('2025-06-01T00:00:00Z'),
  });
  assert.equal(snp.verified, true, snp.failure?.message ?? "");
  assert.equal(snp.kind, 'snp');
  const sgx = await verifyEvidence({ evidence: file('sgx', 'phala-sgx-v3', 'quote.bin'), collateral: [file('sgx', 'phala-sgx-v3', 'collateral.json')], now: new Date('2025-07-01T00:00:00Z') });
  assert.equal(sgx.kind, 'sgx');
  assert.equal(sgx.verified, true, sgx.failure?.message ?? "");
  assert.equal(sgx.tcbStatus, 'ConfigurationAndSWHardeningNeeded');
  const missing = await verifyEvidence({ evidence: file('tdx', 'phala-tdx-v4', 'quote.bin'), now: new Date('2025-07-01T00:00:00Z') });
  assert.equal(missing.kind, 'tdx');
  assert.equal(missing.failure?.step, 'collateral');
  assert.equal(missing.failure?.code, 'missing-collateral');
  const wrongKind = await verifyEvidence({ evidence: file('sgx', 'phala-sgx-v3', 'quote.bin'), kind: 'snp' });
  assert.equal(wrongKind.kind, 'snp');
  assert.deepEqual(wrongKind.failure, { step: 'parse', message: 'the evidence is an Intel SGX quote, not an AMD SEV-SNP report' });
  const badCert = await verifyEvidence({ evidence: file('sev-snp', 'milan-v2-gosevguest', 'report.bin'), certs: ['not a certificate'] });
  assert.equal(badCert.failure?.step, 'parse');
  assert.match(badCert.failure!.message, /no PEM CERTIFICATE block/);
});

test('certificates and CRLs in the forms vendors and tools hand them out: URL-encoded PEM, bare hex and base64 DER', async () => {
  // A VCEK as bare base64url without padding (Azure's and trustee's JSON evidence), the ASK/ARK chain
  // URL-encoded (an Intel PCS issuer-chain header), the ARK's CRL as hex (a PCCS answer).
  const vcekDer = parseCertificates(file('sev-snp', 'genoa-v3-azure-trustee', 'vcek.pem'))[0]!.der;
  const base64url = Buffer.from(vcekDer).toString('base64url');
  const chain = encodeURIComponent(new TextDecoder().decode(file('sev-snp', 'amd-roots', 'ask_ark_genoa.pem')));
  assert.match(chain, /^-----BEGIN%20CERTIFICATE-----%0A/);
  const crlHex = Buffer.from(parseCrl(new TextDecoder().decode(file('sev-snp', 'amd-roots', 'crl_vcek_genoa.pem'))).der).toString('hex');
  const result = await verifyEvidence({
    evidence: file('sev-snp', 'genoa-v3-azure-trustee', 'report.bin'),
    certs: [base64url, new TextEncoder().encode(chain)],
    crls: [`${crlHex}\n`],
    now: new Date('2025-06-01T00:00:00Z'),
  });
  assert.equal(result.verified, true, result.failure?.message ?? '');
  assert.equal(result.revocationChecked, true);
  assert.equal(parseCertificates(`${Buffer.from(vcekDer).toString('base64')}\n`)[0]!.der.length, vcekDer.length);
  assert.equal(parseCertificates(Buffer.from(vcekDer).toString('hex').toUpperCase())[0]!.der.length, vcekDer.length);
  // Intel: the Root CA CRL as hex and as URL-encoded PEM, given as CRLs and as collateral files.
  const rootCrl = file('sgx', 'mobilecoin-sgx-v3', 'root_ca_crl.der');
  const rootCrlPem = encodeURIComponent(toPem('X509 CRL', rootCrl));
  assert.equal(parseCrlInputs([Buffer.from(rootCrl).toString('hex'), rootCrlPem]).length, 2);
  const loaded = loadIntelCollateral([
    { name: 'rootcacrl.hex', bytes: new TextEncoder().encode(Buffer.from(rootCrl).toString('hex')) },
    { name: 'chain.urlencoded', bytes: new TextEncoder().encode(encodeURIComponent(new TextDecoder().decode(file('sgx', 'mobilecoin-sgx-v3', 'tcb_signing_cert.pem')))) },
  ]);
  assert.equal(loaded.crls?.length, 1);
  assert.equal(loaded.certs?.[0]?.subject.commonName, 'Intel SGX TCB Signing');
  // What is none of these still fails with a clear one-line error, also text that happens to be base64.
  for (const junk of ['hello', 'abcd', '3000zz', '-----BEGIN%20CERTIFICATE-----%E0%A4%A']) {
    assert.throws(() => parseCertificates(junk), { step: 'parse' });
    assert.throws(() => parseCrlInputs([junk]), { step: 'parse' });
  }
  assert.throws(() => loadIntelCollateral([{ name: 'junk', bytes: new TextEncoder().encode('abcd') }]), { step: 'parse', message: /^junk: not JSON collateral/ });
});

test('evidenceFromFile: hex (0x, whitespace), base64 and base64url text of evidence is decoded; anything else is left as it is', () => {
  for (const raw of [file('sev-snp', 'milan-v5-gcp-teekit', 'report.bin'), file('tdx', 'phala-tdx-v4', 'quote.bin')]) {
    const hex = Buffer.from(raw).toString('hex');
    for (const text of [hex, `0x${hex}\n`, hex.toUpperCase().replace(/(.{76})/g, '$1\r\n'), Buffer.from(raw).toString('base64'), Buffer.from(raw).toString('base64url')]) {
      assert.deepEqual(evidenceFromFile(new TextEncoder().encode(text)), raw);
    }
    assert.equal(evidenceFromFile(raw), raw);
  }
  // An SNP report behind its MSG_REPORT_RSP header (status 0, size 0x4A0, 24 reserved bytes), also as hex.
  const report = file('sev-snp', 'milan-v2-gosevguest', 'report.bin');
  const response = new Uint8Array(32 + 1184);
  new DataView(response.buffer).setUint32(4, 0x4a0, true);
  response.set(report, 32);
  assert.deepEqual(evidenceFromFile(response), report);
  assert.deepEqual(evidenceFromFile(new TextEncoder().encode(Buffer.from(response).toString('hex'))), report);
  for (const [offset, value] of [[0, 0x16], [4, 0x4a1], [20, 1]] as const) {
    const failed = response.slice();
    new DataView(failed.buffer).setUint32(offset, value, true);
    assert.equal(evidenceFromFile(failed), failed, `header u32 @${offset} = ${value}`);
  }
  // The whole 4000-byte response buffer (struct snp_report_resp), zeros after the report; not with anything else there, nor longer.
  const buffer = new Uint8Array(4000);
  buffer.set(response);
  assert.deepEqual(evidenceFromFile(buffer), report);
  const dirty = buffer.slice();
  dirty[3999] = 1;
  assert.equal(evidenceFromFile(dirty), dirty);
  const longer = new Uint8Array(4001);
  longer.set(response);
  assert.equal(evidenceFromFile(longer), longer);
  // An Azure HCL report stays whole (test/attestation/azure.test.ts checks its runtime data), also from text.
  const genoa = file('sev-snp', 'genoa-v3-azure-trustee', 'report.bin');
  const runtimeData = new TextEncoder().encode('{"keys":[]}');
  const hcl = hclReport(genoa, { runtime: runtimeData, padding: 0 });
  assert.equal(evidenceFromFile(hcl), hcl);
  assert.deepEqual(evidenceFromFile(new TextEncoder().encode(Buffer.from(hcl).toString('base64'))), hcl);
  for (const [offset, value] of [[32 + 1184 + 8, 4], [32 + 1184 + 16, runtimeData.length + 1], [0, 0x414c4349]] as const) {
    const other = hcl.slice();
    new DataView(other.buffer).setUint32(offset, value, true);
    assert.equal(evidenceFromFile(other), other, `HCL u32 @${offset} = ${value}`);
    assert.equal(detectEvidenceKind(other), undefined, `HCL u32 @${offset} = ${value}`);
  }
  for (const text of ['hello', '00'.repeat(1184), Buffer.from(new Uint8Array(1184)).toString('base64'), 'zz', '']) {
    const bytes = new TextEncoder().encode(text);
    assert.equal(evidenceFromFile(bytes), bytes);
  }
});

test('test roots are accepted only through trustedTestRoots and are always reported as test:...', async () => {
  const chain = await createTestSnpChain({ product: 'genoa' });
  const report = await createTestSnpReport(chain);
  const now = new Date('2026-01-01T00:00:00Z');
  const certs = [chain.leaf.der, toPem('CERTIFICATE', chain.ask.der)];
  const untrusted = await verifyEvidence({ evidence: report, certs, now });
  assert.equal(untrusted.verified, false);
  assert.equal(untrusted.failure?.step, 'chain');
  const trusted = await verifyEvidence({ evidence: report, certs, now, trustedTestRoots: [{ name: 'software-keep', certificate: chain.ark.der }] });
  assert.equal(trusted.verified, true, trusted.failure?.message ?? "");
  assert.equal(trusted.trustAnchor, 'test:software-keep');
});

test('decodeEvidence prints every field without verifying, and refuses what is not evidence', () => {
  const d = decodeEvidence(file('sev-snp', 'milan-v5-gcp-teekit', 'report.bin'));
  assert.equal(d.kind, 'snp');
  assert.equal(d.claims.product, 'milan');
  assert.equal(d.claims.launchMitVector, '0x000000000000000b');
  const q = decodeEvidence(file('tdx', 'phala-tdx-v4', 'quote.bin'));
  assert.equal(q.kind, 'tdx');
  assert.equal(q.measurement, '91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7');
  assert.throws(() => decodeEvidence(new Uint8Array(5)), { step: 'parse', message: /not attestation evidence/ });
});

test('verifyEvidence never throws on truncated, oversized or random evidence', async () => {
  const samples = [file('sev-snp', 'milan-v5-gcp-teekit', 'report.bin'), file('sgx', 'phala-sgx-v3', 'quote.bin'), file('tdx', 'phala-tdx-v4', 'quote.bin')];
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 2 }), fc.nat(), fc.uint8Array({ maxLength: 64 }), async (which, cut, tail) => {
      const base = samples[which]!;
      for (const evidence of [base.subarray(0, cut % (base.length + 1)), new Uint8Array([...base, ...tail]), tail]) {
        const r = await verifyEvidence({ evidence, now: new Date('2025-12-06T00:00:00Z') });
        assert.ok(['snp', 'sgx', 'tdx'].includes(r.kind));
        if (!r.verified) assert.ok(VERIFICATION_STEPS.includes(r.failure!.step));
      }
    }),
    { numRuns: 120 },
  );
});

test('inputs that are not evidence but another input of a verification are named, with where they go', async () => {
  const cases: Array<[Uint8Array, RegExp]> = [
    [file('sev-snp', 'milan-v2-gosevguest', 'vcek.der'), /this is a certificate: give it as a certificate \(--cert\)/],
    [file('sev-snp', 'amd-roots', 'ask_ark_milan.pem'), /this is a certificate/],
    [file('sev-snp', 'amd-roots', 'crl_vcek_milan.pem'), /this is a CRL: give it as a CRL \(--crl\)/],
    [file('sgx', 'mobilecoin-sgx-v3', 'pck_crl_processor.der'), /this is a CRL/],
    [file('tdx', 'phala-tdx-v4', 'collateral.json'), /this is Intel collateral .*--collateral/],
    [file('sgx', 'mobilecoin-sgx-v3', 'tcb_info_fmspc_00906ED50000.json'), /this is Intel collateral/],
    [new TextEncoder().encode('eyJhbGciOiJSUzI1NiJ9.eyJ4IjoxfQ.c2ln\n'), /JSON Web Token: an attestation service's verdict/],
  ];
  for (const [bytes, message] of cases) {
    const r = await verifyEvidence({ evidence: bytes });
    assert.equal(r.failure?.step, 'parse');
    assert.match(r.failure!.message, message);
    assert.throws(() => decodeEvidence(bytes), { step: 'parse', message });
  }
  // Bytes that are none of these keep the general message.
  assert.match((await verifyEvidence({ evidence: new Uint8Array(300) })).failure!.message, /neither a 1184-byte SEV-SNP report nor an SGX\/TDX DCAP quote \(300 bytes\)/);
});
