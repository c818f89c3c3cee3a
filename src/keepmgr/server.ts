/**
 * `enarx keepmgr serve`: the daemon. One API handler behind HTTPS (TCP) and a Unix socket.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { chmodSync, existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { KeepManager } from './manager.ts';
import { KeepStore, type KeepRecord } from './store.ts';
import { apiHandler, Auth } from './api.ts';
import { ensureTls } from './tls.ts';
import type { KeepLimits } from './keep/host.ts';
import { evidenceSource, type EvidenceConfig } from './keep/evidence.ts';
import { keepBundle } from '../keep/process/launch.ts';
import { keepIsolation, shareBundle, type Isolation, type KeepUserRange } from './users.ts';

export interface DaemonOptions {
  dataDir: string;
  /** How a --hardware daemon's host gets the collateral for its Keeps' CSRs (default: the environment's settings). */
  collateral?: import('../collateral/keep.ts').KeepCollateralSettings;
  /** host:port for HTTPS; port 0 picks a free port. Null disables TCP. */
  listen?: string | null;
  /** Unix socket path; default DATA_DIR/keepmgr.sock. Null disables it. */
  socket?: string | null;
  tlsCert?: string;
  tlsKey?: string;
  /** Extra subject alternative names for a generated server certificate. */
  san?: string[];
  /** PEM bundle of CAs whose client certificates authenticate API clients. */
  clientCa?: string;
  /** Tokens file (`NAME TOKEN` lines). Default: DATA_DIR/tokens, created with an admin token. */
  tokensFile?: string;
  evidence?: EvidenceConfig;
  /** Directory of a software SEV-SNP test chain (made there when missing): Keeps then sign SNP-format evidence with it. */
  softwareSnp?: string;
  /** The Steward every Keep gets a certificate from, unless its client names one. */
  steward?: string | null;
  /** Where Keeps' listen files are bound (ports are ephemeral); default 127.0.0.1. */
  keepListenAddress?: string;
  /** Uids (and gids) for Keeps, one each; default DEFAULT_KEEP_USERS when the daemon is root; null: Keeps share the daemon's user. */
  keepUsers?: KeepUserRange | null;
  poolSize?: number;
  maxKeeps?: number;
  memoryBudgetMiB?: number;
  defaults?: Partial<KeepLimits>;
  maxLimits?: Partial<KeepLimits>;
  version?: string;
}

export interface Daemon {
  url: string | null;
  socketPath: string | null;
  caPath: string;
  tokensFile: string;
  /** With softwareSnp: the test root (ARK) clients must trust explicitly. */
  testRootPath: string | null;
  /** Whether Keeps run as users of their own; when not, why (the CLI warns). */
  isolation: Isolation;
  manager: KeepManager;
  /** Keeps that a previous daemon instance lost by ending uncleanly. */
  lost: KeepRecord[];
  uncleanRun: { pid: number; startedAt: string } | null;
  close(): Promise<void>;
}

export const DEFAULT_LIMITS: KeepLimits = { memoryMiB: 256, cpuSeconds: 300, descriptors: 64 };
export const MAX_LIMITS: KeepLimits = { memoryMiB: 4096, cpuSeconds: 86_400, descriptors: 1024 };

export async function startDaemon(o: DaemonOptions): Promise<Daemon> {
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const tokensFile = o.tokensFile ?? join(o.dataDir, 'tokens');
  if (!o.tokensFile && !existsSync(tokensFile)) {
    writeFileSync(tokensFile, `# NAME TOKEN, one per line; 'admin' sees every Keep\nadmin ${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
  }
  const auth = Auth.parse(readFileSync(tokensFile, 'utf8'));
  let evidence = o.evidence ?? { kind: 'none' as const };
  let testRootPath: string | null = null;
  if (o.softwareSnp) {
    const { loadOrCreateSoftwareSnp } = await import('./software-snp.ts');
    const sw = await loadOrCreateSoftwareSnp(o.softwareSnp);
    evidence = sw.config;
    testRootPath = sw.arkPath;
  }
  const isolation = keepIsolation(o.keepUsers);
  // Keeps under their own users must be able to read the bundle wherever the cache sits.
  const shared = isolation.users === 'per-keep' ? shareBundle(await keepBundle()) : { file: await keepBundle(), release: () => {} };
  const bundle = shared.file;
  const { log } = await import('../cli/output.ts');
  const sourceOptions = { warn: (m: string) => log('warn', m), ...(o.collateral ? { collateralSettings: o.collateral } : {}) };
  const environment = { evidence: await evidenceSource(evidence, sourceOptions), steward: o.steward ?? null, listenAddress: o.keepListenAddress ?? '127.0.0.1', bundle };
  const { store, lost, uncleanRun } = KeepStore.open(join(o.dataDir, 'keepmgr.sqlite'));
  const defaults = { ...DEFAULT_LIMITS, ...o.defaults };
  const manager = new KeepManager({
    store,
    environment,
    isolation,
    evidenceLabel: evidence.kind === 'snp-test' ? 'snp (software, test root)' : evidence.kind,
    poolSize: o.poolSize ?? 2,
    maxKeeps: o.maxKeeps ?? 64,
    memoryBudgetMiB: o.memoryBudgetMiB ?? 16_384,
    defaults,
    maxLimits: { ...MAX_LIMITS, ...o.maxLimits },
  });
  manager.start();
  const handler = apiHandler({ manager, auth, clientCertificates: Boolean(o.clientCa), lost, version: o.version ?? '0.1.0' });

  const tls = o.tlsCert && o.tlsKey
    ? { cert: readFileSync(o.tlsCert, 'utf8'), key: readFileSync(o.tlsKey, 'utf8'), caPath: o.tlsCert }
    : await ensureTls(o.dataDir, o.san);
  const servers: Array<HttpServer | HttpsServer> = [];
  let url: string | null = null;
  if (o.listen !== null) {
    const [host, port] = splitHostPort(o.listen ?? '127.0.0.1:0');
    const https = createHttpsServer(
      { cert: tls.cert, key: tls.key, ...(o.clientCa ? { ca: readFileSync(o.clientCa, 'utf8'), requestCert: true, rejectUnauthorized: false } : {}) },
      handler,
    );
    await new Promise<void>((res, rej) => https.once('error', rej).listen(port, host, () => res()));
    const addr = https.address() as AddressInfo;
    url = `https://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
    servers.push(https);
  }
  let socketPath: string | null = null;
  if (o.socket !== null) {
    socketPath = o.socket ?? join(o.dataDir, 'keepmgr.sock');
    if (existsSync(socketPath)) unlinkSync(socketPath);
    const unix = createHttpServer((req: IncomingMessage, res) => {
      req.viaUnixSocket = true;
      handler(req, res);
    });
    await new Promise<void>((res, rej) => unix.once('error', rej).listen(socketPath!, () => res()));
    chmodSync(socketPath, 0o600);
    servers.push(unix);
  }
  for (const s of servers) s.keepAliveTimeout = 5000;
  return {
    url,
    socketPath,
    caPath: 'caPath' in tls ? tls.caPath : o.tlsCert!,
    tokensFile,
    testRootPath,
    isolation,
    manager,
    lost,
    uncleanRun,
    async close() {
      for (const s of servers) {
        s.close();
        s.closeAllConnections();
      }
      await manager.close();
      shared.release();
      if (socketPath && existsSync(socketPath)) unlinkSync(socketPath);
    },
  };
}

function splitHostPort(s: string): [string, number] {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(s);
  if (!m) throw new Error(`--listen wants HOST:PORT, not '${s}'`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`port ${port} is out of range`);
  return [m[1]!, port];
}
