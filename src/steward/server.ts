/** Starts the Steward on HTTP, or HTTPS when given a TLS certificate and key. */
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type HandlerOptions, stewardHandler } from './http.ts';
import type { Steward } from './steward.ts';

export interface ListenOptions extends HandlerOptions {
  addr: string;
  port: number;
  /** PEM certificate chain and key for HTTPS; plain HTTP without (for use behind a TLS proxy, as Enarx). */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export interface RunningSteward {
  server: Server;
  url: string;
  close(): Promise<void>;
}

export async function listen(steward: Steward, options: ListenOptions): Promise<RunningSteward> {
  const handler = stewardHandler(steward, options);
  const server: Server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler) : createHttpServer(handler);
  // Bound slow clients: a whole request must arrive within 30 s, its headers within 10 s.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.addr, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `${options.tls ? 'https' : 'http'}://${host}:${address.port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
