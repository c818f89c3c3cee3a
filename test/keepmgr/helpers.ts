import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, KeepmgrClient, type Daemon, type DaemonOptions } from '../../src/keepmgr/index.ts';
import { REPO_ROOT } from '../helpers/paths.ts';

export const WASM = (name: string): Uint8Array => readFileSync(join(REPO_ROOT, 'test', 'keepmgr', 'wasm', `${name}.wasm`));

export interface TestDaemon {
  daemon: Daemon;
  dir: string;
  token: string;
  ca: string;
  client: KeepmgrClient;
  /** A second tenant, with its own token. */
  tenant: KeepmgrClient;
  close(): Promise<void>;
}

export function tempDir(prefix = 'keepmgr-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function adminToken(dir: string): string {
  const line = readFileSync(join(dir, 'tokens'), 'utf8').split('\n').find((l) => l.startsWith('admin '));
  return line!.split(' ')[1]!;
}

export async function startTestDaemon(options: Partial<DaemonOptions> = {}): Promise<TestDaemon> {
  const dir = options.dataDir ?? tempDir();
  const tokensFile = join(dir, 'tenants');
  const { writeFileSync } = await import('node:fs');
  const token = 'admin-token-0123456789abcdef';
  writeFileSync(tokensFile, `admin ${token}\nalice alice-token-0123456789abcdef\n`);
  const daemon = await startDaemon({ dataDir: dir, listen: '127.0.0.1:0', poolSize: 1, tokensFile, ...options });
  const ca = readFileSync(daemon.caPath, 'utf8');
  return {
    daemon,
    dir,
    token,
    ca,
    client: new KeepmgrClient({ url: daemon.url!, token, ca }),
    tenant: new KeepmgrClient({ url: daemon.url!, token: 'alice-token-0123456789abcdef', ca }),
    async close() {
      await daemon.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Raw HTTPS request against the daemon, for bad-input tests. */
export async function raw(t: TestDaemon, method: string, path: string, opts: { body?: string | Uint8Array; headers?: Record<string, string>; token?: string | null } = {}) {
  const { request } = await import('node:https');
  const u = new URL(t.daemon.url!);
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? t.token}`;
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string; json: () => any }>((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method, headers, ca: t.ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode!, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export { pidAlive } from '../helpers/pids.ts';

/** Sends one line over TLS and reads the echo; resolves with the echo and the server's certificate. */
export async function tlsEcho(port: number, line: string, options: { ca?: string } = {}): Promise<{ echo: string; cert: ReturnType<TLSSocket['getPeerX509Certificate']> }> {
  const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ...(options.ca ? { ca: options.ca } : { rejectUnauthorized: false }) });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const cert = socket.getPeerX509Certificate();
  socket.write(line);
  let echo = '';
  for await (const chunk of socket) {
    echo += chunk;
    if (echo.length >= line.length) break;
  }
  socket.end();
  return { echo, cert };
}
