/**
 * What `enarx keep` and `enarx deploy --keepmgr` share: the connection options, building a
 * client from them, the verifier, and the attest → provision → follow flow.
 */
import type { Command } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { EnarxError, UsageError } from './errors.ts';
import { log } from './output.ts';
import { collateralBudgetMs, type FetchCollateralFlags, fetchCollateralFlags, fetchCollateralOptions } from './commands/platform-collateral.ts';
import type { KeepmgrClient, AttestOptions, Session } from '../keepmgr/client.ts';

export function addConnectionOptions(cmd: Command): Command {
  return cmd
    .option('--keepmgr <url>', 'keep manager: https://HOST:PORT or unix:/PATH (env ENARX_KEEPMGR)')
    .option('--token <token>', 'API bearer token (env ENARX_KEEPMGR_TOKEN)')
    .option('--token-file <file>', 'read the bearer token from a file (first token on its admin line, or the whole file)')
    .option('--ca <pem>', "trust this CA for the keep manager's certificate (its DATA_DIR/ca.pem)")
    .option('--client-cert <pem>', 'authenticate with this client certificate')
    .option('--client-key <pem>', 'the client certificate\'s key')
    .option('--json', 'print one JSON document');
}

export function addAttestOptions(cmd: Command): Command {
  return fetchCollateralFlags(cmd, "how long the verification of a Keep's evidence may wait for collateral downloads, all together; then what is missing fails it")
    .option('--policy <file>', 'attestation policy (steward.toml-style [snp]/[sgx]/[tdx] sections)')
    .option('--trust-test-root <pem>', "trust this test root (a software keep manager's ARK) in addition to the vendors'")
    .option('--insecure-unattested', 'accept a Keep that offers no attestation (software process Keep): development only');
}

function readFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new EnarxError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function tokenFrom(o: Record<string, unknown>): string | undefined {
  if (typeof o.token === 'string') return o.token;
  if (typeof o.tokenFile === 'string') {
    const text = readFile(o.tokenFile, 'token file');
    const lines = text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
    const admin = lines.find((l) => /^admin\s+/.test(l));
    const line = admin ?? lines[0] ?? '';
    return line.split(/\s+/).pop();
  }
  return process.env.ENARX_KEEPMGR_TOKEN || undefined;
}

export async function clientFrom(o: Record<string, unknown>): Promise<KeepmgrClient> {
  const url = (o.keepmgr as string | undefined) ?? process.env.ENARX_KEEPMGR;
  if (!url) throw new UsageError('no keep manager given', 'pass --keepmgr https://HOST:PORT or unix:/PATH, or set ENARX_KEEPMGR');
  if (Boolean(o.clientCert) !== Boolean(o.clientKey)) throw new UsageError('--client-cert and --client-key go together');
  const { KeepmgrClient } = await import('../keepmgr/client.ts');
  try {
    return new KeepmgrClient({
      url,
      token: tokenFrom(o),
      ca: typeof o.ca === 'string' ? readFile(o.ca, 'CA file') : undefined,
      cert: typeof o.clientCert === 'string' ? readFile(o.clientCert, 'client certificate') : undefined,
      key: typeof o.clientKey === 'string' ? readFile(o.clientKey, 'client key') : undefined,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export async function attestOptionsFrom(o: Record<string, unknown>): Promise<AttestOptions> {
  const { libraryVerifier } = await import('../keepmgr/client.ts');
  const policy = typeof o.policy === 'string' ? readFile(o.policy, 'policy') : undefined;
  const root = typeof o.trustTestRoot === 'string' ? readFile(o.trustTestRoot, 'test root') : undefined;
  if (root !== undefined && !root.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--trust-test-root ${String(o.trustTestRoot)} is not a PEM certificate`);
  // Fetching unless told not to, for a library caller that gives no collateral flags (both commands give them all).
  const collateral = fetchCollateralOptions({ fetchCollateral: true, ...o } as FetchCollateralFlags);
  const collateralBudget = collateral ? collateralBudgetMs(o as { collateralBudget?: string }) : undefined;
  try {
    const verifier = await libraryVerifier({
      policy,
      trustedTestRoots: root ? [{ name: 'keepmgr-software-snp', pem: root }] : [],
      ...(collateral ? { collateral, collateralBudgetMs: collateralBudget, warn: (m: string) => log('warn', m) } : {}),
    });
    return { verifier, allowUnattested: Boolean(o.insecureUnattested) };
  } catch (err) {
    throw new EnarxError(`policy ${String(o.policy)}: ${(err as Error).message}`, { hint: 'fix the policy file; docs/attestation.md describes its keys' });
  }
}

/** Maps the client library's errors to one-line CLI errors. */
export async function cliErrors<T>(fn: () => Promise<T>): Promise<T> {
  const { ApiError, KeepRefused, ChannelError } = await import('../keepmgr/index.ts');
  try {
    return await fn();
  } catch (err) {
    if (err instanceof KeepRefused) throw new EnarxError(err.message, { hint: 'the Keep was stopped and no workload byte was sent; check the evidence, the trusted roots and the policy' });
    if (err instanceof ChannelError) throw new EnarxError(`output channel: ${err.message}`, { hint: 'the host tampered with the Keep\'s output; do not trust this run' });
    if (err instanceof ApiError) {
      const hint = err.status === 401 ? 'pass a valid --token or --token-file' : err.status === 503 ? 'the host is full; retry later or stop a Keep' : undefined;
      throw new EnarxError(`keep manager: ${err.message}`, { hint });
    }
    if (err instanceof Error && /cannot reach the keep manager/.test(err.message)) {
      throw new EnarxError(err.message, { hint: /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(err.message) ? "pass --ca with the keep manager's DATA_DIR/ca.pem" : 'is `enarx keepmgr serve` running there?' });
    }
    throw err;
  }
}

/** Written owner-only: it holds the key that opens this Keep's output. */
export function saveSession(path: string, s: Session): void {
  try {
    writeFileSync(path, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
  } catch (err) {
    throw new EnarxError(`cannot write the session file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function loadSession(path: string): Session {
  let s: Session;
  try {
    s = JSON.parse(readFile(path, 'session file')) as Session;
  } catch (err) {
    if (err instanceof EnarxError) throw err;
    throw new EnarxError(`session file ${path} is not JSON`, { hint: 'use the file written by enarx deploy --session' });
  }
  if (typeof s?.keepId !== 'string' || typeof s.nonce !== 'string' || typeof s.keepPublicKey !== 'string' || typeof s.outputPrivateKey !== 'object') {
    throw new EnarxError(`session file ${path} is not a keepmgr session`, { hint: 'use the file written by enarx deploy --session' });
  }
  return s;
}

/** Writes the Keep's authenticated output to our stdout/stderr. */
export function printPayload(p: { stream: string; data?: Uint8Array }): void {
  if (!p.data) return;
  if (p.stream === 'stdout') process.stdout.write(p.data);
  else process.stderr.write(p.data);
}
