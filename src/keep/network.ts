import type { NetworkProvider } from '../wasi/io.ts';
import { KeepSetupError } from './capabilities.ts';

/**
 * The host network for Keeps that run in this process (the nil Keep). Networking (TCP, and
 * TLS ended inside the Keep) is the sallyport component's: it replaces this body with its
 * provider. Until then, listen/connect entries fail before the workload starts.
 */
export async function loadNetworkProvider(): Promise<NetworkProvider> {
  throw new KeepSetupError(
    'listen and connect entries need networking, which this build of enarx does not provide yet',
    'remove the listen/connect [[files]] entries',
  );
}
