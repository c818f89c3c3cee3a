/**
 * How the host starts a Keep process: Node under the permission model, reading only the
 * Keep's own code (one bundle) and the granted directories, writing only the granted writable
 * ones, with no network, child processes, workers or addons; its walls (wall.ts) go up first:
 * no code from strings, no modules but its own, no signals. The Keep's code is bundled once with
 * esbuild (cached, rebuilt when a source changes): one small file parses far faster than a tree of TypeScript modules, which is most of
 * a Keep's start-up time.
 */
import type { ChildProcess } from 'node:child_process';
import { bundle, indexedBundle, INSTALL_ROOT, KEEP_CACHE, type BundleSpec } from '../../bundle/index.ts';
import { pipePair, SALLYPORT_READ_BYTES } from './pipes.ts';
// process.getBuiltinModule: the ESM facades of these built-ins cost milliseconds each at start-up,
// and this module is on the path of every `enarx run` (it starts the Keep as early as it can).
const { existsSync, realpathSync } = process.getBuiltinModule('node:fs');
const { dirname, join, resolve } = process.getBuiltinModule('node:path');

// Paths from the installation's root, not import.meta: this module is bundled into the host's
// fast path (src/cli/run/load.ts).
const KEEP_BUNDLE: BundleSpec = {
  cache: KEEP_CACHE,
  entry: join(INSTALL_ROOT, 'src', 'keep', 'process', 'main.ts'),
  name: 'keep',
  root: INSTALL_ROOT,
  // The walls head every file of the bundle: the first one evaluated raises them.
  banner: async () => (await import('./wall.ts')).keepWallSource(),
  // What a Keep loads to start is one file: the CBOR codec, the byte and text helpers, which the lazily
  // loaded modules share, are copied into it (stateless: the sallyport's CBOR never meets theirs).
  entryCopies: {
    from: /\/src\/(keep\/process|sallyport|runtime|wasi|net)\/[^/]+\.ts$/,
    modules: /^cborg$|\/attestation\/(bytes|text)\.ts$/,
  },
};
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
const PRLIMIT = ['/usr/bin/prlimit', '/bin/prlimit'].find((p) => existsSync(p));
/**
 * setpriv's kernel walls, before the death signal: no_new_privs (no exec of the Keep's, were it ever
 * to get one, gains a setuid user or file capabilities) and no capability: started by root, the
 * Keep's Node would otherwise hold every one (CAP_DAC_OVERRIDE, CAP_KILL, CAP_SYS_PTRACE...) behind
 * the permission model alone. Exec as uid 0 gives a process its bounding set, so that set is
 * emptied (which needs CAP_SETPCAP, root's; it cannot be refilled). The launchers accept exactly
 * these words (bin/enarx, bin/enarx.js).
 */
export const SETPRIV_WALLS: readonly string[] = [
  '--nnp',
  // A host that is not root may still carry ambient capabilities (a service's AmbientCapabilities=):
  // they would pass to the Keep across exec.
  '--inh-caps=-all',
  '--ambient-caps=-all',
  ...(process.geteuid?.() === 0 ? ['--bounding-set=-all'] : []),
];

export interface KeepGrants {
  readDirs: readonly string[];
  writeDirs: readonly string[];
  /** A hardware Keep's attestation interface: exactly the paths it reads and writes. */
  attestation?: { read: readonly string[]; write: readonly string[] };
}

/** The bundled Keep entry, built if missing or stale. */
export async function keepBundle(): Promise<string> {
  return bundle(KEEP_BUNDLE);
}

/** How a Keep process is started, beyond what it may read and write. */
export interface KeepLaunchOptions {
  /** RLIMIT_CPU: SIGXCPU (which ends the Keep) after this many seconds of CPU time, SIGKILL a second later. */
  cpuSeconds?: number;
  /** RLIMIT_NOFILE: the most descriptors the Keep process may hold. */
  descriptors?: number;
  /**
   * Run the Keep as this user and group, without supplementary groups, so that it cannot signal
   * or ptrace other Keeps (the keep manager gives each Keep its own). Needs root and setpriv.
   */
  user?: { uid: number; gid: number };
  /** More Node flags (heap sizes, …), placed before the bundle. */
  nodeFlags?: readonly string[];
  /** The Keep bundle to run instead of the cached one (e.g. a copy other users may read). */
  bundle?: string;
}

export class KeepLaunchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeepLaunchError';
  }
}

/**
 * argv that starts a Keep: prlimit (kernel limits), then setpriv (its own user if asked, and
 * it dies with its host, even on SIGKILL; setpriv sets the death signal after changing user,
 * which would clear it), then node.
 */
export async function keepCommand(grants: KeepGrants, options: KeepLaunchOptions = {}): Promise<{ command: string; args: string[] }> {
  return commandFor(options.bundle ?? (await keepBundle()), grants, options);
}

