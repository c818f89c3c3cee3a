/**
 * Client-side state shared by `enarx user|repo|package|key`: where tokens and trusted keys live,
 * how a registry host is reached, and transfer progress on stderr.
 *
 * Files (all 0600, directory 0700), under $XDG_CONFIG_HOME/enarx or ~/.config/enarx:
 *   credentials.json   { "<origin>": "<bearer token>" }
 *   trusted-keys.json  { "keys": [ { "kid": "<RFC 7638 thumbprint>", "jwk": {...}, "comment": "..." } ] }
 * ENARX_INSECURE_AUTH_TOKEN overrides the stored token (as in Enarx); ENARX_CA_BUNDLE or --ca-bundle
 * names extra roots for the registry's certificate.
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { EnarxError, UsageError } from './errors.ts';
import { isLoopbackHost } from '../net/loopback.ts';

export function configDir(): string {
  const xdg = process.env.XDG_CONFIG_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.config'), 'enarx');
}

export const credentialsPath = (): string => join(configDir(), 'credentials.json');
export const trustedKeysPath = (): string => join(configDir(), 'trusted-keys.json');

async function readJsonFile<T>(path: string, empty: T): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return empty;
    throw new EnarxError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new EnarxError(`${path} is not valid JSON`, { hint: 'fix or remove the file' });
  }
}

/** Writes a private file atomically: a 0600 temporary file renamed over the old one. */
export async function writePrivateFile(path: string, data: string): Promise<void> {
  const dir = join(path, '..');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

export async function loadCredentials(): Promise<Record<string, string>> {
  const c = await readJsonFile<Record<string, string>>(credentialsPath(), {});
  return c && typeof c === 'object' && !Array.isArray(c) ? c : {};
}

export async function saveCredentials(c: Record<string, string>): Promise<void> {
  await writePrivateFile(credentialsPath(), `${JSON.stringify(c, null, 2)}\n`);
}

export interface TrustedKey {
  kid: string;
  jwk: Record<string, unknown>;
  comment?: string;
}

export async function loadTrustedKeys(): Promise<TrustedKey[]> {
  const f = await readJsonFile<{ keys?: TrustedKey[] }>(trustedKeysPath(), { keys: [] });
  if (!f || !Array.isArray(f.keys)) throw new EnarxError(`${trustedKeysPath()} has no "keys" array`, { hint: 'fix or remove the file' });
  return f.keys;
}

export async function saveTrustedKeys(keys: TrustedKey[]): Promise<void> {
  await writePrivateFile(trustedKeysPath(), `${JSON.stringify({ keys }, null, 2)}\n`);
}

/** `host[:port]` or a URL to an origin; http only for localhost, and no default host. */
export function registryOrigin(host: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(host) ? host : `https://${host}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`'${host}' is not a registry host[:port] or URL`);
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new UsageError(`'${host}': plain http is refused except to localhost; use https://`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`'${host}': use https://`);
  return url.origin;
}

export interface ClientFlags {
  caBundle?: string;
  token?: string;
}

export async function caBundle(flags: ClientFlags): Promise<string | undefined> {
  const path = flags.caBundle ?? process.env.ENARX_CA_BUNDLE;
  if (!path) return undefined;
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new EnarxError(`cannot read the CA bundle ${path}: ${(err as Error).message}`, { hint: 'check --ca-bundle or ENARX_CA_BUNDLE' });
  }
}

export async function tokenFor(origin: string, flags: ClientFlags): Promise<string | undefined> {
  if (flags.token) return flags.token;
  if (process.env.ENARX_INSECURE_AUTH_TOKEN) return process.env.ENARX_INSECURE_AUTH_TOKEN;
  return (await loadCredentials())[origin];
}

export async function openClient(origin: string, flags: ClientFlags, options: { auth?: boolean } = {}) {
  const { DrawbridgeClient } = await import('../drawbridge/index.ts');
  const token = options.auth === false ? undefined : await tokenFor(origin, flags);
  return new DrawbridgeClient({ url: origin, token, ca: await caBundle(flags) });
}

/** Maps client-library errors to one-line CLI errors. */
export function registryError(err: unknown, origin: string): Error {
  if (err instanceof EnarxError || err instanceof UsageError) return err;
  const e = err as Error & { status?: number; code?: string };
  if (e.name === 'DrawbridgeError') {
    const hint = e.status === 401 ? `log in with 'enarx user login ${origin}'` : e.status === 403 ? 'your token lacks the scope or ownership this needs' : undefined;
    return new EnarxError(`${origin}: ${e.message}`, { hint });
  }
  if (e.name === 'NameError') return new UsageError(e.message);
  if (e.name === 'IntegrityError' || e.name === 'SignatureError') return new EnarxError(`refused: ${e.message}`, { hint: 'the registry or the path to it served something other than what was signed' });
  if (e.code && /CERT|SELF_SIGNED|UNABLE_TO/.test(e.code)) return new EnarxError(`${origin}: TLS: ${e.message}`, { hint: "trust the registry's CA with --ca-bundle or ENARX_CA_BUNDLE" });
  if (e.code === 'ECONNREFUSED') return new EnarxError(`${origin}: connection refused`, { hint: 'is the registry running at that address?' });
  return new EnarxError(`${origin}: ${e.message}`);
}

/** Transfer progress on stderr: a bar when stderr is a TTY, otherwise a line every ~2 s. */
export function progressReporter(enabled: boolean): { update(p: { path: string; bytes: number; total: number }): void; done(): void } {
  if (!enabled) return { update() {}, done() {} };
  const tty = process.stderr.isTTY === true;
  let last = 0;
  let drawn = false;
  return {
    update({ path, bytes, total }) {
      const now = Date.now();
      const finished = bytes >= total;
      if (!finished && now - last < (tty ? 100 : 2000)) return;
      last = now;
      const pct = total === 0 ? 100 : Math.floor((bytes / total) * 100);
      if (tty) {
        const width = 24;
        const fill = Math.round((pct / 100) * width);
        process.stderr.write(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(pct).padStart(3)}% ${path} (${bytes}/${total} B)\x1b[K`);
        drawn = true;
        if (finished) {
          process.stderr.write('\n');
          drawn = false;
        }
      } else {
        process.stderr.write(`${path}: ${bytes}/${total} bytes (${pct}%)\n`);
      }
    },
    done() {
      if (drawn) process.stderr.write('\n');
    },
  };
}

/** The options every registry command takes. */
export function withRegistryOptions<C extends { option(flags: string, description: string): C }>(c: C, options: { token?: boolean } = {}): C {
  c.option('--ca-bundle <pem>', "trust this CA for the registry's certificate (env ENARX_CA_BUNDLE)");
  if (options.token !== false) c.option('--token <jwt>', 'use this token instead of the stored one');
  return c.option('--json', 'print one JSON document');
}
