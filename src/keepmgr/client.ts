/**
 * The keep manager client library: the API calls, and the client's side of the protocol:
 * challenge → verify evidence and binding → provision encrypted to the attested key → read the
 * sealed output. The daemon is untrusted throughout: nothing it says is believed unless the
 * evidence or the output channel's authentication proves it.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createInterface } from 'node:readline';
import type { JWK } from 'jose';
import { CBOR_TYPE, JOSE_TYPE, JSON_TYPE, decodeBody, encodeBody, mediaType, responseBytes, type Format } from './wire.ts';
import {
  ChannelError, NONCE_BYTES, OutputReader, bindingReportData, deriveOutputKey, encryptProvision, equalBytes, generateOutputKeyPair,
  importKeepPublicKey, importOutputPrivate, toHex, type OutputPayload,
} from './crypto.ts';
import type { VerificationResult } from '../attestation/types.ts';
import type { CollateralOptions, VerifyInput } from '../collateral/index.ts';

export interface ClientOptions {
  /** https://host:port, or unix:/path/to/keepmgr.sock */
  url: string;
  token?: string;
  /** PEM CA bundle that signs the daemon's certificate. */
  ca?: string;
  /** PEM client certificate and key, for client-certificate authentication. */
  cert?: string;
  key?: string;
  /** Request/response encoding (default JSON). */
  format?: Format;
}

/** An API refusal, carrying the daemon's problem+json. */
export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(status: number, type: string, detail: string) {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.type = type;
  }
}

/** The client refused a Keep: its evidence, binding or policy failed. The Keep has been stopped. */
export class KeepRefused extends Error {
  readonly reasons: string[];
  constructor(keepId: string, reasons: string[]) {
    super(`refused Keep ${keepId}: ${reasons.join('; ')}`);
    this.name = 'KeepRefused';
    this.reasons = reasons;
  }
}

export type KeepView = {
  id: string;
  owner: string;
  backend: string;
  state: string;
  origin: string;
  createdAt: string;
  endedAt: string | null;
  pid: number | null;
  exitCode: number | null;
  reason: string | null;
  limits: { memoryMiB: number; cpuSeconds: number; descriptors: number };
  usage: { rssBytes: number; cpuMs: number; descriptors: number } | null;
  attestation: { kind: string | null; verdict: { accepted: boolean; reasons: string[] } | null } & Record<string, unknown>;
  /** The Steward's certificate chain for the Keep (PEM, leaf first), once it has one. */
  certificate: string | null;
  /** Listen files of the workload, bound by the host: connect here (TLS ends inside the Keep). */
  ports: Array<{ name: string; address: string; port: number }>;
  outputRecords: number;
} & Record<string, unknown>;

export interface Challenge {
  kind: string;
  publicKey: Uint8Array;
  reportData: Uint8Array;
  evidence: Uint8Array;
  /** DER certificates that came with the evidence (SNP: VCEK/VLEK, ASK, ARK). Untrusted until verified. */
  certs: Uint8Array[];
}

export class KeepmgrClient {
  readonly options: ClientOptions;
  readonly #base: URL | null;
  readonly #socket: string | null;

  constructor(options: ClientOptions) {
    this.options = options;
    if (options.url.startsWith('unix:')) {
      this.#socket = options.url.slice(5);
      this.#base = null;
    } else {
      let u: URL;
      try {
        u = new URL(options.url);
      } catch {
        throw new Error(`keep manager URL '${options.url}' is neither https://HOST:PORT nor unix:/PATH`);
      }
      if (u.protocol !== 'https:') throw new Error(`keep manager URL must be https:// (or unix:/PATH), not ${u.protocol}`);
      this.#base = u;
      this.#socket = null;
    }
  }

  #raw(method: string, path: string, body?: Uint8Array, headers: Record<string, string> = {}): Promise<IncomingMessage> {
    const h: Record<string, string> = { ...headers };
    if (this.options.token) h.authorization = `Bearer ${this.options.token}`;
    if (body) h['content-length'] = String(body.length);
    return new Promise((resolve, reject) => {
      const req = this.#socket
        ? httpRequest({ socketPath: this.#socket, path, method, headers: h }, resolve)
        : httpsRequest(
            { host: this.#base!.hostname.replace(/^\[|\]$/g, ''), port: this.#base!.port || 443, path, method, headers: h, ca: this.options.ca, cert: this.options.cert, key: this.options.key, servername: this.#base!.hostname.match(/^[\d.]+$|:/) ? undefined : this.#base!.hostname },
            resolve,
          );
      req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(`cannot reach the keep manager at ${this.options.url}: ${err.code ?? err.message}`)));
      req.end(body);
    });
  }

