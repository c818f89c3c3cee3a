// Structure-aware fuzzing of Intel collateral: real TCB info (SGX, TDX) and QE identity documents
// with one value anywhere in their tree replaced by random JSON. Each must parse or fail with a
// one-line 'parse' error, and verification must return a result, never throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseCollateralJson } from '../../src/attestation/intel/collateral.ts';
import { verifyIntelQuote } from '../../src/attestation/intel/index.ts';
import { VerificationError } from '../../src/attestation/types.ts';
import { read, readText } from './intel-vectors.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path to a value inside `value` (object keys and array indexes). */
function paths(value: Json, prefix: Array<string | number> = []): Array<Array<string | number>> {
  const out = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  return out;
}

function replaced(value: Json, path: Array<string | number>, replacement: Json | undefined): Json {
  if (path.length === 0) return replacement ?? null;
  const copy = structuredClone(value) as Record<string | number, Json>;
  let node = copy;
  for (const step of path.slice(0, -1)) node = node[step] as Record<string | number, Json>;
  const last = path[path.length - 1]!;
  if (replacement === undefined) {
    if (Array.isArray(node)) node.splice(last as number, 1);
    else delete node[last];
  } else node[last] = replacement;
  return copy;
}

const VECTORS = [
  { dir: ['attestation', 'sgx', 'phala-sgx-v3'], kind: 'sgx' as const, now: '2025-07-01T00:00:00Z' },
  { dir: ['attestation', 'tdx', 'phala-tdx-v4'], kind: 'tdx' as const, now: '2025-07-01T00:00:00Z' },
];

const oddValue = fc.oneof(
  fc.constant(undefined), // the member removed
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
  fc.constantFrom<Json>(-1, 1e300, 0.5, 65536, 256, '', 'zz', 'FFFFFFFF', '2026-13-45T99:99:99Z', [], {}, [{}], [{ svn: -1 }]),
);

for (const { dir, kind, now } of VECTORS) {
  test(`${kind}: collateral with any one value replaced parses or fails with a one-line parse error; verification never throws`, async () => {
    const combined = JSON.parse(readText(...dir, 'collateral.json')) as Record<string, string>;
    const quote = read(...dir, 'quote.bin');
    const docs = { tcb_info: JSON.parse(combined.tcb_info!) as Json, qe_identity: JSON.parse(combined.qe_identity!) as Json };
    const choices = (Object.keys(docs) as Array<keyof typeof docs>).flatMap((doc) => paths(docs[doc]).map((path) => ({ doc, path })));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...choices), oddValue, async ({ doc, path }, replacement) => {
        const text = JSON.stringify({ ...combined, [doc]: JSON.stringify(replaced(docs[doc], path, replacement)) });
        let collateral;
        try {
          collateral = parseCollateralJson(text).collateral;
        } catch (err) {
          assert.ok(err instanceof VerificationError, `not a VerificationError: ${String(err)}`);
          assert.equal(err.step, 'parse');
          assert.doesNotMatch(err.message, /\n/);
          return;
        }
        const r = await verifyIntelQuote(quote, { collateral, now: new Date(now) });
        // The document was re-serialised, so Intel's signature cannot match unless nothing changed.
        if (!r.verified) assert.ok(r.failure && r.failure.message.length > 0);
      }),
      { numRuns: 150 },
    );
  });
}

test('tdx 1.5: validly signed collateral with any one value replaced yields a result (the TCB evaluation sees odd values), never a throw', async () => {
  const { NOW, buildQuote, chainPem, makePki, qeIdentityJson, qeReport, signedCollateral, tcbInfoJson, tdBody } = await import('./intel-synthetic.ts');
  const { TCB_STATUSES } = await import('../../src/attestation/intel/collateral.ts');
  const pad = (xs: number[]) => [...xs, ...Array(16 - xs.length).fill(0)];
  const components = pad([5, 5, 2, 2, 4, 1, 0, 3]);
  const pki = await makePki({ fmspc: '30606a000000', pceId: '0000', components, pceSvn: 11 });
  const quote = await buildQuote({
    version: 5,
    tee: 'tdx',
    body: tdBody({ teeTcbSvn: '04010300000000000000000000000000', teeTcbSvn2: '05010300000000000000000000000000' }),
    qeReport: qeReport(9, 2),
    pck: pki.pck,
    chainPem: chainPem(pki),
  });
  const tcbInfo = JSON.parse(
    tcbInfoJson({
      id: 'TDX',
      fmspc: '30606a000000',
      levels: [
        { sgx: components, pceSvn: 11, tdx: pad([5, 1, 3]), status: 'UpToDate' },
        { sgx: components, pceSvn: 11, tdx: pad([2, 0, 2]), status: 'OutOfDate', advisories: ['INTEL-SA-00300'] },
      ],
      tdxModuleIdentities: [{ id: 'TDX_01', levels: [{ isvsvn: 5, status: 'UpToDate' }, { isvsvn: 3, status: 'OutOfDate' }] }],
    }),
  ) as Json;
  const qeIdentity = JSON.parse(qeIdentityJson({ id: 'TD_QE', isvProdId: 2, levels: [{ isvsvn: 8, status: 'UpToDate' }] })) as Json;
  const baseline = await verifyIntelQuote(quote, { collateral: await signedCollateral(pki, JSON.stringify(tcbInfo), JSON.stringify(qeIdentity)), now: NOW, roots: [pki.anchor] });
  assert.equal(baseline.failure, null, 'the unmodified synthetic collateral verifies, so mutations reach the TCB evaluation');
  const statuses = fc.constantFrom<Json>(...TCB_STATUSES);
  const choices = [...paths(tcbInfo).map((path) => ({ doc: 'tcb' as const, path })), ...paths(qeIdentity).map((path) => ({ doc: 'qe' as const, path }))];
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...choices), fc.oneof(oddValue, statuses, fc.integer({ min: 0, max: 255 }) as fc.Arbitrary<Json>), async ({ doc, path }, replacement) => {
      const t = doc === 'tcb' ? replaced(tcbInfo, path, replacement) : tcbInfo;
      const q = doc === 'qe' ? replaced(qeIdentity, path, replacement) : qeIdentity;
      let collateral;
      try {
        collateral = await signedCollateral(pki, JSON.stringify(t), JSON.stringify(q));
      } catch (err) {
        assert.ok(err instanceof VerificationError && err.step === 'parse', `not a parse error: ${String(err)}`);
        return;
      }
      const r = await verifyIntelQuote(quote, { collateral, now: NOW, roots: [pki.anchor] });
      assert.equal(r.verified, r.failure === null);
      if (r.verified) assert.ok(typeof r.tcbStatus === 'string' && r.tcbStatus !== 'Revoked');
    }),
    { numRuns: 120 },
  );
});
