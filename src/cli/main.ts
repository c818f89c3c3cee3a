import { Command, CommanderError } from 'commander';
import { EnarxError, exitCodeOf, formatError } from './errors.ts';
import { setLogLevel } from './output.ts';

/**
 * Each top-level command lives in its own module, imported only when it is used,
 * so that `enarx run` does not pay for loading the Steward or the registry.
 */
const COMMANDS: Record<string, { summary: string; load: () => Promise<{ register(program: Command): void }> }> = {
  run: { summary: 'run a WebAssembly module in a Keep', load: () => import('./commands/run.ts') },
  deploy: { summary: 'deploy a package into a Keep that attests first', load: () => import('./commands/deploy.ts') },
  config: { summary: 'Enarx.toml helpers', load: () => import('./commands/config.ts') },
  platform: { summary: 'inspect this platform and its collateral', load: () => import('./commands/platform.ts') },
  attest: { summary: 'decode and verify attestation evidence', load: () => import('./commands/attest.ts') },
  'update-cache': { summary: 'refresh cached attestation collateral', load: () => import('./commands/update-cache.ts') },
  steward: { summary: 'the attestation CA', load: () => import('./commands/steward.ts') },
  drawbridge: { summary: 'the package registry server', load: () => import('./commands/drawbridge.ts') },
  user: { summary: 'registry user accounts', load: () => import('./commands/user.ts') },
  repo: { summary: 'registry repositories', load: () => import('./commands/repo.ts') },
  package: { summary: 'publish and fetch packages', load: () => import('./commands/package.ts') },
  key: { summary: 'package signing keys', load: () => import('./commands/key.ts') },
  keepmgr: { summary: 'the keep manager daemon', load: () => import('./commands/keepmgr.ts') },
  keep: { summary: 'manage Keeps through a keep manager', load: () => import('./commands/keep.ts') },
};

export const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command('enarx')
    .description('Run WebAssembly workloads in attested Keeps')
    .version(VERSION, '-V, --version')
    .option('--log-level <level>', 'log to stderr at this level: error, warn, info, debug, trace')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      // Commander's own errors (unknown command or option, missing argument) read like ours: one line, what to do next.
      outputError: (s, write) => {
        const [message = '', suggestion] = s.replace(/^error: /, '').trim().split(/\s*\n\s*/);
        const hint = suggestion?.replace(/^\((.*)\)$/, '$1').toLowerCase() ?? "run 'enarx --help' for usage";
        write(`enarx: ${message} (${hint})\n`);
      },
    });
  // The action's command: `enarx run --log-level info` puts the option on the subcommand.
  program.hook('preAction', (_program, action) => {
    const level = action.optsWithGlobals().logLevel as string | undefined;
    if (level) setLogLevel(level);
  });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  const first = argv.find((a) => !a.startsWith('-'));
  // A reader that stops early (`enarx … --help | head`, `--json | head -c`) is not an error: end
  // quietly, as Unix tools do, instead of with Node's unhandled 'error' trace. Not for run and
  // deploy, whose guest's output is relayed: the guest sees EPIPE and decides.
  if (first !== 'run' && first !== 'deploy') {
    for (const stream of [process.stdout, process.stderr]) {
      stream.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE') throw err;
        process.exit(process.exitCode ?? 0);
      });
    }
  }
  const wanted = first && Object.hasOwn(COMMANDS, first) ? [first] : Object.keys(COMMANDS);
  try {
    for (const name of wanted) {
      const entry = COMMANDS[name];
      if (!entry) continue;
      const mod = await entry.load();
      mod.register(program);
    }
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    // A command that failed may have started things that keep the event loop alive (a server's
    // warm pool, an open socket): the error ends the process. stderr is synchronous here.
    const code = handleError(err);
    if (code !== 0) process.exit(code);
    process.exitCode = code;
  }
}

function handleError(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
    // A command group without its subcommand (or enarx alone) printed its help on stderr: a usage error.
    if (err.code === 'commander.help') return 2;
    // Commander has already printed its message; usage errors exit 2.
    return 2;
  }
  process.stderr.write(`${formatError(err)}\n`);
  if (!(err instanceof EnarxError) && err instanceof Error && process.env.ENARX_DEBUG) {
    process.stderr.write(`${err.stack}\n`);
  }
  return exitCodeOf(err);
}