  async call<T = Record<string, unknown>>(method: string, path: string, doc?: unknown, raw?: { body: Uint8Array; type: string }): Promise<T> {
    const format = this.options.format ?? 'json';
    const type = format === 'cbor' ? CBOR_TYPE : JSON_TYPE;
    const body = raw ? raw.body : doc === undefined ? undefined : encodeBody(doc, format);
    const headers: Record<string, string> = { accept: type };
    if (body) headers['content-type'] = raw ? raw.type : type;
    const res = await this.#raw(method, `/api/v1${path}`, body, headers);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const bytes = Buffer.concat(chunks);
    const rtype = mediaType(res.headers['content-type']);
    if ((res.statusCode ?? 500) >= 400) {
      let detail = `HTTP ${res.statusCode}`;
      let ptype = 'about:blank';
      if (rtype === 'application/problem+json') {
        try {
          const p = JSON.parse(bytes.toString()) as { detail?: string; type?: string };
          detail = p.detail ?? detail;
          ptype = p.type ?? ptype;
        } catch {
          /* keep the status line */
        }
      }
      throw new ApiError(res.statusCode ?? 500, ptype, detail);
    }
    return decodeBody(bytes, rtype === CBOR_TYPE ? 'cbor' : 'json') as T;
  }

  info() {
    return this.call<{ api: string; version: string; principal: string; admin: boolean; lost: Array<{ id: string; reason: string }> }>('GET', '');
  }
  contracts() {
    return this.call<{ contracts: Array<Record<string, unknown>> }>('GET', '/contracts');
  }
  create(request: { backend?: string; limits?: Partial<KeepView['limits']> } = {}) {
    return this.call<KeepView>('POST', '/keeps', request);
  }
  list() {
    return this.call<{ keeps: KeepView[] }>('GET', '/keeps');
  }
  get(id: string) {
    return this.call<KeepView>('GET', `/keeps/${encodeURIComponent(id)}`);
  }
  stop(id: string) {
    return this.call<KeepView>('POST', `/keeps/${encodeURIComponent(id)}/stop`);
  }
  verdict(id: string, accepted: boolean, reasons: string[]) {
    return this.call<KeepView>('PUT', `/keeps/${encodeURIComponent(id)}/verdict`, { accepted, reasons });
  }
  async challenge(id: string, nonce: Uint8Array): Promise<Challenge> {
    const r = await this.call<Record<string, unknown>>('POST', `/keeps/${encodeURIComponent(id)}/challenge`, { nonce });
    const publicKey = responseBytes(r.publicKey);
    const reportData = responseBytes(r.reportData);
    const evidence = responseBytes(r.evidence);
    const certs = Array.isArray(r.certs) ? r.certs.map(responseBytes) : [];
    if (typeof r.kind !== 'string' || !publicKey || !reportData || !evidence || certs.some((c) => c === null)) throw new Error('the keep manager sent a malformed challenge answer');
    return { kind: r.kind, publicKey, reportData, evidence, certs: certs as Uint8Array[] };
  }
  provision(id: string, jwe: string) {
    return this.call<KeepView>('POST', `/keeps/${encodeURIComponent(id)}/provision`, undefined, { body: Buffer.from(jwe), type: JOSE_TYPE });
  }

  /** The sealed records of a Keep's output, then the host's unauthenticated `end` item. */
  async *output(id: string, opts: { from?: number; follow?: boolean } = {}): AsyncGenerator<{ seq: number; ct: Uint8Array } | { end: Record<string, unknown> }> {
    const res = await this.#raw('GET', `/api/v1/keeps/${encodeURIComponent(id)}/output?from=${opts.from ?? 0}&follow=${opts.follow ? 'true' : 'false'}`, undefined, { accept: 'application/json' });
    if ((res.statusCode ?? 500) >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      let detail = `HTTP ${res.statusCode}`;
      try {
        detail = (JSON.parse(Buffer.concat(chunks).toString()) as { detail: string }).detail;
      } catch {
        /* status line */
      }
      throw new ApiError(res.statusCode ?? 500, 'output', detail);
    }
    for await (const line of createInterface({ input: res, crlfDelay: Infinity })) {
      if (!line.trim()) continue;
      const item = JSON.parse(line) as { seq?: number; ct?: string; end?: Record<string, unknown> };
      if (item.end) {
        yield { end: item.end };
        return;
      }
      const ct = responseBytes(item.ct);
      if (typeof item.seq !== 'number' || !ct) throw new ChannelError('the keep manager sent a malformed output record');
      yield { seq: item.seq, ct };
    }
  }
}

