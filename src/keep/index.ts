/**
 * Keep backends and their selection. Backends are listed here with a strength and loaded
 * only when chosen, so that `enarx run` pays for one backend's code only.
 */
import type { BackendEntry, KeepBackend } from './types.ts';
import { mayAttest } from './hardware/paths.ts';

export type { BackendAvailability, BackendEntry, KeepBackend, RunPlan } from './types.ts';
export { openDescriptors, KeepSetupError, type KeepIo } from './capabilities.ts';

const BACKENDS: BackendEntry[] = [
  {
    name: 'nil',
    description: 'no hardware isolation: the workload runs in the enarx process, inside the WASI sandbox',
    strength: 0,
    load: async () => (await import('./nil.ts')).nilBackend,
  },
  {
    name: 'process',
    description: 'a separate Node process under the permission model, reached only through the sallyport',
    strength: 10,
    load: async () => (await import('./process/index.ts')).processBackend,
  },
  // A process Keep inside a confidential VM or an SGX enclave: the hardware adds confidentiality
  // and attestation, so each ranks above the plain process Keep where it is available.
  ...(['sev', 'tdx', 'sgx'] as const).map((name) => ({
    name,
    description: {
      sev: 'a process Keep inside an AMD SEV-SNP confidential VM, attested through configfs-tsm',
      tdx: 'a process Keep inside an Intel TDX confidential VM, attested through configfs-tsm',
      sgx: 'a process Keep inside a Gramine SGX enclave, attested through /dev/attestation',
    }[name],
    strength: 30,
    present: mayAttest,
    load: async () => (await import('./hardware/backend.ts')).hardwareBackend(name),
  })),
];

/** Adds a backend (e.g. the process Keep). A later entry with the same name replaces the earlier. */
export function registerBackend(entry: BackendEntry): void {
  const i = BACKENDS.findIndex((b) => b.name === entry.name);
  if (i >= 0) BACKENDS[i] = entry;
  else BACKENDS.push(entry);
}

/** Backends, strongest first. */
export function listBackends(): readonly BackendEntry[] {
  return [...BACKENDS].sort((a, b) => b.strength - a.strength);
}

export class BackendSelectionError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'BackendSelectionError';
    this.hint = hint;
  }
}

/**
 * The backend named (ENARX_BACKEND or --backend), or else the strongest available one.
 * A named backend that is unknown or unavailable is an error, never a silent fallback.
 */
export async function selectBackend(name?: string): Promise<KeepBackend> {
  const all = listBackends();
  if (name) {
    const entry = all.find((b) => b.name === name);
    if (!entry) {
      throw new BackendSelectionError(`unknown backend '${name}'`, `choose one of: ${all.map((b) => b.name).join(', ')}`);
    }
    const backend = await entry.load();
    const a = await backend.availability();
    if (!a.available) throw new BackendSelectionError(`backend '${name}' is not available on this host: ${a.reason ?? 'no reason given'}`);
    return backend;
  }
  for (const entry of all) {
    if (entry.present && !entry.present()) continue;
    const backend = await entry.load();
    if ((await backend.availability()).available) return backend;
  }
  throw new BackendSelectionError('no Keep backend is available on this host');
}
