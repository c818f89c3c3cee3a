/**
 * A Steward-backed Keep identity: the key is made here, inside the Keep, on the hardware key's
 * curve (P-384 for SNP, P-256 otherwise); the evidence binds its SPKI (and the workload identity,
 * once known) through reportDataFor; the CSR goes to the Steward as application/pkcs10 and the
 * chain that comes back (leaf first) serves every TLS file. A refusal is a StewardRefusedError
 * carrying the Steward's problem+json (title, detail, step), so the Keep stops before the workload.
 */
import { createPrivateKey } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { buildCsr, encodeWorkloadIdentity, reportDataFor, type BindingKind, type WorkloadIdentity } from '../pki/index.ts';
import type { IdentityProvider, KeepIdentity, KeyAlgorithm } from './identity.ts';
import { isLoopbackHost } from '../net/loopback.ts';

/** Where evidence comes from: hardware (configfs-tsm, Gramine) or a software test root. */
export interface EvidenceSource {
  /** The TEE family; decides the key curve and the report-data hash. */
  readonly kind: BindingKind;
  /** A short description for logs, e.g. "software SNP evidence (test root milan)". */
  readonly description: string;
  /** Evidence whose report data is exactly these 64 bytes, as the CSR carries it. */
  collect(reportData: Uint8Array): Promise<{ enarxEvidence: { kind: 'snp' | 'sgx'; der: Uint8Array } } | { attestation: NonNullable<Parameters<typeof buildCsr>[0]['attestation']> }>;
}

export interface StewardProblem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  step?: string;
  reasons?: string[];
}

/** The Steward said no; `problem` is its RFC 9457 body. */
export class StewardRefusedError extends Error {
  readonly problem: StewardProblem;
  constructor(problem: StewardProblem, status: number) {
    const what = [problem.title, problem.detail].filter(Boolean).join(': ') || `HTTP ${status}`;
    super(`the Steward refused this Keep's certificate request: ${what}${problem.step ? ` (step: ${problem.step})` : ''}`);
    this.name = 'StewardRefusedError';
    this.problem = problem;
  }
}

/** Anything else that keeps the Keep from a certificate: bad URL, unreachable Steward, odd reply. */
export class StewardIdentityError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StewardIdentityError';
  }
}

export const keyAlgorithmFor = (kind: BindingKind): KeyAlgorithm => (kind === 'snp' ? 'P-384' : 'P-256');


/** Parses a service URL the Keep will reach: https anywhere, plain http only on loopback. `what` names it in errors. */
export function httpsOrLoopback(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`the ${what} URL ${JSON.stringify(value)} is not a URL`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return url;
  if (url.protocol === 'http:') throw new Error(`refusing plain-http ${what} ${url.origin}: use https (plain http is allowed only on loopback)`);
  throw new Error(`the ${what} URL must be https, got ${url.protocol}`);
}

/** Parses a Steward URL (the CSR itself is public, but the chain that comes back must not be rewritten). */
export function stewardUrl(value: string): URL {
  try {
    return httpsOrLoopback(value, 'Steward');
  } catch (err) {
    throw new StewardIdentityError((err as Error).message);
  }
}

export interface StewardRequestOptions {
  steward: string;
  evidence: EvidenceSource;
  /** The workload's identity, bound in the report data and certified as a SAN. */
  workload?: WorkloadIdentity;
  /** CA certificates (PEM) that listen files with client authentication accept. */
  clientCAs?: readonly string[];
  /** How the CSR reaches the Steward; global fetch by default (the process Keep posts over its relayed dial, see postOverDial). */
  post?: StewardPost;
  /** Called with each phase's name as it starts: keygen, evidence, csr, steward. */
  onPhase?: (phase: 'keygen' | 'evidence' | 'csr' | 'steward') => void;
}

/** Runs the whole exchange once and returns the Keep's identity. */
export async function requestStewardIdentity(options: StewardRequestOptions): Promise<KeepIdentity> {
  const url = stewardUrl(options.steward);
  const phase = options.onPhase ?? (() => {});
  phase('keygen');
  const namedCurve = keyAlgorithmFor(options.evidence.kind);
  // Extractable only because node:tls takes the key as PKCS#8; it never leaves this process.
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', keys.publicKey));
  phase('evidence');
  const reportData = await reportDataFor(options.evidence.kind, spki, options.workload ? encodeWorkloadIdentity(options.workload) : undefined);
  const evidence = await options.evidence.collect(reportData);
  phase('csr');
  const csr = await buildCsr({ keys, ...evidence, ...(options.workload ? { identity: options.workload } : {}) });
  phase('steward');
  let response: StewardResponse;
  try {
    response = await (options.post ?? postWithFetch)(url, csr);
  } catch (err) {
    throw new StewardIdentityError(`cannot reach the Steward at ${url.origin}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`, { cause: err });
  }
  if (response.status < 200 || response.status > 299) {
    const body = new TextDecoder().decode(response.body);
    let problem: StewardProblem = {};
    try {
      problem = JSON.parse(body) as StewardProblem;
    } catch {
      problem = { detail: body.slice(0, 200) };
    }
    throw new StewardRefusedError(problem, response.status);
  }
  const chain = await chainFromAnswer(url, response, spki);
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    certificateChain: chain,
    privateKey: createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string,
    issuer: 'steward',
    clientCAs: options.clientCAs ?? [],
  };
}

