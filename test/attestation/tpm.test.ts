// Azure vTPM quotes: TPMS_ATTEST signed by the attestation key the HCL runtime data carries. The
// keys here are made locally (as a test root is): the report that binds the runtime data is signed
// under a test SNP chain, the quote by a fresh RSA attestation key.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { evidenceBundleFromFile, parseTpmQuote, verifyEvidence, VerificationError, vtpmQuoteFromJson, vtpmQuoteFromTpm2Tools, type VtpmQuote } from '../../src/attestation/index.ts';
import { createTestSnpChain, createTestSnpReport, type TestSnpChain } from '../../src/attestation/testing/snp.ts';
import { hclReport, reportDataFor, tpmsAttest, tpmtSignature } from './azure-hcl.ts';
import { evaluatePolicy, parsePolicy } from '../../src/attestation/policy/index.ts';

const cat = (...parts: Uint8Array[]): Uint8Array<ArrayBuffer> => new Uint8Array(Buffer.concat(parts));

describe('vTPM quote verified with the attestation key the HCL runtime data binds', () => {
  let chain: TestSnpChain;
  let ak: CryptoKeyPair;
  let evidence: Uint8Array;
  let quote: VtpmQuote;
  const now = new Date('2026-01-01T00:00:00Z');
  const pcrs = Array.from({ length: 24 }, (_, i) => new Uint8Array(32).fill(i));
  const verify = (q: VtpmQuote, e = evidence) =>
    verifyEvidence({ evidence: e, vtpmQuote: q, certs: [chain.leaf.der, chain.ask.der], now, trustedTestRoots: [{ name: 'azure', certificate: chain.ark.der }] });

  before(async () => {
    chain = await createTestSnpChain({ product: 'milan' });
    ak = (await crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: Uint8Array.of(1, 0, 1), hash: 'SHA-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const jwk = await crypto.subtle.exportKey('jwk', ak.publicKey);
    const runtime = JSON.stringify({ keys: [{ kid: 'HCLAkPub', key_ops: ['sign'], kty: 'RSA', e: jwk.e, n: jwk.n }], 'vm-configuration': { 'secure-boot': true } });
    evidence = hclReport(await createTestSnpReport(chain, { reportData: reportDataFor(runtime) }), { runtime: new TextEncoder().encode(runtime) });
    const message = tpmsAttest(new TextEncoder().encode('challenge'), pcrs);
    quote = { message, signature: new Uint8Array(await crypto.subtle.sign('RSASSA-PKCS1-v1_5', ak.privateKey, message)), pcrs };
  });

  test('a good quote: its PCRs and nonce become claims, and the "not verified" warning goes', async () => {
    const r = await verify(quote);
    assert.equal(r.verified, true, r.failure?.message ?? '');
    const q = (r.claims.azure as any).vtpmQuote;
    assert.equal(q.nonce, Buffer.from('challenge').toString('hex'));
    assert.equal(q.pcrBank, 'SHA-256');
    assert.equal(q.pcrs['7'], '07'.repeat(32));
    assert.equal(Object.keys(q.pcrs).length, 24);
    assert.ok(!r.warnings.some((w) => /vTPM quote \(PCRs\) is not verified/.test(w)));
    // tpm2_quote's default signature file, a TPMT_SIGNATURE (RSASSA, SHA-256, size), is read too.
    const wrapped = { ...quote, signature: tpmtSignature(quote.signature) };
    assert.equal((await verify(wrapped)).verified, true);
  });

  test('a forged signature, other PCR values, missing PCRs, or a quote without its HCL report are refused', async () => {
    const sig = quote.signature.slice();
    sig[10] = sig[10]! ^ 1;
    assert.equal((await verify({ ...quote, signature: sig })).failure?.step, 'signature');
    const other = quote.pcrs.map((p, i) => (i === 7 ? new Uint8Array(32).fill(0xee) : p));
    const changed = await verify({ ...quote, pcrs: other });
    assert.equal(changed.failure?.step, 'binding');
    assert.match(changed.failure!.message, /PCR digest differs/);
    assert.match((await verify({ ...quote, pcrs: quote.pcrs.slice(0, 10) })).failure!.message, /were not all given/);
    const noHcl = await verifyEvidence({ evidence: evidence.subarray(32, 32 + 1184), vtpmQuote: quote, now });
    assert.match(noHcl.failure!.message, /without the Azure HCL report/);
    const message = quote.message.slice();
    message[40] = message[40]! ^ 1;
    assert.equal((await verify({ ...quote, message })).failure?.step, 'signature');
  });

  test('an [azure] policy checks the VM configuration, that a vTPM quote verified, and the quoted PCRs', async () => {
    const good = await verify(quote);
    const withoutQuote = await verifyEvidence({ evidence, certs: [chain.leaf.der, chain.ask.der], now, trustedTestRoots: [{ name: 'azure', certificate: chain.ark.der }] });
    const plain = await verifyEvidence({ evidence: evidence.subarray(32, 32 + 1184), certs: [chain.leaf.der, chain.ask.der], now, trustedTestRoots: [{ name: 'azure', certificate: chain.ark.der }] });
    assert.equal(withoutQuote.verified, true);
    assert.equal(plain.verified, true);
    const pcr7 = '07'.repeat(32);
    const policy = parsePolicy(`[azure]\nvtpm_quote = true\npcrs = { "7" = ["${pcr7.toUpperCase()}"], "0" = ["${'00'.repeat(32)}", "${'aa'.repeat(32)}"] }\nvm_configuration = { secure-boot = true }\n`);
    assert.deepEqual(evaluatePolicy(policy, good), { accepted: true, reasons: [] });
    assert.deepEqual(evaluatePolicy(policy, withoutQuote).reasons, ['azure: no vTPM quote was verified, and the policy requires one (give the vTPM quote with the HCL report)']);
    assert.deepEqual(evaluatePolicy(policy, plain).reasons, ['azure: the report data binds no Azure HCL runtime data (give the HCL report)']);
    const strict = parsePolicy(`[azure]\npcrs = { "7" = ["${'ee'.repeat(32)}"] }\nvm_configuration = { secure-boot = false, console-enabled = false }\n`);
    assert.deepEqual(evaluatePolicy(strict, good).reasons, [
      'azure: vm-configuration secure-boot is true, the policy requires false',
      "azure: the runtime data's vm-configuration has no 'console-enabled'",
      `azure: PCR 7 is ${pcr7}, not a value the policy allows`,
    ]);
    // Without an [azure] section, or with an empty one, Azure evidence and plain evidence are judged alike.
    assert.equal(evaluatePolicy(parsePolicy('[azure]\n'), plain).accepted, true);
    for (const [text, message] of [
      ['[azure]\npcrs = { "24" = ["' + pcr7 + '"] }', /\[azure\] pcrs.24: a PCR index is 0 to 23/],
      ['[azure]\npcrs = { "7" = ["abc"] }', /\[azure\] pcrs.7\[0\]: expected the hex of a SHA-1, SHA-256/],
      ['[azure]\nvm_configuration = { a = [1] }', /\[azure\] vm_configuration.a: expected a string, a number or true\/false/],
      ['[azure]\nrequire = true', /\[azure\] unknown key 'require'/],
    ] as const) {
      assert.throws(() => parsePolicy(text), { name: 'PolicyError', message });
    }
  });

  test('the JSON forms attesters write ({message, signature, pcrs} as byte arrays or hex) carry the quote beside the evidence', async () => {
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    for (const form of [
      { report: Array.from(evidence), quote: { message: Array.from(quote.message), pcrs: quote.pcrs.map((p) => Array.from(p)), signature: Array.from(quote.signature) } },
      { version: 1, hcl_report: Buffer.from(evidence).toString('base64url'), tpm_quote: { signature: hex(quote.signature), message: hex(quote.message), pcrs: quote.pcrs.map(hex) } },
    ]) {
      const bundle = evidenceBundleFromFile(new TextEncoder().encode(JSON.stringify(form)));
      assert.deepEqual(bundle.vtpmQuote?.message, quote.message);
      assert.equal((await verify(bundle.vtpmQuote!, bundle.evidence)).verified, true);
    }
  });
});

test('TPMS_ATTEST parsing: a quote parses; anything cut, extended or random is a parse error, never a crash', () => {
  const pcrs = Array.from({ length: 24 }, () => new Uint8Array(32));
  const good = tpmsAttest(Uint8Array.of(1, 2, 3), pcrs);
  const info = parseTpmQuote(good);
  assert.deepEqual(info.selections, [{ hash: 'SHA-256', pcrs: Array.from({ length: 24 }, (_, i) => i) }]);
  assert.deepEqual(info.extraData, Uint8Array.of(1, 2, 3));
  assert.throws(() => parseTpmQuote(cat(good, Uint8Array.of(0))), { step: 'parse', message: /1 bytes after the quote information/ });
  const certify = good.slice();
  certify[5] = 0x17;
  assert.throws(() => parseTpmQuote(certify), { message: /is not a quote/ });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.tuple(fc.nat(good.length), fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })).map(([cut, at, v]) => {
      const b = good.slice(0, cut);
      if (at < b.length) b[at] = v;
      return b;
    })), (bytes) => {
      try {
        parseTpmQuote(bytes);
      } catch (err) {
        assert.ok(err instanceof VerificationError && err.step === 'parse', String(err));
      }
    }),
    { numRuns: 500 },
  );
});

