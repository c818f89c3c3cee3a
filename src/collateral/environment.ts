import { homedir } from 'node:os';
import { join } from 'node:path';
import type { CollateralOptions } from './service.ts';

/** The collateral cache: $ENARX_COLLATERAL_DIR, else $XDG_CACHE_HOME/enarx/collateral (~/.cache by default). */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ENARX_COLLATERAL_DIR) return env.ENARX_COLLATERAL_DIR;
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'enarx', 'collateral');
}

/** The collateral settings the environment gives (cache directory, vendor URLs, Intel PCS key). */
export function environmentOptions(env: NodeJS.ProcessEnv = process.env): Omit<CollateralOptions, 'now' | 'onProgress'> {
  return {
    cacheDir: defaultCacheDir(env),
    amdBaseUrl: env.ENARX_KDS_URL || undefined,
    intelBaseUrl: env.ENARX_PCS_URL || undefined,
    intelCertsBaseUrl: env.ENARX_INTEL_CERTS_URL || undefined,
    intelApiKey: env.INTEL_PCS_API_KEY || undefined,
  };
}
