import type { Command } from 'commander';
import type { RunFlags } from '../run/run.ts';
import { KEEP_COLLATERAL_HELP, keepCollateralFlags } from './platform-collateral.ts';

const collect = (value: string, previous: string[]) => [...previous, value];

export function register(program: Command): void {
  // Everything after MODULE belongs to the guest, flags included.
  program.enablePositionalOptions();
  const cmd = program
    .command('run')
    .description('run a WebAssembly (WASI preview1) module in a Keep')
    .usage('[--backend B] [--wasmcfgfile FILE] [--dir HOST[::GUEST]]... [--env K=V]... MODULE [ARGS...]')
    .option('--backend <name>', 'Keep backend (default: strongest available; env ENARX_BACKEND)')
    .option('--wasmcfgfile <file>', 'Enarx.toml to use (env ENARX_WASMCFGFILE); never read implicitly')
    .option('--dir <host[::guest]>', 'preopen a host directory, at GUEST (default: HOST as given)', collect, [])
    .option('--env <name[=value]>', 'set a guest environment variable (NAME alone copies the host value)', collect, [])
    .option('--memory-limit <size>', 'cap the guest linear memory, e.g. 64MiB (Enarx.toml [limits] memory)')
    .option('--rss-limit <size>', 'kill the Keep past this resident size, e.g. 512MiB (process Keep; [limits] rss)')
    .option('--wall-time-limit <duration>', 'stop the Keep after this long, e.g. 30s or 500ms ([limits] wall-time)')
    .option('--descriptor-limit <n>', 'most descriptors the guest may hold open ([limits] descriptors)')
    .option('--steward <url>', 'get the Keep\'s certificate from this Steward (overrides Enarx.toml steward; https, or http on loopback)')
    .option('--software-evidence <dir>', 'attest with software SNP evidence signed by a test root (enarx platform test-root create); development only')
    .option('--log-level <level>', 'log to stderr at this level: error, warn, info, debug, trace')
    .addHelpText('after', KEEP_COLLATERAL_HELP);
  keepCollateralFlags(cmd);
  cmd
    .argument('<module>', 'the .wasm file')
    .argument('[args...]', 'arguments for the guest, passed verbatim')
    .passThroughOptions()
    .action(async (module: string, args: string[], options: RunFlags) => {
      const { runCommand } = await import('../run/run.ts');
      const code = await runCommand(module, args, options);
      // The guest is done: nothing of enarx's is left to finish (its writes are synchronous), and
      // a stdin the guest stopped reading must not keep the process alive.
      process.exit(code);
    });
}

