import type { Command } from 'commander';
import { KEEP_COLLATERAL_HELP, keepCollateralFlags } from './platform-collateral.ts';

const collect = (value: string, previous: string[]) => [...previous, value];

export function register(program: Command): void {
  // Everything after TARGET belongs to the guest, flags included (as with enarx run).
  program.enablePositionalOptions();
  const cmd = program
    .command('deploy')
    .description('deploy a package into a Keep that attests first (docs/deploy.md)')
    .usage('[options] TARGET [ARGS...]   TARGET: host[:port]/user/repo:tag | tag URL | package DIR | .wasm file')
    .argument('<target>', 'host[:port]/user/repo:tag, https://host/api/v0.1.0/user/repo/_tag/TAG, a package directory, or a .wasm file')
    .argument('[args...]', 'arguments for the guest, passed verbatim');
  // A local Keep (the default).
  cmd
    .option('--backend <name>', 'Keep backend (default: process; env ENARX_BACKEND)')
    .option('--steward <url>', 'attest to this Steward first and run with its certificates (https, or http on loopback); with --keepmgr, sealed in the provisioning')
    .option('--software-evidence <dir>', 'attest with software SNP evidence signed by a test root (enarx platform test-root create); development only')
    .option('--drawbridge-ca <pem>', "trust this CA for the registry's server certificate, besides the system roots (env ENARX_CA_BUNDLE)")
    .option('--trust-key <file|kid>', 'trust this signer: a public JWK file, or a kid from trusted-keys.json (repeatable; trusted-keys.json is always trusted)', collect, [])
    .option('--allow-unsigned', 'accept an unsigned tag (its bytes are still verified against the tag entry)')
    .option('--env <name[=value]>', 'set a guest environment variable (NAME alone copies the host value)', collect, [])
    .option('--memory-limit <size>', 'cap the guest linear memory, e.g. 64MiB')
    .option('--rss-limit <size>', 'kill the Keep past this resident size, e.g. 512MiB')
    .option('--wall-time-limit <duration>', 'stop the Keep after this long, e.g. 30s')
    .option('--descriptor-limit <n>', 'most descriptors the guest may hold open');
  // Collateral: a local hardware Keep's host, and with --keepmgr the client's verifier, use them.
  keepCollateralFlags(cmd).addHelpText('after', `${KEEP_COLLATERAL_HELP}\nWith --keepmgr, the same flags say how this client obtains what the Keep's evidence lacks (--collateral-budget: per verification).`);
  // Through a keep manager instead.
  cmd
    .option('--keepmgr <url>', 'deploy through a keep manager: https://HOST:PORT or unix:/PATH (env ENARX_KEEPMGR)')
    .option('--token <token>', 'keep manager bearer token (env ENARX_KEEPMGR_TOKEN)')
    .option('--token-file <file>', 'read the bearer token from a file')
    .option('--ca <pem>', "trust this CA for the keep manager's certificate")
    .option('--client-cert <pem>', 'authenticate with this client certificate')
    .option('--client-key <pem>', "the client certificate's key")
    .option('--policy <file>', 'attestation policy (steward.toml-style [snp]/[sgx]/[tdx] sections)')
    .option('--trust-test-root <pem>', "trust this test root (a software keep manager's ARK) in addition to the vendors'")
    .option('--insecure-unattested', 'accept a Keep that offers no attestation: development only')
    .option('--stdin <file>', "provision this file as the workload's stdin ('-' reads ours)")
    .option('--session <file>', 'save the output key here, for enarx keep logs --session')
    .option('--memory <MiB>', 'memory limit of the Keep')
    .option('--cpu <seconds>', 'CPU-time limit of the Keep')
    .option('--fds <n>', 'descriptor limit of the Keep')
    .option('--keep', 'leave the Keep record (do not stop a Keep that is still running when output ends)')
    .option('--json', 'print one JSON document (what ran, its digest and signer, exit status, output) instead of progress')
    .passThroughOptions();
  cmd.action(async (target: string, args: string[], o: Record<string, unknown>) => {
    // Flags after TARGET are the guest's (as with enarx run): say so when one looks like ours.
    const ours = new Set(cmd.options.map((opt) => opt.long));
    const misplaced = args.filter((a) => ours.has(a.split('=')[0]));
    if (misplaced.length > 0) {
      process.stderr.write(`enarx: warning: ${misplaced.join(' ')} after ${target} ${misplaced.length > 1 ? 'go' : 'goes'} to the guest, not to enarx deploy (put enarx's flags before TARGET)\n`);
    }
    if (o.keepmgr || process.env.ENARX_KEEPMGR) {
      const { deployViaKeepmgr } = await import('../keepmgr-deploy.ts');
      process.exitCode = await deployViaKeepmgr(target, o);
      return;
    }
    const { deployCommand } = await import('../run/deploy.ts');
    const code = await deployCommand(target, args, o as unknown as import('../run/deploy.ts').DeployFlags);
    // As enarx run: the guest is done, and a stdin it stopped reading must not keep us alive.
    process.exit(code);
  });
}
