// Locally made Intel-shaped evidence for the tests: a test root that only these tests trust, a PCK
// Platform CA, a PCK leaf with SGX extensions, a TCB signing certificate, CRLs, signed TCB info and
// QE identity JSON, and quotes (v3, v4, v5) signed with fresh keys. Nothing imitates Intel's keys.
import { concatBytes, toHex } from '../../src/attestation/bytes.ts';
import { TAG, encodeOid, encodeTlv } from '../../src/attestation/der.ts';
import { derInteger, derOctetString, generateKeyPair, issueCertificate, issueCrl, type TestKeyPair } from '../../src/attestation/testing/pki.ts';
import { toPem, type Certificate, type Crl, type TrustAnchor } from '../../src/attestation/x509.ts';
import { SGX_EXTENSION_OID } from '../../src/attestation/intel/index.ts';
import { parseCollateralJson, type IntelCollateral } from '../../src/attestation/intel/collateral.ts';

const O = SGX_EXTENSION_OID;
const seq = (...parts: Uint8Array[]) => encodeTlv(TAG.SEQUENCE, concatBytes(...parts));
const pair = (oid: string, value: Uint8Array) => seq(encodeOid(oid), value);

export interface PckTcb {
  fmspc: string;
  pceId: string;
  components: number[];
  pceSvn: number;
}

export function sgxExtension(tcb: PckTcb): Uint8Array {
  const comps = tcb.components.map((svn, i) => pair(`${O}.2.${i + 1}`, derInteger(svn)));
  return seq(
    pair(`${O}.1`, derOctetString(new Uint8Array(16).fill(0xaa))),
    pair(`${O}.2`, seq(...comps, pair(`${O}.2.17`, derInteger(tcb.pceSvn)), pair(`${O}.2.18`, derOctetString(Uint8Array.from(tcb.components))))),
    pair(`${O}.3`, derOctetString(hex(tcb.pceId))),
    pair(`${O}.4`, derOctetString(hex(tcb.fmspc))),
    pair(`${O}.5`, encodeTlv(TAG.ENUMERATED, Uint8Array.of(1))),
  );
}

export const hex = (h: string): Uint8Array => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));

const DAY = 86_400_000;
export const NOW = new Date('2026-01-15T00:00:00Z');
const before = new Date(NOW.getTime() - 365 * DAY);
const after = new Date(NOW.getTime() + 365 * DAY);

export interface TestPki {
  anchor: TrustAnchor;
  root: { certificate: Certificate; key: TestKeyPair };
  ca: { certificate: Certificate; key: TestKeyPair };
  pck: { certificate: Certificate; key: TestKeyPair };
  tcbSigner: { certificate: Certificate; key: TestKeyPair };
  crl(issuer: 'root' | 'ca', revoked?: Certificate[], window?: { thisUpdate: Date; nextUpdate: Date }): Promise<Crl>;
}

/** `names` replaces the CA's or the TCB signer's common name (for tests of Intel's naming rules). */
export async function makePki(tcb: PckTcb, names: { ca?: string; signer?: string } = {}): Promise<TestPki> {
  const rootKey = await generateKeyPair('ec-p256');
  const root = await issueCertificate({ subject: [['CN', 'Test SGX Root CA']], subjectKey: rootKey, notBefore: before, notAfter: after, ca: { pathLength: 1 }, serial: 1 });
  const caKey = await generateKeyPair('ec-p256');
  const ca = await issueCertificate({
    subject: [['CN', names.ca ?? 'Test SGX PCK Platform CA']],
    subjectKey: caKey,
    issuer: { certificate: root, key: rootKey },
    notBefore: before,
    notAfter: after,
    ca: { pathLength: 0 },
    serial: 2,
  });
  const pckKey = await generateKeyPair('ec-p256');
  const pck = await issueCertificate({
    subject: [['CN', 'Test SGX PCK Certificate']],
    subjectKey: pckKey,
    issuer: { certificate: ca, key: caKey },
    notBefore: before,
    notAfter: after,
    serial: 0x1234,
    extensions: [{ oid: SGX_EXTENSION_OID, value: sgxExtension(tcb) }],
  });
  const signerKey = await generateKeyPair('ec-p256');
  const signer = await issueCertificate({
    subject: [['CN', names.signer ?? 'Test SGX TCB Signing']],
    subjectKey: signerKey,
    issuer: { certificate: root, key: rootKey },
    notBefore: before,
    notAfter: after,
    serial: 3,
  });
  const issuers = { root: { certificate: root, key: rootKey }, ca: { certificate: ca, key: caKey } };
  return {
    anchor: { name: 'test:intel', certificate: root },
    root: issuers.root,
    ca: issuers.ca,
    pck: { certificate: pck, key: pckKey },
    tcbSigner: { certificate: signer, key: signerKey },
    crl: (issuer, revoked = [], window = { thisUpdate: before, nextUpdate: after }) =>
      issueCrl({
        issuer: issuers[issuer],
        ...window,
        revoked: revoked.map((c) => ({ serial: BigInt(`0x${c.serialNumber}`), date: before })),
      }),
  };
}

