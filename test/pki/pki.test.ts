import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { generateKeyPair, issueCertificate } from '../../src/attestation/testing/pki.ts';
import * as pki from '../../src/pki/index.ts';
import { encodeAnyOid, readAnyOid, setOf, TAG, tlv } from '../../src/pki/der.ts';
import { ownBytes } from '../../src/attestation/bytes.ts';
import { testdata } from '../helpers/paths.ts';

const read = (...p: string[]): Uint8Array => new Uint8Array(readFileSync(testdata('enarx-steward', ...p)));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const CSRS = {
  milan: { file: 'milan.signed.crl.csr', kind: 'snp', curve: 'P-384', dir: 'milan', evidenceAt: 180, evidenceLength: 4414 },
  i5: { file: 'icelake.signed.tcb.crl.single.i5.csr', kind: 'sgx', curve: 'P-256', dir: 'icelake-i5', evidenceAt: 151, evidenceLength: 14182 },
  xeon: { file: 'icelake.signed.tcb.crl.multi.xeon.csr', kind: 'sgx', curve: 'P-256', dir: 'icelake-xeon', evidenceAt: 151, evidenceLength: 12689 },
} as const;

async function keys(curve: 'P-256' | 'P-384'): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: curve }, false, ['sign', 'verify'])) as CryptoKeyPair;
}

describe('pki: real Enarx CSRs', () => {
  for (const [name, c] of Object.entries(CSRS)) {
    it(`${name}: parses, verifies, and exposes the exact SPKI and evidence`, async () => {
      const der = read('csr', c.file);
      const csr = pki.parseCsr(der);
      assert.equal(csr.key.namedCurve, c.curve);
      assert.equal(hex(csr.spki), hex(read('extracted', c.dir, 'spki.der')));
      assert.equal(hex(csr.subject), '3000');
      assert.equal(await pki.verifyCsrSignature(csr), true);
      assert.equal(csr.evidence.length, 1);
      const ev = csr.evidence[0]!;
      assert.equal(ev.kind, c.kind);
      assert.equal(ev.source, 'enarx-extension');
      assert.equal(hex(ev.der), hex(der.subarray(c.evidenceAt, c.evidenceAt + c.evidenceLength)));
      assert.equal(csr.identity, null);
    });
  }

  it('decodes SNP evidence into the VCEK, both CRLs and the report, and re-encodes it byte for byte', () => {
    const der = read('csr', CSRS.milan.file).subarray(180, 180 + 4414);
    const ev = pki.decodeSnpEvidence(der);
    assert.equal(hex(ev.vcek), hex(read('extracted', 'milan', 'vcek.der')));
    assert.equal(hex(ev.report), hex(read('extracted', 'milan', 'report.bin')));
    assert.deepEqual(
      ev.crls.map((c) => c.url),
      ['https://kdsintf.amd.com/vcek/v1/Genoa/crl', 'https://kdsintf.amd.com/vcek/v1/Milan/crl'],
    );
    assert.equal(hex(ev.crls[1]!.crl), hex(read('extracted', 'milan', 'crl-milan.der')));
    assert.equal(hex(pki.encodeSnpEvidence(ev)), hex(der));
  });

  it('encodes Node Buffers (views into a shared pool) by their own bytes only', () => {
    const pool = Buffer.from('30020400' + 'ff'.repeat(32), 'hex').subarray(0, 4);
    const ev = pki.decodeSnpEvidence(pki.encodeSnpEvidence({ vcek: pool, crls: [{ url: 'u', crl: Buffer.from('30020400', 'hex') }], report: Buffer.from('0102', 'hex') }));
    assert.equal(hex(ev.vcek), '30020400');
    assert.equal(hex(ev.crls[0]!.crl), '30020400');
    assert.equal(hex(ev.report), '0102');
  });

  it('decodes SGX evidence into quote, CRLs and TCB package, and re-encodes it byte for byte', () => {
    const der = read('csr', CSRS.i5.file).subarray(151, 151 + 14182);
    const ev = pki.decodeSgxEvidence(der);
    assert.equal(hex(ev.quote), hex(read('extracted', 'icelake-i5', 'quote.bin')));
    assert.equal(ev.crls.length, 3);
    assert.equal(hex(ev.crls[0]!.crl), hex(read('extracted', 'icelake-i5', 'crl-root.der')));
    assert.equal(hex(ev.tcb.certs[0]!), hex(read('extracted', 'icelake-i5', 'tcb-signing.der')));
    assert.equal(hex(ev.tcb.certs[1]!), hex(read('roots', 'sgx', 'root.der')));
    assert.equal(hex(ev.tcb.report), hex(read('extracted', 'icelake-i5', 'tcb-info.json')));
    assert.equal(hex(pki.encodeSgxEvidence(ev)), hex(der));
  });

  it('reportDataFor reproduces the report data real Enarx Keeps requested (key hash, then zeros)', async () => {
    const report = read('extracted', 'milan', 'report.bin');
    const snp = await pki.reportDataFor('snp', read('extracted', 'milan', 'spki.der'));
    assert.equal(hex(snp), hex(report.subarray(0x50, 0x90)));
    const quote = read('extracted', 'icelake-i5', 'quote.bin');
    const sgx = await pki.reportDataFor('sgx', read('extracted', 'icelake-i5', 'spki.der'));
    assert.equal(hex(sgx), hex(quote.subarray(368, 432)));
  });
});

