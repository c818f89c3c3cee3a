/**
 * The keep manager's HTTP API, version 1, served on HTTPS and on a Unix socket by one handler.
 * Every error is application/problem+json (RFC 9457) with a one-line `detail` saying what to do.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { createHash, timingSafeEqual } from 'node:crypto';
import { KeepManager, ManagerError } from './manager.ts';
import type { KeepRecord, Verdict } from './store.ts';
import { CBOR_TYPE, JOSE_TYPE, JSON_TYPE, PROBLEM_TYPE, bytesField, decodeBody, encodeBody, mediaType, negotiate, type Format } from './wire.ts';
import { DASHBOARD_HTML, DASHBOARD_JS } from './dashboard.ts';
import { MAX_PROVISION_BYTES } from '../sallyport/index.ts';

export const API_VERSION = 'v1';
const CONTROL_BODY_LIMIT = 64 * 1024;
const NONCE_BYTES = 32;
const ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface Principal {
  name: string;
  /** Admins (the Unix socket, the `admin` token) see and stop every Keep; tenants only their own. */
  admin: boolean;
}

export class Auth {
  readonly #tokens = new Map<string, string>();

  /** Tokens file: one `NAME TOKEN` per line, `#` comments. The name `admin` is an administrator. */
  static parse(text: string): Auth {
    const auth = new Auth();
    text.split('\n').forEach((raw, i) => {
      const line = raw.replace(/#.*/, '').trim();
      if (!line) return;
      const m = /^([A-Za-z0-9_.@-]+)\s+(\S{16,})$/.exec(line);
      if (!m) throw new Error(`tokens file line ${i + 1}: expected 'NAME TOKEN' with a token of at least 16 characters`);
      auth.add(m[1]!, m[2]!);
    });
    return auth;
  }

  add(name: string, token: string): void {
    this.#tokens.set(createHash('sha256').update(token).digest('hex'), name);
  }

  bearer(token: string): Principal | undefined {
    const h = createHash('sha256').update(token).digest();
    for (const [hex, name] of this.#tokens) {
      if (timingSafeEqual(Buffer.from(hex, 'hex'), h)) return { name, admin: name === 'admin' };
    }
    return undefined;
  }
}

class Problem extends Error {
  readonly status: number;
  readonly slug: string;
  readonly headers: Record<string, string>;
  constructor(status: number, slug: string, detail: string, headers: Record<string, string> = {}) {
    super(detail);
    this.status = status;
    this.slug = slug;
    this.headers = headers;
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 405: 'Method Not Allowed', 406: 'Not Acceptable', 409: 'Conflict',
  413: 'Content Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Content', 500: 'Internal Server Error', 503: 'Service Unavailable',
};

function sendProblem(res: ServerResponse, p: Problem): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ type: `https://enarx.dev/keepmgr/problems/${p.slug}`, title: TITLES[p.status] ?? 'Error', status: p.status, detail: p.message });
  res.writeHead(p.status, { 'content-type': PROBLEM_TYPE, 'cache-control': 'no-store', ...p.headers });
  res.end(`${body}\n`);
}

declare module 'node:http' {
  interface IncomingMessage {
    viaUnixSocket?: boolean;
  }
}

export interface ApiOptions {
  manager: KeepManager;
  auth: Auth;
  /** Client certificates verified by the TLS layer authenticate as `cert:<subject CN>`. */
  clientCertificates: boolean;
  lost: KeepRecord[];
  version: string;
}

export function apiHandler(opts: ApiOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(opts, req, res).catch((err: unknown) => {
      if (err instanceof Problem) sendProblem(res, err);
      else if (err instanceof ManagerError) sendProblem(res, new Problem(err.status, err.slug, err.message, err.retryAfter ? { 'retry-after': String(err.retryAfter) } : {}));
      else sendProblem(res, new Problem(500, 'internal', `internal error: ${(err as Error).message}`));
    });
  };
}

