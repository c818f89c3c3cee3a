/**
 * A Steward-backed Keep identity: the key is made here, inside the Keep, on the hardware key's
 * curve (P-384 for SNP, P-256 otherwise); the evidence binds its SPKI (and the workload identity,
 * once known) through reportDataFor; the CSR goes to the Steward as application/pkcs10 and the
 * chain that comes back (leaf first) serves every TLS file. A refusal is a StewardRefusedError
 * carrying the Steward's problem+json (title, detail, step), so the Keep stops before the workload.
 */
import { createPrivateKey } from 'node:crypto';
import { buildCsr, encodeWorkloadIdentity, reportDataFor, type BindingKind, type WorkloadIdentity } from '../pki/index.ts';
import type { IdentityProvider, KeepIdentity, KeyAlgorithm } from './identity.ts';

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

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/** Parses a Steward URL: https anywhere, plain http only on loopback (the CSR itself is public, the chain is not checked on the wire). */
export function stewardUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new StewardIdentityError(`the Steward URL ${JSON.stringify(value)} is not a URL`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && LOOPBACK.test(url.hostname)) return url;
  if (url.protocol === 'http:') throw new StewardIdentityError(`refusing plain-http Steward ${url.origin}: use https (plain http is allowed only on loopback)`);
  throw new StewardIdentityError(`the Steward URL must be https, got ${url.protocol}`);
}

export interface StewardRequestOptions {
  steward: string;
  evidence: EvidenceSource;
  /** The workload's identity, bound in the report data and certified as a SAN. */
  workload?: WorkloadIdentity;
  /** CA certificates (PEM) that listen files with client authentication accept. */
  clientCAs?: readonly string[];
  /** How the CSR reaches the Steward; global fetch by default (the process Keep passes its relayed dialer). */
  fetch?: typeof fetch;
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
  let response: Response;
  try {
    response = await (options.fetch ?? fetch)(url, {
      method: 'POST',
      headers: { 'content-type': 'application/pkcs10', accept: 'application/pem-certificate-chain' },
      body: new Blob([csr as Uint8Array<ArrayBuffer>]),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new StewardIdentityError(`cannot reach the Steward at ${url.origin}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`, { cause: err });
  }
  const body = await response.text();
  if (!response.ok) {
    let problem: StewardProblem = {};
    try {
      problem = JSON.parse(body) as StewardProblem;
    } catch {
      problem = { detail: body.slice(0, 200) };
    }
    throw new StewardRefusedError(problem, response.status);
  }
  const chain = splitPem(body);
  if (chain.length === 0) throw new StewardIdentityError(`the Steward at ${url.origin} answered without a certificate chain (content-type ${response.headers.get('content-type') ?? 'none'})`);
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    certificateChain: chain,
    privateKey: createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string,
    issuer: 'steward',
    clientCAs: options.clientCAs ?? [],
  };
}

function splitPem(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)].map((m) => (m[0].endsWith('\n') ? m[0] : `${m[0]}\n`));
}

/** The IdentityProvider seam over requestStewardIdentity: asked once, then the same identity. */
export function stewardIdentityProvider(options: StewardRequestOptions): IdentityProvider {
  let pending: Promise<KeepIdentity> | undefined;
  return { identity: () => (pending ??= requestStewardIdentity(options)) };
}
