import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parsePolicy } from '../../src/attestation/policy/index.ts';
import { children, readWhole } from '../../src/attestation/der.ts';
import { parseCertificate, parseCertificates, verifySigned } from '../../src/attestation/x509.ts';
import {
  attestationStatementType,
  buildCsr,
  certificateExtensions,
  decodeSnpEvidence,
  describeOrigin,
  encodeSnpEvidence,
  encodeTdxEvidence,
  encodeWorkloadIdentity,
  parseCsr,
  readCertificateOrigin,
  reportDataFor,
  type WorkloadIdentity,
} from '../../src/pki/index.ts';
import { type Steward, StewardRefusal } from '../../src/steward/index.ts';
import { tlv, TAG } from '../../src/pki/der.ts';
import { debugSteward, keyPair, kvmCsr, NOW, productionCa, productionSteward, read, readmeCa, snpCsr, snpTestChain, spkiOf, testRootSteward } from './helpers.ts';
import { testdata } from '../helpers/paths.ts';

const identity: WorkloadIdentity = {
  digest: { algorithm: 'sha-256', value: new Uint8Array(32).fill(0x42) },
  package: { slug: 'example.com/alice/hello:1.0.0', signer: read('extracted', 'milan', 'spki.der') },
};
async function withSigner(): Promise<WorkloadIdentity> {
  const signer = await spkiOf(await keyPair('P-256'));
  return { ...identity, package: { ...identity.package!, signer } };
}

/** Asserts that `promise` is refused with this problem name, status and step. */
async function refused(promise: Promise<unknown>, name: string, status: number, step: string, detail?: RegExp): Promise<StewardRefusal> {
  let refusal: StewardRefusal | undefined;
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof StewardRefusal, String(err));
    refusal = err;
    return true;
  });
  const p = refusal!.problem;
  assert.equal(p.type, `urn:enarx:steward:problem:${name}`, p.detail);
  assert.equal(p.status, status);
  assert.equal(p.step, step, p.detail);
  assert.ok(p.title.length > 0 && p.detail.length > 0);
  if (detail) assert.match(p.detail, detail);
  return refusal!;
}

function sanUris(certDer: Uint8Array): string[] {
  const san = certificateExtensions(certDer).find((e) => e.oid === '2.5.29.17');
  if (!san) return [];
  return children(readWhole(san.value)).filter((g) => g.tag === 0x86).map((g) => new TextDecoder().decode(g.content));
}

describe('steward: issuing for software-root SNP evidence (the real SNP verifier, a local test chain)', () => {
  it('binds key and identity: the certificate names the workload and says where it comes from', async () => {
    const steward = await testRootSteward({ sans: [{ type: 'dns', value: 'keep.example.com' }] });
    const id = await withSigner();
    const { der, keys } = await snpCsr({ identity: id });
    const { certificate, origin } = await steward.issue(der);
    assert.deepEqual(readCertificateOrigin(certificate), origin);
    assert.equal(origin.tee, 'snp');
    assert.equal(origin.testRoot, true);
    assert.equal(origin.trustAnchor, 'test:milan-ark');
    assert.equal(origin.stewardDebug, false);
    assert.deepEqual(origin.identity, id);
    assert.deepEqual(sanUris(certificate), [`urn:enarx:workload:sha-256:${'42'.repeat(32)}`, 'urn:enarx:package:example.com/alice/hello:1.0.0']);
    const cert = parseCertificate(certificate);
    assert.deepEqual(cert.spki, await spkiOf(keys));
    assert.equal(await verifySigned(cert, steward.caCertificate), true);
    assert.equal(cert.notAfter.getTime() - NOW.getTime(), 86_400_000, 'default lifetime: one day');
    assert.equal(cert.extension('2.5.29.17')!.critical, true, 'empty subject: the SAN is critical');
    assert.deepEqual(describeOrigin(certificate), { kind: 'debug', detail: 'test root test:milan-ark' }, 'Drawbridge does not take a test root for a TEE');
  });

  it('issues a certificate without a workload name when the report binds no identity (zeros), as Enarx keeps send', async () => {
    const steward = await testRootSteward();
    const { certificate, origin } = await steward.issue((await snpCsr()).der);
    assert.equal(origin.identity, undefined);
    assert.deepEqual(sanUris(certificate), []);
    assert.equal(parseCertificate(certificate).extension('2.5.29.17'), undefined);
  });

  it('takes the evidence from the csr-attestation attribute too, with the chain the bundle carries', async () => {
    const chain = await snpTestChain();
    const steward = await productionSteward({ trustedTestRoots: [chain.anchor] });
    const { origin } = await steward.issue((await snpCsr({ standard: true, identity })).der);
    assert.equal(origin.testRoot, true);
    assert.deepEqual(origin.identity, identity);
  });

  it('honours the lifetime, and never outlives the CA', async () => {
    const short = await testRootSteward({ lifetimeSeconds: 600 });
    const cert = parseCertificate((await short.issue((await snpCsr()).der)).certificate);
    assert.equal(cert.notAfter.getTime() - NOW.getTime(), 600_000);
    assert.equal(NOW.getTime() - cert.notBefore.getTime(), 60_000);
    const late = await debugSteward({ lifetimeSeconds: 398 * 86_400, now: () => new Date('2049-12-01T00:00:00Z') });
    const capped = parseCertificate((await late.issue(await kvmCsr())).certificate);
    assert.equal(capped.notAfter.getTime(), parseCertificate((await readmeCa()).der).notAfter.getTime());
  });
});