function authenticate(opts: ApiOptions, req: IncomingMessage): Principal {
  if (req.viaUnixSocket) return { name: 'local', admin: true };
  const h = req.headers.authorization;
  if (h) {
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    const p = m ? opts.auth.bearer(m[1]!) : undefined;
    if (!p) throw new Problem(401, 'unauthorized', 'the bearer token is not valid for this keep manager', { 'www-authenticate': 'Bearer realm="enarx-keepmgr", error="invalid_token"' });
    return p;
  }
  const sock = req.socket as TLSSocket;
  if (opts.clientCertificates && sock.authorized) {
    const cert = sock.getPeerCertificate();
    const cn = cert?.subject?.CN;
    if (cn) return { name: `cert:${Array.isArray(cn) ? cn[0] : cn}`, admin: false };
  }
  throw new Problem(401, 'unauthorized', 'authenticate with "Authorization: Bearer TOKEN" or a client certificate', { 'www-authenticate': 'Bearer realm="enarx-keepmgr"' });
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new Problem(413, 'too-large', `request body of ${declared} bytes exceeds the ${limit}-byte limit`, { connection: 'close' });
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > limit) throw new Problem(413, 'too-large', `request body exceeds the ${limit}-byte limit`, { connection: 'close' });
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

async function readDoc(req: IncomingMessage, allowEmpty = false): Promise<{ body: Record<string, unknown>; format: Format }> {
  const type = mediaType(req.headers['content-type']);
  const raw = await readBody(req, CONTROL_BODY_LIMIT);
  if (raw.length === 0 && allowEmpty) return { body: {}, format: 'json' };
  const format: Format | undefined = type === CBOR_TYPE ? 'cbor' : type === JSON_TYPE ? 'json' : undefined;
  if (!format) throw new Problem(415, 'unsupported-type', `send ${JSON_TYPE} or ${CBOR_TYPE}, not '${type || 'no Content-Type'}'`);
  let body: unknown;
  try {
    body = decodeBody(raw, format);
  } catch (err) {
    throw new Problem(400, 'malformed', `the body is not valid ${format === 'cbor' ? 'CBOR' : 'JSON'}: ${(err as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Problem(400, 'malformed', 'the body must be a map/object');
  return { body: body as Record<string, unknown>, format };
}

function onlyKeys(obj: Record<string, unknown>, allowed: string[], where: string): void {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) throw new Problem(400, 'unknown-field', `unknown field '${k}' in ${where} (allowed: ${allowed.join(', ')})`);
}

function send(res: ServerResponse, req: IncomingMessage, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const format = negotiate(req.headers.accept);
  const body = encodeBody(value, format);
  res.writeHead(status, { 'content-type': format === 'cbor' ? CBOR_TYPE : JSON_TYPE, 'cache-control': 'no-store', vary: 'accept', ...headers });
  res.end(body);
}

/** What the API shows of a Keep. */
export function keepView(r: KeepRecord): Record<string, unknown> {
  return {
    id: r.id, owner: r.owner, backend: r.backend, state: r.state, origin: r.origin, createdAt: r.createdAt, updatedAt: r.updatedAt, endedAt: r.endedAt,
    pid: r.pid, exitCode: r.exitCode, reason: r.reason, limits: r.limits, usage: r.usage,
    attestation: { kind: r.evidenceKind, publicKey: r.publicKey, nonce: r.nonce, reportData: r.reportData, evidence: r.evidence, certs: r.certs, verdict: r.verdict },
    certificate: r.certificate, ports: r.ports, outputRecords: r.outputRecords,
  };
}

async function handle(opts: ApiOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://keepmgr');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  const allow = (methods: string[]) => {
    if (!methods.includes(method)) throw new Problem(405, 'method-not-allowed', `${method} is not allowed on ${path} (use ${methods.join(', ')})`, { allow: methods.join(', ') });
  };

  if (path === '/' || path === '/dashboard.js' || path === '/health') {
    allow(['GET', 'HEAD']);
    if (path === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    const csp = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'";
    res.writeHead(200, { 'content-type': path === '/' ? 'text/html; charset=utf-8' : 'text/javascript; charset=utf-8', 'content-security-policy': csp, 'x-content-type-options': 'nosniff' });
    res.end(path === '/' ? DASHBOARD_HTML : DASHBOARD_JS);
    return;
  }
  if (!path.startsWith('/api/')) throw new Problem(404, 'not-found', `no such path ${path}; the API lives under /api/${API_VERSION}`);
  if (!path.startsWith(`/api/${API_VERSION}/`) && path !== `/api/${API_VERSION}`) {
    throw new Problem(404, 'unknown-version', `this keep manager speaks API ${API_VERSION}; ${path} names another version`);
  }
  const who = authenticate(opts, req);
  const m = opts.manager;
  const rest = path.slice(`/api/${API_VERSION}`.length);

  if (rest === '' || rest === '/') {
    allow(['GET']);
    send(res, req, 200, { api: API_VERSION, version: opts.version, principal: who.name, admin: who.admin, lost: opts.lost.map((r) => ({ id: r.id, owner: r.owner, reason: r.reason })) });
    return;
  }
  if (rest === '/contracts') {
    allow(['GET']);
    send(res, req, 200, { contracts: m.contracts() });
    return;
  }
  if (rest === '/keeps') {
    allow(['GET', 'POST']);
    if (method === 'GET') {
      send(res, req, 200, { keeps: m.list(who.admin ? undefined : who.name).map(keepView) });
      return;
    }
    const { body } = await readDoc(req, true);
    onlyKeys(body, ['backend', 'limits'], 'the Keep request');
    if (body.backend !== undefined && typeof body.backend !== 'string') throw new Problem(400, 'bad-field', "'backend' must be a string");
    const limits = body.limits ?? {};
    if (typeof limits !== 'object' || limits === null || Array.isArray(limits)) throw new Problem(400, 'bad-field', "'limits' must be a map");
    onlyKeys(limits as Record<string, unknown>, ['memoryMiB', 'cpuSeconds', 'descriptors'], "'limits'");
    const rec = await m.create(who.name, { backend: body.backend as string | undefined, limits: limits as Record<string, number> });
    send(res, req, 201, keepView(rec), { location: `/api/${API_VERSION}/keeps/${rec.id}` });
    return;
  }
  const km = /^\/keeps\/([^/]+)(\/[a-z]+)?$/.exec(rest);
  if (!km) throw new Problem(404, 'not-found', `no such endpoint ${path}`);
  const id = km[1]!;
  const action = km[2] ?? '';
  const rec = ID_RE.test(id) ? m.get(id) : undefined;
  if (!rec || (!who.admin && rec.owner !== who.name)) throw new Problem(404, 'no-such-keep', `no Keep ${id} here (GET /api/${API_VERSION}/keeps lists yours)`);

  switch (action) {
    case '': {
      allow(['GET', 'DELETE']);
      if (method === 'DELETE') {
        send(res, req, 200, keepView(await m.stop(id)));
        return;
      }
      send(res, req, 200, keepView(rec));
      return;
    }
    case '/stop': {
      allow(['POST']);
      send(res, req, 200, keepView(await m.stop(id)));
      return;
    }
    case '/challenge': {
      allow(['POST']);
      const { body, format } = await readDoc(req);
      onlyKeys(body, ['nonce'], 'the challenge');
      const nonce = bytesField(body, 'nonce', format);
      if (!nonce || nonce.length !== NONCE_BYTES) throw new Problem(400, 'bad-nonce', `'nonce' must be ${NONCE_BYTES} fresh random bytes (base64url in JSON)`);
      const ev = await m.challenge(id, nonce);
      send(res, req, 200, { keep: id, nonce, ...ev });
      return;
    }
    case '/provision': {
      allow(['POST']);
      const type = mediaType(req.headers['content-type']);
      let jwe: string;
      if (type === JOSE_TYPE) {
        jwe = (await readBody(req, MAX_PROVISION_BYTES)).toString('latin1').trim();
      } else {
        const { body } = await readDoc(req);
        onlyKeys(body, ['jwe'], 'the provisioning request');
        if (typeof body.jwe !== 'string') throw new Problem(400, 'bad-field', "'jwe' must be a compact JWE string");
        jwe = body.jwe;
      }
      if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){4}$/.test(jwe)) throw new Problem(400, 'bad-jwe', 'the body is not a compact JWE (five base64url parts)');
      send(res, req, 202, keepView(await m.provision(id, jwe)));
      return;
    }
    case '/verdict': {
      allow(['PUT']);
      const { body } = await readDoc(req);
      onlyKeys(body, ['accepted', 'reasons'], 'the verdict');
      if (typeof body.accepted !== 'boolean' || !Array.isArray(body.reasons) || !body.reasons.every((r) => typeof r === 'string' && r.length < 1000) || body.reasons.length > 50) {
        throw new Problem(400, 'bad-field', "a verdict is {accepted: boolean, reasons: string[]}");
      }
      const verdict: Verdict = { accepted: body.accepted, reasons: body.reasons as string[], by: who.name, at: new Date().toISOString() };
      send(res, req, 200, keepView(await m.verdict(id, verdict)));
      return;
    }
    case '/output': {
      allow(['GET']);
      await streamOutput(m, id, req, res, url);
      return;
    }
    default:
      throw new Problem(404, 'not-found', `no such endpoint ${path}`);
  }
}

/**
 * Sealed output records, oldest first from `?from=SEQ`: NDJSON lines {"seq","ct"} (or a CBOR
 * sequence). With `?follow=true` the stream stays open until the Keep ends. The last item,
 * {"end": {...}}, is the host's unauthenticated account of how the Keep ended; the client trusts
 * only the sealed exit record inside the stream.
 */
async function streamOutput(m: KeepManager, id: string, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const fromRaw = url.searchParams.get('from') ?? '0';
  if (!/^\d{1,9}$/.test(fromRaw)) throw new Problem(400, 'bad-query', "'from' must be a record sequence number");
  const followRaw = url.searchParams.get('follow') ?? 'false';
  if (followRaw !== 'true' && followRaw !== 'false') throw new Problem(400, 'bad-query', "'follow' must be true or false");
  const follow = followRaw === 'true';
  const format = negotiate(req.headers.accept);
  let next = Number(fromRaw);
  res.writeHead(200, { 'content-type': format === 'cbor' ? 'application/cbor-seq' : 'application/x-ndjson', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
  const write = (item: unknown) => {
    if (!res.writableEnded && !res.destroyed) res.write(encodeBody(item, format));
  };
  const events = follow ? m.events(id) : undefined;
  const pending: Array<{ seq: number; ct: Uint8Array }> = [];
  let ended = false;
  const onRecord = (r: { seq: number; ct: Uint8Array }) => pending.push(r);
  const onEnd = () => {
    ended = true;
  };
  events?.on('record', onRecord);
  events?.once('end', onEnd);
  const flush = () => {
    for (const r of m.store.records(id, next)) {
      write({ seq: r.seq, ct: r.ct });
      next = r.seq + 1;
    }
  };
  flush();
  const endItem = () => {
    const r = m.get(id)!;
    return { end: { state: r.state, exitCode: r.exitCode, reason: r.reason, live: m.isLive(id) } };
  };
  if (!events) {
    write(endItem());
    res.end();
    return;
  }
  await new Promise<void>((resolve) => {
    let done = false;
    const tick = () => {
      // Wake-ups queued before the stream ended still run; they find nothing left to do.
      if (done) return;
      while (pending.length) {
        const r = pending.shift()!;
        if (r.seq >= next) {
          write({ seq: r.seq, ct: r.ct });
          next = r.seq + 1;
        }
      }
      if (ended || !m.isLive(id)) {
        flush();
        write(endItem());
        res.end();
        cleanup();
        resolve();
      }
    };
    const wake = () => setImmediate(tick);
    const cleanup = () => {
      done = true;
      events.off('record', onRecord);
      events.off('end', onEnd);
      events.off('record', wake);
      events.off('end', wake);
      res.off('close', closed);
    };
    const closed = () => {
      cleanup();
      resolve();
    };
    events.on('record', wake);
    events.once('end', wake);
    res.on('close', closed);
    tick();
  });
}
