import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { testdata } from '../helpers/paths.ts';
import { VERIFICATION_STEPS, type VerificationResult } from '../../src/attestation/types.ts';
import { verifySnp } from '../../src/attestation/snp/verify.ts';
import { parseSnpReport } from '../../src/attestation/snp/report.ts';
import { parseCertificates, parseCrl, type Certificate } from '../../src/attestation/x509.ts';

const snp = (...p: string[]) => new Uint8Array(readFileSync(testdata('attestation', 'sev-snp', ...p)));
const certs = (...p: string[]) => parseCertificates(snp(...p));
const crl = (name: string) => parseCrl(snp('amd-roots', name));
const at = (iso: string) => new Date(iso);

function passed(result: VerificationResult): void {
  assert.equal(result.failure, null, result.failure ? `${result.failure.step}: ${result.failure.message}` : '');
  assert.equal(result.verified, true);
}

function rejected(result: VerificationResult, step: string, pattern?: RegExp): void {
  assert.equal(result.verified, false);
  assert.ok(result.failure, 'expected a failure');
  assert.equal(result.failure.step, step, result.failure.message);
  if (pattern) assert.match(result.failure.message, pattern);
}

function mutate(bytes: Uint8Array, offset: number, fn: (b: number) => number): Uint8Array {
  const out = new Uint8Array(bytes);
  out[offset] = fn(out[offset]!);
  return out;
}

// --- the four vectors of shared/testdata/attestation, at their suggested now ------------------

const V2 = { report: snp('milan-v2-gosevguest', 'report.bin'), certs: certs('milan-v2-gosevguest', 'vcek.der'), now: at('2025-12-06T00:00:00Z') };
const V5 = { report: snp('milan-v5-gcp-teekit', 'report.bin'), certs: certs('milan-v5-gcp-teekit', 'vcek.pem'), now: at('2025-12-06T00:00:00Z') };
const GENOA = { report: snp('genoa-v3-azure-trustee', 'report.bin'), certs: certs('genoa-v3-azure-trustee', 'vcek.pem'), now: at('2025-06-01T00:00:00Z') };
const VLEK = { report: snp('milan-v3-vlek-aws-trustee', 'report.bin'), certs: certs('milan-v3-vlek-aws-trustee', 'vlek.der'), now: at('2025-12-06T00:00:00Z') };

test('milan-v2-gosevguest: PASS with its documented fields, and with the Milan CRL revocation is checked', async () => {
  const r = await verifySnp(V2.report, { certs: [...V2.certs, ...certs('amd-roots', 'ask_ark_milan.pem')], crls: [crl('crl_vcek_milan.pem')], now: V2.now });
  passed(r);
  assert.equal(r.trustAnchor, 'amd-milan');
  assert.equal(r.revocationChecked, true);
  assert.equal(r.debug, true); // policy bit 19
  assert.equal(r.measurement, 'b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01');
  assert.equal(r.reportData, `0102030405${'00'.repeat(59)}`);
  const c = r.claims as Record<string, any>;
  assert.equal(c.version, 2);
  assert.equal(c.product, 'milan');
  assert.equal(c.signingKey, 'vcek');
  assert.equal(c.guestSvn, 0);
  assert.equal(c.policy.raw, '0x00000000000b0000');
  assert.deepEqual([c.policy.abiMajor, c.policy.abiMinor, c.policy.smt, c.policy.debug, c.policy.migrateMa, c.policy.singleSocket], [0, 0, true, true, false, false]);
  assert.equal(c.vmpl, 0);
  assert.equal(c.platformInfo.raw, '0x0000000000000001');
  assert.equal(c.platformInfo.smtEnabled, true);
  for (const k of ['currentTcb', 'reportedTcb', 'committedTcb', 'launchTcb']) {
    assert.deepEqual(c[k], { raw: '0200000000000544', bootloader: 2, tee: 0, snp: 5, microcode: 68 });
  }
  assert.equal(c.currentVersion.text, '1.49.3');
  assert.equal(c.cpuid, null);
  assert.equal(c.reportId, '8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a');
  assert.equal(c.reportIdMa, 'ff'.repeat(32));
  assert.equal(c.chipId, '3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d');
  assert.equal(c.hostData, '00'.repeat(32));
  assert.equal(c.authorKeyEn, false);
  assert.equal(c.certificate.productName, 'Milan-B0');
  assert.equal(r.advisories.length, 0);
  assert.equal(r.tcbStatus, null);
});

