import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseCertificate, parseCertificates } from '../../src/attestation/x509.ts';
import { generateKeyPair, issueCertificate, type TestKeyPair } from '../../src/attestation/testing/pki.ts';
import { createTestSnpChain, createTestSnpReport, type SnpReportFields, type TestSnpChain } from '../../src/attestation/testing/snp.ts';
import { buildCsr, encodeSnpEvidence, encodeWorkloadIdentity, reportDataFor, type WorkloadIdentity } from '../../src/pki/index.ts';
import { builtinVerifier, Steward, type StewardOptions } from '../../src/steward/index.ts';
import { testdata } from '../helpers/paths.ts';

/** The time the README gives: every real CSR's chain, CRLs and TCB info are valid then. */
export const NOW = new Date('2023-02-01T00:00:00Z');

export const read = (...p: string[]): Uint8Array => new Uint8Array(readFileSync(testdata('enarx-steward', ...p)));
export const REAL_CSRS = {
  milan: 'milan.signed.crl.csr',
  'icelake-i5': 'icelake.signed.tcb.crl.single.i5.csr',
  'icelake-xeon': 'icelake.signed.tcb.crl.multi.xeon.csr',
} as const;
export type RealCsr = keyof typeof REAL_CSRS;
export const realCsr = (name: RealCsr): Uint8Array => read('csr', REAL_CSRS[name]);

async function importP256(pem: string | Buffer): Promise<TestKeyPair> {
  const key = createPrivateKey(pem);
  const pkcs8 = new Uint8Array(key.export({ format: 'der', type: 'pkcs8' }));
  const spki = new Uint8Array((await import('node:crypto')).createPublicKey(key).export({ format: 'der', type: 'spki' }));
  const privateKey = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const publicKey = await crypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
  return { kind: 'ec-p256', privateKey, publicKey, spki, signatureAlgorithm: { kind: 'ecdsa', hash: 'SHA-256' } };
}

/** The README's Steward test CA (self-signed, so a Steward holding it runs in debug mode). */
export async function readmeCa(): Promise<{ key: TestKeyPair; der: Uint8Array }> {
  return { key: await importP256(readFileSync(testdata('enarx-steward', 'ca', 'ca.key'))), der: parseCertificates(read('ca', 'ca.crt'))[0]!.der };
}

let production: Promise<{ key: CryptoKey; chain: Uint8Array[]; root: Uint8Array }> | undefined;
/** A production CA: an intermediate issued by the README CA, valid around NOW and today. */
export function productionCa(): Promise<{ key: CryptoKey; chain: Uint8Array[]; root: Uint8Array }> {
  return (production ??= (async () => {
    const root = await readmeCa();
    const key = await generateKeyPair('ec-p256');
    const cert = await issueCertificate({
      subject: [['2.5.4.3', 'enarx-ts test Steward (production)']],
      subjectKey: key,
      issuer: { certificate: parseCertificate(root.der), key: root.key },
      serial: 7,
      notBefore: new Date('2022-09-01T00:00:00Z'),
      notAfter: new Date('2049-01-01T00:00:00Z'),
      ca: { pathLength: 0 },
    });
    return { key: key.privateKey, chain: [cert.der, root.der], root: root.der };
  })());
}

export async function productionSteward(options: Partial<StewardOptions> = {}): Promise<Steward> {
  const ca = await productionCa();
  return Steward.create({ key: ca.key, chain: ca.chain, verify: builtinVerifier(), now: () => NOW, ...options });
}

export async function debugSteward(options: Partial<StewardOptions> = {}): Promise<Steward> {
  const ca = await readmeCa();
  return Steward.create({ key: ca.key.privateKey, chain: [ca.der], verify: builtinVerifier(), now: () => NOW, ...options });
}

let testChain: Promise<TestSnpChain> | undefined;
/** A local test ARK/ASK/VCEK chain (Milan layout), valid around NOW; trusted only where passed. */
export function snpTestChain(): Promise<TestSnpChain> {
  return (testChain ??= createTestSnpChain({ modulusLength: 2048, notBefore: new Date('2022-01-01T00:00:00Z'), notAfter: new Date('2030-01-01T00:00:00Z') }));
}

export async function keyPair(curve: 'P-256' | 'P-384'): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: curve }, false, ['sign', 'verify'])) as CryptoKeyPair;
}

export const spkiOf = async (keys: CryptoKeyPair): Promise<Uint8Array> => new Uint8Array(await crypto.subtle.exportKey('spki', keys.publicKey));

export interface SnpCsrOptions {
  keys?: CryptoKeyPair;
  /** The identity the CSR carries. */
  identity?: WorkloadIdentity;
  /** The 64 bytes the report binds; by default, what `keys` and `identity` call for. */
  reportData?: Uint8Array;
  fields?: SnpReportFields;
  /** Put the evidence in a csr-attestation bundle instead of Enarx's extension. */
  standard?: boolean;
}

/** A CSR with SNP evidence signed by the local test chain, in Enarx's encoding. */
export async function snpCsr(options: SnpCsrOptions = {}): Promise<{ der: Uint8Array; keys: CryptoKeyPair }> {
  const chain = await snpTestChain();
  const keys = options.keys ?? (await keyPair('P-384'));
  const reportData = options.reportData ?? (await reportDataFor('snp', await spkiOf(keys), options.identity ? encodeWorkloadIdentity(options.identity) : undefined));
  const report = await createTestSnpReport(chain, { reportData, ...options.fields });
  const evidence = encodeSnpEvidence({ vcek: chain.leaf.der, crls: [], report });
  const der = await buildCsr({
    keys,
    ...(options.standard
      ? { attestation: { attestations: [{ type: '1.3.6.1.4.1.58270.1.3', stmt: evidence }], certs: [chain.ask.der] } }
      : { enarxEvidence: { kind: 'snp' as const, der: evidence } }),
    ...(options.identity ? { identity: options.identity } : {}),
  });
  return { der, keys };
}

/** A Steward that trusts the local test chain, as `--trust-test-root ark+ask.pem` does. */
export async function testRootSteward(options: Partial<StewardOptions> = {}): Promise<Steward> {
  const chain = await snpTestChain();
  return productionSteward({ trustedTestRoots: [chain.anchor], testRootCerts: [chain.ask.der], ...options });
}

export const kvmCsr = async (keys?: CryptoKeyPair, identity?: WorkloadIdentity): Promise<Uint8Array> =>
  buildCsr({ keys: keys ?? (await keyPair('P-256')), enarxEvidence: { kind: 'kvm', der: new Uint8Array(0) }, ...(identity ? { identity } : {}) });