/**
 * keepCommand with default options and without building or checking: the bundle the cache's index
 * names (undefined if none), and `isCurrent`, which compares its sources' stamps. Checking costs a
 * stat per source (milliseconds), so a caller in a hurry starts the Keep first and checks after.
 */
export function indexedKeepCommand(grants: KeepGrants): { command: string; args: string[]; isCurrent: () => boolean } | undefined {
  const index = indexedBundle(KEEP_BUNDLE);
  return index ? { ...commandFor(index.file, grants, {}), isCurrent: () => index.isCurrent() } : undefined;
}

/** How a Keep process is spawned: no stdin or stdout, stderr (diagnostics) and fd 3 (the sallyport) piped, an empty environment. */
export const KEEP_SPAWN_OPTIONS = { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], env: {}, windowsHide: true } as const;

/**
 * Starts a Keep process (KEEP_SPAWN_OPTIONS). With the launcher's spare pipes (the first Keep of a
 * run bin/enarx started), the sallyport is those two pipes instead of a socket pair: the Keep's
 * ends become its fds 3 and 4 (as for a Keep bin/enarx starts itself) and are closed here, and
 * `stdio[3]` is the host's pair of ends, read into reused buffers (pipes.ts pipePair).
 */
export function spawnKeep(command: { command: string; args: string[] }): ChildProcess {
  // A launcher's Keep not taken by now never will be; the shell launcher's pipes are not
  // close-on-exec, and must not reach the new Keep.
  takeLauncherKeep()?.discard();
  beforeFirstSpawn();
  // node:child_process only now: loading it costs milliseconds, and a run that adopts the Keep
  // bin/enarx started never spawns one.
  const { spawn } = process.getBuiltinModule('node:child_process');
  const pipes = takeSparePipes();
  if (!pipes) return spawn(command.command, command.args, { ...KEEP_SPAWN_OPTIONS, stdio: [...KEEP_SPAWN_OPTIONS.stdio] });
  const { closeSync } = process.getBuiltinModule('node:fs');
  let child: ChildProcess;
  try {
    child = spawn(command.command, command.args, { ...KEEP_SPAWN_OPTIONS, stdio: ['ignore', 'ignore', 'pipe', pipes.toKeep.read, pipes.fromKeep.write] });
  } catch (err) {
    closeSync(pipes.toKeep.write);
    closeSync(pipes.fromKeep.read);
    throw err;
  } finally {
    // The Keep's ends are its own now (or nobody's): the host holds only its two.
    closeSync(pipes.toKeep.read);
    closeSync(pipes.fromKeep.write);
  }
  // The host writes its frames straight to the descriptor while nothing is queued (endpoint.ts).
  (child.stdio as unknown[])[3] = { ...pipePair(pipes.fromKeep.read, pipes.toKeep.write, SALLYPORT_READ_BYTES), outputFd: pipes.toKeep.write };
  return child;
}

/** The two pipes bin/enarx made for the sallyport of the Keep the run starts itself: descriptors of this process, close-on-exec. */
interface SparePipes {
  toKeep: { read: number; write: number };
  fromKeep: { read: number; write: number };
}

/** The launcher's spare pipes (bin/enarx.js takeSparePipes), handed out once; undefined if there are none. */
function takeSparePipes(): SparePipes | undefined {
  return takeHandedOver<SparePipes>(Symbol.for('enarx.launcher-pipes'));
}

/** What bin/enarx.js left for the run under `key` (a global symbol), taken once: later calls get undefined. */
function takeHandedOver<T>(key: symbol): T | undefined {
  const g = globalThis as { [k: symbol]: T | undefined };
  const value = g[key];
  delete g[key];
  return value;
}

/**
 * A Keep a launcher started for this run, before it loaded a module: bin/enarx.js spawns `child`;
 * bin/enarx (the shell launcher) started process `shell` before this Node, with its pipes on fds
 * 3 to 5 (adopted.ts). `options` are its spawn options; `discard` kills it (and closes its pipes).
 */
export interface LauncherKeep {
  child?: ChildProcess;
  shell?: number;
  command: string;
  args: string[];
  options: unknown;
  failed: boolean;
  discard(): void;
}

const LAUNCHER_KEEP = Symbol.for('enarx.launcher-keep');
const BEFORE_SPAWN = Symbol.for('enarx.before-spawn');

/**
 * Runs, once, what the launcher left to do before this process starts another: bin/enarx.js closes
 * the descriptors it inherited without close-on-exec then (a Keep would get them, and its
 * permission model checks paths, not descriptors), not at start-up.
 */
function beforeFirstSpawn(): void {
  takeHandedOver<() => void>(BEFORE_SPAWN)?.();
}

/** The Keep a launcher started, handed over once; undefined if it started none. */
export function takeLauncherKeep(): LauncherKeep | undefined {
  return takeHandedOver<LauncherKeep>(LAUNCHER_KEEP);
}

