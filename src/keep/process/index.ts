/**
 * The `process` Keep backend: the workload runs in its own Node process under the permission
 * model, behind the sallyport. Ranks above nil: a second wall behind the WASI sandbox.
 */
import type { Writable } from 'node:stream';
import type { WorkloadOutcome } from '../../runtime/types.ts';
import { KeepSetupError } from '../capabilities.ts';
import type { BackendAvailability, KeepBackend, RunPlan } from '../types.ts';
import type { EvidenceSource } from '../steward.ts';
import { lazyKeepCollateralSource } from '../host-collateral.ts';
import { log, logEnabled } from '../../cli/output.ts';
import type { LogLevel } from '../../sallyport/index.ts';
import { runProcessKeep } from './host.ts';
import type { ProcessKeepFile, ProcessKeepRequest } from './host.ts';
import { processAvailability } from './platform.ts';

export { runProcessKeep, exitStatus } from './host.ts';
export type { ProcessKeepFile, ProcessKeepLimits, ProcessKeepOutcome, ProcessKeepRequest, LimitName } from './host.ts';
// The Keep's own side (keep.ts) is not re-exported: this module is loaded by the host, and the
// Keep's code has no business in the host's start-up.
export type { KeepServices } from './keep.ts';
export { keepCommand, keepBundle, diesWithHost } from './launch.ts';

function currentLogLevel(): LogLevel {
  for (const level of ['trace', 'debug', 'info', 'warn'] as const) if (logEnabled(level)) return level;
  return 'error';
}

/** Lets the Keep dial its Steward and relays its attest requests to the evidence source. */
function stewardAccess(steward: string, source: EvidenceSource | undefined) {
  const url = new URL(steward);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  return {
    allowDial: [{ host: url.hostname.replace(/^\[|\]$/g, ''), port }],
    ...(source
      ? {
          evidenceKind: source.kind,
          evidence: async (reportData: Uint8Array) => {
            const e = await source.collect(reportData);
            return 'enarxEvidence' in e ? { kind: source.kind, bytes: e.enarxEvidence.der } : { kind: source.kind, bytes: e.attestation.attestations[0]!.stmt };
          },
        }
      : {}),
  };
}

/** True when this process's stdin is /dev/null (character device 1:3): reading it gives end of input at once. */
function stdinIsDevNull(): boolean {
  try {
    const st = process.getBuiltinModule('node:fs').fstatSync(0);
    return st.isCharacterDevice() && st.rdev === ((1 << 8) | 3);
  } catch {
    return false;
  }
}

function registryDestination(origin: string): { host: string; port: number } {
  const url = new URL(origin);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
}

export const processBackend: KeepBackend = {
  name: 'process',
  availability: async (): Promise<BackendAvailability> => processAvailability(),
  run: (plan: RunPlan) => runInProcessKeep(plan),
};

/**
 * Runs a plan in a process Keep. `collect`: a hardware Keep, which gets its evidence itself
 * through that interface (granted to it) instead of asking the host.
 */
export async function runInProcessKeep(plan: RunPlan, collect?: ProcessKeepRequest['collect']): Promise<WorkloadOutcome> {
  // The guest never blocks this process, so Ctrl-C and SIGTERM are handled for the whole run.
  const release = plan.onWait?.();
  try {
    if (collect && logEnabled('debug')) log('debug', `collateral for the Keep's CSR: ${(await import('../../collateral/keep.ts')).describeKeepCollateral(plan.collateral)}`);
    const outcome = await runProcessKeep({
      module: plan.module,
      args: plan.args,
      env: plan.env,
      files: plan.files as readonly ProcessKeepFile[],
      limits: {
        ...(plan.limits.maxMemoryBytes !== undefined ? { memory: plan.limits.maxMemoryBytes } : {}),
        ...(plan.limits.maxDescriptors !== undefined ? { descriptors: plan.limits.maxDescriptors } : {}),
        ...(plan.limits.maxRssBytes !== undefined ? { rss: plan.limits.maxRssBytes } : {}),
        ...(plan.limits.maxWallTimeMs !== undefined ? { wallTimeMs: plan.limits.maxWallTimeMs } : {}),
      },
      logLevel: plan.deploy ? 'info' : currentLogLevel(),
      steward: plan.steward ?? null,
      ...(plan.steward ? stewardAccess(plan.steward, collect ? undefined : plan.evidence) : {}),
      ...(collect ? { collect, collateral: lazyKeepCollateralSource(plan.collateral) } : {}),
      ...(plan.deploy ? { deploy: plan.deploy, allowDial: [...(plan.steward ? stewardAccess(plan.steward, undefined).allowDial : []), registryDestination(plan.deploy.origin)] } : {}),
      ...(plan.onDeployed ? { onDeployed: plan.onDeployed } : {}),
      // Set up only once the workload is on its way to the Keep; /dev/null is an empty stdin.
      stdin: () => (stdinIsDevNull() ? undefined : process.stdin),
      // Also made once the workload is on its way: process.stdout loads node:net for a pipe.
      stdout: (plan.stdout as Writable | undefined) ?? (() => process.stdout),
      stderr: (plan.stderr as Writable | undefined) ?? (() => process.stderr),
      signal: plan.signal,
      // `enarx run` exits once it has the outcome: it does not wait for the Keep's process to end.
      returnOnOutcome: true,
      // A deploy's progress (the Keep's 'deploy: ...' lines) shows on stderr whatever the log level.
      log: plan.deploy ? (level, text) => (text.startsWith('keep: deploy: ') ? process.stderr.write(`${text.slice(6)}\n`) : log(level, text)) : log,
      onListening: (name, address, port) => log('info', `listen file '${name}' is bound to ${address} port ${port}`),
    });
    switch (outcome.kind) {
      case 'exit':
      case 'trap':
        return outcome;
      case 'limit':
        return { kind: 'aborted', reason: outcome.message };
      case 'aborted':
        return { kind: 'aborted', reason: outcome.reason };
      case 'error':
        throw new KeepSetupError(outcome.message);
      case 'crash':
        throw new KeepSetupError(outcome.message, 'the Keep process failed; run with --log-level debug for its diagnostics');
      default:
        throw new KeepSetupError(`the Keep ended in an unknown way (${(outcome as { kind: string }).kind})`);
    }
  } finally {
    release?.();
  }
}

export default processBackend;
