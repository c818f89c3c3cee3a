/**
 * `enarx deploy --keepmgr URL PACKAGE`: create a Keep, attest it, provision the package encrypted
 * to the attested key, stream its authenticated output, and return the workload's exit code.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EnarxError, UsageError } from './errors.ts';
import { log, printJson } from './output.ts';
import { attestOptionsFrom, cliErrors, clientFrom, printPayload, saveSession } from './keepmgr-client.ts';

async function readPackage(pkg: string): Promise<{ wasm: Uint8Array; config: string | null; cas?: Record<string, string[]> }> {
  let st;
  try {
    st = statSync(pkg);
  } catch {
    throw new UsageError(`package ${pkg} does not exist`, 'pass a .wasm file or a directory with main.wasm (and optionally Enarx.toml)');
  }
  const wasmPath = st.isDirectory() ? join(pkg, 'main.wasm') : pkg;
  const confPath = st.isDirectory() ? join(pkg, 'Enarx.toml') : null;
  let wasm: Uint8Array;
  try {
    wasm = readFileSync(wasmPath);
  } catch {
    throw new UsageError(`no ${wasmPath}`, 'a package directory holds main.wasm and optionally Enarx.toml');
  }
  if (wasm.length < 8 || wasm[0] !== 0 || wasm[1] !== 0x61 || wasm[2] !== 0x73 || wasm[3] !== 0x6d) throw new UsageError(`${wasmPath} is not a WebAssembly module`);
  let config: string | null = null;
  if (confPath) {
    try {
      config = readFileSync(confPath, 'utf8');
    } catch {
      config = null;
    }
  }
  const cas = config === null ? {} : await caCertificates(config, confPath!, pkg);
  return { wasm, config, ...(Object.keys(cas).length > 0 ? { cas } : {}) };
}

/**
 * The certificates of the CA files the Enarx.toml names (`client_ca`, `ca`), read here and sealed
 * with the workload: the Keep has no access to this machine's files. An Enarx.toml that does not
 * parse is sent as it is, for the Keep to report why.
 */
async function caCertificates(config: string, confPath: string, dir: string): Promise<Record<string, string[]>> {
  const { parseConfig, caFileOf, pemCertificateBlocks } = await import('../config/index.ts');
  let files;
  try {
    files = parseConfig(config, confPath, dir).files;
  } catch {
    return {};
  }
  const cas: Record<string, string[]> = {};
  for (const f of files) {
    const path = caFileOf(f);
    if (!path) continue;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new EnarxError(`cannot read the CA file ${path} that '${f.name}' names: ${(err as NodeJS.ErrnoException).code ?? err}`, { hint: 'check the client_ca / ca path in Enarx.toml (relative to the package directory)' });
    }
    const certs = pemCertificateBlocks(text);
    if (certs.length === 0) throw new EnarxError(`${path} holds no PEM certificate (for '${f.name}')`, { hint: 'give CA certificates in PEM' });
    cas[f.name] = certs;
  }
  return cas;
}

function limit(o: Record<string, unknown>, key: string, name: string): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new UsageError(`--${key} must be a whole number, not '${String(v)}'`);
  void name;
  return Number(v);
}

export async function deployViaKeepmgr(pkg: string, o: Record<string, unknown>): Promise<number> {
  const workload = await readPackage(pkg);
  let stdin: Uint8Array | undefined;
  if (typeof o.stdin === 'string') {
    try {
      stdin = o.stdin === '-' ? readFileSync(0) : readFileSync(o.stdin);
    } catch {
      throw new UsageError(`cannot read --stdin ${o.stdin}`);
    }
  }
  const limits: Record<string, number> = {};
  const m = limit(o, 'memory', 'memoryMiB');
  const c = limit(o, 'cpu', 'cpuSeconds');
  const f = limit(o, 'fds', 'descriptors');
  if (m !== undefined) limits.memoryMiB = m;
  if (c !== undefined) limits.cpuSeconds = c;
  if (f !== undefined) limits.descriptors = f;
  const client = await clientFrom(o);
  const { attestKeep, provisionKeep, followOutput } = await import('../keepmgr/client.ts');
  const attestOpts = await attestOptionsFrom(o);
  const json = Boolean(o.json);
  const stdout: Uint8Array[] = [];
  const stderr: Uint8Array[] = [];
  return cliErrors(async () => {
    const t0 = performance.now();
    const keep = await client.create({ limits });
    log('info', `created Keep ${keep.id} (${keep.origin === 'pool' ? 'from the warm pool' : 'started on demand'})`);
    if (!json) process.stderr.write(`Keep ${keep.id}: attesting…\n`);
    const attested = await attestKeep(client, keep.id, attestOpts);
    if (!json) process.stderr.write(`Keep ${keep.id}: ${attested.reasons.join('; ')}; provisioning ${workload.wasm.length} bytes encrypted to its key…\n`);
    const session = await provisionKeep(client, attested, { ...workload, stdin, ...(typeof o.steward === 'string' ? { steward: o.steward } : {}) });
    if (typeof o.session === 'string') saveSession(o.session, session);
    const end = await followOutput(client, session, (p) => {
      if (json) { if ('data' in p) (p.stream === 'stdout' ? stdout : stderr).push(p.data); }
      else printPayload(p);
    });
    const ms = Math.round(performance.now() - t0);
    if (!end.exit) {
      const host = end.host ? `${String(end.host.state)}${end.host.reason ? ` (${String(end.host.reason)})` : ''}` : 'nothing';
      throw new EnarxError(`Keep ${keep.id} ended without a sealed exit record; the host says: ${host}`, { hint: 'a Keep stopped at a limit or by the host ends this way; see enarx keep info' });
    }
    if (json) {
      printJson({
        keep: keep.id, evidence: attested.kind, verdict: attested.reasons, exitCode: end.exit.code, reason: end.exit.reason,
        stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8'), ms,
      });
    } else log('info', `Keep ${keep.id}: workload exited with code ${end.exit.code} after ${ms} ms`);
    if (!o.keep && end.host?.live) await client.stop(keep.id).catch(() => {});
    return end.exit.code;
  });
}