describe('pki: building CSRs', () => {
  const identity: pki.WorkloadIdentity = {
    digest: { algorithm: 'sha-384', value: new Uint8Array(48).fill(0xab) },
    package: { slug: 'example.com/alice/hello:1.2.3', signer: new Uint8Array(0) },
  };

  it('builds an Enarx-shaped CSR that openssl-equivalent checks accept, with evidence and identity', async () => {
    const signer = await generateKeyPair('ec-p256');
    const id = { ...identity, package: { ...identity.package!, signer: signer.spki } };
    const pair = await keys('P-384');
    const der = await pki.buildCsr({ keys: pair, enarxEvidence: { kind: 'snp', der: pki.encodeSnpEvidence({ vcek: read('extracted', 'milan', 'vcek.der'), crls: [], report: new Uint8Array(1184) }) }, identity: id });
    const csr = pki.parseCsr(der);
    assert.equal(await pki.verifyCsrSignature(csr), true);
    assert.equal(csr.signatureAlgorithm, pki.OID_ECDSA_SHA384);
    assert.equal(csr.evidence[0]!.kind, 'snp');
    assert.deepEqual(csr.identity!.value, id);
    assert.equal(hex(csr.identity!.der), hex(pki.encodeWorkloadIdentity(id)));
    assert.equal(hex(csr.spki), hex(new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey))));
  });

  it('carries TDX evidence in the csr-attestation attribute with our statement type', async () => {
    const tdx = pki.encodeTdxEvidence({ quote: new Uint8Array([1, 2, 3]), crls: [{ url: 'u', crl: read('extracted', 'milan', 'crl-milan.der') }], tcb: { certs: [], report: new TextEncoder().encode('{}') } });
    const der = await pki.buildCsr({ keys: await keys('P-256'), attestation: { attestations: [{ type: pki.attestationStatementType('tdx'), stmt: tdx }], certs: [] } });
    const csr = pki.parseCsr(der);
    assert.equal(csr.attributes[0]!.oid, pki.OID_AA_ATTESTATION);
    assert.deepEqual(csr.evidence.map((e) => [e.kind, e.source]), [['tdx', 'csr-attestation']]);
    assert.deepEqual(pki.decodeTdxEvidence(csr.evidence[0]!.der).quote, new Uint8Array([1, 2, 3]));
  });

  it('binds the identity after the key hash: 16 bytes for SNP, 32 for SGX and TDX; zeros without one', async () => {
    const spki = read('extracted', 'milan', 'spki.der');
    const idDer = pki.encodeWorkloadIdentity({ digest: { algorithm: 'sha-256', value: new Uint8Array(32) } });
    const idHash = new Uint8Array(await crypto.subtle.digest('SHA-256', ownBytes(idDer)));
    const snp = await pki.reportDataFor('snp', spki, idDer);
    assert.equal(hex(snp.subarray(48)), hex(idHash.subarray(0, 16)));
    const tdx = await pki.reportDataFor('tdx', spki, idDer);
    assert.equal(hex(tdx.subarray(32)), hex(idHash));
    assert.equal(hex((await pki.reportDataFor('tdx', spki)).subarray(32)), '00'.repeat(32));
  });

  it('names an identity with SAN URIs', () => {
    assert.deepEqual(pki.workloadSanUris({ ...identity, package: { slug: 'alice/hello:1.0.0', signer: Uint8Array.of(0x30, 0) } }), [
      `urn:enarx:workload:sha-384:${'ab'.repeat(48)}`,
      'urn:enarx:package:alice/hello:1.0.0',
    ]);
  });

  it('refuses identities that would not round-trip or would not fit a URI', () => {
    assert.throws(() => pki.encodeWorkloadIdentity({ digest: { algorithm: 'sha-256', value: new Uint8Array(31) } }), /32 bytes/);
    assert.throws(() => pki.encodeWorkloadIdentity({ digest: { algorithm: 'sha-256', value: new Uint8Array(32) }, package: { slug: 'a b', signer: Uint8Array.of(0x30, 0) } }), /slug/);
    assert.throws(() => pki.encodeWorkloadIdentity({ digest: { algorithm: 'md5' as 'sha-256', value: new Uint8Array(16) } }), /unsupported/);
  });
});

