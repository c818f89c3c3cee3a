// Turin, revocation and the VLEK path with chains generated locally under test roots that only
// these tests trust (no AMD signature is ever imitated).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifySnp } from '../../src/attestation/snp/verify.ts';
import { generateKeyPair } from '../../src/attestation/testing/pki.ts';
import { createTestArkCrl, createTestSnpChain, createTestSnpReport, type TestSnpChain } from '../../src/attestation/testing/snp.ts';
import type { VerificationResult } from '../../src/attestation/types.ts';

const NOW = new Date('2026-01-01T00:00:00Z');

function outcome(r: VerificationResult): string {
  return r.verified ? 'ok' : `${r.failure!.step}: ${r.failure!.message}`;
}

// Key generation dominates; one set of keys serves every chain here.
const keys = (async () => ({ ark: await generateKeyPair('rsa-pss'), ask: await generateKeyPair('rsa-pss'), leaf: await generateKeyPair('ec-p384') }))();

async function chainFor(product: 'milan' | 'genoa' | 'turin', signingKey: 'vcek' | 'vlek' = 'vcek', tcb?: TestSnpChain['tcb']): Promise<TestSnpChain> {
  return createTestSnpChain({ product, signingKey, keys: await keys, ...(tcb ? { tcb } : {}) });
}

function verify(chain: TestSnpChain, report: Uint8Array, extra: Partial<Parameters<typeof verifySnp>[1]> = {}) {
  return verifySnp(report, { certs: [chain.leaf, chain.ask, chain.ark], trustedTestRoots: [chain.anchor], now: NOW, ...extra });
}

