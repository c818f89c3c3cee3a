import { request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { formatContentDigest, digestBytes } from '../../src/drawbridge/index.ts';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTPS request with exactly the given path and headers (no normalisation), for bad-input tests. */
export function raw(
  url: string,
  ca: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string | number>; body?: Uint8Array | string; token?: string; cert?: { certPem: string; keyPem: string } } = {},
): Promise<RawResponse> {
  const u = new URL(url);
  const headers: Record<string, string | number> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  return new Promise((resolve, reject) => {
    const req = request(
      { hostname: u.hostname, port: u.port, method, path, headers, ca, cert: options.cert?.certPem, key: options.cert?.keyPem, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Headers for PUTting `body` honestly: its type, length and all four digests. */
export function putHeaders(body: Uint8Array | string, type: string): Record<string, string | number> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return { 'content-type': type, 'content-length': bytes.byteLength, 'content-digest': formatContentDigest(digestBytes(bytes)) };
}