describe('pki: refusals', () => {
  const milan = read('csr', CSRS.milan.file);

  it('refuses trailing bytes, truncation and a non-CSR', () => {
    assert.throws(() => pki.parseCsr(new Uint8Array([...milan, 0])), pki.CsrError);
    assert.throws(() => pki.parseCsr(milan.subarray(0, milan.length - 1)), pki.CsrError);
    assert.throws(() => pki.parseCsr(new TextEncoder().encode('-----BEGIN CERTIFICATE REQUEST-----')), pki.CsrError);
    assert.throws(() => pki.parseCsr(new Uint8Array(0)), pki.CsrError);
  });

  it('reports a signature that does not match the request', async () => {
    const bad = milan.slice();
    bad[bad.length - 5]! ^= 1;
    assert.equal(await pki.verifyCsrSignature(pki.parseCsr(bad)), false);
    const body = milan.slice();
    body[4000]! ^= 1; // inside the report, so inside the signed info
    assert.equal(await pki.verifyCsrSignature(pki.parseCsr(body)), false);
  });

  /** A CSR whose extensionRequest holds `extensions` (raw DER Extension elements). */
  async function withExtensions(extensions: Uint8Array[], extraAttributes: Uint8Array[] = []): Promise<Uint8Array> {
    const pair = await keys('P-256');
    const spki = new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey));
    const extReq = tlv(TAG.SEQUENCE, encodeAnyOid(pki.OID_EXTENSION_REQUEST), setOf([tlv(TAG.SEQUENCE, ...extensions)]));
    const info = tlv(TAG.SEQUENCE, Uint8Array.of(2, 1, 0), Uint8Array.of(0x30, 0), spki, tlv(0xa0, extReq, ...extraAttributes));
    const sig = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, ownBytes(info)));
    return tlv(TAG.SEQUENCE, info, tlv(TAG.SEQUENCE, encodeAnyOid(pki.OID_ECDSA_SHA256)), tlv(TAG.BIT_STRING, Uint8Array.of(0), pki.ecdsaRawToDer(sig)));
  }
  const ext = (oid: string, value = new Uint8Array(0), critical = false): Uint8Array =>
    tlv(TAG.SEQUENCE, encodeAnyOid(oid), ...(critical ? [Uint8Array.of(1, 1, 0xff)] : []), tlv(TAG.OCTET_STRING, value));

  it('refuses a thousand extensions before looking at any of them', async () => {
    const der = await withExtensions(Array.from({ length: 1000 }, (_, i) => ext(`1.2.3.${i}`)));
    assert.throws(() => pki.parseCsr(der), /too many requested extensions: 1000/);
  });

  it('refuses unknown, duplicate and critical evidence extensions, and unknown attributes', async () => {
    const unknown = await withExtensions([ext('1.2.3.4')]);
    assert.throws(() => pki.parseCsr(unknown), /unsupported CSR extension 1\.2\.3\.4/);
    const duplicate = await withExtensions([ext(pki.OID_ENARX_KVM), ext(pki.OID_ENARX_KVM)]);
    assert.throws(() => pki.parseCsr(duplicate), /duplicate/);
    const critical = await withExtensions([ext(pki.OID_ENARX_SNP, new Uint8Array(0), true)]);
    assert.throws(() => pki.parseCsr(critical), /must not be critical/);
    const challenge = tlv(TAG.SEQUENCE, encodeAnyOid('1.2.840.113549.1.9.7'), setOf([tlv(0x0c, new TextEncoder().encode('pw'))]));
    const withChallenge = await withExtensions([ext(pki.OID_ENARX_KVM)], [challenge]);
    assert.throws(() => pki.parseCsr(withChallenge), /unsupported CSR attribute 1\.2\.840\.113549\.1\.9\.7/);
  });

  it('parses a KVM CSR as Enarx sends it (empty evidence)', async () => {
    const csr = pki.parseCsr(await withExtensions([ext(pki.OID_ENARX_KVM)]));
    assert.deepEqual(csr.evidence.map((e) => [e.kind, e.der.length]), [['kvm', 0]]);
    assert.equal(await pki.verifyCsrSignature(csr), true);
  });
});

