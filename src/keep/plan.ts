import { DEFAULT_FILES, fdEnvironment, type EnarxConfig, type FileSpec } from '../config/model.ts';

const { basename } = process.getBuiltinModule('node:path');

/** The command-line side of a run: wasmtime-style flags and the guest's own arguments. */
export interface RunRequest {
  /** MODULE as the user gave it: becomes argv[0]. */
  readonly module: string;
  readonly args: readonly string[];
  /** --dir values: HOST or HOST::GUEST. */
  readonly dirs: readonly string[];
  /** --env values: NAME=VALUE, or NAME to copy the host's value. */
  readonly env: readonly string[];
}

export class PlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlanError';
  }
}

/** Parses one --dir value. A guest name may not hold ':' (FD_NAMES separator). */
export function parseDirFlag(value: string): FileSpec {
  const at = value.indexOf('::');
  const host = at < 0 ? value : value.slice(0, at);
  const guest = at < 0 ? value : value.slice(at + 2);
  if (host === '' || guest === '') throw new PlanError(`--dir ${value}: expected HOST or HOST::GUEST`);
  if (guest.includes(':')) throw new PlanError(`--dir ${value}: the guest path must not contain ':'`);
  return { kind: 'dir', name: guest, path: host, readonly: false };
}

/** Parses one --env value; NAME alone takes the host's value (and is skipped when the host has none). */
export function parseEnvFlag(value: string, hostEnv: NodeJS.ProcessEnv): [string, string] | undefined {
  const eq = value.indexOf('=');
  const name = eq < 0 ? value : value.slice(0, eq);
  if (name === '') throw new PlanError(`--env ${value}: expected NAME=VALUE`);
  if (eq >= 0) return [name, value.slice(eq + 1)];
  const inherited = hostEnv[name];
  return inherited === undefined ? undefined : [name, inherited];
}

/**
 * Merges Enarx.toml (if any) and the command line, following Enarx where it has a rule:
 * argv = [MODULE, ...file args, ...ARGS]; fds = file entries then --dir preopens; env =
 * FD_COUNT, FD_NAMES, [env] with --env overriding. Without Enarx.toml: fds = stdio then the
 * --dir preopens, and the environment is exactly the --env pairs.
 */
export function buildPlanParts(
  request: RunRequest,
  config: EnarxConfig | undefined,
  hostEnv: NodeJS.ProcessEnv = process.env,
): { args: string[]; env: [string, string][]; files: FileSpec[] } {
  const dirs = request.dirs.map(parseDirFlag);
  const flagsEnv = request.env.map((e) => parseEnvFlag(e, hostEnv)).filter((e): e is [string, string] => e !== undefined);
  const args = [request.module, ...(config?.args ?? []), ...request.args];
  if (!config) {
    return { args, env: mergeEnv([], flagsEnv), files: [...DEFAULT_FILES, ...dirs] };
  }
  const files = [...config.files, ...dirs];
  const reserved = flagsEnv.find(([k]) => k === 'FD_COUNT' || k === 'FD_NAMES');
  if (reserved) throw new PlanError(`--env ${reserved[0]}: is set by the Keep from the Enarx.toml [[files]]`);
  return { args, env: [...fdEnvironment(files), ...mergeEnv(config.env, flagsEnv)], files };
}

function mergeEnv(base: readonly (readonly [string, string])[], overrides: readonly [string, string][]): [string, string][] {
  const out = new Map<string, string>(base.map(([k, v]) => [k, v]));
  for (const [k, v] of overrides) out.set(k, v);
  return [...out];
}

export function moduleDisplayName(path: string): string {
  return basename(path);
}
