import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One canned answer of the local stand-in for AMD KDS or Intel PCS. */
export interface Route {
  body: Uint8Array | string;
  status?: number;
  headers?: Record<string, string>;
  /** Wait this long before answering (longer than the client's timeout = a hanging server). */
  delayMs?: number;
  /** Answer this status (500 by default) to the first N requests. */
  failTimes?: number;
  failStatus?: number;
  failHeaders?: Record<string, string>;
}

export interface TestServer {
  url: string;
  routes: Map<string, Route>;
  /** Requests per path+query. */
  hits: Map<string, number>;
  /** The headers of the last request per path+query. */
  headers: Map<string, Record<string, string | string[] | undefined>>;
  close(): Promise<void>;
}

/** Serves routes keyed by path and query ("/vcek/v1/Milan/crl") on 127.0.0.1 with an ephemeral port. */
export async function startServer(routes: Record<string, Route>): Promise<TestServer> {
  const table = new Map(Object.entries(routes));
  const hits = new Map<string, number>();
  const headers = new Map<string, Record<string, string | string[] | undefined>>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const key = req.url ?? '/';
    const n = (hits.get(key) ?? 0) + 1;
    hits.set(key, n);
    headers.set(key, req.headers);
    const route = table.get(key);
    if (!route) {
      res.writeHead(404).end('not found');
      return;
    }
    const answer = () => {
      if (res.destroyed) return;
      if (route.failTimes !== undefined && n <= route.failTimes) {
        res.writeHead(route.failStatus ?? 500, route.failHeaders).end('try later');
        return;
      }
      res.writeHead(route.status ?? 200, route.headers).end(route.body);
    };
    if (route.delayMs) setTimeout(answer, route.delayMs).unref();
    else answer();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    routes: table,
    hits,
    headers,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A loopback URL nothing listens on: a port that was just free. */
export async function closedUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}
