/**
 * TLS as Enarx's Keeps speak it (rustls 0.20 there): TLS 1.3 only, AES-GCM and ChaCha20
 * suites, X25519/P-384/P-256. TLS runs over any Duplex, so in the process Keep it ends inside
 * the Keep and the host relays only ciphertext.
 */
import { TLSSocket, connect as tlsConnect, createSecureContext, rootCertificates } from 'node:tls';
import type { SecureContext } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { KeepIdentity } from '../keep/identity.ts';

const CIPHERS = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256';
const GROUPS = 'X25519:P-384:P-256';

const contexts = new WeakMap<KeepIdentity, SecureContext>();

function serverContext(identity: KeepIdentity): SecureContext {
  let ctx = contexts.get(identity);
  if (!ctx) {
    ctx = createSecureContext({
      key: identity.privateKey,
      cert: identity.certificateChain.join('\n'),
      minVersion: 'TLSv1.3',
      ciphers: CIPHERS,
      ecdhCurve: GROUPS,
      ...(identity.clientCAs.length > 0 ? { ca: [...identity.clientCAs] } : {}),
    });
    contexts.set(identity, ctx);
  }
  return ctx;
}

/** The server side of a `listen` file with prot = "tls", over an accepted raw connection. */
export function tlsServer(raw: Duplex, identity: KeepIdentity): TLSSocket {
  const requireClientCert = identity.clientCAs.length > 0;
  const socket = new TLSSocket(raw, {
    isServer: true,
    secureContext: serverContext(identity),
    requestCert: requireClientCert,
    rejectUnauthorized: requireClientCert,
  });
  // A failed handshake only ends this connection; the guest sees a reset.
  socket.on('error', () => {});
  // OpenSSL refuses a missing client certificate itself, but a presented one is only checked
  // against the CAs afterwards: tls.Server does that in its 'secure' handler, which a TLSSocket
  // made over a raw Duplex never gets. Same check here, failing closed if the handle lacks it.
  if (requireClientCert) socket.once('secure', () => {
    const handle = (socket as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
    const error = typeof handle?.verifyError === 'function' ? handle.verifyError() : new Error('cannot check the client certificate');
    if (error) {
      socket.authorizationError = error;
      socket.destroy();
    } else {
      socket.authorized = true;
    }
  });
  return socket;
}

export interface TlsClientOptions {
  /** Name to verify and send as SNI. */
  host: string;
  identity: KeepIdentity | null;
  /** Extra trust anchors (PEM); the system's roots are always trusted too. */
  ca?: readonly string[];
}

/** The client side of a `connect` file with prot = "tls": resolves once the handshake succeeds. */
export function tlsClient(raw: Duplex, options: TlsClientOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const isIp = /^[\d.]+$|:/.test(options.host);
    const socket = tlsConnect({
      socket: raw,
      ...(isIp ? {} : { servername: options.host }),
      host: options.host,
      minVersion: 'TLSv1.3',
      ciphers: CIPHERS,
      ecdhCurve: GROUPS,
      ca: [...rootCertificates, ...(options.ca ?? [])],
      ...(options.identity ? { key: options.identity.privateKey, cert: options.identity.certificateChain.join('\n') } : {}),
    });
    const fail = (err: Error) => reject(err);
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      socket.off('error', fail);
      socket.on('error', () => {});
      resolve(socket);
    });
  });
}
