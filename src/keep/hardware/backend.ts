/**
 * The hardware Keep backends: a process Keep (a permission-model Node process behind the
 * sallyport) running inside an existing confidential VM (`sev`: AMD SEV-SNP, `tdx`: Intel TDX)
 * or Gramine SGX enclave (`sgx`), which gets its evidence from the hardware itself. The names
 * are Enarx's where Enarx has one (sev, sgx). Each is available only where detection finds its
 * interface: configfs-tsm with the matching provider, or Gramine with DCAP attestation.
 */
import type { BackendAvailability, KeepBackend, RunPlan } from '../types.ts';
import type { HardwareCheck, HardwareReport } from './detect.ts';
import { hardwarePaths } from './paths.ts';

export type HardwareBackendName = 'sev' | 'tdx' | 'sgx';

const KIND: Record<HardwareBackendName, 'snp' | 'tdx' | 'sgx'> = { sev: 'snp', tdx: 'tdx', sgx: 'sgx' };

export { hardwarePaths } from './paths.ts';

let detected: Promise<HardwareReport> | undefined;

/** detectHardware over hardwarePaths(), once per process (selection asks every backend). */
export function detectOnce(): Promise<HardwareReport> {
  return (detected ??= import('./detect.ts').then(({ detectHardware }) => detectHardware(hardwarePaths())));
}

const PROVIDER_FOR: Record<'sev' | 'tdx', string> = { sev: 'sev_guest (SEV-SNP)', tdx: 'tdx_guest (TDX)' };

/**
 * The checks `enarx platform info` shows under a hardware backend: sgx, Gramine's; sev and tdx,
 * configfs-tsm's, whose provider must be this backend's (an SNP guest is not a TDX one).
 */
export function backendChecks(name: HardwareBackendName, report: HardwareReport): HardwareCheck[] {
  const gramine = (c: HardwareCheck) => c.name.startsWith('Gramine');
  if (name === 'sgx') return report.checks.filter(gramine);
  return report.checks
    .filter((c) => !gramine(c))
    .map((c) => {
      if (c.name !== 'configfs-tsm provider' || !c.pass || report.kinds.includes(KIND[name])) return c;
      return { ...c, pass: false, mesg: `this guest's provider is ${c.info}, not ${PROVIDER_FOR[name]}: use --backend ${name === 'sev' ? 'tdx' : 'sev'}` };
    });
}

export function hardwareAvailability(name: HardwareBackendName, report: HardwareReport): BackendAvailability {
  if (report.kinds.includes(KIND[name])) return { available: true };
  const failed = backendChecks(name, report).filter((c) => !c.pass && c.mesg);
  if (name !== 'sgx') {
    // The guest device only hints at the TEE; it is the report interface and its provider that decide.
    const decisive = failed.find((c) => c.name !== 'confidential VM guest device') ?? failed[0];
    return { available: false, reason: decisive?.mesg ?? 'no configfs-tsm report interface' };
  }
  return { available: false, reason: failed[0]?.mesg ?? 'not inside a Gramine SGX enclave with DCAP attestation' };
}

export function hardwareBackend(name: HardwareBackendName): KeepBackend {
  return {
    name,
    availability: async () => hardwareAvailability(name, await detectOnce()),
    async run(plan: RunPlan) {
      const paths = hardwarePaths();
      const { runInProcessKeep } = await import('../process/index.ts');
      const via = name === 'sgx' ? ({ via: 'gramine', root: paths.gramineRoot } as const) : ({ via: 'configfs-tsm', root: paths.tsmRoot } as const);
      return runInProcessKeep(plan, { kind: KIND[name], ...via });
    },
  };
}
