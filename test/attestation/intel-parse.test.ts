// Parsers of untrusted bytes and text: quotes, collateral JSON, PCK extensions. Property tests check
// that nothing crashes and that every rejection is a one-line 'parse' failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeIntelQuote,
  decodePckExtensions,
  detectIntelQuote,
  loadIntelCollateral,
  parseCollateralJson,
  parseQuote,
  verifyIntelQuote,
} from '../../src/attestation/intel/index.ts';
import { rawMember } from '../../src/attestation/intel/collateral.ts';
import { VERIFICATION_STEPS, VerificationError } from '../../src/attestation/types.ts';
import { phalaSgx, phalaTdx, phalaTdxV5, read, readText } from './intel-vectors.ts';
import { sgxExtension } from './intel-synthetic.ts';

const vectors = [phalaSgx(), phalaTdx(), phalaTdxV5()];

function assertParseError(f: () => unknown): void {
  assert.throws(f, (err: unknown) => err instanceof VerificationError && err.step === 'parse' && !err.message.includes('\n'));
}

test('every truncation of a quote before its declared end is a parse error', () => {
  for (const v of vectors) {
    const declared = parseQuote(v.quote).length;
    for (let n = 0; n < declared; n += n < 1300 ? 1 : 97) assertParseError(() => parseQuote(v.quote.subarray(0, n)));
  }
});

test('property: truncated, extended and random quotes never crash the verifier', async () => {
  const v = phalaTdx();
  const declared = parseQuote(v.quote).length;
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: v.quote.length }), async (n) => {
      const r = await verifyIntelQuote(v.quote.subarray(0, n), v.options);
      if (n < declared) assert.equal(r.failure?.step, 'parse');
      else assert.equal(r.verified, true);
    }),
    { numRuns: 60 },
  );
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), async (extra) => {
      const r = await verifyIntelQuote(new Uint8Array([...v.quote, ...extra]), v.options);
      assert.equal(r.verified, true);
      assert.equal(r.trailingBytes, 70 + extra.length);
    }),
    { numRuns: 30 },
  );
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 6000 }), async (bytes) => {
      const r = await verifyIntelQuote(bytes, v.options);
      assert.equal(r.verified, false);
      assert.equal(r.failure?.step, 'parse');
    }),
    { numRuns: 200 },
  );
});

test('property: a quote with random bytes overwritten is rejected cleanly, never with a crash', async () => {
  const v = phalaSgx();
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 1051 }), fc.integer({ min: 1, max: 255 }), async (at, x) => {
      const q = new Uint8Array(v.quote);
      q[at]! ^= x;
      const r = await verifyIntelQuote(q, v.options);
      assert.ok(r.failure === null || VERIFICATION_STEPS.includes(r.failure.step));
      // Only bytes outside every signed and bound field may change without a rejection.
      if (r.verified) assert.ok(isUnsigned(at), `byte ${at} changed without a rejection`);
    }),
    { numRuns: 150 },
  );
});

// Bytes of an SGX v3 quote that no signature, binding or check covers: the QE auth data is bound;
// the reserved QE report bytes are signed. Only the QE report data's upper half is unchecked by QVL.
function isUnsigned(at: number): boolean {
  return at >= 564 + 352 && at < 564 + 384;
}

test('property: random PEM-less certification data, random JSON and random DER are parse errors', () => {
  fc.assert(
    fc.property(fc.string(), (text) => {
      try {
        parseCollateralJson(text);
      } catch (err) {
        assert.ok(err instanceof VerificationError && err.step === 'parse', String(err));
      }
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      try {
        parseCollateralJson(JSON.stringify(value));
      } catch (err) {
        assert.ok(err instanceof VerificationError && err.step === 'parse', String(err));
      }
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        decodePckExtensions(bytes);
      } catch (err) {
        assert.ok(err instanceof VerificationError && err.step === 'parse', String(err));
      }
    }),
    { numRuns: 300 },
  );
});

