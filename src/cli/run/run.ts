import type { EnarxConfig, FileSpec } from '../../config/model.ts';
import { caFileOf, pemCertificateBlocks } from '../../config/model.ts';
import { BackendSelectionError, KeepSetupError, selectBackend } from '../../keep/index.ts';
import { PlanError, buildPlanParts } from '../../keep/plan.ts';

/** Where a deployed package's files appear for the guest, read-only (as src/keep/deploy.ts PACKAGE_GUEST_PATH). */
const PACKAGE_GUEST_PATH = '/package';
import { WorkloadError } from '../../runtime/errors.ts';
import { EnarxError, UsageError } from '../errors.ts';
import { log } from '../output.ts';
import { formatDuration, parseLimit, type KeepLimitSettings, type LimitKey } from '../../keep/limits.ts';
import type { WorkloadLimits } from '../../runtime/types.ts';
import type { DeploySpec } from '../../sallyport/index.ts';
import type { RunPlan } from '../../keep/types.ts';
import type { KeepCollateralFlags } from '../commands/platform-collateral.ts';
import type { KeepCollateralSettings } from '../../collateral/keep.ts';

// process.getBuiltinModule: the ESM facade of node:fs alone costs 10-50 ms of start-up.
const { readFileSync, statSync } = process.getBuiltinModule('node:fs');

/** Enarx refuses modules above 100 MB; so do we. */
const MAX_MODULE_BYTES = 100 * 1024 * 1024;

/** How long after the nil Keep's wall-time limit its watchdog ends a guest that never waits. */
const WATCHDOG_GRACE_MS = 500;

/** Exit statuses for a Keep stopped by a signal, as a shell reports them. */
const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

/** The --*-limit flags as given; `enarx run` and `enarx deploy` both take them. */
export interface LimitFlags {
  memoryLimit?: string;
  rssLimit?: string;
  wallTimeLimit?: string;
  descriptorLimit?: string;
}