async function signRaw(key: CryptoKey, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, new Uint8Array(data)));
}

const u16 = (n: number) => Uint8Array.of(n & 0xff, n >> 8);
const u32 = (n: number) => Uint8Array.of(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24);

export interface QuoteSpec {
  version: 3 | 4 | 5;
  tee: 'sgx' | 'tdx';
  /** SGX: 384-byte report body; TDX: 584 (TD 1.0) or 648 (TD 1.5) bytes. */
  body: Uint8Array;
  /** The 384-byte QE report; its report data is overwritten with the binding. */
  qeReport: Uint8Array;
  pck: TestPki['pck'];
  chainPem: string;
  qeAuthData?: Uint8Array;
}

/** Serialises and signs a quote with a fresh attestation key; the QE report is signed by the PCK key. */
export async function buildQuote(spec: QuoteSpec): Promise<Uint8Array> {
  const header = new Uint8Array(48);
  header.set(u16(spec.version), 0);
  header.set(u16(2), 2);
  header.set(u32(spec.tee === 'tdx' ? 0x81 : 0), 4);
  header.set(hex('939a7233f79c4ca9940a0db3957f0607'), 12);
  const descriptor =
    spec.version === 5 ? concatBytes(u16(spec.tee === 'sgx' ? 1 : spec.body.length === 648 ? 3 : 2), u32(spec.body.length)) : new Uint8Array(0);
  const signed = concatBytes(header, descriptor, spec.body);

  const att = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const attPub = new Uint8Array(await crypto.subtle.exportKey('raw', att.publicKey)).subarray(1);
  const auth = spec.qeAuthData ?? Uint8Array.from({ length: 32 }, (_, i) => i);
  const qeReport = new Uint8Array(spec.qeReport);
  qeReport.fill(0, 320, 384);
  qeReport.set(new Uint8Array(await crypto.subtle.digest('SHA-256', new Uint8Array(concatBytes(attPub, auth)))), 320);
  const qeSig = await signRaw(spec.pck.key.privateKey, qeReport);
  const certData = new TextEncoder().encode(spec.chainPem);
  const inner = concatBytes(qeReport, qeSig, u16(auth.length), auth, u16(5), u32(certData.length), certData);
  const quoteSig = await signRaw(att.privateKey, signed);
  const sigData = spec.version === 3 ? concatBytes(quoteSig, attPub, inner) : concatBytes(quoteSig, attPub, u16(6), u32(inner.length), inner);
  return concatBytes(signed, u32(sigData.length), sigData);
}

export function chainPem(pki: TestPki): string {
  return [pki.pck.certificate, pki.ca.certificate, pki.root.certificate].map((c) => toPem('CERTIFICATE', c.der)).join('') + '\0';
}

/** An SGX REPORTBODY with the given fields (everything else zero). */
export function sgxBody(fields: { mrenclave?: string; mrsigner?: string; isvProdId?: number; isvSvn?: number; attributes?: string; miscSelect?: number } = {}): Uint8Array {
  const b = new Uint8Array(384);
  b.set(u32(fields.miscSelect ?? 0), 16);
  b.set(hex(fields.attributes ?? '0500000000000000e700000000000000'), 48);
  b.set(hex(fields.mrenclave ?? '11'.repeat(32)), 64);
  b.set(hex(fields.mrsigner ?? '22'.repeat(32)), 128);
  b.set(u16(fields.isvProdId ?? 0), 256);
  b.set(u16(fields.isvSvn ?? 0), 258);
  return b;
}

/** A TD report body: TEE_TCB_SVN, optional TD 1.5 fields, TDATTRIBUTES. */
export function tdBody(fields: { teeTcbSvn: string; teeTcbSvn2?: string; tdAttributes?: string; mrSignerSeam?: string; seamAttributes?: string }): Uint8Array {
  const b = new Uint8Array(fields.teeTcbSvn2 ? 648 : 584);
  b.set(hex(fields.teeTcbSvn), 0);
  if (fields.mrSignerSeam) b.set(hex(fields.mrSignerSeam), 64);
  if (fields.seamAttributes) b.set(hex(fields.seamAttributes), 112);
  b.set(hex(fields.tdAttributes ?? '0000001000000000'), 120);
  b.set(hex('33'.repeat(48)), 136);
  if (fields.teeTcbSvn2) b.set(hex(fields.teeTcbSvn2), 584);
  return b;
}

export const QE_MRSIGNER = '44'.repeat(32);

export function qeReport(isvSvn: number, isvProdId = 1): Uint8Array {
  return sgxBody({ mrsigner: QE_MRSIGNER, isvProdId, isvSvn, attributes: '11000000000000000000000000000000' });
}

