import type { NetworkProvider } from '../wasi/io.ts';
import { log } from '../cli/output.ts';
import type { IdentityProvider } from './identity.ts';

/**
 * The host network for Keeps that run in this process (the nil Keep): node:net directly, with
 * TLS ended here by the Keep's identity (self-signed until a Steward issues one). The process
 * Keep uses the same TLS code behind its sallyport (src/keep/process).
 */
export async function loadNetworkProvider(identity?: IdentityProvider): Promise<NetworkProvider> {
  const [{ directNetwork }, { selfSignedIdentityProvider }] = await Promise.all([import('../net/direct.ts'), import('./identity.ts')]);
  return directNetwork({
    identity: identity ?? selfSignedIdentityProvider(),
    onListening: (name, address, port) => log('info', `listen file '${name}' is bound to ${address} port ${port}`),
  });
}