export interface RunFlags extends LimitFlags, KeepCollateralFlags {
  backend?: string;
  wasmcfgfile?: string;
  dir: string[];
  env: string[];
  steward?: string;
  softwareEvidence?: string;
  /** `enarx deploy DIR`: preopen the package directory read-only at /package. */
  packageDir?: string;
  /** `enarx deploy REF`: the Keep fetches this package itself (process Keep). */
  deploy?: Omit<DeploySpec, 'stage'>;
  onDeployed?: RunPlan['onDeployed'];
  /** Where the guest's output goes instead of ours (deploy --json). */
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

/** Limits from Enarx.toml's [limits], overridden by the --*-limit flags. */
function workloadLimits(flags: RunFlags, config: EnarxConfig | undefined): WorkloadLimits {
  let settings: KeepLimitSettings = (config?.extensions.limits as KeepLimitSettings | undefined) ?? {};
  const given: [LimitKey, string | undefined, string][] = [
    ['memory', flags.memoryLimit, '--memory-limit'],
    ['rss', flags.rssLimit, '--rss-limit'],
    ['wall-time', flags.wallTimeLimit, '--wall-time-limit'],
    ['descriptors', flags.descriptorLimit, '--descriptor-limit'],
  ];
  for (const [key, value, flag] of given) {
    if (value === undefined) continue;
    try {
      settings = { ...settings, ...parseLimit(key, value, flag) };
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  return {
    ...(settings.memory !== undefined ? { maxMemoryBytes: settings.memory } : {}),
    ...(settings.descriptors !== undefined ? { maxDescriptors: settings.descriptors } : {}),
    ...(settings.rss !== undefined ? { maxRssBytes: settings.rss } : {}),
    ...(settings.wallTime !== undefined ? { maxWallTimeMs: settings.wallTime } : {}),
  };
}

/**
 * What a guest's argv and environment may hold, in every Keep alike: the process Keep carries
 * them in its sallyport `hello` (lists of at most 4096 strings of at most 64 KiB, in a frame of
 * 1 MiB, which the files share), and a workload must not start in one Keep and not another.
 * test/runtime/guest-inputs.test.ts checks these stay within the sallyport's limits.
 */
export const GUEST_INPUT_LIMITS = { items: 4096, itemBytes: 64 * 1024, totalBytes: 512 * 1024 } as const;

function checkGuestInputs(args: readonly string[], env: readonly (readonly [string, string])[]): void {
  const hint = 'pass large inputs through stdin or a file in a --dir preopen';
  const { items, itemBytes, totalBytes } = GUEST_INPUT_LIMITS;
  if (args.length > items) throw new EnarxError(`${args.length} guest arguments, more than the ${items} a Keep takes`, { hint });
  if (env.length > items) throw new EnarxError(`${env.length} environment variables, more than the ${items} a Keep takes`, { hint });
  let total = 0;
  for (const [i, a] of args.entries()) {
    const n = Buffer.byteLength(a);
    if (n > itemBytes) throw new EnarxError(`guest argument ${i} is ${n} bytes, more than the ${itemBytes} a Keep takes`, { hint });
    total += n;
  }
  for (const [k, v] of env) {
    const n = Buffer.byteLength(k) + Buffer.byteLength(v);
    if (n > itemBytes) throw new EnarxError(`environment variable ${k.slice(0, 64)} is ${n} bytes, more than the ${itemBytes} a Keep takes`, { hint });
    total += n;
  }
  if (total > totalBytes) throw new EnarxError(`the guest's arguments and environment are ${total} bytes, more than the ${totalBytes} a Keep takes`, { hint });
}

function readModule(path: string): Uint8Array {
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new EnarxError(`cannot read module ${path}: it is a directory`, { hint: 'give the path of a .wasm file' });
    if (st.size > MAX_MODULE_BYTES) throw new EnarxError(`module ${path} is larger than 100 MB`, { hint: 'Keeps refuse modules that large' });
    return readFileSync(path);
  } catch (err) {
    if (err instanceof EnarxError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(code ?? err);
    throw new EnarxError(`cannot read module ${path}: ${why}`, {
      hint: code === 'EACCES' ? 'check the file permissions' : 'check the path (build the examples with examples/build.sh)',
    });
  }
}

/** Reads the `client_ca` / `ca` PEM files named in Enarx.toml into the files the Keep gets. */
function withTlsCas(files: readonly FileSpec[], backend: string): FileSpec[] {
  return files.map((f) => {
    const path = caFileOf(f);
    if (!path) return f;
    if (backend !== 'process' && !HARDWARE_BACKENDS.has(backend)) throw new EnarxError(`'${f.name}': client_ca and ca need the process Keep`, { hint: 'use --backend process' });
    let pem: string;
    try {
      pem = readFileSync(path, 'utf8');
    } catch (err) {
      throw new EnarxError(`cannot read the CA file ${path} for '${f.name}': ${(err as NodeJS.ErrnoException).code ?? err}`, { hint: 'check the client_ca / ca path in Enarx.toml' });
    }
    const certs = pemCertificateBlocks(pem);
    if (certs.length === 0) throw new EnarxError(`${path} holds no PEM certificate (for '${f.name}')`, { hint: 'give CA certificates in PEM' });
    return f.kind === 'listen' ? { ...f, clientCa: certs } : { ...f, ca: certs };
  }) as FileSpec[];
}

const HARDWARE_BACKENDS = new Set(['sev', 'tdx', 'sgx']);

/** The collateral flags (RunFlags keys); the regular parser always sets those with defaults. */
export const COLLATERAL_FLAG_KEYS = ['collateralDir', 'offlineCollateral', 'fetchCollateral', 'kdsUrl', 'pcsUrl', 'intelCertsUrl', 'collateralTimeout', 'collateralRetries', 'collateralBudget'] as const;

/** A hardware Keep's host collateral settings (loaded only when a run needs them). */
async function collateralSettings(flags: RunFlags): Promise<KeepCollateralSettings> {
  return (await import('../commands/platform-collateral.ts')).keepCollateralSettings(flags);
}

/** The evidence source for an attested Keep: checked here, so a bad flag fails before any Keep starts. */
export async function evidenceFor(steward: string | undefined, softwareDir: string | undefined, backend: string) {
  if (softwareDir && !steward) throw new UsageError('--software-evidence needs a Steward to send it to', 'add --steward URL, or steward = "URL" in Enarx.toml');
  if (!steward) return undefined;
  const { stewardUrl, StewardIdentityError } = await import('../../keep/steward.ts');
  try {
    stewardUrl(steward);
  } catch (err) {
    if (err instanceof StewardIdentityError) throw new EnarxError(err.message, { hint: 'serve the Steward over https, or reach it on 127.0.0.1' });
    throw err;
  }
  if (HARDWARE_BACKENDS.has(backend)) {
    if (softwareDir) throw new UsageError(`--software-evidence is for software Keeps: the ${backend} Keep attests with its hardware`, 'drop --software-evidence, or choose --backend process');
    return undefined; // the Keep collects its own evidence
  }
  if (backend !== 'process' && backend !== 'nil') {
    throw new EnarxError(`the ${backend} Keep cannot be attested, so it cannot get a certificate from ${steward}`, { hint: 'use --backend process (with --software-evidence DIR for development), or drop the Steward' });
  }
  if (!softwareDir) return undefined; // the Keep says this host cannot attest, and what to do
  const [{ softwareSnpEvidence, TestRootError }, { keepMeasurement, nilKeepMeasurement }] = await Promise.all([import('../../keep/software-evidence.ts'), import('../../keep/process/measurement.ts')]);
  try {
    const source = await softwareSnpEvidence(softwareDir, { measurement: backend === 'nil' ? await nilKeepMeasurement() : await keepMeasurement() });
    log('warn', `attesting with ${source.description}: trusted only by a Steward told --trust-test-root`);
    return source;
  } catch (err) {
    if (err instanceof TestRootError) throw new EnarxError(err.message);
    throw err;
  }
}

/** `enarx run`: returns the exit status. Every failure before the guest starts is an EnarxError. */
export async function runCommand(module: string, args: string[], flags: RunFlags): Promise<number> {
  const cfgPath = flags.wasmcfgfile ?? process.env.ENARX_WASMCFGFILE;
  let config: EnarxConfig | undefined;
  let parts;
  // The TOML parser is loaded only when there is a file to parse.
  const configModule = cfgPath ? await import('../../config/index.ts') : undefined;
  try {
    config = cfgPath && configModule ? configModule.loadConfig(cfgPath) : undefined;
    const dirs = flags.packageDir ? [...flags.dir, `${flags.packageDir}::${PACKAGE_GUEST_PATH}`] : flags.dir;
    parts = buildPlanParts({ module, args, dirs, env: flags.env }, config);
    // The package preopen is read-only; the Keep in a registry deploy names its own files.
    if (flags.packageDir) parts.files = parts.files.map((f) => (f.kind === 'dir' && f.name === PACKAGE_GUEST_PATH ? { ...f, readonly: true } : f));
    if (flags.deploy) parts = { args: [...args], env: parts.env, files: [] };
  } catch (err) {
    if (configModule && err instanceof configModule.ConfigError) {
      const hint = err.unreadable ? 'check the --wasmcfgfile path' : "fix the file ('enarx config check FILE' validates it)";
      throw new EnarxError(err.message, { hint });
    }
    if (err instanceof PlanError) throw new UsageError(err.message);
    throw err;
  }
  checkGuestInputs(parts.args, parts.env);
  for (const f of parts.files) {
    if (f.kind !== 'dir') continue;
    try {
      if (!statSync(f.path).isDirectory()) throw new Error('not a directory');
    } catch {
      throw new EnarxError(`cannot preopen ${f.path} for '${f.name}': not a readable directory`, { hint: 'check the --dir or [[files]] path' });
    }
  }
  const limits = workloadLimits(flags, config);
  // Given flags are checked before anything starts; the fast path gives none (all defaults).
  let collateral = COLLATERAL_FLAG_KEYS.some((k) => flags[k] !== undefined) ? await collateralSettings(flags) : undefined;
  const bytes = flags.deploy ? new Uint8Array(0) : readModule(module);
  const backendName = flags.backend ?? (process.env.ENARX_BACKEND || undefined);
  let backend;
  try {
    backend = await selectBackend(backendName);
  } catch (err) {
    if (err instanceof BackendSelectionError) throw new EnarxError(err.message, { hint: err.hint ?? "see 'enarx platform info'" });
    throw err;
  }
  if ((flags.deploy || flags.stdout) && backend.name !== 'process') {
    throw new EnarxError(`${flags.deploy ? 'a registry deploy' : '--json'} needs the process Keep, not ${backend.name}`, { hint: 'use --backend process' });
  }
  log('info', `running ${module} in the ${backend.name} Keep`);
  const files = withTlsCas(parts.files, backend.name);
  const steward = flags.steward ?? config?.steward;
  if (HARDWARE_BACKENDS.has(backend.name) || (backend.name === 'nil' && steward)) collateral ??= await collateralSettings(flags);
  const evidence = await evidenceFor(steward, flags.softwareEvidence, backend.name);
  if (limits.maxRssBytes !== undefined && backend.name === 'nil') {
    throw new EnarxError('the rss limit needs a Keep in its own process', { hint: 'use --backend process, or drop the rss limit' });
  }

  const controller = new AbortController();
  let stoppedBy: string | undefined;
  const stop = (sig: NodeJS.Signals) => {
    stoppedBy = sig;
    controller.abort(`stopped by ${sig}`);
  };
  // Listen for Ctrl-C / SIGTERM only while the guest waits: a guest computing keeps the event
  // loop busy, and Node's default action (terminate at once) is then the right one.
  const onWait = () => {
    process.on('SIGINT', stop).on('SIGTERM', stop);
    return () => {
      process.off('SIGINT', stop).off('SIGTERM', stop);
    };
  };

  // The process Keep's host kills it at the wall-time limit. The nil Keep stops a waiting guest
  // when its timer runs; a guest that computes without waiting keeps the timer from running, and
  // a watchdog thread ends the whole process shortly after the limit (src/keep/watchdog.ts).
  let wallTimer: NodeJS.Timeout | undefined;
  let disarm = () => {};
  if (limits.maxWallTimeMs !== undefined && backend.name === 'nil') {
    const reason = `the Keep went over its wall-time limit (${formatDuration(limits.maxWallTimeMs)})`;
    disarm = (await import('../../keep/watchdog.ts')).armWatchdog(limits.maxWallTimeMs + WATCHDOG_GRACE_MS, reason);
    wallTimer = setTimeout(() => {
      disarm();
      controller.abort(reason);
    }, limits.maxWallTimeMs);
  }
  let stage: string | undefined;
  if (flags.deploy) {
    const [{ mkdtempSync }, { tmpdir }, { join }] = [process.getBuiltinModule('node:fs'), process.getBuiltinModule('node:os'), process.getBuiltinModule('node:path')];
    stage = mkdtempSync(join(tmpdir(), 'enarx-deploy-'));
  }
  let outcome;
  try {
    outcome = await backend.run({
      ...(flags.deploy && stage ? { deploy: { ...flags.deploy, stage } } : {}),
      ...(flags.onDeployed ? { onDeployed: flags.onDeployed } : {}),
      ...(flags.stdout ? { stdout: flags.stdout } : {}),
      ...(flags.stderr ? { stderr: flags.stderr } : {}),
      module: bytes,
      args: parts.args,
      env: parts.env,
      files,
      ...(steward ? { steward } : {}),
      ...(evidence ? { evidence } : {}),
      ...(collateral ? { collateral } : {}),
      limits,
      signal: controller.signal,
      onWait,
    });
  } catch (err) {
    if (err instanceof WorkloadError || err instanceof KeepSetupError) {
      throw new EnarxError(`${module}: ${err.message}`, { hint: err.hint });
    }
    throw err;
  } finally {
    clearTimeout(wallTimer);
    disarm();
    if (stage) process.getBuiltinModule('node:fs').rmSync(stage, { recursive: true, force: true });
  }
  switch (outcome.kind) {
    case 'exit':
      if (outcome.code > 255) {
        process.stderr.write(`enarx: the workload exited with status ${outcome.code}, which does not fit in 0-255\n`);
        return 1;
      }
      return outcome.code;
    case 'trap':
      process.stderr.write(`enarx: ${outcome.message}\n`);
      return 134;
    case 'aborted':
      process.stderr.write(`enarx: ${outcome.reason}\n`);
      return stoppedBy ? (SIGNAL_EXIT[stoppedBy] ?? 1) : 137;
  }
}
