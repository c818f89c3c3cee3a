/**
 * Test SEV-SNP evidence: a local ARK -> ASK/ASVK -> VCEK/VLEK chain shaped like AMD's (RSASSA-PSS
 * SHA-384 CAs, a P-384 leaf with AMD's TCB/hwID/productName extensions) and reports in the real
 * 1184-byte format signed by that leaf. The names say "TEST" and the root is a fresh local key, so
 * nothing here passes for AMD: a verifier accepts it only through `trustedTestRoots`.
 */
import type { SnpProduct } from '../roots.ts';
import { SNP_REPORT_SIZE, SNP_SIGNED_SIZE } from '../snp/report.ts';
import { AMD_OID } from '../snp/vcek.ts';
import type { Certificate, Crl, TrustAnchor } from '../x509.ts';
import { type TestExtension, type TestKeyPair, derIa5String, derInteger, generateKeyPair, issueCertificate, issueCrl } from './pki.ts';

export interface SnpTcbValues {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  /** Turin only. */
  fmc?: number;
}

export interface TestSnpChain {
  product: SnpProduct;
  signingKey: 'vcek' | 'vlek';
  /** Pass this as trustedTestRoots; its name is 'test:<product>-ark'. */
  anchor: TrustAnchor;
  ark: Certificate;
  /** The ASK (VCEK chains) or ASVK (VLEK chains). */
  ask: Certificate;
  leaf: Certificate;
  arkKey: TestKeyPair;
  askKey: TestKeyPair;
  leafKey: TestKeyPair;
  chipId: Uint8Array;
  tcb: SnpTcbValues;
}

export interface TestSnpChainOptions {
  product?: SnpProduct;
  signingKey?: 'vcek' | 'vlek';
  /** 64 bytes; random by default. */
  chipId?: Uint8Array;
  /** The TCB the leaf certifies (its REPORTED_TCB); defaults to bl 3, tee 0, snp 20, microcode 200 (and fmc 1 on Turin). */
  tcb?: SnpTcbValues;
  notBefore?: Date;
  notAfter?: Date;
  /** RSA modulus for the ARK/ASK (AMD uses 4096; 2048 keeps tests fast). */
  modulusLength?: number;
  /** Reuse CA keys across chains (key generation dominates test time). */
  keys?: { ark?: TestKeyPair; ask?: TestKeyPair; leaf?: TestKeyPair };
}

const PRODUCT_NAME: Record<SnpProduct, string> = { milan: 'Milan-B0', genoa: 'Genoa', turin: 'Turin' };
const cap = (p: SnpProduct) => p[0]!.toUpperCase() + p.slice(1);

function amdName(cn: string): Array<[string, string]> {
  return [['OU', 'Engineering'], ['C', 'US'], ['O', 'enarx-ts TEST (not AMD)'], ['CN', cn]];
}

