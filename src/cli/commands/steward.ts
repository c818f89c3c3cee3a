import type { Command } from 'commander';
import type { Cluster } from 'node:cluster';
import { EnarxError, UsageError } from '../errors.ts';
import { log, printJson } from '../output.ts';
import { collateralBudgetMs, type FetchCollateralFlags, fetchCollateralFlags, fetchCollateralOptions } from './platform-collateral.ts';

interface ServeFlags extends FetchCollateralFlags {
  addr: string;
  port: string;
  key?: string;
  crt?: string;
  host?: string;
  san: string[];
  config?: string;
  tlsCert?: string;
  tlsKey?: string;
  lifetime: string;
  trustTestRoot: string[];
  dataDir?: string;
  maxBody: string;
  workers: string;
  trustedProxy: string[];
  json?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** "90s", "30m", "24h", "7d" -> seconds. */
export function parseLifetime(text: string): number {
  const m = /^([1-9]\d*)(s|m|h|d)$/.exec(text.trim());
  if (!m) throw new UsageError(`invalid --lifetime '${text}'`, 'give a number and a unit: 90s, 30m, 24h or 7d');
  const seconds = Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as 's' | 'm' | 'h' | 'd'];
  if (seconds > 398 * 86_400) throw new UsageError(`--lifetime ${text} is too long`, 'Steward certificates are short-lived: at most 398 days');
  return seconds;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`invalid --port '${text}'`, 'give a port number from 0 to 65535 (0 picks a free one)');
  return port;
}

export function register(program: Command): void {
  const steward = program.command('steward').description('the attestation CA: issues certificates to Keeps whose evidence verifies');
  const serveCommand = steward
    .command('serve')
    .description('serve certificates to attested Keeps (wire-compatible with Enarx Steward)')
    .option('-a, --addr <address>', 'address to listen on (env ROCKET_ADDRESS)', process.env.ROCKET_ADDRESS ?? '127.0.0.1')
    .option('-p, --port <port>', 'port to listen on; 0 picks a free one (env ROCKET_PORT)', process.env.ROCKET_PORT ?? '3000')
    .option('-k, --key <file>', 'CA private key, PEM (env STEWARD_KEY)', process.env.STEWARD_KEY)
    .option('-c, --crt <file>', 'CA certificate, then its issuers, PEM or DER (env STEWARD_CRT); a self-signed one means debug mode', process.env.STEWARD_CRT)
    .option('--host <name>', 'common name of the CA created when no --key/--crt is given (env RENDER_EXTERNAL_HOSTNAME)', process.env.RENDER_EXTERNAL_HOSTNAME)
    .option('--san <name>', 'subject alternative name for every certificate: DNS:name, IP:addr, URI:uri or a bare name (repeatable; env STEWARD_SAN)', collect, process.env.STEWARD_SAN ? [process.env.STEWARD_SAN] : [])
    .option('--config <file>', 'attestation policy (steward.toml format, docs/policy.md)')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate chain (with --tls-key)')
    .option('--tls-key <file>', 'serve HTTPS with this PEM key (with --tls-cert)')
    .option('--lifetime <duration>', 'lifetime of issued certificates: 90s, 30m, 24h, 7d', '24h')
    .option('--trust-test-root <file>', 'also trust evidence chained to this local test root (PEM/DER); such certificates are marked (repeatable)', collect, [])
    .option('--data-dir <dir>', 'where the default CA lives (default $XDG_DATA_HOME/enarx/steward)')
    .option('--max-body <bytes>', 'largest request body accepted', String(1 << 20))
    .option('--workers <n>', 'Steward processes sharing the port (issuing is CPU-bound: one per core)', '1')
    .option('--trusted-proxy <address>', "a reverse proxy (IP address or CIDR range) whose X-Forwarded-For / Forwarded headers name the client, for the per-client collateral budget (repeatable)", collect, []);
  fetchCollateralFlags(serveCommand, "how long one CSR's collateral downloads may take, all together; then it is refused (503) unless its evidence verified without them")
    .option('--json', 'print one JSON document (url, mode, CA) on stdout once listening')
    .action(async (flags: ServeFlags) => serve(flags));
}