test('milan-v5-gcp-teekit: PASS, version 5 fields (mitigation vectors, CPUID), ucodeSPL 222; VCEK not yet valid a second earlier', async () => {
  const r = await verifySnp(V5.report, { certs: [...V5.certs, ...certs('milan-v5-gcp-teekit', 'cert_chain.pem')], now: V5.now });
  passed(r);
  assert.equal(r.revocationChecked, false);
  assert.match(r.warnings.join('\n'), /no AMD CRL given \(https:\/\/kdsintf\.amd\.com\/vcek\/v1\/Milan\/crl\)/);
  const c = r.claims as Record<string, any>;
  assert.equal(c.version, 5);
  assert.equal(c.policy.raw, '0x0000000000030000');
  assert.equal(c.policy.debug, false);
  assert.equal(r.debug, false);
  assert.equal(c.platformInfo.raw, '0x0000000000000025');
  assert.deepEqual([c.platformInfo.smtEnabled, c.platformInfo.eccEnabled, c.platformInfo.aliasCheckComplete, c.platformInfo.tsmeEnabled], [true, true, true, false]);
  assert.deepEqual(c.reportedTcb, { raw: '0400000000001bde', bootloader: 4, tee: 0, snp: 27, microcode: 222 });
  assert.deepEqual(c.cpuid, { familyId: 0x19, modelId: 0x01, stepping: 1 });
  assert.equal(c.currentVersion.text, '1.55.35');
  assert.equal(c.launchMitVector, '0x000000000000000b');
  assert.equal(c.currentMitVector, '0x000000000000000b');
  assert.equal(r.measurement, 'b747d55452e0b9e9079770a49e397c5e6d9573581e246da7baac4f28b5cdc5b1b6d19251b8ee600fd16a3708f58406f3');
  assert.equal(c.reportId, '9a0603343e711e1ec9b6b046023da5378e7c4cac6182e35d4f3ebeb46aef6c80');
  rejected(await verifySnp(V5.report, { certs: V5.certs, now: at('2025-12-05T06:04:26Z') }), 'chain', /not valid before 2025-12-05T06:04:27Z/);
});

test('genoa-v3-azure-trustee: PASS on the Genoa chain with its CRL; FAIL on the Milan chain; CRL expiry enforced', async () => {
  const r = await verifySnp(GENOA.report, { certs: [...GENOA.certs, ...certs('amd-roots', 'ask_ark_genoa.pem')], crls: [crl('crl_vcek_genoa.pem')], now: GENOA.now });
  passed(r);
  assert.equal(r.trustAnchor, 'amd-genoa');
  assert.equal(r.revocationChecked, true);
  const c = r.claims as Record<string, any>;
  assert.equal(c.product, 'genoa');
  assert.equal(c.version, 3);
  assert.equal(c.guestSvn, 65547);
  assert.equal(c.policy.raw, '0x000000000003001f');
  assert.deepEqual([c.policy.abiMajor, c.policy.abiMinor], [0, 31]);
  assert.equal(c.platformInfo.raw, '0x0000000000000024');
  assert.deepEqual(c.reportedTcb, { raw: '0a00000000001754', bootloader: 10, tee: 0, snp: 23, microcode: 84 });
  assert.deepEqual(c.cpuid, { familyId: 0x19, modelId: 0x11, stepping: 1 });
  assert.equal(c.currentVersion.text, '1.55.40');
  assert.equal(c.familyId, '01232000000000000000000000000000');
  assert.equal(c.imageId, '02000000000000000000000000000000');
  assert.equal(c.idKeyDigest, '942fd93ebde6ea7a96efadeafc60f1c6b3d10e703b1dafd7555b92f7f3d32d0e006767648cba5b102af3d65756af4177');
  assert.equal(r.reportData, `b581f12e29a2d7d64e5e0b738d563879a78b51c644d0fa0cce02b48699f6bf5f${'00'.repeat(32)}`);
  assert.equal(r.measurement, 'f57dc09a507c6ecd82369bffb600f0003792f4d99bc26e985ec0c266fc34faf3706faf814c9e61065768a6ff917c89ae');
  rejected(await verifySnp(GENOA.report, { certs: [...GENOA.certs, ...certs('amd-roots', 'ask_ark_milan.pem')], now: GENOA.now }), 'chain', /SEV-Genoa/);
  rejected(await verifySnp(GENOA.report, { certs: GENOA.certs, crls: [crl('crl_vcek_genoa.pem')], now: at('2025-11-04T00:00:00Z') }), 'crl', /expired at 2025-11-03T01:00:00Z/);
});

