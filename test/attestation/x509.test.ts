import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { testdata } from '../helpers/paths.ts';
import { VerificationError } from '../../src/attestation/types.ts';
import {
  ecdsaDerToP1363,
  parseCertificate,
  parseCertificates,
  parseCrl,
  toPem,
  verifyChain,
  type Certificate,
  type TrustAnchor,
} from '../../src/attestation/x509.ts';
import { PINNED_SHA256, amdRoots, builtinCertificates, intelSgxRoot } from '../../src/attestation/roots.ts';
import { generateKeyPair, issueCertificate, issueCrl } from '../../src/attestation/testing/pki.ts';

const snp = (...p: string[]) => readFileSync(testdata('attestation', 'sev-snp', ...p));
const NOW = new Date('2025-12-06T00:00:00Z');

async function rejects(promise: Promise<unknown>, step: string, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof VerificationError, `expected a VerificationError, got ${String(err)}`);
    assert.equal(err.step, step, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

test('parses AMD certificates: RSASSA-PSS parameters, serial 0, P-384 VCEK key, extensions', () => {
  const [ask, ark] = parseCertificates(snp('amd-roots', 'ask_ark_milan.pem')) as [Certificate, Certificate];
  const [vcek] = parseCertificates(snp('milan-v2-gosevguest', 'vcek.der')) as [Certificate];
  assert.deepEqual(ark.signatureAlgorithm, { kind: 'rsa-pss', hash: 'SHA-384', saltLength: 48 });
  assert.equal(ark.serialNumber, '10000');
  assert.equal(ask.serialNumber, '10001');
  assert.equal(ark.subject.commonName, 'ARK-Milan');
  assert.equal(ask.issuer.commonName, 'ARK-Milan');
  assert.deepEqual(ask.basicConstraints, { ca: true, pathLength: 0 });
  assert.equal(vcek.serialNumber, '0');
  assert.deepEqual(vcek.publicKeyInfo, { kind: 'ec', curve: 'P-384' });
  assert.equal(vcek.notBefore.toISOString(), '2022-09-24T00:55:28.000Z');
  assert.equal(vcek.notAfter.toISOString(), '2029-09-24T00:55:28.000Z');
  assert.deepEqual([...vcek.extension('1.3.6.1.4.1.3704.1.3.8')!.value], [0x02, 0x01, 0x44]);
  assert.equal(vcek.extensions.get('1.3.6.1.4.1.3704.1.4')!.value.length, 64);
});

test('built-in roots match their pinned fingerprints and the published ones', async () => {
  for (const product of ['milan', 'genoa', 'turin'] as const) {
    const roots = await amdRoots(product);
    assert.equal(roots.ark.name, `amd-${product}`);
    assert.equal(roots.ark.certificate.subject.commonName, `ARK-${product[0]!.toUpperCase()}${product.slice(1)}`);
    assert.equal(await roots.ark.certificate.isSignedBy(roots.ark.certificate), true);
    assert.equal(await roots.ask.isSignedBy(roots.ark.certificate), true);
    assert.equal(await roots.asvk.isSignedBy(roots.ark.certificate), true);
  }
  // Values published in shared/reference/attestation.md section 1.
  assert.equal(PINNED_SHA256.ARK_MILAN, '69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd');
  assert.equal(PINNED_SHA256.ASK_GENOA, '5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521');
  assert.equal(PINNED_SHA256.ASK_TURIN, '5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185');
  const intel = await intelSgxRoot();
  const INTEL_ROOT_NAME = [['CN', 'Intel SGX Root CA'], ['O', 'Intel Corporation'], ['L', 'Santa Clara'], ['ST', 'CA'], ['C', 'US']] as const;
  assert.equal(intel.name, 'intel-sgx-root');
  assert.equal(await intel.certificate.sha256(), '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3');
  assert.equal(await intel.certificate.spkiSha256(), 'a0af031289f5d5d4132f9186068a7fc13628633ba235777472e29b6b6c67a49e');
  assert.equal(builtinCertificates().length, 10);
});

test('a real VCEK chains to the pinned Milan ARK within its validity window, and not outside it', async () => {
  const milan = await amdRoots('milan');
  const [vcek] = parseCertificates(snp('milan-v2-gosevguest', 'vcek.der')) as [Certificate];
  const result = await verifyChain([vcek, milan.ask], { anchors: [milan.ark], now: NOW });
  assert.equal(result.anchor.name, 'amd-milan');
  assert.deepEqual(result.path.map((c) => c.subject.commonName), ['SEV-VCEK', 'SEV-Milan', 'ARK-Milan']);
  assert.deepEqual(result.crlChecked, [false, false]);
  // The chain may also be given with the (byte-identical) root.
  await verifyChain([vcek, milan.ask, milan.ark.certificate], { anchors: [milan.ark], now: NOW });
  await rejects(verifyChain([vcek, milan.ask], { anchors: [milan.ark], now: new Date('2029-09-24T00:55:29Z') }), 'chain', /expired at 2029-09-24T00:55:28Z/);
  await rejects(verifyChain([vcek, milan.ask], { anchors: [milan.ark], now: new Date('2022-09-24T00:55:27Z') }), 'chain', /not valid before/);
});

test('the wrong product chain, an unpinned root and a tampered root signature are rejected at step chain', async () => {
  const milan = await amdRoots('milan');
  const genoa = await amdRoots('genoa');
  const [genoaVcek] = parseCertificates(snp('genoa-v3-azure-trustee', 'vcek.pem')) as [Certificate];
  await verifyChain([genoaVcek, genoa.ask], { anchors: [genoa.ark], now: new Date('2025-06-01T00:00:00Z') });
  await rejects(verifyChain([genoaVcek, milan.ask], { anchors: [milan.ark], now: new Date('2025-06-01T00:00:00Z') }), 'chain', /names issuer 'SEV-Genoa'/);
  await rejects(verifyChain([genoaVcek], { anchors: [milan.ark], now: NOW }), 'chain', /not a pinned trust anchor/);
  // A chain ending in ARK-Genoa checked against the Milan anchor only.
  await rejects(verifyChain([genoa.ask, genoa.ark.certificate], { anchors: [milan.ark], now: NOW }), 'chain', /root 'ARK-Genoa'.*not a pinned trust anchor/);
  // Flip one byte inside the ARK's signature: the ARK is no longer the pinned one.
  const der = new Uint8Array(milan.ark.certificate.der);
  der[der.length - 10]! ^= 1;
  const tampered = parseCertificate(der);
  // Same subject and key as the pinned ARK, but its self-signature no longer verifies.
  await rejects(verifyChain([milan.ask, tampered], { anchors: [milan.ark], now: NOW }), 'chain', /invalid self-signature/);
  // Trusting the tampered certificate itself as an anchor fails the same way.
  await rejects(verifyChain([milan.ask, tampered], { anchors: [{ name: 'x', certificate: tampered }], now: NOW }), 'chain', /invalid self-signature/);
});

test('AMD CRLs: the real Genoa CRL revokes the ASK that Enarx once pinned (serial 0x20001)', async () => {
  const genoa = await amdRoots('genoa');
  const [ark, oldAsk] = parseCertificates(readFileSync(testdata('enarx-steward', 'roots', 'snp', 'genoa.pkipath'))) as [Certificate, Certificate];
  assert.equal(oldAsk.serialNumber, '20001');
  assert.equal(ark.subject.commonName, 'ARK-Genoa');
  const crl = parseCrl(snp('amd-roots', 'crl_vcek_genoa.pem'));
  assert.equal(crl.crlNumber, 4);
  const now = new Date('2025-06-01T00:00:00Z');
  // Without the CRL the old ASK still chains (the signature is genuine)...
  await verifyChain([oldAsk], { anchors: [genoa.ark], now });
  // ...with it, it is revoked; the current ASK is not.
  await rejects(verifyChain([oldAsk], { anchors: [genoa.ark], now, crls: [crl] }), 'crl', /revoked on 2022-10-31T12:00:00Z/);
  const ok = await verifyChain([genoa.ask], { anchors: [genoa.ark], now, crls: [crl] });
  assert.deepEqual(ok.crlChecked, [true]);
  // An expired CRL is an error, not ignored.
  await rejects(verifyChain([genoa.ask], { anchors: [genoa.ark], now: new Date('2025-11-04T00:00:00Z'), crls: [crl] }), 'crl', /expired at 2025-11-03T01:00:00Z/);
  // A CRL with a broken signature.
  const der = new Uint8Array(crl.der);
  der[der.length - 5]! ^= 0x40;
  await rejects(verifyChain([genoa.ask], { anchors: [genoa.ark], now, crls: [parseCrl(der)] }), 'crl', /signature does not verify/);
  // Another product's CRL is simply not used.
  const milanCrl = parseCrl(snp('amd-roots', 'crl_vcek_milan.pem'));
  const r = await verifyChain([genoa.ask], { anchors: [genoa.ark], now, crls: [milanCrl] });
  assert.deepEqual(r.crlChecked, [false]);
  assert.equal(r.unusedCrls.length, 1);
});

test('a locally generated RSA-PSS/ECDSA chain: revocation, CA constraints, unpinned lookalike roots', async () => {
  const notBefore = new Date('2025-01-01T00:00:00Z');
  const notAfter = new Date('2035-01-01T00:00:00Z');
  const rootKey = await generateKeyPair('rsa-pss');
  const root = await issueCertificate({ subject: [['CN', 'Test Root']], subjectKey: rootKey, notBefore, notAfter, ca: {} });
  const interKey = await generateKeyPair('ec-p384');
  const inter = await issueCertificate({ subject: [['CN', 'Test Intermediate']], subjectKey: interKey, issuer: { certificate: root, key: rootKey }, serial: 7, notBefore, notAfter, ca: { pathLength: 0 } });
  const leafKey = await generateKeyPair('ec-p256');
  const leaf = await issueCertificate({ subject: [['CN', 'Test Leaf']], subjectKey: leafKey, issuer: { certificate: inter, key: interKey }, serial: 0x1234, notBefore, notAfter });
  const anchors: TrustAnchor[] = [{ name: 'test:root', certificate: root }];
  const now = new Date('2026-01-01T00:00:00Z');
  const ok = await verifyChain([leaf, inter], { anchors, now });
  assert.equal(ok.anchor.name, 'test:root');

  const crlRoot = await issueCrl({ issuer: { certificate: root, key: rootKey }, thisUpdate: notBefore, nextUpdate: notAfter });
  const crlInter = await issueCrl({ issuer: { certificate: inter, key: interKey }, thisUpdate: notBefore, nextUpdate: notAfter, revoked: [{ serial: 0x1234, date: notBefore }] });
  const r = await verifyChain([leaf, inter], { anchors, now, crls: [crlRoot] });
  assert.deepEqual(r.crlChecked, [false, true]);
  await rejects(verifyChain([leaf, inter], { anchors, now, crls: [crlRoot, crlInter] }), 'crl', /'Test Leaf' \(serial 1234\) was revoked/);

  // A leaf cannot issue: it is not a CA.
  const fakeKey = await generateKeyPair('ec-p256');
  const fake = await issueCertificate({ subject: [['CN', 'Under Leaf']], subjectKey: fakeKey, issuer: { certificate: leaf, key: leafKey }, notBefore, notAfter });
  await rejects(verifyChain([fake, leaf, inter], { anchors, now }), 'chain', /is not a CA certificate/);
  // pathLength 0 on the intermediate forbids another CA below it.
  const subKey = await generateKeyPair('ec-p256');
  const sub = await issueCertificate({ subject: [['CN', 'Sub CA']], subjectKey: subKey, issuer: { certificate: inter, key: interKey }, notBefore, notAfter, ca: {} });
  const subLeaf = await issueCertificate({ subject: [['CN', 'Sub Leaf']], subjectKey: fakeKey, issuer: { certificate: sub, key: subKey }, notBefore, notAfter });
  await rejects(verifyChain([subLeaf, sub, inter], { anchors, now }), 'chain', /allows 0 intermediate/);
  // A lookalike root (same name, another key) with an internally consistent chain.
  const evilKey = await generateKeyPair('rsa-pss');
  const evilRoot = await issueCertificate({ subject: [['CN', 'Test Root']], subjectKey: evilKey, notBefore, notAfter, ca: {} });
  const evilInter = await issueCertificate({ subject: [['CN', 'Test Intermediate']], subjectKey: interKey, issuer: { certificate: evilRoot, key: evilKey }, serial: 7, notBefore, notAfter, ca: { pathLength: 0 } });
  await rejects(verifyChain([leaf, evilInter, evilRoot], { anchors, now }), 'chain', /not a pinned trust anchor/);
  await rejects(verifyChain([leaf, evilInter], { anchors, now }), 'chain', /does not verify/);
  // Absurdly long chains are refused before any work.
  await rejects(verifyChain(Array.from({ length: 9 }, () => leaf), { anchors, now }), 'chain', /longer than the 8 accepted/);
  // Unknown critical extensions are refused.
  const odd = await issueCertificate({ subject: [['CN', 'Odd']], subjectKey: fakeKey, issuer: { certificate: inter, key: interKey }, notBefore, notAfter, extensions: [{ oid: '1.2.3.4', critical: true, value: Uint8Array.of(5, 0) }] });
  await rejects(verifyChain([odd, inter], { anchors, now }), 'chain', /unsupported critical extension 1\.2\.3\.4/);
});

test('anchors that share a name: each is tried, and the chain ends at the one whose key signed it', async () => {
  // Intel's QVL sample data is signed by a test root named exactly "Intel SGX Root CA"; trusted
  // explicitly beside the pinned one, a chain whose last certificate names that issuer must be
  // checked against both, not against the first found by name only.
  const notBefore = new Date('2025-01-01T00:00:00Z');
  const notAfter = new Date('2035-01-01T00:00:00Z');
  const now = new Date('2026-01-01T00:00:00Z');
  const keys = await Promise.all([generateKeyPair('ec-p256'), generateKeyPair('ec-p256')]);
  const roots = await Promise.all(keys.map((key) => issueCertificate({ subject: [['CN', 'Same Root']], subjectKey: key, notBefore, notAfter, ca: {} })));
  const signerKey = await generateKeyPair('ec-p256');
  const signer = await issueCertificate({ subject: [['CN', 'Signer']], subjectKey: signerKey, issuer: { certificate: roots[1]!, key: keys[1]! }, notBefore, notAfter });
  const anchors: TrustAnchor[] = [
    { name: 'test:first', certificate: roots[0]! },
    { name: 'test:second', certificate: roots[1]! },
  ];
  assert.equal((await verifyChain([signer], { anchors, now })).anchor.name, 'test:second');
  assert.equal((await verifyChain([signer], { anchors: [...anchors].reverse(), now })).anchor.name, 'test:second');
  // Neither key signed it: rejected, naming the first candidate's failure.
  const strayKey = await generateKeyPair('ec-p256');
  const strayRoot = await issueCertificate({ subject: [['CN', 'Same Root']], subjectKey: strayKey, notBefore, notAfter, ca: {} });
  const stray = await issueCertificate({ subject: [['CN', 'Signer']], subjectKey: signerKey, issuer: { certificate: strayRoot, key: strayKey }, notBefore, notAfter });
  await rejects(verifyChain([stray], { anchors, now }), 'chain', /does not verify with 'Same Root'/);
  // With only the pinned Intel root, a certificate naming it but signed by another key fails as before.
  const intel = await intelSgxRoot();
  const INTEL_ROOT_NAME = [['CN', 'Intel SGX Root CA'], ['O', 'Intel Corporation'], ['L', 'Santa Clara'], ['ST', 'CA'], ['C', 'US']] as const;
  const fakeIntelKey = await generateKeyPair('ec-p256');
  const fakeIntel = await issueCertificate({ subject: INTEL_ROOT_NAME, subjectKey: fakeIntelKey, notBefore, notAfter, ca: {} });
  const underFake = await issueCertificate({ subject: [['CN', 'Intel SGX TCB Signing']], subjectKey: signerKey, issuer: { certificate: fakeIntel, key: fakeIntelKey }, notBefore, notAfter });
  await rejects(verifyChain([underFake], { anchors: [intel], now }), 'chain', /does not verify with 'Intel SGX Root CA'/);
  assert.equal((await verifyChain([underFake], { anchors: [intel, { name: 'test:intel-lookalike', certificate: fakeIntel }], now })).anchor.name, 'test:intel-lookalike');
});

test('PEM and DER inputs: several blocks, trailing NULs, PkiPath, and clear errors', () => {
  const pem = snp('amd-roots', 'ask_ark_milan.pem').toString();
  assert.equal(parseCertificates(`${pem}\0`).length, 2);
  const [ark, ask] = parseCertificates(readFileSync(testdata('enarx-steward', 'roots', 'snp', 'milan.pkipath'))) as [Certificate, Certificate];
  assert.equal(ark.subject.commonName, 'ARK-Milan');
  assert.equal(ask.subject.commonName, 'SEV-Milan');
  assert.equal(parseCertificates(toPem('CERTIFICATE', ark.der))[0], ark);
  assert.throws(() => parseCertificates('hello'), { step: 'parse', message: /no PEM CERTIFICATE block/ });
  assert.throws(() => parseCertificates('-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----'), { step: 'parse', message: /bad base64/ });
  assert.throws(() => parseCertificates(Uint8Array.of(0x30, 0x03, 0x02, 0x01)), { step: 'parse' });
  assert.throws(() => parseCrl('nothing'), { step: 'parse', message: /no PEM X509 CRL block/ });
});

test('ECDSA DER signatures convert to fixed-size r||s, and malformed ones are refused', () => {
  const der = Uint8Array.of(0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x05);
  const raw = ecdsaDerToP1363(der, 'P-256')!;
  assert.equal(raw.length, 64);
  assert.equal(raw[31], 0x80);
  assert.equal(raw[63], 0x05);
  assert.equal(ecdsaDerToP1363(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x81), 'P-256'), undefined); // negative
  assert.equal(ecdsaDerToP1363(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01), 'P-256'), undefined); // missing s
});

