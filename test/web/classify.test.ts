import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { classify } from '../../src/web/app.ts';
import { testdata } from '../helpers/paths.ts';
import { hclReport } from '../attestation/azure-hcl.ts';

// What the page makes of dropped files in the forms tools write them (the browser test drives the
// raw forms through Chromium; this covers the text forms without a browser).
const file = (...p: string[]) => new Uint8Array(readFileSync(testdata('attestation', ...p)));
const text = (s: string) => new TextEncoder().encode(s);

test('the page classifies evidence, certificates and CRLs written as hex, base64 or URL-encoded text', () => {
  const quote = file('tdx', 'phala-tdx-v4', 'quote.bin');
  const asHex = classify('quote.hex', text(`0x${Buffer.from(quote).toString('hex')}\n`));
  assert.equal(asHex.role, 'evidence');
  assert.equal(asHex.detail, 'evidence: Intel TDX quote (decoded from text)');
  assert.deepEqual(asHex.bytes, quote);
  assert.equal(classify('quote.bin', quote).detail, 'evidence: Intel TDX quote');
  // A binary wrapper is not text: the page says what it took the report out of.
  const report = file('sev-snp', 'milan-v2-gosevguest', 'report.bin');
  const response = new Uint8Array(32 + report.length);
  new DataView(response.buffer).setUint32(4, report.length, true);
  response.set(report, 32);
  const unwrapped = classify('report.rsp', response);
  assert.equal(unwrapped.detail, 'evidence: AMD SEV-SNP report (taken out of its SNP_GET_REPORT response)');
  assert.deepEqual(unwrapped.bytes, report);
  // An Azure HCL report is evidence as it is (its runtime data is checked); a TDX one goes with a TD quote.
  const hcl = hclReport(report, { runtime: text('{}'), padding: 0 });
  const azure = classify('hcl.bin', hcl);
  assert.equal(azure.detail, 'evidence: AMD SEV-SNP report in an Azure HCL report (its runtime data is checked too)');
  assert.equal(azure.bytes, hcl);
  const tdxHcl = hclReport(report, { type: 'tdx', runtime: text('{}'), padding: 0 });
  const tdx = classify('hcl-tdx.b64', text(Buffer.from(tdxHcl).toString('base64')));
  assert.equal(tdx.role, 'azure-hcl');
  assert.deepEqual(tdx.bytes, tdxHcl);
  // Evidence inside a JSON document brings the certificates it carries.
  const vcek = new TextDecoder().decode(file('sev-snp', 'genoa-v3-azure-trustee', 'vcek.pem'));
  const bundled = classify('evidence.json', text(JSON.stringify({ report: Array.from(report), vcek })));
  assert.equal(bundled.role, 'evidence');
  assert.equal(bundled.detail, 'evidence: AMD SEV-SNP report (field report of a JSON document, with 1 certificate)');
  assert.deepEqual(bundled.bytes, report);
  assert.equal(bundled.beside?.certs.length, 1);
  const rootCrl = file('sgx', 'mobilecoin-sgx-v3', 'root_ca_crl.der');
  assert.equal(classify('rootcacrl', text(Buffer.from(rootCrl).toString('hex'))).detail, 'CRL (hex, base64 or URL-encoded)');
  assert.equal(classify('root.crl', rootCrl).detail, 'CRL (DER)');
  const chain = encodeURIComponent(new TextDecoder().decode(file('sev-snp', 'amd-roots', 'ask_ark_milan.pem')));
  assert.equal(classify('chain.txt', text(chain)).detail, '2 certificates (hex, base64 or URL-encoded)');
  assert.equal(classify('notes.txt', text('just some notes')).role, 'unknown');
});

test('the page verifies evidence from a JSON document with the certificate it carries, and binds an Azure HCL report dropped beside a TD quote', async () => {
  const { verifyFiles } = await import('../../src/web/app.ts');
  const report = file('sev-snp', 'genoa-v3-azure-trustee', 'report.bin');
  const vcek = new TextDecoder().decode(file('sev-snp', 'genoa-v3-azure-trustee', 'vcek.pem'));
  const bundled = await verifyFiles([classify('evidence.json', text(JSON.stringify({ report: Array.from(report), vcek })))], new Date('2025-06-01T00:00:00Z'));
  assert.equal(bundled.result?.verified, true, bundled.result?.failure?.message ?? '');
  const tdx = hclReport(new Uint8Array(1024), { type: 'tdx' });
  const files = [classify('quote.bin', file('tdx', 'phala-tdx-v4', 'quote.bin')), classify('collateral.json', file('tdx', 'phala-tdx-v4', 'collateral.json')), classify('hcl.bin', tdx)];
  const bound = await verifyFiles(files, new Date('2025-07-01T00:00:00Z'));
  assert.equal(bound.result?.failure?.step, 'binding');
  const two = await verifyFiles([...files, classify('hcl2.bin', tdx)], new Date('2025-07-01T00:00:00Z'));
  assert.match(two.error ?? '', /at most one Azure HCL report/);
});

test('the page takes the SEV-SNP certificate table a Keep collects (configfs-tsm auxblob) as certificates', async () => {
  const { verifyFiles } = await import('../../src/web/app.ts');
  const { buildCertTable } = await import('../../src/attestation/snp/certtable.ts');
  const { parseCertificates } = await import('../../src/attestation/x509.ts');
  const [ask, ark] = parseCertificates(file('sev-snp', 'amd-roots', 'ask_ark_milan.pem'));
  const table = buildCertTable([
    { guid: '63da758d-e664-4564-adc5-f4b93be8accd', der: file('sev-snp', 'milan-v2-gosevguest', 'vcek.der') },
    { guid: '4ab7b379-bbac-4fe4-a02f-05aef327c782', der: ask!.der },
    { guid: 'c0b406a4-a803-4952-9743-3fb6014cd0ae', der: ark!.der },
  ]);
  const classified = classify('auxblob', table);
  assert.equal(classified.role, 'certificate');
  assert.equal(classified.detail, '3 certificates (SEV-SNP certificate table)');
  const r = await verifyFiles([classify('report.bin', file('sev-snp', 'milan-v2-gosevguest', 'report.bin')), classified], new Date('2025-12-06T00:00:00Z'));
  assert.equal(r.result?.verified, true, r.result?.failure?.message ?? '');
  // A table cut short is a clear rejection, not a crash.
  const cut = await verifyFiles([classify('report.bin', file('sev-snp', 'milan-v2-gosevguest', 'report.bin')), { ...classified, bytes: table.subarray(0, 40) }], new Date('2025-12-06T00:00:00Z'));
  assert.equal(cut.result?.failure?.step, 'parse');
  assert.match(cut.result?.failure?.message ?? "", /SNP certificate table entry 0 points outside the table/);
});
