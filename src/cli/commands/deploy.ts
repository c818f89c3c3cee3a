import type { Command } from 'commander';
import { UsageError } from '../errors.ts';

export function register(program: Command): void {
  const cmd = program
    .command('deploy')
    .description('deploy a package into a Keep that attests first')
    .argument('<package>', 'a .wasm file, or a directory holding main.wasm and Enarx.toml');
  // Options of the keep-manager path; the registry path joins them here when it lands.
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
    .option('--json', 'print one JSON document (Keep, verdict, exit) instead of progress');
  cmd.action(async (pkg: string, o: Record<string, unknown>) => {
    if (!o.keepmgr && !process.env.ENARX_KEEPMGR) {
      throw new UsageError('enarx deploy needs --keepmgr URL for now', 'deploying from a Drawbridge registry is not implemented yet; run a local module with enarx run');
    }
    const { deployViaKeepmgr } = await import('../keepmgr-deploy.ts');
    process.exitCode = await deployViaKeepmgr(pkg, o);
  });
}