test('PCK SGX extensions round-trip and reject truncation', () => {
  const ext = sgxExtension({ fmspc: '00906ed50000', pceId: '0000', components: [20, 20, 2, 4, 1, 128, 14, 0, 0, 0, 0, 0, 0, 0, 0, 0], pceSvn: 13 });
  const d = decodePckExtensions(ext);
  assert.equal(d.fmspc, '00906ed50000');
  assert.deepEqual(d.tcbComponents.slice(0, 7), [20, 20, 2, 4, 1, 128, 14]);
  assert.equal(d.pceSvn, 13);
  assert.equal(d.sgxType, 1);
  for (let n = 0; n < ext.length; n += 7) assertParseError(() => decodePckExtensions(ext.subarray(0, n)));
});

test('the signed TCB info text is the exact inner object, sliced not re-serialised', () => {
  const body = readText('attestation', 'sgx', 'mobilecoin-sgx-v3', 'tcb_info_fmspc_00906ED50000.json');
  const { format, collateral } = parseCollateralJson(body);
  assert.equal(format, 'pcs-tcb-info');
  const text = new TextDecoder().decode(collateral.tcbInfo!.signedBytes);
  assert.equal(body.indexOf(text), '{"tcbInfo":'.length);
  assert.equal(body.slice(0, 11) + text + ',"signature":"', body.slice(0, body.lastIndexOf('"signature":"') + 13));
  // Whitespace and nesting are kept exactly; keys inside nested objects are not top-level members.
  const spaced = '{ "x" : {"tcbInfo": 1} ,\n "tcbInfo" :  { "a" : "}{\\"" , "b":[1,{}] }, "signature":"00"}';
  assert.equal(rawMember(spaced, 'tcbInfo'), '{ "a" : "}{\\"" , "b":[1,{}] }');
  assert.equal(rawMember(spaced, 'signature'), '"00"');
  assert.equal(rawMember(spaced, 'missing'), undefined);
});

test('collateral files are detected from their content', () => {
  const dir = ['attestation', 'sgx', 'mobilecoin-sgx-v3'];
  const c = loadIntelCollateral(
    ['tcb_info_fmspc_00906ED50000.json', 'qe_identity.json', 'tcb_signing_cert.pem', 'pck_crl_processor.der', 'root_ca_crl.der'].map((f) => ({
      name: f,
      bytes: read(...dir, f),
    })),
  );
  assert.equal(c.tcbInfo?.body.id, 'SGX');
  assert.equal(c.tcbInfo?.body.version, 3);
  assert.equal(c.qeIdentity?.body.id, 'QE');
  assert.equal(c.crls?.length, 2);
  assert.equal(c.certs?.length, 1);
  const combined = loadIntelCollateral([{ name: 'collateral.json', bytes: read('attestation', 'tdx', 'phala-tdx-v4', 'collateral.json') }]);
  assert.equal(combined.tcbInfo?.body.id, 'TDX');
  assert.equal(combined.tcbInfo?.body.tdxModuleIdentities?.length, 2);
  assert.equal(combined.qeIdentity?.body.id, 'TD_QE');
  assert.equal(combined.crls?.length, 2);
});

test('bad collateral gives one-line parse errors that name the file', () => {
  const bad = (text: string, re: RegExp) =>
    assert.throws(
      () => loadIntelCollateral([{ name: 'x.json', bytes: new TextEncoder().encode(text) }]),
      (e: unknown) => e instanceof VerificationError && e.step === 'parse' && re.test(e.message) && e.message.startsWith('x.json: '),
    );
  bad('{"tcbInfo":', /not valid JSON/);
  bad('{"hello":1}', /not recognised/);
  // PCS API v4 also serves TCB evaluation data numbers; a user passing every PCS document is told to leave it out.
  bad('{"tcbEvaluationDataNumbers":{"id":"SGX","version":1,"tcbEvalNumbers":[]},"signature":"00"}', /TCB evaluation data numbers .* verification does not use: leave it out/);
  bad('{"tcbInfo":{"version":1},"signature":"00"}', /version 1 is not supported/);
  bad('{"qeIdentity":{},"signature":"00"}', /version 1/);
  const tcb = readText('attestation', 'sgx', 'mobilecoin-sgx-v3', 'tcb_info_fmspc_00906ED50000.json');
  bad(tcb.replace(/"signature":"[0-9a-f]+"/, '"signature":"abc"'), /128 hex/);
  bad(tcb.replace('"OutOfDate"', '"Fine"'), /not a known TCB status/);
  bad(tcb.replace('"fmspc":"00906ED50000"', '"fmspc":"00906ED5"'), /fmspc must be 6 bytes/);
  bad(tcb.replace('"issueDate":"2023-07-12T19:56:44Z"', '"issueDate":"yesterday"'), /RFC 3339/);
  bad(tcb.replace('"tcbType":0', '"tcbType":1'), /tcbType 1 is not supported/);
  bad('not json and not pem', /not JSON collateral/);
  assert.throws(() =>
    loadIntelCollateral([
      { name: 'a', bytes: new TextEncoder().encode(tcb) },
      { name: 'b', bytes: new TextEncoder().encode(tcb) },
    ]),
  /more than one TCB info/);
});