describe('pki: OIDs and the certificate origin', () => {
  it('encodes and decodes our UUID-arc OIDs exactly (arcs beyond 2^64)', () => {
    for (const oid of [pki.OID_WORKLOAD_IDENTITY, pki.OID_CERTIFICATE_ORIGIN, pki.OID_EVIDENCE_TDX, pki.OID_ENARX_SNP, '2.999.1']) {
      assert.equal(readAnyOid(encodeAnyOid(oid)), oid);
    }
    // openssl asn1parse prints the same value for the bytes we emit
    assert.equal(hex(encodeAnyOid('2.25.46740769646162043182522345630166459416')), '061369c6a9f8f7b592c2a09fbad1e1a1e48092c818');
  });

  it('writes the origin into a SubjectDirectoryAttributes extension and reads it back from a certificate', async () => {
    const origin: pki.CertificateOrigin = {
      tee: 'snp',
      stewardDebug: false,
      teeDebug: false,
      testRoot: true,
      trustAnchor: 'test:ark',
      measurement: new Uint8Array(48).fill(1),
      identity: { digest: { algorithm: 'sha-256', value: new Uint8Array(32).fill(2) } },
    };
    const ext = pki.certificateOriginExtension(origin);
    assert.equal(ext.oid, '2.5.29.9');
    const key = await generateKeyPair('ec-p256');
    const now = new Date();
    const cert = await issueCertificate({ subject: [['2.5.4.3', 'k']], subjectKey: key, notBefore: now, notAfter: new Date(+now + 1000), extensions: [ext] });
    assert.deepEqual(pki.readCertificateOrigin(cert.der), origin);
    assert.equal(pki.isConfidential(origin), false);
    assert.equal(pki.isConfidential({ ...origin, testRoot: false }), true);
    const plain = await issueCertificate({ subject: [['2.5.4.3', 'k']], subjectKey: key, notBefore: now, notAfter: new Date(+now + 1000) });
    assert.equal(pki.readCertificateOrigin(plain.der), null);
  });
});