test('Turin: the FMC SPL and the Turin TCB layout, an 8-byte hwID, and the test anchor named test:...', async () => {
  const chain = await chainFor('turin', 'vcek', { fmc: 2, bootloader: 3, tee: 1, snp: 22, microcode: 80 });
  const report = await createTestSnpReport(chain, { version: 3 });
  const r = await verify(chain, report);
  assert.equal(outcome(r), 'ok');
  assert.equal(r.trustAnchor, 'test:turin-ark');
  const c = r.claims as Record<string, any>;
  assert.equal(c.product, 'turin');
  // Turin layout: byte0 FMC, 1 BL, 2 TEE, 3 SNP, 7 microcode.
  assert.deepEqual(c.reportedTcb, { raw: '0203011600000050', fmc: 2, bootloader: 3, tee: 1, snp: 22, microcode: 80 });
  assert.equal(c.certificate.hwId.length, 16);
  // A Turin VCEK for another FMC SPL does not match the report.
  const other = await chainFor('turin', 'vcek', { fmc: 1, bootloader: 3, tee: 1, snp: 22, microcode: 80 });
  const mismatched = await createTestSnpReport({ ...other, tcb: { ...other.tcb, fmc: 2 } });
  const bad = await verify(other, mismatched);
  assert.equal(bad.failure?.step, 'tcb');
  assert.match(bad.failure!.message, /fmc 1.*REPORTED_TCB is \(.*fmc 2/);
  // Read with the Milan layout, the same bytes would have been misread: the product decides.
  assert.notEqual(c.reportedTcb.snp, report[0x186]);
  // A version 2 report cannot come from Turin.
  assert.match(outcome(await verify(chain, await createTestSnpReport(chain, { version: 2 }))), /^collateral: a version 2 report cannot come from Turin/);
});

test('Milan and Genoa test chains: versions 2 to 5 pass; the CPUID must name the chain product', async () => {
  for (const product of ['milan', 'genoa'] as const) {
    const chain = await chainFor(product);
    for (const version of [2, 3, 4, 5] as const) {
      const report = await createTestSnpReport(chain, { version, launchMitVector: version === 5 ? 3n : undefined });
      const r = await verify(chain, report);
      assert.equal(outcome(r), 'ok', `${product} v${version}`);
      assert.equal((r.claims as Record<string, unknown>).launchMitVector, version === 5 ? '0x0000000000000003' : null);
    }
    const wrongCpu = await createTestSnpReport(chain, { cpuid: { familyId: 0x1a, modelId: 0x02, stepping: 0 } });
    assert.match(outcome(await verify(chain, wrongCpu)), /^collateral: the report's CPUID names Turin/);
  }
});

test('revocation: a CRL from the ARK that lists the ASK rejects the chain; an empty one marks revocation as checked', async () => {
  const chain = await chainFor('genoa');
  const report = await createTestSnpReport(chain);
  const clean = await verify(chain, report, { crls: [await createTestArkCrl(chain)] });
  assert.equal(outcome(clean), 'ok');
  assert.equal(clean.revocationChecked, true);
  const revoked = await verify(chain, report, { crls: [await createTestArkCrl(chain, { revoked: [0x10001] })] });
  assert.match(outcome(revoked), /^crl: certificate 'TEST-SEV-Genoa' \(serial 10001\) was revoked/);
  const stale = await verify(chain, report, { crls: [await createTestArkCrl(chain, { thisUpdate: new Date('2024-01-01T00:00:00Z'), nextUpdate: new Date('2025-01-01T00:00:00Z') })] });
  assert.match(outcome(stale), /^crl: .* expired at 2025-01-01T00:00:00Z/);
  // A stale CRL beside a current one is set aside with a warning; beside a revoking one it changes nothing.
  const both = await verify(chain, report, { crls: [await createTestArkCrl(chain, { nextUpdate: new Date('2025-01-01T00:00:00Z') }), await createTestArkCrl(chain)] });
  assert.equal(outcome(both), 'ok');
  assert.match(both.warnings.join('\n'), /set aside \(CRL from 'TEST-ARK-Genoa' expired/);
  const staleAndRevoking = await verify(chain, report, { crls: [await createTestArkCrl(chain, { nextUpdate: new Date('2025-01-01T00:00:00Z') }), await createTestArkCrl(chain, { revoked: [0x10001] })] });
  assert.match(outcome(staleAndRevoking), /^crl: .* was revoked/);
  const noCrl = await verify(chain, report);
  assert.equal(noCrl.revocationChecked, false);
  assert.match(noCrl.warnings.join('\n'), /no CRL given/);
});

test('a test root is trusted only when passed explicitly', async () => {
  const chain = await chainFor('milan');
  const report = await createTestSnpReport(chain);
  const r = await verifySnp(report, { certs: [chain.leaf, chain.ask, chain.ark], now: NOW });
  assert.match(outcome(r), /^chain: root 'TEST-ARK-Milan' .* is not a pinned trust anchor/);
  const r2 = await verifySnp(report, { certs: [chain.leaf, chain.ask], now: NOW });
  assert.match(outcome(r2), /^chain: .*not a pinned trust anchor/);
});

test('VLEK test chain; a masked CHIP_ID only warns; a VCEK for another chip is refused at binding', async () => {
  const vlek = await chainFor('milan', 'vlek');
  const r = await verify(vlek, await createTestSnpReport(vlek, { vmpl: 2 }));
  assert.equal(outcome(r), 'ok');
  assert.equal((r.claims as Record<string, unknown>).signingKey, 'vlek');
  const vcek = await chainFor('genoa');
  const masked = await verify(vcek, await createTestSnpReport(vcek, { chipId: new Uint8Array(64) }));
  assert.equal(outcome(masked), 'ok');
  assert.match(masked.warnings.join('\n'), /masked CHIP_ID/);
  const otherChip = await verify(vcek, await createTestSnpReport(vcek, { chipId: new Uint8Array(64).fill(7) }));
  assert.match(outcome(otherChip), /^binding: the VCEK belongs to chip/);
  // A report signed by a VLEK-labelled chain but claiming VCEK.
  const lie = await createTestSnpReport({ ...vlek, signingKey: 'vcek' });
  assert.match(outcome(await verify(vlek, lie)), /^chain: the report is signed with a VCEK, but .* is a VLEK/);
});

test('a VCEK whose P-384 point is not on the curve is refused at step chain, never thrown', async () => {
  const chain = await chainFor('milan');
  const spki = new Uint8Array(chain.leafKey.spki);
  spki[spki.length - 1]! ^= 1; // the point's last Y byte: no longer on the curve
  const { issueCertificate } = await import('../../src/attestation/testing/pki.ts');
  const badLeaf = await issueCertificate({
    subject: [['CN', 'TEST-SEV-VCEK']],
    subjectKey: { ...chain.leafKey, spki },
    issuer: { certificate: chain.ask, key: chain.askKey },
    serial: 0,
    notBefore: chain.leaf.notBefore,
    notAfter: chain.leaf.notAfter,
    extensions: [...chain.leaf.extensions.values()].map((e) => ({ oid: e.oid, value: e.value })),
  });
  const r = await verifySnp(await createTestSnpReport(chain), { certs: [badLeaf, chain.ask, chain.ark], trustedTestRoots: [chain.anchor], now: NOW });
  assert.match(outcome(r), /^chain: the public key of 'TEST-SEV-VCEK' \(serial 0\) cannot be used/);
});

test('a report left unsigned because the host set MASK_CHIP_KEY is refused with that reason', async () => {
  const { buildSnpReport } = await import('../../src/attestation/testing/snp.ts');
  const chain = await chainFor('genoa');
  const r = await verify(chain, buildSnpReport(chain, { maskChipKey: true }));
  assert.equal(outcome(r), 'signature: the host set MASK_CHIP_KEY, so the firmware did not sign this report');
  assert.equal((r.claims as Record<string, unknown>).maskChipKey, true);
});

test('a raw hwID that happens to start like a DER OCTET STRING is read as it is', async () => {
  for (const product of ['milan', 'turin'] as const) {
    for (const second of [0x85, 0x3e, 0x06, 0x40]) {
      const chipId = new Uint8Array(64).fill(0x5a);
      chipId[0] = 0x04;
      chipId[1] = second;
      const chain = await createTestSnpChain({ product, chipId, keys: await keys });
      const r = await verify(chain, await createTestSnpReport(chain));
      assert.equal(outcome(r), 'ok', `${product} chip id 04 ${second.toString(16)}`);
    }
  }
});

test('CPUID: Turin dense (family 0x1A model 0x12, CPUID 0x00B10F20) is Turin, decoded with the Turin TCB layout', async () => {
  const { decodeEvidence } = await import('../../src/attestation/index.ts');
  const chain = await chainFor('turin', 'vcek', { fmc: 4, bootloader: 3, tee: 1, snp: 22, microcode: 80 });
  for (const modelId of [0x02, 0x11, 0x12, 0x1f]) {
    const report = await createTestSnpReport(chain, { version: 5, cpuid: { familyId: 0x1a, modelId, stepping: 0 } });
    const r = await verify(chain, report);
    assert.equal(outcome(r), 'ok', `model 0x${modelId.toString(16)}`);
    assert.deepEqual(r.warnings.filter((w) => /CPUID/.test(w)), []);
    const decoded = decodeEvidence(report).claims as Record<string, any>;
    assert.equal(decoded.product, 'turin');
    assert.deepEqual({ fmc: decoded.reportedTcb.fmc, snp: decoded.reportedTcb.snp }, { fmc: 4, snp: 22 });
  }
  // Family 0x1A model 0x20 and later are not SEV-SNP server parts we know: a warning, and the chain decides.
  const unknown = await verify(chain, await createTestSnpReport(chain, { cpuid: { familyId: 0x1a, modelId: 0x24, stepping: 0 } }));
  assert.equal(outcome(unknown), 'ok');
  assert.match(unknown.warnings.join('\n'), /CPUID family 0x1a model 0x24 is not a known SEV-SNP product/);
  assert.equal((unknown.claims as Record<string, unknown>).product, 'turin');
});

test('POLICY bits above PAGE_SWAP_DISABLE (26-63) verify but are named in a warning; known bits do not warn', async () => {
  const chain = await chainFor('genoa');
  const known = await verify(chain, await createTestSnpReport(chain, { policy: 0x30000n | (1n << 25n) | (1n << 19n) }));
  assert.equal(outcome(known), 'ok');
  assert.deepEqual(known.warnings.filter((w) => /POLICY/.test(w)), []);
  assert.equal(known.debug, true);
  const future = await verify(chain, await createTestSnpReport(chain, { policy: 0x30000n | (1n << 26n) | (1n << 63n) }));
  assert.equal(outcome(future), 'ok');
  assert.match(future.warnings.join('\n'), /POLICY sets bits this verifier does not know \(0x8000000004000000/);
});

test('property: a VCEK whose AMD extensions hold any bytes (or are missing) gives a result naming a step, never a throw', async () => {
  const fc = (await import('fast-check')).default;
  const { issueCertificate } = await import('../../src/attestation/testing/pki.ts');
  const { AMD_OID } = await import('../../src/attestation/snp/vcek.ts');
  const chain = await chainFor('milan');
  const report = await createTestSnpReport(chain);
  const original = [...chain.leaf.extensions.values()].map((e) => ({ oid: e.oid, value: e.value }));
  const oids = Object.values(AMD_OID);
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...oids), fc.option(fc.uint8Array({ maxLength: 80 }), { nil: undefined }), async (oid, value) => {
      const extensions = original.filter((e) => e.oid !== oid);
      if (value) extensions.push({ oid, value });
      const leaf = await issueCertificate({
        subject: [['CN', 'TEST-SEV-VCEK']],
        subjectKey: chain.leafKey,
        issuer: { certificate: chain.ask, key: chain.askKey },
        serial: 0,
        notBefore: chain.leaf.notBefore,
        notAfter: chain.leaf.notAfter,
        extensions,
      });
      const r = await verify(chain, report, { certs: [leaf, chain.ask, chain.ark] });
      if (!r.verified) {
        assert.ok(r.failure && ['parse', 'collateral', 'tcb', 'binding', 'chain'].includes(r.failure.step), JSON.stringify(r.failure));
        assert.doesNotMatch(r.failure.message, /\n/);
      }
    }),
    { numRuns: 60 },
  );
});

test('an invalid now is a programming error (TypeError) for SEV-SNP and for any chain, never a silently passed window', async () => {
  const { verifyChain } = await import('../../src/attestation/x509.ts');
  const { verifyEvidence } = await import('../../src/attestation/index.ts');
  const chain = await chainFor('milan');
  const report = await createTestSnpReport(chain);
  for (const now of [new Date('garbage'), new Date(Number.NaN)]) {
    await assert.rejects(verify(chain, report, { now }), { name: 'TypeError', message: /now must be a valid Date/ });
    await assert.rejects(verifyChain([chain.leaf, chain.ask, chain.ark], { anchors: [chain.anchor], now }), TypeError);
    await assert.rejects(verifyEvidence({ evidence: report, certs: [chain.leaf.der], trustedTestRoots: [{ name: 'milan', certificate: chain.ark }], now }), TypeError);
  }
  // The same report with a valid now still verifies.
  assert.equal(outcome(await verify(chain, report)), 'ok');
});

test('a host that provisions both a VCEK and a VLEK: the leaf of the report\'s SIGNING_KEY type is used, whatever the order', async () => {
  const vcek = await chainFor('milan', 'vcek');
  const vlek = await chainFor('milan', 'vlek');
  const vlekReport = await createTestSnpReport(vlek);
  const r = await verify(vlek, vlekReport, { certs: [vcek.leaf, vlek.leaf, vcek.ask, vlek.ask, vlek.ark] });
  assert.equal(outcome(r), 'ok');
  assert.equal((r.claims as Record<string, any>).certificate.subject, vlek.leaf.subject.text);
  const vcekReport = await createTestSnpReport(vcek);
  const v = await verify(vcek, vcekReport, { certs: [vlek.leaf, vcek.leaf, vlek.ask, vcek.ask, vcek.ark] });
  assert.equal(outcome(v), 'ok');
  assert.equal((v.claims as Record<string, any>).signingKey, 'vcek');
});
