import type { Command } from 'commander';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { EnarxError, UsageError } from '../errors.ts';
import { log, printJson } from '../output.ts';
import { KEEP_COLLATERAL_HELP, type KeepCollateralFlags, keepCollateralFlags, keepCollateralSettings } from './platform-collateral.ts';

function defaultDataDir(): string {
  return join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'enarx', 'keepmgr');
}

function int(name: string, min: number, max: number) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`${name} must be an integer from ${min} to ${max}, not '${v}'`);
    return Number(v);
  };
}

function keepUsersFlag(v: string): { first: number; count: number } {
  const m = /^(\d+)-(\d+)$/.exec(v);
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1000 || last < first || last > 0xfffffffe) throw new UsageError(`--keep-users must be FIRST-LAST (1000 <= FIRST <= LAST < 4294967295) or off, not '${v}'`);
  return { first, count: last - first + 1 };
}

function stewardUrlFlag(v: string): string {
  if (!URL.canParse(v) || !/^https?:$/.test(new URL(v).protocol)) throw new UsageError(`--steward must be an http(s) URL, not '${v}'`);
  return v;
}

export function register(program: Command): void {
  const keepmgr = program.command('keepmgr').description('the keep manager daemon: runs many Keeps for remote clients');
  const serve = keepmgr.command('serve');
  serve
    .description('serve the keep manager API (HTTPS and a Unix socket) and its dashboard')
    .option('--data-dir <dir>', 'records, TLS material and tokens live here', defaultDataDir())
    .option('--listen <host:port>', 'HTTPS address (port 0: any free port)', '127.0.0.1:3030')
    .option('--no-tcp', 'serve only the Unix socket')
    .option('--socket <path>', 'Unix socket path (default DATA_DIR/keepmgr.sock)')
    .option('--tls-cert <pem>', 'server certificate (default: a CA and certificate made in DATA_DIR)')
    .option('--tls-key <pem>', 'server private key')
    .option('--san <name...>', 'extra names for the generated server certificate')
    .option('--client-ca <pem>', 'accept client certificates issued by these CAs')
    .option('--tokens <file>', "bearer tokens file, 'NAME TOKEN' per line (default DATA_DIR/tokens, made with an admin token)")
    .option('--pool <n>', 'warm pool: Keeps kept started and idle', int('--pool', 0, 256), 2)
    .option('--max-keeps <n>', 'live Keeps at most; more are refused with 503', int('--max-keeps', 1, 4096), 64)
    .option('--memory-budget <MiB>', "sum of live Keeps' memory limits at most", int('--memory-budget', 64, 1 << 24), 16384)
    .option('--memory <MiB>', 'default per-Keep memory (RSS) limit', int('--memory', 128, 1 << 20), 256)
    .option('--cpu <seconds>', 'default per-Keep CPU-time limit', int('--cpu', 1, 1 << 24), 300)
    .option('--fds <n>', 'default per-Keep descriptor limit', int('--fds', 32, 65536), 64)
    .option('--software-snp <dir>', 'Keeps sign SEV-SNP-format evidence with the test chain in DIR (made there when missing); clients must trust DIR/ark.pem explicitly')
    .option('--hardware', 'Keeps collect evidence from the confidential VM or enclave the daemon runs in (configfs-tsm, Gramine)')
    .option('--steward <url>', "Keeps get a certificate from this Steward before their workload runs (a client's deploy --steward overrides it)")
    .option('--keep-users <first-last|off>', 'uids (and gids) for Keeps, one each, so they cannot signal or trace each other (needs root; default 3000000-3065535 when root)')
    .option('--keep-listen-address <ip>', "where Keeps' listen files are bound, on ephemeral ports shown in each Keep's info", '127.0.0.1')
    .option('--json', 'print one JSON document (addresses, CA, tokens file, lost Keeps) once ready')
    .action(async (o: Record<string, unknown>) => {
      const { startDaemon } = await import('../../keepmgr/index.ts');
      const { VERSION } = await import('../main.ts');
      if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) throw new UsageError('--tls-cert and --tls-key go together');
      if (o.softwareSnp && o.hardware) throw new UsageError('--software-snp and --hardware exclude each other');
      const { isIP } = await import('node:net');
      if (!isIP(String(o.keepListenAddress))) throw new UsageError(`--keep-listen-address must be an IP address, not '${String(o.keepListenAddress)}'`);
      const collateral = keepCollateralSettings(o as KeepCollateralFlags);
      let daemon;
      try {
        daemon = await startDaemon({
          dataDir: String(o.dataDir),
          listen: o.tcp === false ? null : String(o.listen),
          socket: o.socket === undefined ? undefined : String(o.socket),
          tlsCert: o.tlsCert as string | undefined,
          tlsKey: o.tlsKey as string | undefined,
          san: o.san as string[] | undefined,
          clientCa: o.clientCa as string | undefined,
          tokensFile: o.tokens as string | undefined,
          softwareSnp: o.softwareSnp as string | undefined,
          evidence: o.hardware ? { kind: 'hardware' } : undefined,
          collateral,
          steward: o.steward === undefined ? null : stewardUrlFlag(String(o.steward)),
          keepListenAddress: String(o.keepListenAddress),
          ...(o.keepUsers === undefined ? {} : { keepUsers: o.keepUsers === 'off' ? null : keepUsersFlag(String(o.keepUsers)) }),
          poolSize: o.pool as number,
          maxKeeps: o.maxKeeps as number,
          memoryBudgetMiB: o.memoryBudget as number,
          defaults: { memoryMiB: o.memory as number, cpuSeconds: o.cpu as number, descriptors: o.fds as number },
          version: VERSION,
        });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EADDRINUSE') throw new EnarxError(`address ${String(o.listen)} is in use`, { hint: 'pick another with --listen HOST:PORT (port 0 picks a free one)' });
        if (e.code === 'EACCES' || e.code === 'ENOENT') throw new EnarxError(`cannot use ${e.path ?? String(o.dataDir)}: ${e.code}`, { hint: 'check --data-dir, --tokens and the TLS file paths' });
        throw new EnarxError(`the keep manager did not start: ${e.message}`);
      }
      if (daemon.isolation.users === 'shared') log('warn', `Keeps share one user: ${daemon.isolation.reason}`);
      if (daemon.uncleanRun) {
        log('warn', `the previous keep manager (pid ${daemon.uncleanRun.pid}, started ${daemon.uncleanRun.startedAt}) ended without shutting down; ${daemon.lost.length} Keep(s) lost`);
      }
      for (const r of daemon.lost) log('warn', `lost Keep ${r.id} (owner ${r.owner}): ${r.reason}`);
      if (o.json) {
        printJson({ url: daemon.url, socket: daemon.socketPath, ca: daemon.caPath, tokens: daemon.tokensFile, testRoot: daemon.testRootPath, pid: process.pid, lost: daemon.lost.map((r) => ({ id: r.id, owner: r.owner, reason: r.reason })) });
      } else {
        process.stderr.write(
          `keep manager ready\n  API:       ${daemon.url ?? '(no TCP)'}/api/v1\n  socket:    ${daemon.socketPath ?? '(none)'}\n  dashboard: ${daemon.url ?? '(no TCP)'}/#token=...\n  CA:        ${daemon.caPath}\n  tokens:    ${daemon.tokensFile}\n${daemon.testRootPath ? `  evidence:  software SNP under the TEST root ${daemon.testRootPath} (clients: --trust-test-root)\n` : '  evidence:  none (clients need --insecure-unattested; use --software-snp for test evidence)\n'}`,
        );
      }
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      log('info', 'stopping every Keep and shutting down');
      // Bounded: whatever is left when time is up dies with this process (the kernel kills Keeps whose host is gone).
      const deadline = new Promise<void>((r) => setTimeout(r, 10_000).unref());
      await Promise.race([daemon.close(), deadline]);
      process.exit(process.exitCode ?? 0);
    });
  keepCollateralFlags(serve).addHelpText('after', `${KEEP_COLLATERAL_HELP}\nHere: a --hardware daemon's Keeps, each CSR with a budget of its own.`);
}