const comps = (svns: number[]) => JSON.stringify(svns.map((svn) => ({ svn })));

export interface LevelSpec {
  sgx: number[];
  pceSvn: number;
  tdx?: number[];
  status: string;
  date?: string;
  advisories?: string[];
}

export function tcbInfoJson(o: {
  id: 'SGX' | 'TDX';
  fmspc: string;
  levels: LevelSpec[];
  issueDate?: string;
  nextUpdate?: string;
  tdxModule?: string;
  tdxModuleIdentities?: Array<{ id: string; mrsigner?: string; levels: Array<{ isvsvn: number; status: string; advisories?: string[] }> }>;
}): string {
  const levels = o.levels.map(
    (l) =>
      `{"tcb":{"sgxtcbcomponents":${comps(l.sgx)},"pcesvn":${l.pceSvn}${l.tdx ? `,"tdxtcbcomponents":${comps(l.tdx)}` : ''}},` +
      `"tcbDate":"${l.date ?? '2025-01-01T00:00:00Z'}","tcbStatus":"${l.status}"${l.advisories ? `,"advisoryIDs":${JSON.stringify(l.advisories)}` : ''}}`,
  );
  const tdx =
    o.id === 'TDX'
      ? `"tdxModule":${o.tdxModule ?? `{"mrsigner":"${'00'.repeat(48)}","attributes":"0000000000000000","attributesMask":"FFFFFFFFFFFFFFFF"}`},` +
        `"tdxModuleIdentities":${JSON.stringify(
          (o.tdxModuleIdentities ?? []).map((m) => ({
            id: m.id,
            mrsigner: m.mrsigner ?? '00'.repeat(48),
            attributes: '0000000000000000',
            attributesMask: 'FFFFFFFFFFFFFFFF',
            tcbLevels: m.levels.map((l) => ({ tcb: { isvsvn: l.isvsvn }, tcbDate: '2025-01-01T00:00:00Z', tcbStatus: l.status, ...(l.advisories ? { advisoryIDs: l.advisories } : {}) })),
          })),
        )},`
      : '';
  return (
    `{"id":"${o.id}","version":3,"issueDate":"${o.issueDate ?? '2026-01-01T00:00:00Z'}","nextUpdate":"${o.nextUpdate ?? '2026-02-01T00:00:00Z'}",` +
    `"fmspc":"${o.fmspc.toUpperCase()}","pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":19,${tdx}"tcbLevels":[${levels.join(',')}]}`
  );
}

export function qeIdentityJson(o: { id?: string; levels: Array<{ isvsvn: number; status: string; advisories?: string[] }>; isvProdId?: number }): string {
  return JSON.stringify({
    id: o.id ?? 'QE',
    version: 2,
    issueDate: '2026-01-01T00:00:00Z',
    nextUpdate: '2026-02-01T00:00:00Z',
    tcbEvaluationDataNumber: 19,
    miscselect: '00000000',
    miscselectMask: 'FFFFFFFF',
    attributes: '11000000000000000000000000000000',
    attributesMask: 'FBFFFFFFFFFFFFFF0000000000000000',
    mrsigner: QE_MRSIGNER.toUpperCase(),
    isvprodid: o.isvProdId ?? 1,
    tcbLevels: o.levels.map((l) => ({ tcb: { isvsvn: l.isvsvn }, tcbDate: '2025-01-01T00:00:00Z', tcbStatus: l.status, ...(l.advisories ? { advisoryIDs: l.advisories } : {}) })),
  });
}

/** Signs TCB info / QE identity JSON with the test TCB signing key, as one combined collateral.json text. */
export async function signedCollateralJson(pki: TestPki, tcbInfo: string, qeIdentity?: string): Promise<string> {
  const sign = async (text: string) => toHex(await signRaw(pki.tcbSigner.key.privateKey, new TextEncoder().encode(text)));
  const chain = toPem('CERTIFICATE', pki.tcbSigner.certificate.der) + toPem('CERTIFICATE', pki.root.certificate.der);
  const combined: Record<string, string> = { tcb_info: tcbInfo, tcb_info_signature: await sign(tcbInfo), tcb_info_issuer_chain: chain };
  if (qeIdentity) Object.assign(combined, { qe_identity: qeIdentity, qe_identity_signature: await sign(qeIdentity), qe_identity_issuer_chain: chain });
  return JSON.stringify(combined);
}

/** signedCollateralJson, parsed, with CRLs. */
export async function signedCollateral(pki: TestPki, tcbInfo: string, qeIdentity?: string, crls: Crl[] = []): Promise<IntelCollateral> {
  const c = parseCollateralJson(await signedCollateralJson(pki, tcbInfo, qeIdentity)).collateral;
  c.crls = crls;
  return c;
}
