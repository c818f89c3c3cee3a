import { runWorkload } from '../runtime/index.ts';
import type { WorkloadOutcome } from '../runtime/types.ts';
import { openDescriptors } from './capabilities.ts';
import { loadNetworkProvider } from './network.ts';
import { processStderr, processStdin, processStdout } from './stdio.ts';
import type { KeepBackend, RunPlan } from './types.ts';

/**
 * The nil Keep: no isolation beyond the WASI sandbox. The workload runs inside the enarx
 * process itself, on its stdio. For development, and as the base the other Keeps build on.
 */
export const nilBackend: KeepBackend = {
  name: 'nil',
  availability: async () => ({ available: true }),
  async run(plan: RunPlan): Promise<WorkloadOutcome> {
    const needsNetwork = plan.files.some((f) => f.kind === 'listen' || f.kind === 'connect');
    const descriptors = await openDescriptors(plan.files, {
      stdin: processStdin,
      stdout: processStdout,
      stderr: processStderr,
      network: needsNetwork ? await loadNetworkProvider() : undefined,
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

export default nilBackend;