test('the combined format also takes its CRLs as PEM', () => {
  const json = JSON.parse(readText('attestation', 'tdx', 'phala-tdx-v4', 'collateral.json'));
  const der = Buffer.from(json.pck_crl, 'hex');
  json.pck_crl = `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END X509 CRL-----\n`;
  const c = parseCollateralJson(JSON.stringify(json)).collateral;
  assert.deepEqual(Buffer.from(c.crls![0]!.der), der);
});

test('TCB info v2 (sgxtcbcompNNsvn) is read', () => {
  const v2 =
    '{"tcbInfo":{"version":2,"issueDate":"2020-01-01T00:00:00Z","nextUpdate":"2020-02-01T00:00:00Z","fmspc":"00906ED50000","pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":5,' +
    '"tcbLevels":[{"tcb":{' +
    Array.from({ length: 16 }, (_, i) => `"sgxtcbcomp${String(i + 1).padStart(2, '0')}svn":${i}`).join(',') +
    ',"pcesvn":9},"tcbDate":"2019-11-13T00:00:00Z","tcbStatus":"OutOfDate","advisoryIDs":["INTEL-SA-00001"]}]},"signature":"' +
    '00'.repeat(64) +
    '"}';
  const info = parseCollateralJson(v2).collateral.tcbInfo!.body;
  assert.equal(info.id, 'SGX');
  assert.deepEqual(info.tcbLevels[0]!.sgxComponents, Array.from({ length: 16 }, (_, i) => i));
  assert.equal(info.tcbLevels[0]!.pceSvn, 9);
});

test('quote kind detection for front ends', () => {
  assert.equal(detectIntelQuote(read('attestation', 'sgx', 'phala-sgx-v3', 'quote.bin')), 'sgx');
  assert.equal(detectIntelQuote(read('attestation', 'tdx', 'phala-tdx-v5-tcb-not-supported', 'quote.bin')), 'tdx');
  assert.equal(detectIntelQuote(read('attestation', 'sev-snp', 'milan-v2-gosevguest', 'report.bin')), undefined);
  assert.equal(detectIntelQuote(new Uint8Array(10)), undefined);
});

test('decode works on quotes the verifier would reject, and rejects malformed ones', () => {
  const d = decodeIntelQuote(read('attestation', 'tdx', 'phala-tdx-v5-tcb-not-supported', 'quote.bin'));
  assert.equal(d.claims.bodyType, 'td15');
  assertParseError(() => decodeIntelQuote(new Uint8Array(47)));
});

test('BytesMap: exact multi-part keys, its own copy of each key, bounded', async () => {
  const { BytesMap } = await import('../../src/attestation/intel/bytes-map.ts');
  const m = new BytesMap<string>(3);
  const a = Uint8Array.of(1, 2, 3);
  m.set([a, Uint8Array.of(4)], 'x');
  assert.equal(m.get(Uint8Array.of(1, 2, 3), Uint8Array.of(4)), 'x');
  assert.equal(m.get(Uint8Array.of(1, 2), Uint8Array.of(3, 4)), undefined, 'part boundaries are part of the key');
  assert.equal(m.get(Uint8Array.of(1, 2, 3)), undefined);
  a[0] = 9; // the caller reuses its buffer
  assert.equal(m.get(a, Uint8Array.of(4)), undefined);
  assert.equal(m.get(Uint8Array.of(1, 2, 3), Uint8Array.of(4)), 'x');
  for (let i = 0; i < 5; i++) m.set([Uint8Array.of(i)], String(i));
  assert.equal(m.get(Uint8Array.of(4)), '4');
  assert.equal(m.get(Uint8Array.of(1, 2, 3), Uint8Array.of(4)), undefined, 'cleared when full');
});
