/**
 * The Steward's HTTP surface, wire-compatible with Enarx's Steward:
 *
 *   GET /                                                      200, health check
 *   POST / application/pkcs10                                  DER CSR -> DER SEQUENCE OF Certificate (PkiPath: CA chain, leaf)
 *     (with Accept: application/pem-certificate-chain: PEM, leaf first)
 *   POST / application/vnd.steward.pkcs10-bundle.v1            DER SEQUENCE OF CSR -> DER Output { chain, issued }
 *
 * Refusals are application/problem+json (problems.ts). Bodies are bounded (413), content types
 * checked (415); anything a client sends ends in a 4xx, never a 5xx.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { toPem } from '../attestation/x509.ts';
import { type Problem, PROBLEM_CONTENT_TYPE, StewardRefusal } from './problems.ts';
import { toHex } from '../attestation/bytes.ts';
import type { Issued, Steward } from './steward.ts';

export const PKCS10 = 'application/pkcs10';
export const BUNDLE = 'application/vnd.steward.pkcs10-bundle.v1';
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;
export const PEM_CHAIN = 'application/pem-certificate-chain';

export interface HandlerOptions {
  /** Largest request body accepted (default 1 MiB; an Enarx SGX CSR is about 15 KB). */
  maxBodyBytes?: number;
  /** Where to report what happened (one line per request that is refused or fails). */
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /**
   * Reverse proxies (addresses or CIDR ranges) whose forwarding headers name the client, for the
   * per-client collateral budget; see trustedProxies.
   */
  trustedProxies?: readonly string[];
}

function send(res: ServerResponse, status: number, type: string | null, body: Uint8Array | string, headers: Record<string, string> = {}): void {
  const payload = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  res.writeHead(status, { ...(type ? { 'content-type': type } : {}), 'content-length': String(payload.length), ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : payload);
}

function sendProblem(res: ServerResponse, problem: Problem, headers: Record<string, string> = {}): void {
  send(res, problem.status, PROBLEM_CONTENT_TYPE, `${JSON.stringify(problem)}\n`, headers);
}

/** The media type without parameters, lower-cased: "Application/PKCS10; charset=x" -> "application/pkcs10". */
export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Reads the body up to `max` bytes; null when it is larger (the rest is not read). */
function readBody(req: IncomingMessage, max: number): Promise<Uint8Array | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > max) {
        done = true;
        req.pause();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!done) resolve(new Uint8Array(Buffer.concat(chunks)));
    });
    req.on('error', (err) => {
      if (!done) reject(err);
    });
  });
}

/**
 * Who sent a request, for per-client budgets: the TLS client certificate when there is one, else the
 * source address (an IPv6 address by its /64, which one host usually holds whole; an IPv4-mapped
 * address as IPv4). Behind a reverse proxy every client is the proxy, unless the proxy is trusted
 * (`proxies`): then the client is the one its forwarding headers name (forwardedClient).
 */
export function clientKey(req: IncomingMessage, proxies?: BlockList): string {
  const socket = req.socket as IncomingMessage['socket'] & { getPeerCertificate?: () => { fingerprint256?: string } };
  const fingerprint = socket.getPeerCertificate?.()?.fingerprint256;
  if (fingerprint) return `cert:${fingerprint}`;
  const peer = socket.remoteAddress ?? '';
  return `addr:${addressKey(proxies ? forwardedClient(peer, req.headers, proxies) : peer)}`;
}

/** The proxies to trust: IP addresses or CIDR ranges (192.0.2.0/24, 2001:db8::/32). Throws on anything else. */
export function trustedProxies(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', bits, extra] = entry.trim().split('/');
    const family = isIP(address);
    const prefix = bits === undefined ? undefined : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
    if (family === 0 || extra !== undefined || (prefix !== undefined && !(prefix <= (family === 4 ? 32 : 128)))) {
      throw new Error(`'${entry}' is not an IP address or CIDR range (192.0.2.10, 192.0.2.0/24, 2001:db8::/32)`);
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, prefix, type);
  }
  return list;
}

/** An address without its port, brackets or IPv4-mapped prefix; null when it is not an IP address. */
function bareAddress(text: string): string | null {
  let a = text.trim().replace(/^"|"$/g, '');
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(a);
  if (bracketed) a = bracketed[1]!;
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(a)) a = a.slice(0, a.lastIndexOf(':'));
  a = a.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');
  return isIP(a) === 0 ? null : a;
}

