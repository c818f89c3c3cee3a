import { hasOptimisingTier, runWorkload } from '../runtime/index.ts';
import type { WorkloadOutcome } from '../runtime/types.ts';
import { KeepSetupError, openDescriptors } from './capabilities.ts';
import type { KeepIdentity } from './identity.ts';
import { loadNetworkProvider } from './network.ts';
import { processStderr, processStdin, processStdout } from './stdio.ts';
import type { EvidenceSource } from './steward.ts';
import type { KeepBackend, RunPlan } from './types.ts';
import { log } from '../cli/output.ts';
import { lazyKeepCollateralSource } from './host-collateral.ts';

/**
 * The nil Keep: no isolation beyond the WASI sandbox. The workload runs inside the enarx
 * process itself, on its stdio. For development, and as the base the other Keeps build on.
 */
export const nilBackend: KeepBackend = {
  name: 'nil',
  availability: async () => ({ available: true }),
  async run(plan: RunPlan): Promise<WorkloadOutcome> {
    if (!hasOptimisingTier()) log('debug', "the nil Keep compiles this workload with V8's baseline tier (Liftoff): long-running loops run slower");
    const needsNetwork = plan.files.some((f) => f.kind === 'listen' || f.kind === 'connect');
    // As in the process Keep: a Steward's refusal stops the Keep before any descriptor opens.
    const identity = plan.steward ? await stewardIdentity(plan.steward, plan.module, plan.evidence, plan.collateral) : undefined;
    const descriptors = await openDescriptors(plan.files, {
      stdin: processStdin,
      stdout: processStdout,
      stderr: processStderr,
      network: needsNetwork ? await loadNetworkProvider(identity ? { identity: async () => identity } : undefined) : undefined,
    });
    return runWorkload({
      module: plan.module,
      args: plan.args,
      env: plan.env,
      descriptors,
      limits: plan.limits,
      signal: plan.signal,
      onWait: plan.onWait,
    });
  },
};

/**
 * The process Keep's exchange (requestStewardIdentity), run in this process: the key is made here,
 * the evidence comes from the software test root the host loaded or, inside a confidential VM or
 * Gramine enclave, from the hardware directly, and the CSR goes straight to the Steward.
 */
async function stewardIdentity(steward: string, module: Uint8Array, software: EvidenceSource | undefined, collateral: RunPlan['collateral']): Promise<KeepIdentity> {
  const { requestStewardIdentity, StewardIdentityError, StewardRefusedError } = await import('./steward.ts');
  try {
    const evidence = software ?? (await hardwareSource(steward, collateral));
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-384', module as Uint8Array<ArrayBuffer>));
    const identity = await requestStewardIdentity({
      steward,
      evidence,
      workload: { digest: { algorithm: 'sha-384', value: digest } },
      onPhase: (phase) => log('debug', `identity: ${phase}`),
    });
    log('info', `the Steward at ${new URL(steward).origin} certified this Keep`);
    return identity;
  } catch (err) {
    if (err instanceof StewardRefusedError || err instanceof StewardIdentityError || (err as Error).name === 'CollectionError') throw new KeepSetupError((err as Error).message);
    throw err;
  }
}

async function hardwareSource(steward: string, settings: RunPlan['collateral']): Promise<EvidenceSource> {
  const [{ detectOnce, hardwarePaths }, { hardwareEvidenceSource }] = await Promise.all([import('./hardware/backend.ts'), import('./hardware/source.ts')]);
  const kind = (await detectOnce()).kinds[0];
  if (!kind) {
    throw new KeepSetupError(
      `this host cannot attest, so the Steward at ${steward} cannot certify this Keep`,
      'run inside an SEV-SNP or TDX VM with configfs-tsm, or a Gramine SGX enclave; for development, `enarx platform test-root create` then `enarx run --software-evidence DIR`',
    );
  }
  const paths = hardwarePaths();
  // The nil Keep is its own host: it gets the collateral its CSR carries from the cache directly.
  const source = lazyKeepCollateralSource(settings);
  const collateral = async (request: import('../sallyport/index.ts').CollateralRequest) => {
    const got = await source(request);
    for (const m of got.missing) log('warn', `collateral for the Keep's CSR: ${m}`);
    return got.collateral;
  };
  return hardwareEvidenceSource(kind, kind === 'sgx' ? { via: 'gramine', root: paths.gramineRoot } : { via: 'configfs-tsm', root: paths.tsmRoot }, {
    collateral,
    warn: (message) => log('warn', message),
  });
}

export default nilBackend;
