// Static imports: this module is the entry of the host's bundle (load.ts), which loads as one file.
import { runCommand, type RunFlags } from './run.ts';
import { EnarxError, exitCodeOf, formatError } from '../errors.ts';
import { log, setLogLevel } from '../output.ts';
import { discardPrestarted, prestartKeep } from '../../keep/process/prestart.ts';

/**
 * `enarx run` without loading the command-line framework: start-up is most of a short
 * workload's wall time, and commander alone costs more than running hello.wasm. This parser
 * accepts exactly the grammar of src/cli/commands/run.ts; anything else (help, an unknown
 * flag, a missing value) returns undefined and the regular parser handles it, errors included.
 */
export function parseRunArgs(argv: readonly string[]): { module: string; args: string[]; flags: RunFlags; logLevel?: string } | undefined {
  const flags: RunFlags = { dir: [], env: [] };
  let logLevel: string | undefined;
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (i + 1 < argv.length) value = argv[++i];
    if (value === undefined) return undefined;
    switch (name) {
      case '--backend': flags.backend = value; break;
      case '--wasmcfgfile': flags.wasmcfgfile = value; break;
      case '--dir': flags.dir.push(value); break;
      case '--env': flags.env.push(value); break;
      case '--log-level': logLevel = value; break;
      case '--memory-limit': flags.memoryLimit = value; break;
      case '--rss-limit': flags.rssLimit = value; break;
      case '--wall-time-limit': flags.wallTimeLimit = value; break;
      case '--descriptor-limit': flags.descriptorLimit = value; break;
      default: return undefined;
    }
  }
  const module = argv[i];
  if (module === undefined) return undefined;
  return { module, args: argv.slice(i + 1), flags, ...(logLevel === undefined ? {} : { logLevel }) };
}

/** Runs `enarx run ARGV` if the fast parser accepts it; false means "use the regular CLI". */
export async function runFast(argv: readonly string[]): Promise<boolean> {
  const parsed = parseRunArgs(argv);
  if (!parsed) return false;
  // The Keep first: the rest of the run (reading the module, the plan, the backend) goes on while
  // it boots. If it cannot start early, the run starts it the regular way (and reports why, if it
  // cannot at all).
  let early: ReturnType<typeof prestartKeep>;
  try {
    early = prestart(parsed.flags);
  } catch {
    early = undefined;
  }
  let code: number;
  try {
    if (parsed.logLevel) {
      try {
        setLogLevel(parsed.logLevel);
      } catch (err) {
        throw new EnarxError((err as Error).message, { exitCode: 2 });
      }
    }
    if (early) log('debug', `the Keep process was started early, by the ${early}`);
    code = await runCommand(parsed.module, parsed.args, parsed.flags);
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    if (!(err instanceof EnarxError) && err instanceof Error && process.env.ENARX_DEBUG) process.stderr.write(`${err.stack}\n`);
    code = exitCodeOf(err);
  }
  discardPrestarted();
  await flushed(process.stdout);
  await flushed(process.stderr);
  process.exit(code);
}

/**
 * Starts the process Keep before the run does anything else, when the run will use it and its grants
 * follow from the flags alone (no Enarx.toml to parse); runProcessKeep takes it, or discards it
 * if its grants differ.
 */
function prestart(flags: RunFlags): ReturnType<typeof prestartKeep> {
  const backend = flags.backend ?? (process.env.ENARX_BACKEND || undefined);
  if ((backend !== undefined && backend !== 'process') || flags.wasmcfgfile !== undefined || process.env.ENARX_WASMCFGFILE) return undefined;
  // --dir HOST or HOST::GUEST: HOST is granted read and write (an invalid value fails later, as usual).
  const dirs = flags.dir.map((d) => (d.includes('::') ? d.slice(0, d.indexOf('::')) : d));
  if (dirs.some((d) => d === '')) return undefined;
  return prestartKeep({ readDirs: dirs, writeDirs: dirs });
}

/**
 * Resolves once the stream's queued writes are done: process.exit() drops what a pipe has not taken
 * yet (the process Keep relays the guest's output through process.stdout, and `enarx run x | wc`
 * lost its last 64 KiB chunks under load). An empty write's callback runs after the writes before it.
 */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.writableLength === 0 || stream.destroyed || !stream.writable) return Promise.resolve();
  return new Promise((resolve) => stream.write('', () => resolve()));
}
