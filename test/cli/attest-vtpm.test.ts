// `enarx attest verify` with an Azure vTPM quote given on its own (--vtpm-quote: Azure's JSON, or
// tpm2_quote's three files) and with a local test root (--trust-test-root). The SNP chain and the
// vTPM attestation key are made here, as a test root is; nothing claims to be AMD's.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestSnpChain, createTestSnpReport } from '../../src/attestation/testing/snp.ts';
import { hclReport, reportDataFor, tpmsAttest, tpmtSignature } from '../attestation/azure-hcl.ts';
import { runEnarx } from '../helpers/cli.ts';

describe('attest verify --vtpm-quote and --trust-test-root', () => {
  const dir = mkdtempSync(join(tmpdir(), 'enarx-vtpm-'));
  const f = (name: string) => join(dir, name);
  const pcrs = Array.from({ length: 24 }, (_, i) => new Uint8Array(32).fill(i));
  let base: string[];
  after(() => rmSync(dir, { recursive: true, force: true }));

  before(async () => {
    const chain = await createTestSnpChain({ product: 'milan' });
    const ak = (await crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: Uint8Array.of(1, 0, 1), hash: 'SHA-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const jwk = await crypto.subtle.exportKey('jwk', ak.publicKey);
    const runtime = JSON.stringify({ keys: [{ kid: 'HCLAkPub', key_ops: ['sign'], kty: 'RSA', e: jwk.e, n: jwk.n }], 'vm-configuration': { 'secure-boot': true } });
    writeFileSync(f('hcl.bin'), hclReport(await createTestSnpReport(chain, { reportData: reportDataFor(runtime) }), { runtime: new TextEncoder().encode(runtime) }));
    writeFileSync(f('vcek.der'), chain.leaf.der);
    writeFileSync(f('ask.der'), chain.ask.der);
    writeFileSync(f('ark.der'), chain.ark.der);
    const message = tpmsAttest(new TextEncoder().encode('challenge'), pcrs);
    const signature = new Uint8Array(await crypto.subtle.sign('RSASSA-PKCS1-v1_5', ak.privateKey, message));
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    writeFileSync(f('quote.json'), JSON.stringify({ message: hex(message), signature: hex(signature), pcrs: pcrs.map(hex) }));
    writeFileSync(f('quote.msg'), message);
    writeFileSync(f('quote.sig'), tpmtSignature(signature));
    writeFileSync(f('quote.pcrs'), Buffer.concat(pcrs));
    const forged = signature.slice();
    forged[7] = forged[7]! ^ 1;
    writeFileSync(f('forged.sig'), forged);
    writeFileSync(f('other.pcrs'), Buffer.concat(pcrs.map((p, i) => (i === 7 ? new Uint8Array(32).fill(0xee) : p))));
    base = ['attest', 'verify', '--evidence', f('hcl.bin'), '--cert', f('vcek.der'), '--cert', f('ask.der'), '--trust-test-root', f('ark.der')];
  });

  test("a JSON quote or tpm2_quote's files verify with the bound key: PCRs and nonce shown, the trust anchor named test:", async () => {
    const json = await runEnarx([...base, '--vtpm-quote', f('quote.json'), '--json']);
    assert.equal(json.code, 0, json.stderr);
    const out = JSON.parse(json.stdout);
    assert.equal(out.verified, true);
    assert.equal(out.claims.verification.trustAnchor, 'test:ark');
    assert.equal(out.claims.azure.vtpmQuote.nonce, Buffer.from('challenge').toString('hex'));
    assert.equal(out.claims.azure.vtpmQuote.pcrs['7'], '07'.repeat(32));
    assert.doesNotMatch(json.stderr, /vTPM quote \(PCRs\) is not verified/);
    const files = await runEnarx([...base, '--vtpm-quote', f('quote.msg'), '--vtpm-signature', f('quote.sig'), '--vtpm-pcrs', f('quote.pcrs')]);
    assert.equal(files.code, 0, files.stderr);
    assert.match(files.stdout, /^AMD SEV-SNP report: VERIFIED$/m);
    assert.match(files.stdout, /^ {2}trust anchor +test:ark$/m);
    assert.match(files.stdout, /^ {2}vTPM quote +verified: SHA-256 PCRs 0,1,2,.*,23, nonce 6368616c6c656e6765$/m);
  });

  test('without a quote the warning names --vtpm-quote; without the test root the chain is not trusted', async () => {
    const bare = await runEnarx(base);
    assert.equal(bare.code, 0, bare.stderr);
    assert.match(bare.stderr, /vTPM quote \(PCRs\) is not verified.*give the vTPM quote too \(--vtpm-quote\)/);
    const untrusted = await runEnarx(base.slice(0, -2));
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stdout, /REJECTED at step 'chain'/);
  });

  test('a forged signature or other PCR values are rejected (exit 1) at their step', async () => {
    const forged = await runEnarx([...base, '--vtpm-quote', f('quote.msg'), '--vtpm-signature', f('forged.sig'), '--vtpm-pcrs', f('quote.pcrs'), '--json']);
    assert.equal(forged.code, 1);
    assert.deepEqual(JSON.parse(forged.stdout).failure, { step: 'signature', message: 'the vTPM quote is not signed by the attestation key the hardware report binds' });
    const other = await runEnarx([...base, '--vtpm-quote', f('quote.msg'), '--vtpm-signature', f('quote.sig'), '--vtpm-pcrs', f('other.pcrs'), '--json']);
    assert.equal(other.code, 1);
    assert.equal(JSON.parse(other.stdout).failure.step, 'binding');
  });

  test('bad or missing inputs: one-line usage errors, exit 2, nothing on stdout', async () => {
    writeFileSync(f('short.pcrs'), new Uint8Array(100));
    writeFileSync(f('noquote.json'), '{"message": "00"}');
    writeFileSync(f('garbage.pem'), 'not a certificate');
    writeFileSync(f('evidence-with-quote.json'), JSON.stringify({ report: Array.from(hclReport(new Uint8Array(1184))), quote: JSON.parse(readFileSync(f('quote.json'), 'utf8')) }));
    for (const [args, message] of [
      [[...base, '--vtpm-signature', f('quote.sig')], /--vtpm-signature and --vtpm-pcrs go with --vtpm-quote/],
      [[...base, '--vtpm-quote', f('quote.msg')], /quote\.msg is not a JSON vTPM quote, so it needs --vtpm-signature and --vtpm-pcrs/],
      [[...base, '--vtpm-quote', f('quote.msg'), '--vtpm-signature', f('quote.sig'), '--vtpm-pcrs', f('short.pcrs')], /the PCR values are 100 bytes, but the quote selects 24 SHA-256 PCRs \(768 bytes/],
      [[...base, '--vtpm-quote', f('quote.json'), '--vtpm-pcrs', f('quote.pcrs')], /is a whole vTPM quote \(JSON\); --vtpm-signature and --vtpm-pcrs are for tpm2_quote's -m file/],
      [[...base, '--vtpm-quote', f('noquote.json')], /noquote\.json: no field of the JSON document is a vTPM quote/],
      [[...base, '--vtpm-quote', f('missing.json')], /cannot read vTPM quote file '.*missing\.json': no such file/],
      [['attest', 'verify', '--evidence', f('evidence-with-quote.json'), '--vtpm-quote', f('quote.json')], /carries a vTPM quote and --vtpm-quote gives another/],
      [[...base.slice(0, -2), '--trust-test-root', f('garbage.pem')], /cannot use .*garbage\.pem as a test root/],
      [[...base.slice(0, -2), '--trust-test-root', f('vcek.der')], /vcek\.der holds no self-signed root certificate/],
      [[...base.slice(0, -2), '--trust-test-root', f('none.pem')], /cannot use .*none\.pem as a test root: no such file/],
    ] as const) {
      const r = await runEnarx([...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n')[0]!.startsWith('enarx: '), true, r.stderr);
    }
  });
});