async function serve(flags: ServeFlags): Promise<void> {
  const { readFileSync } = await import('node:fs');
  const s = await import('../../steward/index.ts');
  const { parsePolicy, PolicyError } = await import('../../attestation/policy/index.ts');
  const { toPem } = await import('../../attestation/x509.ts');

  const port = parsePort(flags.port);
  const lifetimeSeconds = parseLifetime(flags.lifetime);
  const maxBodyBytes = Number(flags.maxBody);
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1024) throw new UsageError(`invalid --max-body '${flags.maxBody}'`, 'give a byte count of at least 1024');
  const workerCount = Number(flags.workers);
  if (!Number.isInteger(workerCount) || workerCount < 1 || workerCount > 64) throw new UsageError(`invalid --workers '${flags.workers}'`, 'give a number of processes from 1 to 64');
  if (Boolean(flags.key) !== Boolean(flags.crt)) throw new UsageError('--key and --crt go together', 'give both, or neither for the default CA');
  try {
    s.trustedProxies(flags.trustedProxy);
  } catch (err) {
    throw new UsageError(`--trusted-proxy: ${(err as Error).message}`);
  }
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) throw new UsageError('--tls-cert and --tls-key go together', 'give both for HTTPS, or neither for plain HTTP');
  let sans: ReturnType<typeof s.parseSubjectAltName>[];
  try {
    sans = flags.san.map(s.parseSubjectAltName);
  } catch (err) {
    throw new UsageError(`invalid --san: ${(err as Error).message}`);
  }
  const readText = (path: string, what: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new EnarxError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { hint: 'check the path' });
    }
  };
  let policy;
  if (flags.config) {
    try {
      policy = parsePolicy(readText(flags.config, 'the policy'));
    } catch (err) {
      if (err instanceof PolicyError) throw new EnarxError(`${flags.config}: ${err.message}`, { hint: 'see docs/policy.md for the format' });
      throw err;
    }
  }
  const { anchors: trustedTestRoots, intermediates: testRootCerts } = (await import('../test-roots.ts')).readTestRoots(flags.trustTestRoot);

  let ca: { key: CryptoKey; chain: Uint8Array[] };
  let caPath: string;
  try {
    if (flags.key && flags.crt) {
      ca = await s.loadCa(flags.key, flags.crt);
      caPath = flags.crt;
    } else {
      const dir = flags.dataDir ?? s.defaultDataDir();
      const created = await s.loadOrCreateDefaultCa(dir, flags.host ?? 'enarx steward (debug)');
      log(created.created ? 'warn' : 'info', `${created.created ? 'created' : 'using'} the Steward CA in ${dir} (key ${created.keyPath}, mode 0600)`);
      ca = created;
      caPath = created.crtPath;
    }
  } catch (err) {
    if (err instanceof s.CaError) throw new EnarxError(err.message, { hint: 'give a PEM key and certificate with --key/--crt, or no flags for the default CA' });
    throw err;
  }

  const collateral = flags.fetchCollateral ? await collateralSource(flags) : undefined;
  let steward;
  try {
    steward = await s.Steward.create({
      ...ca,
      verify: s.builtinVerifier(),
      ...(policy ? { policy } : {}),
      lifetimeSeconds,
      sans,
      trustedTestRoots,
      testRootCerts,
      ...(collateral ? { collateral: collateral.provider, warn: (m: string) => log('warn', m) } : {}),
    });
  } catch (err) {
    throw new EnarxError((err as Error).message, { hint: 'the CA certificate must be a CA (cA, keyCertSign) matching the key' });
  }
  const workers = Number(flags.workers);
  const cluster = (await import('node:cluster')).default;
  if (cluster.isWorker) {
    const running = await startListening(steward, flags, port, maxBodyBytes, readText, s.listen);
    process.send!({ ready: running.url });
    await stopOnSignal(running.close);
    process.disconnect?.(); // the IPC channel would keep this worker alive
    return;
  }
  let url: string;
  let stop: () => Promise<void>;
  if (workers > 1) {
    ({ url, stop } = await forkWorkers(cluster, workers));
  } else {
    const running = await startListening(steward, flags, port, maxBodyBytes, readText, s.listen);
    url = running.url;
    stop = running.close;
  }

  const fingerprint = await steward.caCertificate.sha256();
  // Handle signals before announcing readiness: a client may stop us as soon as it reads the URL.
  const stopped = stopOnSignal(async () => {
    process.stderr.write('enarx steward: stopping\n');
    await stop();
  });
  const say = (line: string) => process.stderr.write(`${line}\n`);
  if (steward.mode === 'debug') {
    say('enarx steward: DEBUG MODE (the CA certificate is self-signed): software (KVM) evidence is accepted, and every certificate is marked debug.');
  }
  if (trustedTestRoots.length) say(`enarx steward: trusting local test roots ${trustedTestRoots.map((r) => r.name).join(', ')}; such certificates are marked test-root.`);
  say(`enarx steward: ${steward.mode} mode, listening on ${url} (${flags.tlsCert ? 'HTTPS' : 'plain HTTP'}), certificates last ${flags.lifetime}`);
  say(`enarx steward: CA '${steward.caCertificate.subject.text}', SHA-256 ${fingerprint}`);
  say(`enarx steward: clients trust it with: curl --cacert ${caPath} ...  (or: Enarx.toml / Drawbridge --ca ${caPath})`);
  say(`enarx steward: request a certificate: curl --data-binary @keep.csr -H 'content-type: application/pkcs10' ${url} > chain.der`);
  if (workers > 1) say(`enarx steward: ${workers} processes share the port`);
  if (flags.trustedProxy.length > 0) say(`enarx steward: clients are named by the X-Forwarded-For / Forwarded headers of ${flags.trustedProxy.join(', ')} (--trusted-proxy)`);
  say(
    collateral
      ? `enarx steward: collateral that evidence lacks comes from ${collateral.description}`
      : 'enarx steward: --no-fetch-collateral: evidence must carry its own collateral (VCEK, CRLs, TCB info)',
  );
  if (flags.json) {
    printJson({ url: url, mode: steward.mode, ca: { path: caPath, sha256: fingerprint, pem: toPem('CERTIFICATE', steward.caCertificate.der) } });
  }

  await stopped;
}