test('milan-v3-vlek-aws-trustee: PASS on the VLEK path (ASVK, REPORTED_TCB, no hwID), VMPL 1', async () => {
  const r = await verifySnp(VLEK.report, { certs: [...VLEK.certs, ...certs('amd-roots', 'asvk_ark_milan_vlek.pem')], now: VLEK.now });
  passed(r);
  const c = r.claims as Record<string, any>;
  assert.equal(c.signingKey, 'vlek');
  assert.equal(c.vmpl, 1);
  assert.equal(c.platformInfo.raw, '0x0000000000000027');
  assert.equal(c.platformInfo.tsmeEnabled, true);
  assert.deepEqual(c.currentTcb, { raw: '04000000000018dc', bootloader: 4, tee: 0, snp: 24, microcode: 220 });
  assert.deepEqual(c.reportedTcb, { raw: '04000000000018d9', bootloader: 4, tee: 0, snp: 24, microcode: 217 });
  assert.deepEqual(c.committedTcb.microcode, 219);
  assert.equal(c.chipId, '00'.repeat(64));
  assert.equal(c.certificate.cspId, 'CN=cc-us-east-2.amazonaws.com');
  assert.equal(c.currentVersion.text, '1.55.29');
  assert.match(r.warnings.join('\n'), /vlek\/v1\/Milan\/crl/);
  // The VLEK only: the built-in ASVK completes the chain.
  passed(await verifySnp(VLEK.report, { certs: VLEK.certs, now: VLEK.now }));
  // The VLEK expires after one year.
  rejected(await verifySnp(VLEK.report, { certs: VLEK.certs, now: at('2025-12-10T22:14:22Z') }), 'chain', /expired/);
  // Claiming VCEK (byte 0x48 0x04 -> 0x00) is refused for a VLEK certificate.
  rejected(await verifySnp(mutate(VLEK.report, 0x48, () => 0), { certs: VLEK.certs, now: VLEK.now }), 'chain', /signed with a VCEK, but .* is a VLEK/);
});

