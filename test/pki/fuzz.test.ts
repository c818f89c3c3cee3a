import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import * as pki from '../../src/pki/index.ts';
import { testdata } from '../helpers/paths.ts';

const milan = new Uint8Array(readFileSync(testdata('enarx-steward', 'csr', 'milan.signed.crl.csr')));
const i5 = new Uint8Array(readFileSync(testdata('enarx-steward', 'csr', 'icelake.signed.tcb.crl.single.i5.csr')));

/** Runs `fn`; it may return or throw one of `allowed`, and nothing else. */
function only(fn: () => unknown, ...allowed: Array<new (...a: never[]) => Error>): void {
  try {
    fn();
  } catch (err) {
    if (!allowed.some((k) => err instanceof k)) throw err;
  }
}

/** Mutations of real inputs: flipped bytes, truncations and insertions. */
function mutated(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
      const out = base.slice();
      out[i]! ^= x;
      return out;
    }),
    fc.nat(base.length).map((n) => base.slice(0, n)),
    fc.tuple(fc.nat(base.length), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([i, ins]) => new Uint8Array([...base.subarray(0, i), ...ins, ...base.subarray(i)])),
  );
}

const DECODERS: Array<[string, (b: Uint8Array) => unknown]> = [
  ['SNP evidence', pki.decodeSnpEvidence],
  ['SGX evidence', pki.decodeSgxEvidence],
  ['TDX evidence', pki.decodeTdxEvidence],
  ['SNP report statement', pki.decodeSnpReportEvidence],
  ['AttestationBundle', pki.decodeAttestationBundle],
  ['WorkloadIdentity', pki.decodeWorkloadIdentity],
  ['CertificateOrigin', pki.decodeCertificateOrigin],
];

describe('pki decoders never crash on untrusted bytes', () => {
  it('parseCsr: random bytes and mutated real CSRs give a CsrError or a CSR', async () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (b) => only(() => pki.parseCsr(b), pki.CsrError)), { numRuns: 500 });
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutated(milan), mutated(i5)), async (b) => {
        let csr: pki.ParsedCsr;
        try {
          csr = pki.parseCsr(b);
        } catch (err) {
          assert.ok(err instanceof pki.CsrError, String(err));
          return;
        }
        try {
          await pki.verifyCsrSignature(csr);
        } catch (err) {
          assert.ok(err instanceof pki.CsrError, String(err));
        }
      }),
      { numRuns: 300 },
    );
  });

  for (const [name, decode] of DECODERS) {
    it(`${name}: random and mutated bytes give a DerError or a value`, () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (b) => only(() => decode(b), pki.DerError)), { numRuns: 300 });
      fc.assert(fc.property(mutated(milan.subarray(180, 180 + 4414)), (b) => only(() => decode(b), pki.DerError)), { numRuns: 150 });
    });
  }

  it('evidence, identity and origin round-trip for arbitrary contents', () => {
    const bytes = fc.uint8Array({ maxLength: 64 });
    // a well-formed DER SEQUENCE standing in for a certificate or CRL
    const seq = fc.uint8Array({ maxLength: 60 }).map((b) => new Uint8Array([0x30, b.length + 2, 0x04, b.length, ...b]));
    const crls = fc.array(fc.record({ url: fc.string({ maxLength: 40 }), crl: seq }).map((r) => ({ ...r })), { maxLength: 4 });
    fc.assert(
      fc.property(seq, crls, bytes, (vcek, c, report) => {
        const ev = { vcek, crls: c, report };
        assert.deepEqual(pki.decodeSnpEvidence(pki.encodeSnpEvidence(ev)), ev);
      }),
    );
    fc.assert(
      fc.property(bytes, crls, fc.array(seq, { maxLength: 3 }), bytes, fc.option(fc.record({ certs: fc.array(seq, { maxLength: 2 }), report: bytes }).map((r) => ({ ...r })), { nil: undefined }), (quote, c, certs, report, qe) => {
        const ev: pki.TdxEvidence = { quote, crls: c, tcb: { certs, report } };
        if (qe) ev.qeIdentity = qe;
        assert.deepEqual(pki.decodeTdxEvidence(pki.encodeTdxEvidence(ev)), ev);
        assert.deepEqual(pki.decodeSgxEvidence(pki.encodeSgxEvidence({ quote, crls: c, tcb: { certs, report } })), { quote, crls: c, tcb: { certs, report } });
      }),
    );
    const identity = fc.record(
      {
        digest: fc.constantFrom(['sha-256', 32], ['sha-384', 48], ['sha-512', 64]).chain(([algorithm, n]) =>
          fc.uint8Array({ minLength: n as number, maxLength: n as number }).map((value) => ({ algorithm: algorithm as pki.DigestAlgorithm, value })),
        ),
        package: fc.record({ slug: fc.stringMatching(/^[A-Za-z0-9._~:@/+-]{1,60}$/), signer: seq }).map((r) => ({ ...r })),
      },
      { requiredKeys: ['digest'] },
    ).map((r) => ({ ...r }));
    fc.assert(fc.property(identity, (id) => assert.deepEqual(pki.decodeWorkloadIdentity(pki.encodeWorkloadIdentity(id)), id)));
    fc.assert(
      fc.property(fc.constantFrom<pki.OriginTee>('software', 'sgx', 'snp', 'tdx'), fc.boolean(), fc.boolean(), fc.boolean(), fc.string({ maxLength: 30 }), bytes, fc.option(identity, { nil: undefined }), (tee, a, b, c, trustAnchor, measurement, id) => {
        const origin: pki.CertificateOrigin = { tee, stewardDebug: a, teeDebug: b, testRoot: c, trustAnchor, measurement };
        if (id) origin.identity = id;
        assert.deepEqual(pki.decodeCertificateOrigin(pki.encodeCertificateOrigin(origin)), origin);
      }),
    );
  });
});