describe('steward: every refusal reason', () => {
  it('evidence under an untrusted test root: rejected at the chain step', async () => {
    const steward = await productionSteward();
    await refused(steward.issue((await snpCsr()).der), 'evidence-rejected', 400, 'chain');
  });

  it('evidence outside its validity (an expired VCEK): rejected at the chain step', async () => {
    const steward = await testRootSteward({ now: () => new Date('2031-01-01T00:00:00Z') });
    await refused(steward.issue((await snpCsr()).der), 'evidence-rejected', 400, 'chain');
  });

  it('a report whose signature does not verify: rejected at the signature step', async () => {
    const steward = await testRootSteward();
    // a genuine report with one measurement byte flipped, in a CSR that is itself correctly signed
    const keys = await keyPair('P-384');
    const csr = parseCsr((await snpCsr({ keys })).der);
    const ev = decodeSnpEvidence(csr.evidence[0]!.der);
    ev.report[0x90]! ^= 1;
    const reSigned = await buildCsr({ keys, enarxEvidence: { kind: 'snp', der: encodeSnpEvidence(ev) } });
    await refused(steward.issue(reSigned), 'evidence-rejected', 400, 'signature');
  });

  it("evidence replayed with another key: the report data does not bind the CSR's key", async () => {
    const steward = await testRootSteward();
    const victim = await keyPair('P-384');
    const attacker = await keyPair('P-384');
    const reportData = await reportDataFor('snp', await spkiOf(victim));
    const { der } = await snpCsr({ keys: attacker, reportData });
    await refused(steward.issue(der), 'binding-mismatch', 400, 'binding', /SHA-384 of this CSR's public key/);
  });

  it('a CSR key on another curve than the hardware key (P-256 CSR, P-384 VCEK)', async () => {
    const steward = await testRootSteward();
    await refused(steward.issue((await snpCsr({ keys: await keyPair('P-256') })).der), 'key-algorithm-mismatch', 400, 'binding', /P-256.*P-384/);
  });

  it('identity: bound to another identity, not bound at all, or bound without an attribute', async () => {
    const steward = await testRootSteward();
    const keys = await keyPair('P-384');
    const other = { digest: { algorithm: 'sha-256' as const, value: new Uint8Array(32).fill(1) } };
    const boundToOther = await reportDataFor('snp', await spkiOf(keys), encodeWorkloadIdentity(other));
    await refused(steward.issue((await snpCsr({ keys, identity, reportData: boundToOther })).der), 'binding-mismatch', 400, 'binding', /another workload identity/);
    const unbound = await reportDataFor('snp', await spkiOf(keys));
    await refused(steward.issue((await snpCsr({ keys, identity, reportData: unbound })).der), 'binding-mismatch', 400, 'binding', /binds none/);
    await refused(steward.issue((await snpCsr({ keys, reportData: boundToOther })).der), 'binding-mismatch', 400, 'binding', /no identity attribute/);
  });

  it('debug TEEs are refused by the default policy, accepted when the policy allows and marked', async () => {
    const DEBUG = 0x30000n | (1n << 19n);
    await refused((await testRootSteward()).issue((await snpCsr({ fields: { policy: DEBUG } })).der), 'policy-refused', 400, 'policy', /debug/);
    const policy = parsePolicy(`[snp]\ndebug = true\nhash = ["${'a5'.repeat(48)}"]\n`);
    const { origin } = await (await testRootSteward({ policy })).issue((await snpCsr({ fields: { policy: DEBUG } })).der);
    assert.equal(origin.teeDebug, true);
  });

  it('a policy refusal carries every reason', async () => {
    const policy = parsePolicy(`[snp]\nhash = ["${'00'.repeat(48)}"]\n`);
    const refusal = await refused((await testRootSteward({ policy })).issue((await snpCsr()).der), 'policy-refused', 400, 'policy');
    assert.ok(refusal.problem.reasons && refusal.problem.reasons[0] === refusal.problem.detail);
  });

  it('software (KVM) evidence: refused in production, accepted and marked in debug mode, never with an identity', async () => {
    await refused((await productionSteward()).issue(await kvmCsr()), 'debug-only', 400, 'policy');
    const debug = await debugSteward();
    const { certificate, origin } = await debug.issue(await kvmCsr());
    assert.equal(origin.tee, 'software');
    assert.equal(origin.stewardDebug, true);
    assert.ok(certificateExtensions(certificate).some((e) => e.oid === '1.3.6.1.4.1.58270.1.1'), 'the Enarx KVM marker is kept');
    assert.equal(describeOrigin(certificate).kind, 'software', 'Drawbridge reads it as software');
    await refused(debug.issue(await kvmCsr(undefined, identity)), 'binding-mismatch', 400, 'binding', /cannot bind/);
    const junk = await buildCsr({ keys: await keyPair('P-256'), enarxEvidence: { kind: 'kvm', der: Uint8Array.of(1, 2, 3) } });
    await refused(debug.issue(junk), 'evidence-rejected', 400, 'parse');
  });

  it('a debug-mode Steward checks hardware evidence just as production does', async () => {
    const chain = await snpTestChain();
    const debug = await debugSteward({ trustedTestRoots: [chain.anchor], testRootCerts: [chain.ask.der] });
    const victim = await keyPair('P-384');
    const reportData = await reportDataFor('snp', await spkiOf(victim));
    await refused(debug.issue((await snpCsr({ reportData })).der), 'binding-mismatch', 400, 'binding');
    const { origin } = await debug.issue((await snpCsr()).der);
    assert.equal(origin.stewardDebug, true);
    assert.equal(origin.testRoot, true);
  });

  it('no evidence (401), two pieces of evidence, and malformed evidence', async () => {
    const steward = await testRootSteward();
    const plain = await buildCsr({ keys: await keyPair('P-256') });
    await refused(steward.issue(plain), 'attestation-required', 401, 'parse');
    const keys = await keyPair('P-384');
    const ev = parseCsr((await snpCsr({ keys })).der).evidence[0]!.der;
    const both = await buildCsr({ keys, enarxEvidence: { kind: 'snp', der: ev }, attestation: { attestations: [{ type: attestationStatementType('snp'), stmt: ev }], certs: [] } });
    await refused(steward.issue(both), 'bad-csr', 400, 'parse', /2 pieces of evidence/);
    const garbage = await buildCsr({ keys, enarxEvidence: { kind: 'snp', der: Uint8Array.of(0x30, 0) } });
    await refused(steward.issue(garbage), 'evidence-rejected', 400, 'parse', /malformed SNP evidence/);
    const short = { ...decodeSnpEvidence(ev) };
    short.report = short.report.subarray(0, 1000);
    await refused(steward.issue(await buildCsr({ keys, enarxEvidence: { kind: 'snp', der: encodeSnpEvidence(short) } })), 'evidence-rejected', 400, 'parse');
  });

  it('a real TDX v4 quote (Phala) in TdxEvidence verifies through the Steward, which then refuses it: its report data binds another key', async () => {
    const dir = testdata('attestation', 'tdx', 'phala-tdx-v4');
    const c = JSON.parse(readFileSync(join(dir, 'collateral.json'), 'utf8')) as Record<string, string>;
    const pem = (text: string) => parseCertificates(text).map((x) => x.der);
    const utf8 = (text: string) => new TextEncoder().encode(text);
    const tdx = encodeTdxEvidence({
      quote: new Uint8Array(readFileSync(join(dir, 'quote.bin'))),
      crls: [
        { url: 'https://certificates.trustedservices.intel.com/IntelSGXRootCA.der', crl: Buffer.from(c.root_ca_crl!, 'hex') },
        { url: 'https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der', crl: Buffer.from(c.pck_crl!, 'hex') },
      ],
      tcb: { certs: pem(c.tcb_info_issuer_chain!), report: utf8(`{"tcbInfo":${c.tcb_info},"signature":"${c.tcb_info_signature}"}`) },
      qeIdentity: { certs: pem(c.qe_identity_issuer_chain!), report: utf8(`{"enclaveIdentity":${c.qe_identity},"signature":"${c.qe_identity_signature}"}`) },
    });
    const csr = await buildCsr({ keys: await keyPair('P-256'), attestation: { attestations: [{ type: attestationStatementType('tdx'), stmt: tdx }], certs: [] } });
    const steward = await productionSteward({ now: () => new Date('2025-07-01T00:00:00Z') });
    await refused(steward.issue(csr), 'binding-mismatch', 400, 'binding', /SHA-256 of this CSR's public key/);
    const p384 = await buildCsr({ keys: await keyPair('P-384'), attestation: { attestations: [{ type: attestationStatementType('tdx'), stmt: tdx }], certs: [] } });
    await refused(steward.issue(p384), 'key-algorithm-mismatch', 400, 'binding', /P-384.*P-256/);
    await refused((await productionSteward({ now: () => new Date('2030-01-01T00:00:00Z') })).issue(csr), 'evidence-rejected', 400, 'crl');
  });

  it('TDX evidence in the csr-attestation attribute reaches the TDX path (a bogus quote is refused at parse)', async () => {
    const tdx = encodeTdxEvidence({ quote: new Uint8Array(64), crls: [], tcb: { certs: [], report: new Uint8Array(0) } });
    const csr = await buildCsr({ keys: await keyPair('P-256'), attestation: { attestations: [{ type: attestationStatementType('tdx'), stmt: tdx }], certs: [] } });
    await refused((await productionSteward()).issue(csr), 'evidence-rejected', 400, 'parse', /TDX/);
  });

  it('a CSR whose signature does not match, and a malformed CSR', async () => {
    const steward = await testRootSteward();
    const { der } = await snpCsr();
    const bad = der.slice();
    bad[bad.length - 3]! ^= 0x01;
    await refused(steward.issue(bad), 'bad-csr-signature', 400, 'signature');
    await refused(steward.issue(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00)), 'bad-csr', 400, 'parse');
  });

  it('bundles: all issued with Enarx Output, or the first refusal with its index', async () => {
    const steward = await testRootSteward();
    const a = (await snpCsr()).der;
    const b = (await snpCsr({ identity })).der;
    const out = await steward.certifyBundle(tlv(TAG.SEQUENCE, a, b));
    const [chain, issued] = children(readWhole(out, TAG.SEQUENCE));
    assert.deepEqual(children(chain!).map((c) => c.raw), steward.chainTopDown);
    assert.equal(children(issued!).length, 2);
    const refusal = await refused(steward.certifyBundle(tlv(TAG.SEQUENCE, a, await kvmCsr())), 'debug-only', 400, 'policy');
    assert.equal(refusal.problem.index, 1);
    assert.match(refusal.problem.detail, /^CSR 1: /);
    await refused(steward.certifyBundle(tlv(TAG.SEQUENCE)), 'bad-request', 400, 'parse', /empty/);
    await refused(steward.certifyBundle(Uint8Array.of(1, 2, 3)), 'bad-request', 400, 'parse');
    await refused(steward.certifyBundle(tlv(TAG.SEQUENCE, ...new Array(65).fill(a))), 'bad-request', 400, 'parse', /too many CSRs/);
  });
});

describe('steward: CA material', () => {
  it('refuses a key that does not match the CA certificate, and a certificate that is not a CA', async () => {
    const ca = await productionCa();
    const { Steward, builtinVerifier } = await import('../../src/steward/index.ts');
    const other = await keyPair('P-256');
    await assert.rejects(Steward.create({ key: other.privateKey, chain: ca.chain, verify: builtinVerifier() }), /does not match/);
    const chain = await snpTestChain();
    await assert.rejects(Steward.create({ key: chain.leafKey.privateKey, chain: [chain.leaf.der], verify: builtinVerifier() }), /not a CA/);
  });

  it('answers Enarx single requests with the chain top-down, then the leaf', async () => {
    const steward: Steward = await testRootSteward();
    const ca = await productionCa();
    const certs = parseCertificates(await steward.certify((await snpCsr()).der));
    assert.deepEqual(certs.slice(0, 2).map((c) => c.der), [ca.root, ca.chain[0]]);
    assert.equal(certs.length, 3);
  });
});