test('the Enarx Milan Keep report (extracted from its CSR) verifies with its VCEK and both CRLs; report data binds the CSR key', async () => {
  const dir = (name: string) => new Uint8Array(readFileSync(testdata('enarx-steward', 'extracted', 'milan', name)));
  const r = await verifySnp(dir('report.bin'), {
    certs: parseCertificates(dir('vcek.der')),
    crls: [parseCrl(dir('crl-milan.der')), parseCrl(dir('crl-genoa.der'))],
    now: at('2023-01-01T00:00:00Z'),
  });
  passed(r);
  assert.equal(r.revocationChecked, true);
  assert.match(r.warnings.join('\n'), /CRL from 'ARK-Genoa' does not apply/);
  const c = r.claims as Record<string, any>;
  assert.equal(c.version, 2);
  assert.equal(c.guestSvn, 1);
  assert.deepEqual([c.policy.abiMajor, c.policy.abiMinor, c.policy.smt, c.policy.debug, c.policy.migrateMa, c.policy.singleSocket], [1, 51, true, false, false, false]);
  assert.deepEqual(c.reportedTcb, { raw: '020000000000065d', bootloader: 2, tee: 0, snp: 6, microcode: 93 });
  assert.equal(c.authorKeyEn, true);
  assert.equal(c.platformInfo.raw, '0x0000000000000001');
  assert.equal(c.currentVersion.text, '1.51.3');
  assert.equal(r.measurement, 'ff717ae719840c93c1fca3b7db96488454c3c21b43531488eecff51cfed3febcd91da8be87a4cbcbc52a3bae770987c3');
  assert.equal(c.idKeyDigest, 'd71a4d1da440d515cd69fbb1314acf4221726e82768a8bf6e4a4063ed542ac78349c8145b4666a4242a91a374387b473');
  assert.equal(c.authorKeyDigest, '7dc22240a8344fce6ba5f22ffbedabc52d4123ae0ba1c59796e521b953916b503f223b15c4429e7d8c5489ad71f1e193');
  const spkiHash = createHash('sha384').update(dir('spki.der')).digest('hex');
  assert.equal(r.reportData, `${spkiHash}${'00'.repeat(16)}`);
  // Its CRLs expired in 2023: strict checking refuses them later.
  rejected(await verifySnp(dir('report.bin'), { certs: parseCertificates(dir('vcek.der')), crls: [parseCrl(dir('crl-milan.der'))], now: at('2023-06-01T00:00:00Z') }), 'crl', /expired at 2023-05-09T23:00:00Z/);
  // Another chip's Milan VCEK (enarx-snp-kds) chains fine but cannot have signed this report.
  const other = parseCertificates(readFileSync(testdata('enarx-steward', 'enarx-snp-kds', 'vcek.der')));
  rejected(await verifySnp(dir('report.bin'), { certs: other, now: at('2023-01-01T00:00:00Z') }), 'signature');
});

