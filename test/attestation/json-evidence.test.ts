// Evidence carried in a JSON document, as attesters and DCAP tools hand it over: real reports and
// quotes from shared/testdata placed in the field forms those tools use (byte arrays, hex, base64url).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { testdata } from '../helpers/paths.ts';
import { evidenceBundleFromFile, evidenceFromFile, verifyEvidence } from '../../src/attestation/index.ts';
import { hclReport } from './azure-hcl.ts';

const file = (...p: string[]) => new Uint8Array(readFileSync(testdata('attestation', ...p)));
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value, null, 2));
const genoa = file('sev-snp', 'genoa-v3-azure-trustee', 'report.bin');
const genoaVcek = new TextDecoder().decode(file('sev-snp', 'genoa-v3-azure-trustee', 'vcek.pem'));

test('a report as a byte array with its VCEK as PEM (CoCo attester form) verifies with the certificate it carries', async () => {
  const bundle = evidenceBundleFromFile(json({ report: Array.from(genoa), vcek: genoaVcek, version: 1 }));
  assert.deepEqual(bundle.evidence, genoa);
  assert.equal(bundle.field, 'report');
  assert.equal(bundle.certs.length, 1);
  const r = await verifyEvidence({ evidence: bundle.evidence, certs: bundle.certs, now: new Date('2025-06-01T00:00:00Z') });
  assert.equal(r.verified, true, r.failure?.message ?? '');
  assert.equal(r.trustAnchor, 'amd-genoa');
});

test('nested fields, hex and base64url: a TD quote beside a TDX HCL report, a DER VCEK in base64', () => {
  const quote = file('tdx', 'phala-tdx-v4', 'quote.bin');
  const tdx = hclReport(new Uint8Array(1024), { type: 'tdx' });
  const b = evidenceBundleFromFile(json({ tee: 'aztdxvtpm', evidence: { td_quote: Buffer.from(quote).toString('base64url'), hcl_report: Buffer.from(tdx).toString('hex') } }));
  assert.deepEqual(b.evidence, quote);
  assert.equal(b.field, 'evidence.td_quote');
  assert.deepEqual(b.azureHcl, tdx);
  const der = Buffer.from(genoaVcek.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const snp = evidenceBundleFromFile(json({ quote: `0x${Buffer.from(genoa).toString('hex')}`, cert: der.toString('base64') }));
  assert.deepEqual(snp.evidence, genoa);
  assert.deepEqual(snp.certs, [new Uint8Array(der)]);
  // An SNP report inside an HCL report in JSON stays whole.
  const hcl = hclReport(genoa);
  assert.deepEqual(evidenceFromFile(json({ hcl_report: Buffer.from(hcl).toString('base64') })), hcl);
});

test('a JSON document without exactly one piece of evidence is refused with a message that says why', async () => {
  const none = json({ quote: { message: Array.from({ length: 100 }, (_, i) => i), signature: 'abcd' }, pcrs: [] });
  assert.equal(evidenceFromFile(none), none);
  const r = await verifyEvidence({ evidence: none });
  assert.equal(r.failure?.step, 'parse');
  assert.match(r.failure!.message, /JSON document in which no field holds evidence/);
  const two = json({ a: Buffer.from(genoa).toString('hex'), b: Array.from(file('sev-snp', 'milan-v2-gosevguest', 'report.bin')) });
  assert.match((await verifyEvidence({ evidence: two })).failure!.message, /more than one piece of evidence \(a, b\)/);
  // Intel collateral is JSON too, and is not evidence: it is refused, and named.
  assert.match((await verifyEvidence({ evidence: file('tdx', 'phala-tdx-v4', 'collateral.json') })).failure!.message, /this is Intel collateral/);
});

test('property: any JSON value, and JSON with evidence bytes cut or flipped, never throws from the JSON reader', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 5 }), (value) => {
      const bytes = new TextEncoder().encode(JSON.stringify(value) ?? 'null');
      evidenceBundleFromFile(bytes);
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.nat(genoa.length), fc.nat(genoa.length - 1), fc.integer({ min: 0, max: 255 }), (cut, at, v) => {
      const bytes = genoa.slice(0, cut);
      if (at < bytes.length) bytes[at] = v;
      const bundle = evidenceBundleFromFile(json({ report: Array.from(bytes), hex: Buffer.from(bytes).toString('hex') }));
      assert.ok(bundle.evidence instanceof Uint8Array);
    }),
    { numRuns: 100 },
  );
});