/**
 * Verifies hardware-format evidence. Wired to the attestation library's verifier (and a
 * policy); the keepmgr client itself only requires the result contract.
 */
export type EvidenceVerifier = (kind: string, evidence: Uint8Array, certs: Uint8Array[]) => Promise<VerificationResult>;

/**
 * The attestation library's verifier, with the policy applied when one is given. Test roots (a
 * software keep manager's ARK) are trusted only because they are passed here. With `collateral`,
 * evidence that lacks its collateral (a bare SGX/TDX quote, an SNP report without its VCEK, no
 * CRLs) is verified again with the collateral the cache and AMD KDS / Intel PCS give, in the
 * Steward's flow (src/collateral/verify.ts): it is all vendor-signed and verified against the
 * roots. Collateral that cannot be had fails the evidence at step `collateral`, saying what to run.
 */
export async function libraryVerifier(
  opts: {
    policy?: string;
    trustedTestRoots?: Array<{ name: string; pem: string }>;
    now?: Date;
    collateral?: Omit<CollateralOptions, 'now' | 'signal'>;
    /** With `collateral`: all of one verification's downloads together may take this long (ms); no limit when absent. */
    collateralBudgetMs?: number;
    /** Told when evidence that verified could not be supplemented (its CRLs, a QE identity). */
    warn?: (message: string) => void;
  } = {},
): Promise<EvidenceVerifier> {
  const { verifyEvidence } = await import('../attestation/index.ts');
  const policyLib = opts.policy !== undefined ? await import('../attestation/policy/index.ts') : undefined;
  const policy = policyLib && opts.policy !== undefined ? policyLib.parsePolicy(opts.policy) : undefined;
  const roots = (opts.trustedTestRoots ?? []).map((r) => ({ name: r.name, certificate: r.pem }));
  const fetching = opts.collateral ? await import('../collateral/index.ts') : undefined;
  const budget = opts.collateralBudgetMs === undefined ? {} : { budget: { ms: opts.collateralBudgetMs, whose: "this client's" } };
  const provider = fetching && opts.collateral ? fetching.serviceProvider(opts.collateral, budget) : undefined;
  return async (kind, evidence, certs) => {
    if (kind !== 'snp' && kind !== 'sgx' && kind !== 'tdx') throw new Error(`unknown evidence kind '${kind}'`);
    const input: VerifyInput = { kind, evidence, certs, crls: [], collateral: [], now: opts.now ?? new Date() };
    const verify = (i: VerifyInput) => verifyEvidence({ ...i, trustedTestRoots: roots });
    let result: VerificationResult;
    if (!fetching || !provider) result = await verify(input);
    else {
      try {
        result = await fetching.verifyWithCollateral(input, verify, provider, { by: fetching.CLIENT, ...(opts.warn ? { warn: opts.warn } : {}) });
      } catch (err) {
        if (!(err instanceof fetching.CollateralUnavailableError)) throw err;
        result = { ...err.first, failure: { step: 'collateral', ...(err.first.failure?.code ? { code: err.first.failure.code } : {}), message: err.message } };
      }
    }
    return policy && policyLib ? policyLib.applyPolicy(policy, result) : result;
  };
}

export interface AttestOptions {
  verifier?: EvidenceVerifier;
  /** Accept a Keep without attestation (the software process Keep with no evidence): development only. */
  allowUnattested?: boolean;
}

export interface AttestedKeep {
  keepId: string;
  nonce: Uint8Array;
  publicKey: Uint8Array;
  kind: string;
  result: VerificationResult | null;
  reasons: string[];
}

/**
 * Challenges a Keep with a fresh nonce and decides. On refusal the verdict is reported, the Keep
 * stopped, and KeepRefused thrown: nothing of the workload has been sent by then.
 */