test('certificate and CRL parsers never crash on truncated, mutated or random bytes', () => {
  const samples = [snp('milan-v2-gosevguest', 'vcek.der'), readFileSync(testdata('enarx-steward', 'extracted', 'milan', 'crl-genoa.der'))];
  const onlyParseErrors = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof VerificationError && err.step === 'parse', `unexpected ${String(err)}`);
    }
  };
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1 }), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }), (which, cut, at, value) => {
      const base = samples[which]!;
      const truncated = base.subarray(0, cut % base.length);
      const mutated = new Uint8Array(base);
      mutated[at % base.length] = value;
      for (const bytes of [truncated, mutated]) {
        onlyParseErrors(() => parseCertificates(bytes));
        onlyParseErrors(() => parseCrl(bytes));
      }
    }),
    { numRuns: 400 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      onlyParseErrors(() => parseCertificates(bytes));
      onlyParseErrors(() => parseCrl(bytes));
      onlyParseErrors(() => parseCertificates(Uint8Array.of(0x30, 0x82, 0x01, 0x00, ...bytes)));
    }),
    { numRuns: 300 },
  );
});

test('CRL entry extensions: reasonCode is read past; a critical one (certificateIssuer, indirect CRL) makes the CRL unusable', async () => {
  const notBefore = new Date('2025-01-01T00:00:00Z');
  const notAfter = new Date('2035-01-01T00:00:00Z');
  const key = await generateKeyPair('ec-p256');
  const ca = await issueCertificate({ subject: [['CN', 'Entry CA']], subjectKey: key, notBefore, notAfter, ca: {} });
  const leaf = await issueCertificate({ subject: [['CN', 'Entry Leaf']], subjectKey: await generateKeyPair('ec-p256'), issuer: { certificate: ca, key }, serial: 0x42, notBefore, notAfter });
  const anchors: TrustAnchor[] = [{ name: 'test:entry', certificate: ca }];
  const now = new Date('2026-01-01T00:00:00Z');
  const reasonCode = { oid: '2.5.29.21', value: Uint8Array.of(0x0a, 0x01, 0x01) }; // keyCompromise
  const withReason = await issueCrl({ issuer: { certificate: ca, key }, thisUpdate: notBefore, nextUpdate: notAfter, revoked: [{ serial: 0x42, date: notBefore, extensions: [reasonCode] }] });
  await rejects(verifyChain([leaf], { anchors, now, crls: [withReason] }), 'crl', /'Entry Leaf' \(serial 42\) was revoked/);
  const certificateIssuer = { oid: '2.5.29.29', critical: true, value: Uint8Array.of(0x30, 0x00) };
  await assert.rejects(
    issueCrl({ issuer: { certificate: ca, key }, thisUpdate: notBefore, nextUpdate: notAfter, revoked: [{ serial: 0x42, date: notBefore, extensions: [certificateIssuer] }] }),
    (err: unknown) => err instanceof VerificationError && err.step === 'parse' && /critical extension 2\.5\.29\.29.*indirect CRL/.test(err.message),
  );
});