export interface StewardResponse {
  status: number;
  contentType: string | undefined;
  body: Uint8Array;
}
/** Sends the DER CSR to the Steward and returns its answer. */
export type StewardPost = (url: URL, csr: Uint8Array) => Promise<StewardResponse>;

const REQUEST_HEADERS = { 'content-type': 'application/pkcs10', accept: 'application/pem-certificate-chain' };
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_RESPONSE_BYTES = 1 << 20;

async function postWithFetch(url: URL, csr: Uint8Array): Promise<StewardResponse> {
  const response = await fetch(url, { method: 'POST', headers: REQUEST_HEADERS, body: new Blob([csr as Uint8Array<ArrayBuffer>]), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const body = new Uint8Array(await response.arrayBuffer());
  if (body.length > MAX_RESPONSE_BYTES) throw new Error('the answer is larger than 1 MiB');
  return { status: response.status, contentType: response.headers.get('content-type') ?? undefined, body };
}

/**
 * A StewardPost over a raw byte stream the Keep opens through its host (the process Keep's
 * `dial`): TLS, when the URL is https, ends inside the Keep, so the host relays only ciphertext.
 * `ca` adds trust anchors for the Steward's server certificate to the system roots.
 */
export function postOverDial(dial: (host: string, port: number) => Promise<Duplex>, options: { ca?: readonly string[] } = {}): StewardPost {
  return async (url, csr) => {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    let socket: Duplex = await dial(host, port);
    if (url.protocol === 'https:') {
      const { tlsClient } = await import('../net/tls.ts');
      socket = await tlsClient(socket, { host, identity: null, ...(options.ca ? { ca: options.ca } : {}) });
    }
    const { request } = await import('node:http');
    return new Promise<StewardResponse>((resolve, reject) => {
      const req = request(
        { method: 'POST', host, port, path: `${url.pathname}${url.search}`, headers: { ...REQUEST_HEADERS, 'content-length': String(csr.length) }, createConnection: () => socket as never, timeout: REQUEST_TIMEOUT_MS },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) req.destroy(new Error('the answer is larger than 1 MiB'));
            else chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body: new Uint8Array(Buffer.concat(chunks)) }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
      req.on('error', reject);
      req.end(csr);
    });
  };
}

/**
 * The chain in the Steward's answer, leaf first, as PEM: either the PEM chain asked for, or the DER
 * `SEQUENCE OF Certificate` an Enarx 0.7 Steward sends whatever the Accept header ([issuer, leaf];
 * ours answers application/pkix-pkipath, the CA chain top-down then the leaf). The leaf is the
 * certificate for this Keep's key, and must be there; the others follow it issuer by issuer.
 */
async function chainFromAnswer(url: URL, response: StewardResponse, spki: Uint8Array): Promise<string[]> {
  const { parseCertificates, toPem } = await import('../attestation/x509.ts');
  let certs: ReturnType<typeof parseCertificates>;
  try {
    certs = parseCertificates(response.body);
  } catch (err) {
    throw new StewardIdentityError(`the Steward at ${url.origin} answered without a certificate chain (content-type ${response.contentType ?? 'none'}: ${(err as Error).message})`);
  }
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
  let current = certs.find((c) => same(c.spki, spki));
  if (!current) throw new StewardIdentityError(`the Steward at ${url.origin} answered with no certificate for this Keep's key`);
  const chain = [current];
  for (;;) {
    if (current.isSelfIssued) break;
    const issuer: typeof current | undefined = certs.find((c) => !chain.includes(c) && same(c.subject.der, current!.issuer.der));
    if (!issuer) break;
    chain.push(issuer);
    current = issuer;
  }
  return chain.map((c) => toPem('CERTIFICATE', c.der));
}

/** The IdentityProvider seam over requestStewardIdentity: asked once, then the same identity. */
export function stewardIdentityProvider(options: StewardRequestOptions): IdentityProvider {
  let pending: Promise<KeepIdentity> | undefined;
  return { identity: () => (pending ??= requestStewardIdentity(options)) };
}
