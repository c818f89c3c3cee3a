import type { Command } from 'commander';
import { EnarxError, UsageError } from '../errors.ts';
import { log, printJson } from '../output.ts';

const DEFAULT_STORE = '.drawbridge';

function parseAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new UsageError(`--addr '${addr}' is not HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8443, 0.0.0.0:0)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function parseDuration(value: string, flag: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(value);
  if (!m) throw new UsageError(`${flag} '${value}' is not a duration such as 90s, 30m, 12h or 7d`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}

function parseSize(value: string, flag: string): number {
  const m = /^(\d+)(k|m|g)?i?b?$/i.exec(value);
  if (!m) throw new UsageError(`${flag} '${value}' is not a size such as 512M or 2G`);
  return Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g'];
}

async function readPem(path: string, flag: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new EnarxError(`cannot read ${flag} ${path}: ${(err as Error).message}`, { hint: `check the path given to ${flag}` });
  }
}

interface ServeOptions {
  addr: string;
  store: string;
  cert?: string;
  key?: string;
  ca?: string;
  oidcIssuer?: string;
  oidcAudience?: string;
  pendingTtl: string;
  maxFileSize: string;
  json?: boolean;
}

async function serve(options: ServeOptions): Promise<void> {
  const { host, port } = parseAddr(options.addr);
  if (Boolean(options.cert) !== Boolean(options.key)) throw new UsageError('--cert and --key go together');
  if (Boolean(options.oidcIssuer) !== Boolean(options.oidcAudience)) throw new UsageError('--oidc-issuer and --oidc-audience go together');
  const pendingTtlMs = parseDuration(options.pendingTtl, '--pending-ttl') * 1000;
  const maxNodeBytes = parseSize(options.maxFileSize, '--max-file-size');
  const { resolve } = await import('node:path');
  const db = await import('../../drawbridge/index.ts');
  const storeDir = resolve(options.store);

  let tls: { cert: string; key: string; clientCa?: string };
  let trustHint: string | undefined;
  if (options.cert && options.key) {
    tls = { cert: await readPem(options.cert, '--cert'), key: await readPem(options.key, '--key') };
  } else {
    const local = await db.ensureLocalTls(storeDir, host === '0.0.0.0' || host === '::' ? [] : [host]);
    tls = { cert: local.certPem, key: local.keyPem };
    trustHint = local.caPath;
  }
  if (options.ca) tls.clientCa = await readPem(options.ca, '--ca');

  const { mkdir } = await import('node:fs/promises');
  await mkdir(storeDir, { recursive: true, mode: 0o700 });
  let store: import('../../drawbridge/index.ts').Store;
  try {
    store = db.Store.open(resolve(storeDir, 'data'), { pendingTtlMs });
  } catch (err) {
    throw new EnarxError(`cannot open the store in ${storeDir}: ${(err as Error).message}`, { hint: 'is another Drawbridge using it?' });
  }
  const verifiers: import('../../drawbridge/index.ts').TokenVerifier[] = [await db.LocalIssuer.open(storeDir)];
  if (options.oidcIssuer && options.oidcAudience) {
    try {
      verifiers.push(await db.discoverOidc(options.oidcIssuer, options.oidcAudience));
    } catch (err) {
      throw new EnarxError((err as Error).message, { hint: 'check --oidc-issuer; the server must reach its discovery document at start' });
    }
  }
  let running: Awaited<ReturnType<typeof db.startDrawbridge>>;
  try {
    running = await db.startDrawbridge({
      store,
      authenticator: new db.Authenticator(verifiers),
      tls,
      host,
      port,
      limits: { maxNodeBytes },
      log: (level, message) => log(level, message),
    });
  } catch (err) {
    throw new EnarxError(`cannot listen on ${options.addr}: ${(err as Error).message}`, { hint: 'pick another --addr' });
  }
  const info = {
    url: running.url,
    store: storeDir,
    tls: trustHint ? { localCa: trustHint } : { cert: options.cert },
    clientCa: options.ca ?? null,
    oidcIssuer: options.oidcIssuer ?? null,
    localIssuer: verifiers[0]?.issuer,
  };
  if (options.json) printJson(info);
  process.stderr.write(`drawbridge: listening on ${running.url} (store ${storeDir})\n`);
  if (trustHint) {
    process.stderr.write(
      `drawbridge: using a local CA; clients trust it with ENARX_CA_BUNDLE=${trustHint} (enarx) or --cacert ${trustHint} (curl)\n`,
    );
  }
  if (!options.oidcIssuer) process.stderr.write(`drawbridge: no --oidc-issuer; make tokens with 'enarx drawbridge token --store ${options.store} SUBJECT'\n`);
  await new Promise<void>((done) => {
    const stop = () => {
      running.close().then(() => {
        store.close();
        done();
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

async function token(subject: string, options: { store: string; scope?: string[]; ttl: string; json?: boolean }): Promise<void> {
  const { resolve } = await import('node:path');
  const { existsSync } = await import('node:fs');
  const db = await import('../../drawbridge/index.ts');
  const storeDir = resolve(options.store);
  if (!existsSync(db.LocalIssuer.keyPath(storeDir))) {
    throw new EnarxError(`no Drawbridge token key in ${storeDir}`, { hint: `start 'enarx drawbridge serve --store ${options.store}' once, or pass the --store it uses` });
  }
  const scopes = options.scope ?? db.ALL_SCOPES;
  for (const s of scopes) {
    if (!/^(read|write|manage):drawbridge_(users|repositories|tags)$/.test(s)) {
      throw new UsageError(`unknown scope '${s}' (use <read|write|manage>:<drawbridge_users|drawbridge_repositories|drawbridge_tags>)`);
    }
  }
  if (subject.trim() === '') throw new UsageError('the subject must not be empty');
  const issuer = await db.LocalIssuer.open(storeDir, { create: false });
  const ttlSeconds = parseDuration(options.ttl, '--ttl');
  const jwt = await issuer.issue({ subject, scopes, ttlSeconds });
  if (options.json) printJson({ token: jwt, subject, scopes, issuer: issuer.issuer, expiresAt: new Date(Date.now() + ttlSeconds * 1000).toISOString() });
  else process.stdout.write(`${jwt}\n`);
}

export function register(program: Command): void {
  const cmd = program.command('drawbridge').description('the package registry server (API-compatible with Enarx Drawbridge)');
  cmd
    .command('serve')
    .description('serve the registry over HTTPS')
    .option('--addr <host:port>', 'address to listen on', '0.0.0.0:8080')
    .option('--store <dir>', 'data directory (blobs, index, local CA, token key)', DEFAULT_STORE)
    .option('--cert <pem>', 'server certificate chain (PEM); without it a local CA and certificate are made in the store')
    .option('--key <pem>', 'server private key (PEM)')
    .option('--ca <pem>', 'CA (e.g. the Steward\'s) whose client certificates may read private repositories')
    .option('--oidc-issuer <url>', 'OpenID Connect issuer whose bearer tokens are accepted')
    .option('--oidc-audience <aud>', 'audience those tokens must carry')
    .option('--pending-ttl <duration>', 'how long an unfinished publish is kept', '24h')
    .option('--max-file-size <size>', 'largest file in a package', '1G')
    .option('--json', 'print the server details as one JSON document on stdout once listening')
    .action((opts: ServeOptions) => serve(opts));
  cmd
    .command('token')
    .description("issue a bearer token signed by this server's own key (for local use)")
    .argument('<subject>', "the token's subject: the user record's \"subject\"")
    .option('--store <dir>', 'the data directory of the server', DEFAULT_STORE)
    .option('--scope <scope...>', 'scopes to grant (default: manage on users, repositories and tags)')
    .option('--ttl <duration>', 'lifetime', '1h')
    .option('--json', 'print one JSON document with the token and its claims')
    .action((subject: string, opts: { store: string; scope?: string[]; ttl: string; json?: boolean }) => token(subject, opts));
}