describe('pki: describeOrigin, the reading relying parties (Drawbridge) act on', () => {
  const base: pki.CertificateOrigin = { tee: 'snp', stewardDebug: false, teeDebug: false, testRoot: false, trustAnchor: 'amd-milan', measurement: new Uint8Array(48) };
  async function cert(extensions: pki.CertificateExtension[]): Promise<Uint8Array> {
    const key = await generateKeyPair('ec-p256');
    const now = new Date();
    return (await issueCertificate({ subject: [['2.5.4.3', 'k']], subjectKey: key, notBefore: now, notAfter: new Date(+now + 1000), extensions })).der;
  }
  it('tee only for hardware from a production Steward; debug for any debug, test root or unreadable origin', async () => {
    assert.deepEqual(pki.describeOrigin(await cert([pki.certificateOriginExtension(base)])), { kind: 'tee', detail: 'snp' });
    assert.equal(pki.describeOrigin(await cert([pki.certificateOriginExtension({ ...base, stewardDebug: true })])).kind, 'debug');
    assert.equal(pki.describeOrigin(await cert([pki.certificateOriginExtension({ ...base, teeDebug: true })])).kind, 'debug');
    assert.match(pki.describeOrigin(await cert([pki.certificateOriginExtension({ ...base, testRoot: true, trustAnchor: 'test:ark' })])).detail!, /test root test:ark/);
    assert.equal(pki.describeOrigin(await cert([pki.certificateOriginExtension({ ...base, tee: 'software', measurement: new Uint8Array(0) })])).kind, 'software');
    assert.equal(pki.describeOrigin(await cert([{ oid: pki.OID_ENARX_KVM, critical: false, value: new Uint8Array(0) }])).kind, 'software');
    assert.deepEqual(pki.describeOrigin(await cert([])), { kind: 'unmarked' });
    const garbled = { oid: '2.5.29.9', critical: false, value: Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00) };
    assert.equal(pki.describeOrigin(await cert([garbled])).kind, 'debug');
  });
});

describe('pki: browser-safe', () => {
  it('bundles for the browser without any Node built-in (Keeps, the Steward and web pages share it)', async () => {
    const { build } = await import('esbuild');
    const result = await build({ entryPoints: [new URL('../../src/pki/index.ts', import.meta.url).pathname], bundle: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent' });
    assert.deepEqual(result.errors, []);
    const inputs = Object.keys(result.metafile.inputs);
    assert.deepEqual(inputs.filter((i) => i.startsWith('node:') || /^(fs|path|crypto|buffer|os)$/.test(i)), []);
    assert.ok(inputs.some((i) => i.includes('src/pki/csr.ts')));
  });
});

describe('the bare SNP report statement (no host-provisioned VCEK)', () => {
  it('round-trips, and a CSR carrying it parses as SNP evidence that names its statement type', async () => {
    const report = new Uint8Array(1184).fill(3);
    const stmt = pki.encodeSnpReportEvidence(report);
    assert.deepEqual(pki.decodeSnpReportEvidence(stmt), report);
    assert.throws(() => pki.decodeSnpReportEvidence(new Uint8Array([0x30, 0x00])), pki.DerError);
    assert.throws(() => pki.decodeSnpReportEvidence(new Uint8Array([...stmt, 0])), pki.DerError);
    const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign', 'verify'])) as CryptoKeyPair;
    const csr = pki.parseCsr(await pki.buildCsr({ keys, attestation: { attestations: [{ type: pki.OID_EVIDENCE_SNP_REPORT, stmt }], certs: [] } }));
    assert.deepEqual(
      csr.evidence.map((e) => [e.kind, e.source, e.statementType]),
      [['snp', 'csr-attestation', pki.OID_EVIDENCE_SNP_REPORT]],
    );
    assert.deepEqual(csr.evidence[0]!.der, stmt);
  });
});