/** Makes a fresh test chain for one product and signing-key type. */
export async function createTestSnpChain(options: TestSnpChainOptions = {}): Promise<TestSnpChain> {
  const product = options.product ?? 'milan';
  const signingKey = options.signingKey ?? 'vcek';
  const notBefore = options.notBefore ?? new Date('2024-01-01T00:00:00Z');
  const notAfter = options.notAfter ?? new Date('2049-01-01T00:00:00Z');
  const tcb = options.tcb ?? { bootloader: 3, tee: 0, snp: 20, microcode: 200, ...(product === 'turin' ? { fmc: 1 } : {}) };
  const chipId = options.chipId ?? crypto.getRandomValues(new Uint8Array(64));
  const [arkKey, askKey, leafKey] = await Promise.all([
    options.keys?.ark ?? generateKeyPair('rsa-pss', { modulusLength: options.modulusLength }),
    options.keys?.ask ?? generateKeyPair('rsa-pss', { modulusLength: options.modulusLength }),
    options.keys?.leaf ?? generateKeyPair('ec-p384'),
  ]);
  const ark = await issueCertificate({ subject: amdName(`TEST-ARK-${cap(product)}`), subjectKey: arkKey, serial: 0x10000, notBefore, notAfter, ca: {} });
  const askCn = signingKey === 'vcek' ? `TEST-SEV-${cap(product)}` : `TEST-SEV-VLEK-${cap(product)}`;
  const ask = await issueCertificate({
    subject: amdName(askCn),
    subjectKey: askKey,
    issuer: { certificate: ark, key: arkKey },
    serial: 0x10001,
    notBefore,
    notAfter,
    ca: { pathLength: 0 },
  });
  const int = (oid: string, v: number): TestExtension => ({ oid, value: derInteger(v) });
  const extensions: TestExtension[] = [
    int(AMD_OID.structVersion, product === 'turin' ? 1 : 0),
    { oid: AMD_OID.productName, value: derIa5String(PRODUCT_NAME[product]) },
    int(AMD_OID.blSpl, tcb.bootloader),
    int(AMD_OID.teeSpl, tcb.tee),
    int(AMD_OID.snpSpl, tcb.snp),
    int(AMD_OID.ucodeSpl, tcb.microcode),
    ...(tcb.fmc !== undefined ? [int(AMD_OID.fmcSpl, tcb.fmc)] : []),
  ];
  if (signingKey === 'vcek') extensions.push({ oid: AMD_OID.hwId, value: product === 'turin' ? chipId.slice(0, 8) : chipId });
  else extensions.push({ oid: AMD_OID.cspId, value: derIa5String('CN=test.invalid') });
  const leaf = await issueCertificate({
    subject: amdName(signingKey === 'vcek' ? 'TEST-SEV-VCEK' : 'TEST-SEV-VLEK'),
    subjectKey: leafKey,
    issuer: { certificate: ask, key: askKey },
    serial: 0,
    notBefore,
    notAfter,
    extensions,
  });
  return { product, signingKey, anchor: { name: `test:${product}-ark`, certificate: ark }, ark, ask, leaf, arkKey, askKey, leafKey, chipId, tcb };
}

/** A CRL from the test ARK, revoking the given serials (e.g. the ASK's, 0x10001). */
export function createTestArkCrl(chain: TestSnpChain, options: { revoked?: number[]; thisUpdate?: Date; nextUpdate?: Date } = {}): Promise<Crl> {
  const thisUpdate = options.thisUpdate ?? new Date('2024-01-01T00:00:00Z');
  return issueCrl({
    issuer: { certificate: chain.ark, key: chain.arkKey },
    thisUpdate,
    nextUpdate: options.nextUpdate ?? new Date('2049-01-01T00:00:00Z'),
    revoked: (options.revoked ?? []).map((serial) => ({ serial, date: thisUpdate })),
  });
}

/** Report fields; anything omitted gets a plausible default consistent with the chain. */
export interface SnpReportFields {
  version?: 2 | 3 | 4 | 5;
  guestSvn?: number;
  /** Defaults to ABI 0.0 with SMT allowed and the reserved bit 17 set (0x30000). */
  policy?: bigint;
  familyId?: Uint8Array;
  imageId?: Uint8Array;
  vmpl?: number;
  currentTcb?: SnpTcbValues;
  reportedTcb?: SnpTcbValues;
  committedTcb?: SnpTcbValues;
  launchTcb?: SnpTcbValues;
  platformInfo?: bigint;
  authorKeyEn?: boolean;
  /** Signer info bit 1: the host asked the firmware not to use the VCEK (the report is then left unsigned). */
  maskChipKey?: boolean;
  reportData?: Uint8Array;
  measurement?: Uint8Array;
  hostData?: Uint8Array;
  idKeyDigest?: Uint8Array;
  authorKeyDigest?: Uint8Array;
  reportId?: Uint8Array;
  reportIdMa?: Uint8Array;
  cpuid?: { familyId: number; modelId: number; stepping: number };
  chipId?: Uint8Array;
  currentVersion?: { major: number; minor: number; build: number };
  committedVersion?: { major: number; minor: number; build: number };
  launchMitVector?: bigint;
  currentMitVector?: bigint;
}

const CPUID: Record<SnpProduct, { familyId: number; modelId: number; stepping: number }> = {
  milan: { familyId: 0x19, modelId: 0x01, stepping: 1 },
  genoa: { familyId: 0x19, modelId: 0x11, stepping: 1 },
  turin: { familyId: 0x1a, modelId: 0x02, stepping: 0 },
};

/** Encodes a TCB_VERSION in the product's layout. */
export function encodeTcb(tcb: SnpTcbValues, product: SnpProduct): Uint8Array {
  const out = new Uint8Array(8);
  if (product === 'turin') {
    out.set([tcb.fmc ?? 0, tcb.bootloader, tcb.tee, tcb.snp], 0);
  } else {
    out.set([tcb.bootloader, tcb.tee], 0);
    out[6] = tcb.snp;
  }
  out[7] = tcb.microcode;
  return out;
}

