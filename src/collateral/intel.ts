import { parseCollateralJson, pemCertificates } from '../attestation/intel/collateral.ts';
import { decodePckExtensions, SGX_EXTENSION_OID } from '../attestation/intel/pck.ts';
import { parseCertificate } from '../attestation/x509.ts';
import { atomicWrite } from './cache.ts';
import { crlExpiry } from './amd.ts';
import { CollateralError, type CollateralService, type Document } from './service.ts';

export type IntelTee = 'sgx' | 'tdx';
export type PckCa = 'processor' | 'platform';

/** Issuer-chain headers of the PCS v4 API (v3 used the SGX- prefixed TCB header; both are accepted). */
const CHAIN_HEADERS = {
  pckCrl: ['sgx-pck-crl-issuer-chain'],
  tcbInfo: ['tcb-info-issuer-chain', 'sgx-tcb-info-issuer-chain'],
  identity: ['sgx-enclave-identity-issuer-chain'],
  pckCert: ['sgx-pck-certificate-issuer-chain'],
} as const;

/** Reads a URL-encoded PEM issuer chain header and checks it holds certificates. */
function issuerChain(headers: Headers, names: readonly string[]): Record<string, string> {
  for (const name of names) {
    const value = headers.get(name);
    if (value) {
      const pem = decodeURIComponent(value);
      pemCertificates(pem);
      return { 'issuer-chain': pem };
    }
  }
  throw new Error(`the ${names[0]} header is missing`);
}

/** Also writes the issuer chain beside the document, so both can be passed to `enarx attest verify`. */
async function withChainFile(doc: Promise<Document>): Promise<Document> {
  const d = await doc;
  const chain = d.meta.headers['issuer-chain'];
  if (chain && d.source === 'network') await atomicWrite(`${d.path}.chain.pem`, chain);
  return d;
}

export function fmspcHex(text: string): string {
  if (!/^[0-9a-fA-F]{12}$/.test(text)) throw new CollateralError(`an FMSPC is 6 bytes of hex (12 digits), got '${text}'`);
  return text.toUpperCase();
}

/** The PCK CRL of the Processor or Platform CA (DER), with its issuer chain. */
export function fetchPckCrl(service: CollateralService, ca: PckCa): Promise<Document> {
  return withChainFile(
    service.get({
      key: `intel/pckcrl-${ca}.der`,
      url: `${service.options.intelBaseUrl}/sgx/certification/v4/pckcrl?ca=${ca}&encoding=der`,
      what: `the Intel PCK ${ca} CA CRL`,
      validate: (body, headers) => ({
        ...crlExpiry(body, `Intel SGX PCK ${ca === 'processor' ? 'Processor' : 'Platform'} CA`),
        headers: issuerChain(headers, CHAIN_HEADERS.pckCrl),
      }),
    }),
  );
}

/** The Intel SGX Root CA's CRL (DER), which revokes the PCK and TCB signing CAs. */
export function fetchRootCaCrl(service: CollateralService): Promise<Document> {
  return service.get({
    key: 'intel/root-ca-crl.der',
    url: `${service.options.intelCertsBaseUrl}/IntelSGXRootCA.der`,
    what: 'the Intel SGX Root CA CRL',
    validate: (body) => crlExpiry(body, 'Intel SGX Root CA'),
  });
}

/** TCB info for one FMSPC (the raw PCS body, whose exact bytes are signed), with its issuer chain. */
export function fetchTcbInfo(service: CollateralService, tee: IntelTee, fmspc: string): Promise<Document> {
  const id = fmspcHex(fmspc);
  return withChainFile(
    service.get({
      key: `intel/${tee}/tcb-${id}.json`,
      url: `${service.options.intelBaseUrl}/${tee}/certification/v4/tcb?fmspc=${id}`,
      what: `the ${tee.toUpperCase()} TCB info for FMSPC ${id}`,
      validate: (body, headers) => {
        const parsed = parseCollateralJson(new TextDecoder('utf-8', { fatal: true }).decode(body));
        const info = parsed.collateral.tcbInfo?.body;
        if (parsed.format !== 'pcs-tcb-info' || !info) throw new Error('it is not a PCS TCB info document');
        if (info.id !== tee.toUpperCase()) throw new Error(`its id is ${info.id}, not ${tee.toUpperCase()}`);
        if (info.fmspc.toUpperCase() !== id) throw new Error(`it is for FMSPC ${info.fmspc}, not ${id}`);
        return { expiresAt: info.nextUpdate, headers: issuerChain(headers, CHAIN_HEADERS.tcbInfo) };
      },
    }),
  );
}

