/** Networking for Keeps: listen/connect files over TCP and TLS (the TLS ends inside the Keep). */
export { DuplexConnection, QueueListener, toIoError } from './connection.ts';
export { tlsClient, tlsServer } from './tls.ts';
export type { TlsClientOptions } from './tls.ts';
export { directNetwork } from './direct.ts';
export type { NetworkOptions } from './direct.ts';