function isTrusted(proxies: BlockList, address: string): boolean {
  return proxies.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The client behind trusted proxies: when the peer is one, the hops its `X-Forwarded-For` (else
 * RFC 7239 `Forwarded: for=`) lists are read from the right (the nearest proxy appends last), and
 * the first that is not a trusted proxy is the client. A client cannot make itself someone else by
 * sending these headers: only what trusted proxies appended is read. A hop that is not an address
 * ("unknown", an obfuscated name) stops the walk at the proxy that forwarded it; an untrusted peer
 * is the client whatever its headers say.
 */
export function forwardedClient(peer: string, headers: IncomingHttpHeaders, proxies: BlockList): string {
  let nearest = bareAddress(peer);
  if (nearest === null || !isTrusted(proxies, nearest)) return peer;
  const xff = headers['x-forwarded-for'];
  const hops = xff !== undefined
    ? (Array.isArray(xff) ? xff.join(',') : xff).split(',')
    : String(headers.forwarded ?? '').split(',').flatMap((element) => element.split(';').filter((p) => /^\s*for=/i.test(p)).map((p) => p.replace(/^\s*for=/i, '')));
  for (const hop of hops.filter((h) => h.trim() !== '').toReversed()) {
    const address = bareAddress(hop);
    if (address === null) return nearest;
    if (!isTrusted(proxies, address)) return address;
    nearest = address;
  }
  return nearest;
}

export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  // Expand to eight groups, then keep the first four (the /64).
  const [head = '', tail = ''] = address.split('%')[0]!.split('::');
  const left = head ? head.split(':') : [];
  const right = address.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = address.includes('::') ? [...left, ...new Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => (Number.parseInt(g, 16) || 0).toString(16)).join(':')}::/64`;
}

export function stewardHandler(steward: Steward, options: HandlerOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const max = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const log = options.log ?? (() => {});
  const proxies = options.trustedProxies?.length ? trustedProxies(options.trustedProxies) : undefined;
  const refuse = (res: ServerResponse, refusal: StewardRefusal, headers?: Record<string, string>) => {
    log('info', `refused (${refusal.problem.status}, ${refusal.problem.step}): ${refusal.problem.detail}`);
    sendProblem(res, refusal.problem, headers);
  };

  const audit = (issued: Issued) => {
    const o = issued.origin;
    const flags = [o.stewardDebug && 'steward-debug', o.teeDebug && 'tee-debug', o.testRoot && 'test-root'].filter(Boolean).join(',');
    const identity = o.identity ? ` workload ${o.identity.digest.algorithm}:${toHex(o.identity.digest.value)}${o.identity.package ? ` package ${o.identity.package.slug}` : ''}` : '';
    log('info', `issued serial ${issued.serial} to a ${o.tee} Keep (anchor ${o.trustAnchor}${flags ? `, ${flags}` : ''})${identity}, until ${issued.notAfter.toISOString()}`);
  };

  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/') {
      refuse(res, new StewardRefusal('not-found', 'parse', `no resource at ${path}; the Steward serves only /`));
      return;
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      send(res, 200, null, new Uint8Array(0));
      return;
    }
    if (req.method !== 'POST') {
      refuse(res, new StewardRefusal('method-not-allowed', 'parse', `${req.method} is not allowed; use GET (health) or POST (certify)`), { allow: 'GET, HEAD, POST' });
      return;
    }
    const type = mediaType(req.headers['content-type']);
    if (type !== PKCS10 && type !== BUNDLE) {
      const what = type ? `content type '${type}'` : 'a request without a content type';
      refuse(res, new StewardRefusal('unsupported-media-type', 'parse', `the Steward does not accept ${what}; send ${PKCS10} or ${BUNDLE}`), { 'accept-post': `${PKCS10}, ${BUNDLE}` });
      req.resume();
      return;
    }
    const tooLarge = () => {
      refuse(res, new StewardRefusal('payload-too-large', 'parse', `the body exceeds ${max} bytes`), { connection: 'close' });
      res.on('finish', () => req.destroy());
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      tooLarge();
      return;
    }
    readBody(req, max).then(
      async (body) => {
        if (body === null) {
          tooLarge();
          return;
        }
        try {
          if (type === BUNDLE) {
            const issued = await steward.issueBundle(body, undefined, clientKey(req, proxies));
            issued.forEach(audit);
            send(res, 200, 'application/octet-stream', steward.bundleOutput(issued));
            return;
          }
          const issued = await steward.issue(body, undefined, clientKey(req, proxies));
          audit(issued);
          if (mediaType(req.headers.accept) === PEM_CHAIN) {
            // RFC 8555's PEM chain, leaf first, for tools that want a TLS-ready file.
            send(res, 200, PEM_CHAIN, [issued.certificate, ...steward.chainTopDown.toReversed()].map((c) => toPem('CERTIFICATE', c)).join(''));
          } else {
            send(res, 200, 'application/pkix-pkipath', steward.pkiPath(issued.certificate));
          }
        } catch (err) {
          if (err instanceof StewardRefusal) {
            refuse(res, err);
            return;
          }
          log('error', `internal error: ${(err as Error).stack ?? String(err)}`);
          send(res, 500, PROBLEM_CONTENT_TYPE, `${JSON.stringify({ type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'the Steward failed; see its log' })}\n`);
        }
      },
      () => res.destroy(),
    );
  };
}