/** The Steward's collateral source: the shared on-disk cache, refreshed from AMD KDS and Intel PCS unless offline. */
async function collateralSource(flags: ServeFlags) {
  const { collateralProvider } = await import('../../steward/collateral.ts');
  const options = fetchCollateralOptions(flags)!;
  const budgetMs = collateralBudgetMs(flags);
  const provider = collateralProvider(
    {
      ...options,
      onProgress: (e) => {
        if (e.type === 'start') log('info', `collateral: fetching ${e.url}${e.attempt > 0 ? ` (attempt ${e.attempt + 1})` : ''}`);
        else if (e.type === 'warning') log('warn', `collateral: ${e.message}`);
      },
    },
    { budgetMs },
  );
  const where = options.offline
    ? `the cache ${options.cacheDir} only (offline)`
    : `the cache ${options.cacheDir}, refreshed from AMD KDS and Intel PCS (${budgetMs / 1000} s in all per CSR)`;
  return { provider, description: where };
}

function stopOnSignal(stop: () => Promise<void>): Promise<void> {
  return new Promise<void>((resolve) => {
    const onSignal = () => stop().then(resolve, resolve);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}

async function startListening(
  steward: import('../../steward/index.ts').Steward,
  flags: ServeFlags,
  port: number,
  maxBodyBytes: number,
  readText: (path: string, what: string) => string,
  listen: typeof import('../../steward/index.ts').listen,
): Promise<import('../../steward/index.ts').RunningSteward> {
  try {
    return await listen(steward, {
      addr: flags.addr,
      port,
      maxBodyBytes,
      trustedProxies: flags.trustedProxy,
      ...(flags.tlsCert && flags.tlsKey ? { tls: { cert: readText(flags.tlsCert, 'the TLS certificate'), key: readText(flags.tlsKey, 'the TLS key') } } : {}),
      log: (level, message) => log(level, message),
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new EnarxError(`cannot listen on ${flags.addr}:${port}: ${code ?? (err as Error).message}`, {
      hint: code === 'EADDRINUSE' ? 'another process uses that port; pick another with --port' : 'check --addr and --port',
    });
  }
}

/**
 * Forks `count` Steward processes that share the listening socket (node:cluster) and restarts any
 * that dies unexpectedly. Each loads the same CA files; the primary only watches.
 */
async function forkWorkers(cluster: Cluster, count: number): Promise<{ url: string; stop: () => Promise<void> }> {
  let stopping = false;
  const fork = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const worker = cluster.fork();
      worker.once('message', (m: { ready?: string }) => (m.ready ? resolve(m.ready) : undefined));
      worker.once('exit', (code: number | null) => {
        if (stopping) return;
        reject(new EnarxError(`a Steward worker exited with status ${code} before listening`, { hint: 'run with --workers 1 to see its error' }));
        log('error', `a Steward worker exited (status ${code}); starting another`);
        setTimeout(() => {
          if (!stopping) void fork().catch(() => {});
        }, 1000);
      });
    });
  const stop = async () => {
    stopping = true;
      await Promise.all(
        Object.values(cluster.workers ?? {}).map(
          (w) =>
            new Promise<void>((resolve) => {
              if (!w || w.isDead()) return resolve();
              w.once('exit', () => resolve());
              w.kill('SIGTERM');
            }),
        ),
      );
  };
  try {
    const urls = await Promise.all(Array.from({ length: count }, fork));
    return { url: urls[0]!, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
