/**
 * Networking for the nil Keep: listen and connect files over node:net in this process. TLS is
 * terminated here with the Keep's identity, exactly as the process Keep does behind its
 * sallyport, so a guest sees the same behaviour in both.
 */
import { connect as netConnect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { Connection, Listener, NetworkProvider } from '../wasi/io.ts';
import { IoError } from '../wasi/io.ts';
import type { IdentityProvider } from '../keep/identity.ts';
import { DuplexConnection, QueueListener, toIoError } from './connection.ts';
import { tlsClient, tlsServer } from './tls.ts';

export interface NetworkOptions {
  identity: IdentityProvider;
  /** Told where each listen file is bound (useful with port 0). */
  onListening?: (name: string, address: string, port: number) => void;
  /** Extra trust anchors for connect files with prot = "tls". */
  ca?: readonly string[];
}

/**
 * The server is unref'd so that it never keeps enarx alive by itself, but while the guest waits
 * for a connection it must: a guest suspended in accept (JSPI) holds nothing else on the event
 * loop, and Node would otherwise end with the await unsettled.
 */
class HeldListener extends QueueListener {
  readonly #server: Server;
  #waiting = 0;
  constructor(server: Server) {
    super({ onClose: () => server.close() });
    this.#server = server;
  }
  override ready(): Promise<void> {
    if (this.pendingConnections() > 0) return super.ready();
    if (this.#waiting++ === 0) this.#server.ref();
    return super.ready().finally(() => {
      if (--this.#waiting === 0) this.#server.unref();
    });
  }
}

export function directNetwork(options: NetworkOptions): NetworkProvider {
  return {
    async listen(spec): Promise<Listener> {
      const identity = spec.prot === 'tls' ? await options.identity.identity() : null;
      const server = createServer({ noDelay: true, allowHalfOpen: true });
      const listener = new HeldListener(server);
      server.on('connection', (socket: Socket) => {
        const connection = new DuplexConnection(identity ? tlsServer(socket, identity) : socket);
        if (!listener.offer(connection)) socket.destroy();
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err) => reject(new IoError('EIO', `cannot listen on ${spec.addr}:${spec.port} for '${spec.name}': ${err.message}`)));
        server.listen({ host: spec.addr, port: spec.port, ipv6Only: false }, () => resolve());
      });
      server.unref();
      const bound = server.address() as AddressInfo;
      options.onListening?.(spec.name, bound.address, bound.port);
      return listener;
    },
    async connect(spec): Promise<Connection> {
      const socket = await new Promise<Socket>((resolve, reject) => {
        const s = netConnect({ host: spec.host === 'localhost' ? '127.0.0.1' : spec.host, port: spec.port, noDelay: true, allowHalfOpen: true });
        s.once('connect', () => resolve(s));
        s.once('error', (err) => reject(toIoError(err)));
      });
      if (spec.prot === 'tcp') return new DuplexConnection(socket);
      try {
        const identity = await options.identity.identity();
        return new DuplexConnection(await tlsClient(socket, { host: spec.host, identity, ...(options.ca ? { ca: options.ca } : {}) }));
      } catch (err) {
        socket.destroy();
        throw new IoError('ECONNREFUSED', `TLS to ${spec.host}:${spec.port} failed: ${(err as Error).message}`);
      }
    },
  };
}