/** The unsigned 1184-byte report (signature area zero). */
export function buildSnpReport(chain: Pick<TestSnpChain, 'product' | 'signingKey' | 'chipId' | 'tcb'>, fields: SnpReportFields = {}): Uint8Array {
  const report = new Uint8Array(SNP_REPORT_SIZE);
  const view = new DataView(report.buffer);
  const version = fields.version ?? 3;
  const tcb = (t: SnpTcbValues | undefined) => encodeTcb(t ?? chain.tcb, chain.product);
  view.setUint32(0x00, version, true);
  view.setUint32(0x04, fields.guestSvn ?? 0, true);
  view.setBigUint64(0x08, fields.policy ?? 0x30000n, true);
  report.set(fields.familyId ?? new Uint8Array(16), 0x10);
  report.set(fields.imageId ?? new Uint8Array(16), 0x20);
  view.setUint32(0x30, fields.vmpl ?? 0, true);
  view.setUint32(0x34, 1, true);
  report.set(tcb(fields.currentTcb), 0x38);
  view.setBigUint64(0x40, fields.platformInfo ?? 0x25n, true);
  view.setUint32(0x48, (fields.authorKeyEn ? 1 : 0) | (fields.maskChipKey ? 2 : 0) | ((chain.signingKey === 'vlek' ? 1 : 0) << 2), true);
  report.set(fields.reportData ?? new Uint8Array(64), 0x50);
  report.set(fields.measurement ?? new Uint8Array(48).fill(0xa5), 0x90);
  report.set(fields.hostData ?? new Uint8Array(32), 0xc0);
  report.set(fields.idKeyDigest ?? new Uint8Array(48), 0xe0);
  report.set(fields.authorKeyDigest ?? new Uint8Array(48), 0x110);
  report.set(fields.reportId ?? new Uint8Array(32).fill(0x11), 0x140);
  report.set(fields.reportIdMa ?? new Uint8Array(32).fill(0xff), 0x160);
  report.set(tcb(fields.reportedTcb), 0x180);
  if (version >= 3) {
    const c = fields.cpuid ?? CPUID[chain.product];
    report.set([c.familyId, c.modelId, c.stepping], 0x188);
  }
  report.set(fields.chipId ?? (chain.signingKey === 'vcek' ? chain.chipId : new Uint8Array(64)), 0x1a0);
  report.set(tcb(fields.committedTcb), 0x1e0);
  const cur = fields.currentVersion ?? { major: 1, minor: 55, build: 40 };
  report.set([cur.build, cur.minor, cur.major], 0x1e8);
  const com = fields.committedVersion ?? cur;
  report.set([com.build, com.minor, com.major], 0x1ec);
  report.set(tcb(fields.launchTcb), 0x1f0);
  if (version >= 5) {
    view.setBigUint64(0x1f8, fields.launchMitVector ?? 0n, true);
    view.setBigUint64(0x200, fields.currentMitVector ?? 0n, true);
  }
  return report;
}

/** Signs a report in place format: ECDSA P-384/SHA-384 over [0, 0x2A0), R and S little-endian in 72-byte fields. */
export async function signSnpReport(report: Uint8Array, key: CryptoKey): Promise<Uint8Array> {
  const out = new Uint8Array(report);
  out.fill(0, SNP_SIGNED_SIZE);
  const raw = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, key, out.slice(0, SNP_SIGNED_SIZE)));
  out.set(raw.slice(0, 48).reverse(), 0x2a0);
  out.set(raw.slice(48, 96).reverse(), 0x2e8);
  return out;
}

/** A signed report for a test chain. */
export async function createTestSnpReport(chain: TestSnpChain, fields: SnpReportFields = {}): Promise<Uint8Array> {
  return signSnpReport(buildSnpReport(chain, fields), chain.leafKey.privateKey);
}

/** The evidence bundle a software backend hands out: report plus the certificates to verify it. */
export async function createTestSnpEvidence(chain: TestSnpChain, fields: SnpReportFields = {}): Promise<{ report: Uint8Array; certs: Certificate[] }> {
  return { report: await createTestSnpReport(chain, fields), certs: [chain.leaf, chain.ask, chain.ark] };
}