/** The Quoting Enclave's identity (QE for SGX, TD_QE for TDX), with its issuer chain. */
export function fetchQeIdentity(service: CollateralService, tee: IntelTee): Promise<Document> {
  const expected = tee === 'sgx' ? 'QE' : 'TD_QE';
  return withChainFile(
    service.get({
      key: `intel/${tee}/qe-identity.json`,
      url: `${service.options.intelBaseUrl}/${tee}/certification/v4/qe/identity`,
      what: `the ${tee.toUpperCase()} QE identity`,
      validate: (body, headers) => {
        const parsed = parseCollateralJson(new TextDecoder('utf-8', { fatal: true }).decode(body));
        const identity = parsed.collateral.qeIdentity?.body;
        if (parsed.format !== 'pcs-enclave-identity' || !identity) throw new Error('it is not a PCS enclave identity document');
        if (identity.id !== expected) throw new Error(`its id is ${identity.id}, not ${expected}`);
        return { expiresAt: identity.nextUpdate, headers: issuerChain(headers, CHAIN_HEADERS.identity) };
      },
    }),
  );
}

/** What PCKIDRetrievalTool writes (one CSV line): the inputs of a PCK certificate request. */
export interface PckId {
  encryptedPpid: string;
  pceId: string;
  cpuSvn: string;
  pceSvn: string;
  qeId: string;
}

export function parsePckIdCsv(text: string): PckId {
  const line = text.split(/\r?\n/).find((l) => l.trim() !== '');
  const fields = line?.split(',').map((f) => f.trim()) ?? [];
  const [encryptedPpid, pceId, cpuSvn, pceSvn, qeId] = fields;
  if (!encryptedPpid || !pceId || !cpuSvn || !pceSvn || !qeId || fields.slice(0, 5).some((f) => !/^[0-9a-fA-F]+$/.test(f))) {
    throw new CollateralError('the PCK id file must hold one CSV line: encrypted_ppid,pceid,cpusvn,pcesvn,qeid (hex), as PCKIDRetrievalTool writes it');
  }
  return { encryptedPpid, pceId, cpuSvn, pceSvn, qeId };
}

/** This platform's PCK certificate (needs an Intel PCS API key) and the FMSPC it names. */
export async function fetchPckCert(service: CollateralService, id: PckId): Promise<{ document: Document; fmspc: string }> {
  const key = service.options.intelApiKey;
  const q = `encrypted_ppid=${id.encryptedPpid}&cpusvn=${id.cpuSvn}&pcesvn=${id.pceSvn}&pceid=${id.pceId}`;
  const document = await withChainFile(
    service.get({
      key: `intel/pck-${id.qeId.toLowerCase()}.pem`,
      url: `${service.options.intelBaseUrl}/sgx/certification/v4/pckcert?${q}`,
      what: 'the PCK certificate of this platform',
      headers: key ? { 'Ocp-Apim-Subscription-Key': key } : undefined,
      validate: (body, headers) => {
        const cert = parseCertificate(pemCertificates(new TextDecoder().decode(body))[0]!);
        pckFmspc(cert);
        return { expiresAt: cert.notAfter, headers: issuerChain(headers, CHAIN_HEADERS.pckCert) };
      },
    }),
  );
  const cert = parseCertificate(pemCertificates(new TextDecoder().decode(document.body))[0]!);
  return { document, fmspc: pckFmspc(cert) };
}

function pckFmspc(cert: ReturnType<typeof parseCertificate>): string {
  const ext = cert.extensions.get(SGX_EXTENSION_OID);
  if (!ext) throw new Error('the certificate has no SGX extension: it is not a PCK certificate');
  return decodePckExtensions(ext.value).fmspc.toUpperCase();
}