test('mutations are rejected at the right step (README recipes 1-11)', async () => {
  const opts = { certs: V2.certs, now: V2.now };
  rejected(await verifySnp(mutate(V2.report, 0x50, (b) => b ^ 1), opts), 'signature', /does not verify/);
  rejected(await verifySnp(mutate(V2.report, 0x2a0, (b) => b ^ 1), opts), 'signature');
  rejected(await verifySnp(mutate(V2.report, 0x2e8, (b) => b ^ 0xff), opts), 'signature');
  rejected(await verifySnp(mutate(V2.report, 0x2d0, () => 1), opts), 'parse', /high bytes of the signature R/);
  rejected(await verifySnp(mutate(V2.report, 0x400, () => 1), opts), 'parse', /unused signature area/);
  rejected(await verifySnp(V2.report.subarray(0, 1183), opts), 'parse', /1183 bytes, expected exactly 1184/);
  rejected(await verifySnp(new Uint8Array([...V2.report, 0]), opts), 'parse', /1185 bytes/);
  rejected(await verifySnp(V2.report, { certs: V5.certs, now: V2.now }), 'signature');
  // The ARK inside the given chain with a flipped signature byte; then ARK-Genoa in its place.
  const pem = new TextDecoder().decode(snp('amd-roots', 'ask_ark_milan.pem'));
  const [askPem, arkPem] = pem.split(/(?=-----BEGIN CERTIFICATE-----)/) as [string, string];
  const body = arkPem.split('\n');
  const line = body.length - 4; // a line inside the signature, near the end
  body[line] = body[line]!.slice(0, 10) + (body[line]![10] === 'A' ? 'B' : 'A') + body[line]!.slice(11);
  const tamperedArk = parseCertificates(body.join('\n'));
  rejected(await verifySnp(V2.report, { certs: [...V2.certs, ...parseCertificates(askPem), ...tamperedArk], now: V2.now }), 'chain', /self-signature/);
  const genoaArk = certs('amd-roots', 'ask_ark_genoa.pem')[1]!;
  rejected(await verifySnp(V2.report, { certs: [...V2.certs, ...parseCertificates(askPem), genoaArk], now: V2.now }), 'chain', /ARK-Milan/);
  rejected(await verifySnp(V2.report, { ...opts, now: at('2029-09-24T00:55:29Z') }), 'chain', /expired at 2029-09-24T00:55:28Z/);
  // Policy bit 17 clear, unknown versions, a bad signature algorithm, an unsigned report, a VMPL out of range.
  rejected(await verifySnp(mutate(V2.report, 0x0a, (b) => b & ~2), opts), 'parse', /bit 17/);
  rejected(await verifySnp(mutate(V2.report, 0x00, () => 6), opts), 'parse', /unsupported version 6/);
  rejected(await verifySnp(mutate(V2.report, 0x00, () => 1), opts), 'parse', /unsupported version 1/);
  rejected(await verifySnp(mutate(V2.report, 0x34, () => 2), opts), 'parse', /signature algorithm 2/);
  rejected(await verifySnp(mutate(V2.report, 0x48, () => 7 << 2), opts), 'signature', /not signed/);
  rejected(await verifySnp(mutate(V2.report, 0x48, () => 2 << 2), opts), 'parse', /SIGNING_KEY 2 is reserved/);
  rejected(await verifySnp(mutate(V2.report, 0x30, () => 4), opts), 'parse', /VMPL 4/);
  // No certificate: a missing-collateral failure naming the KDS URL.
  const missing = await verifySnp(V2.report, { now: V2.now });
  rejected(missing, 'collateral', /kdsintf\.amd\.com\/vcek\/v1\/Milan\/3ac3fe21.*blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68/);
  assert.equal(missing.failure!.code, 'missing-collateral');
  // A certificate that is not a VCEK at all.
  rejected(await verifySnp(V2.report, { certs: certs('amd-roots', 'ask_ark_milan.pem'), now: V2.now }), 'collateral', /no VCEK certificate/);
});

test('every single-byte change to a genuine report is rejected, and random reports never crash', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 1183 }), fc.integer({ min: 1, max: 255 }), async (offset, xor) => {
      const r = await verifySnp(mutate(V5.report, offset, (b) => b ^ xor), { certs: V5.certs, now: V5.now });
      assert.equal(r.verified, false);
      assert.ok(VERIFICATION_STEPS.includes(r.failure!.step));
    }),
    { numRuns: 150 },
  );
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 1300 }), fc.integer({ min: 2, max: 5 }), fc.boolean(), async (bytes, version, sized) => {
      const input = sized ? Uint8Array.from({ length: 1184 }, (_, i) => bytes[i % Math.max(1, bytes.length)] ?? 0) : bytes;
      if (sized) new DataView(input.buffer).setUint32(0, version, true);
      const r = await verifySnp(input, { certs: V5.certs, now: V5.now });
      assert.equal(r.verified, false);
      assert.ok(VERIFICATION_STEPS.includes(r.failure!.step));
    }),
    { numRuns: 200 },
  );
});

test('parseSnpReport decodes offsets exactly as the ABI lays them out', () => {
  const r = parseSnpReport(GENOA.report);
  assert.equal(r.version, 3);
  assert.equal(r.signingKey, 'vcek');
  assert.deepEqual(r.currentVersion, { major: 1, minor: 55, build: 40 });
  assert.equal(r.signatureP1363.length, 96);
  // R's least significant byte (0x2a0) is the last byte of the big-endian form.
  assert.equal(r.signatureP1363[47], GENOA.report[0x2a0]);
  assert.equal(r.signatureP1363[95], GENOA.report[0x2e8]);
  const certsAreCertificates: Certificate[] = GENOA.certs;
  assert.equal(certsAreCertificates.length, 1);
});