export async function attestKeep(client: KeepmgrClient, keepId: string, opts: AttestOptions = {}): Promise<AttestedKeep> {
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const ch = await client.challenge(keepId, nonce);
  const reasons: string[] = [];
  let result: VerificationResult | null = null;
  let expected: Uint8Array | undefined;
  try {
    await importKeepPublicKey(ch.publicKey);
    expected = await bindingReportData(ch.publicKey, keepId, nonce);
  } catch (err) {
    reasons.push(`binding: ${(err as Error).message}`);
  }
  if (expected && ch.kind === 'none') {
    if (ch.evidence.length !== 0) reasons.push('parse: a Keep that claims no attestation sent evidence');
    else if (!opts.allowUnattested) reasons.push('policy: the Keep offers no attestation evidence (a software process Keep); only --insecure-unattested accepts it, for development');
  } else if (expected) {
    if (!opts.verifier) {
      reasons.push(`policy: no verifier is configured for ${ch.kind} evidence`);
    } else {
      try {
        result = await opts.verifier(ch.kind, ch.evidence, ch.certs);
        if (!result.verified) reasons.push(`${result.failure?.step ?? 'verify'}: ${result.failure?.message ?? 'evidence did not verify'}`);
        if (result.policy && !result.policy.accepted) reasons.push(...result.policy.reasons.map((r) => `policy: ${r}`));
        if (result.verified && result.reportData.toLowerCase() !== toHex(expected)) {
          reasons.push('binding: the evidence\'s report data does not bind this Keep\'s key and this challenge (replayed or foreign evidence)');
        }
      } catch (err) {
        reasons.push(`parse: ${(err as Error).message}`);
      }
    }
  }
  if (expected && !equalBytes(ch.reportData, expected) && reasons.length === 0 && ch.kind !== 'none') {
    reasons.push('binding: the report data the keep manager relayed does not match the Keep key and nonce');
  }
  if (reasons.length > 0) {
    await client.verdict(keepId, false, reasons).catch(() => {});
    await client.stop(keepId).catch(() => {});
    throw new KeepRefused(keepId, reasons);
  }
  const accepted = ch.kind === 'none' ? ['unattested software Keep accepted by --insecure-unattested'] : [`${ch.kind} evidence verified${result?.trustAnchor ? ` under ${result.trustAnchor}` : ''}; key and nonce bound`];
  await client.verdict(keepId, true, accepted);
  return { keepId, nonce, publicKey: ch.publicKey, kind: ch.kind, result, reasons: accepted };
}

export interface Workload {
  wasm: Uint8Array;
  config: string | null;
  stdin?: Uint8Array;
  /** The Steward the Keep gets its certificate from before the workload runs (sealed with the workload; overrides Enarx.toml's and the daemon's). */
  steward?: string;
  /** PEM certificates of the CA files `config` names, by file name (see Provision.cas). */
  cas?: Record<string, string[]>;
}

/** What a client keeps to read a Keep's output later (`enarx keep logs --session FILE`). */
export interface Session {
  keepId: string;
  nonce: string;
  keepPublicKey: string;
  outputPrivateKey: JWK;
}

export async function provisionKeep(client: KeepmgrClient, keep: AttestedKeep, workload: Workload): Promise<Session> {
  const { privateJwk, publicJwk } = await generateOutputKeyPair();
  const jwe = await encryptProvision(keep.publicKey, {
    keepId: keep.keepId, nonce: keep.nonce, wasm: workload.wasm, config: workload.config, stdin: workload.stdin ?? new Uint8Array(0), outputKey: publicJwk,
    ...(workload.steward ? { steward: workload.steward } : {}),
    ...(workload.cas ? { cas: workload.cas } : {}),
  });
  await client.provision(keep.keepId, jwe);
  return {
    keepId: keep.keepId,
    nonce: Buffer.from(keep.nonce).toString('base64url'),
    keepPublicKey: Buffer.from(keep.publicKey).toString('base64url'),
    outputPrivateKey: privateJwk,
  };
}

export async function openSession(s: Session): Promise<OutputReader> {
  const key = await deriveOutputKey(
    await importOutputPrivate(s.outputPrivateKey),
    await importKeepPublicKey(new Uint8Array(Buffer.from(s.keepPublicKey, 'base64url'))),
    s.keepId,
    new Uint8Array(Buffer.from(s.nonce, 'base64url')),
  );
  return new OutputReader(key, s.keepId);
}

export interface OutputEnd {
  /** The sealed exit record, when the Keep sent one: the only trustworthy account of the end. */
  exit: { code: number; reason: string | null } | null;
  /** What the host says (unauthenticated). */
  host: Record<string, unknown> | null;
}

/** Reads and authenticates a Keep's output, handing each payload to `onPayload`. */
export async function followOutput(client: KeepmgrClient, session: Session, onPayload: (p: OutputPayload) => void, opts: { follow?: boolean } = { follow: true }): Promise<OutputEnd> {
  const reader = await openSession(session);
  let host: Record<string, unknown> | null = null;
  let exit: OutputEnd['exit'] = null;
  for await (const item of client.output(session.keepId, { follow: opts.follow ?? true })) {
    if ('end' in item) {
      host = item.end;
      break;
    }
    const p = await reader.open(item);
    if (p.stream === 'exit') exit = { code: p.code, reason: p.reason };
    else onPayload(p);
  }
  return { exit, host };
}