/**
 * Where the host leaves the command of a Keep without directory grants, for bin/enarx.js to start
 * one before it loads any module (see prestart.ts), and the same argv NUL-separated for bin/enarx
 * (LAUNCHER_KEEP_ARGV_FILE), which starts it before the host's Node. They sit with the Keep's
 * bundle, which the host runs anyway: whoever can write one can write the other.
 */
export const LAUNCHER_KEEP_FILE = join(KEEP_BUNDLE.cache, 'launcher-keep.json');
export const LAUNCHER_KEEP_ARGV_FILE = join(KEEP_BUNDLE.cache, 'launcher-keep.argv');

/**
 * A granted directory as the Keep works in it: the directory a symlinked path leads to, since the
 * Keep's WASI layer works below the real path of each preopen (as the nil Keep does) and the
 * permission model compares path strings. The host sends the Keep this path, never the named one.
 * A missing directory stays as named (the run then reports it).
 */
export function grantedDir(dir: string): string {
  const named = resolve(dir);
  try {
    return realpathSync(named);
  } catch {
    return named;
  }
}

/**
 * Node 26's permission model denies a granted directory itself (not what lies below it) when
 * another granted directory's path extends its name, as /data and /data2 do: its radix tree then
 * has no end node for /data. The Keep needs its preopens themselves (to resolve, list and stat
 * them), so such a pair is refused with what to do instead.
 */
function refuseSiblingPrefixes(dirs: readonly string[]): void {
  for (const a of dirs) {
    for (const b of dirs) {
      if (b.length > a.length && b.startsWith(a) && b[a.length] !== '/') {
        throw new Error(`the process Keep cannot be granted both ${a} and ${b}: Node's permission model then refuses ${a} itself (one directory's name extends the other's); rename one of them, or use --backend nil`);
      }
    }
  }
}

function commandFor(bundle: string, grants: KeepGrants, options: KeepLaunchOptions): { command: string; args: string[] } {
  const readDirs = [...new Set(grants.readDirs.map(grantedDir))];
  const writeDirs = [...new Set(grants.writeDirs.map(grantedDir))];
  refuseSiblingPrefixes([dirname(bundle), ...readDirs]);
  const node = [
    '--permission',
    `--allow-fs-read=${dirname(bundle)}`,
    ...readDirs.map((d) => `--allow-fs-read=${d}`),
    ...writeDirs.map((d) => `--allow-fs-write=${d}`),
    ...(grants.attestation?.read ?? []).map((p) => `--allow-fs-read=${resolve(p)}`),
    ...(grants.attestation?.write ?? []).map((p) => `--allow-fs-write=${resolve(p)}`),
    // JavaScript optimises on the main thread: a background Maglev job that needs a GC while the
    // process exits deadlocks Node's shutdown (nodejs/node#54918), and a Keep must always exit.
    // Background baseline (Sparkplug) compiles hang the same way.
    '--no-concurrent-recompilation',
    '--no-concurrent-sparkplug',
    // Young-generation GC on the main thread only. The first time parallel scavenger threads
    // contend a lock, Abseil (under V8's platform) measures the CPU clock by sleeping 1+2 ms, and
    // the Keep's first scavenge waits for it; a Keep's heap is small (wasm memory lies outside it).
    // Not a code-generation flag: V8 still takes Node's code cache for built-ins.
    '--no-parallel-scavenge',
    // node:sqlite opens files the permission model does not check (Node 26); node:ffi is refused by
    // it but need not exist either. The Keep uses neither. Not V8 flags: the code cache stays valid.
    '--no-experimental-sqlite',
    '--no-experimental-ffi',
    '--disable-warning=ExperimentalWarning',
    '--disable-warning=SecurityWarning',
    ...(options.nodeFlags ?? []),
    bundle,
  ];
  const argv: string[] = [];
  if (options.cpuSeconds !== undefined || options.descriptors !== undefined) {
    if (!PRLIMIT) throw new KeepLaunchError('Keep CPU and descriptor limits need prlimit: install util-linux');
    argv.push(PRLIMIT);
    if (options.cpuSeconds !== undefined) argv.push(`--cpu=${options.cpuSeconds}:${options.cpuSeconds + 1}`);
    if (options.descriptors !== undefined) argv.push(`--nofile=${options.descriptors}:${options.descriptors}`);
    argv.push('--');
  }
  if (options.user && !SETPRIV) throw new KeepLaunchError('running a Keep as its own user needs setpriv: install util-linux');
  if (SETPRIV) {
    argv.push(SETPRIV);
    if (options.user) argv.push(`--reuid=${options.user.uid}`, `--regid=${options.user.gid}`, '--clear-groups');
    argv.push(...SETPRIV_WALLS, '--pdeathsig', 'KILL', '--');
  }
  argv.push(process.execPath, ...node);
  return { command: argv[0]!, args: argv.slice(1) };
}

/** True when the Keep is bound to die with its host by the kernel (not only by its pipe closing). */
export const diesWithHost = SETPRIV !== undefined;