test("tpm2_quote's files (-m, -s, -F values -o) make a quote: the values land on the selected PCRs; sizes that do not fit are refused", async () => {
  const selected = [0, 7, 11];
  const values = selected.map((i) => new Uint8Array(32).fill(0x40 + i));
  const message = tpmsAttest(Uint8Array.of(9), values, selected);
  const q = vtpmQuoteFromTpm2Tools(message, Uint8Array.of(1), Buffer.concat(values));
  assert.deepEqual(q.pcrs[7], new Uint8Array(32).fill(0x47));
  assert.deepEqual(q.pcrs[11], new Uint8Array(32).fill(0x4b));
  assert.equal(q.pcrs[1]!.length, 0);
  assert.throws(() => vtpmQuoteFromTpm2Tools(message, Uint8Array.of(1), Buffer.concat(values).subarray(1)), {
    step: 'parse',
    message: /the PCR values are 95 bytes, but the quote selects 3 SHA-256 PCRs \(96 bytes; tpm2_quote -F values -o writes them\)/,
  });
  assert.throws(() => vtpmQuoteFromTpm2Tools(Uint8Array.of(1, 2, 3), Uint8Array.of(1), new Uint8Array(0)), { step: 'parse', message: /vTPM quote: magic runs past the end/ });
});

test('vtpmQuoteFromJson finds the one {message, signature, pcrs} in a document, says why there is none, and leaves non-JSON alone', () => {
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  const message = tpmsAttest(Uint8Array.of(1), [new Uint8Array(32)], [0]);
  const quote = { message: hex(message), signature: hex(new Uint8Array(256).fill(1)), pcrs: [hex(new Uint8Array(32))] };
  const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const top = vtpmQuoteFromJson(json(quote));
  assert.ok(top && 'quote' in top);
  assert.deepEqual(top.quote.message, message);
  const nested = vtpmQuoteFromJson(json({ evidence: { tpm_quote: quote } }));
  assert.ok(nested && 'quote' in nested);
  assert.deepEqual(vtpmQuoteFromJson(json({ a: quote, b: quote })), { error: 'the JSON document holds more than one vTPM quote' });
  assert.match((vtpmQuoteFromJson(json({ message: 'ab' })) as { error: string }).error, /no field of the JSON document is a vTPM quote/);
  assert.equal(vtpmQuoteFromJson(message), undefined);
  assert.equal(vtpmQuoteFromJson(new TextEncoder().encode('{not json')), undefined);
});
