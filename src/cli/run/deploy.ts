/**
 * `enarx deploy TARGET` in a local Keep (docs/deploy.md). TARGET is a package directory, a .wasm
 * file, or a registry tag ([host/]user/repo:tag or a tag URL). For a tag, everything the Keep
 * trusts (registry, its CA, signer keys, Steward) goes into the Keep's start configuration; the
 * Keep attests, fetches and verifies the package itself and only then runs it.
 */
import { EnarxError, UsageError } from '../errors.ts';
import { printJson } from '../output.ts';
import { COLLATERAL_FLAG_KEYS, runCommand, type LimitFlags, type RunFlags } from './run.ts';
import type { KeepCollateralFlags } from '../commands/platform-collateral.ts';
import { pemCertificateBlocks } from '../../config/model.ts';

const { existsSync, readFileSync, statSync } = process.getBuiltinModule('node:fs');
const { join } = process.getBuiltinModule('node:path');

export interface DeployFlags extends LimitFlags, KeepCollateralFlags {
  backend?: string;
  steward?: string;
  softwareEvidence?: string;
  drawbridgeCa?: string;
  trustKey: string[];
  allowUnsigned?: boolean;
  env: string[];
  json?: boolean;
}

export type DeployTarget =
  | { kind: 'dir'; path: string }
  | { kind: 'module'; path: string }
  | { kind: 'registry'; origin: string; user: string; repo: string; tag: string };

/** A local directory or .wasm file if one exists at TARGET, else a registry reference (no default host, no plain http off loopback). */
export async function parseDeployTarget(target: string): Promise<DeployTarget> {
  if (target.trim() === '') throw new UsageError('the deploy target is empty', 'give a package directory, a .wasm file, host/user/repo:tag or a tag URL');
  if (existsSync(target)) {
    const st = statSync(target);
    if (st.isDirectory()) {
      if (!existsSync(join(target, 'main.wasm'))) throw new UsageError(`${target} has no main.wasm`, 'a package directory holds main.wasm, and optionally Enarx.toml and data files');
      return { kind: 'dir', path: target };
    }
    if (st.isFile()) return { kind: 'module', path: target };
  }
  if (/^(\.{0,2}\/|~)/.test(target) || (!target.includes(':') && !target.includes('/'))) {
    throw new UsageError(`${target}: no such package directory or file`, 'give a package directory, a .wasm file, host/user/repo:tag or a tag URL');
  }
  const { parsePackageReference } = await import('../../drawbridge/names.ts');
  try {
    return { kind: 'registry', ...parsePackageReference(target) };
  } catch (err) {
    throw new UsageError((err as Error).message, 'a registry package is host[:port]/user/repo:tag or https://host/api/v0.1.0/user/repo/_tag/tag');
  }
}

function readPemCertificates(path: string, flag: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new EnarxError(`cannot read ${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, { hint: `check the path given to ${flag}` });
  }
  const certs = pemCertificateBlocks(text);
  if (certs.length === 0) throw new EnarxError(`${path} holds no PEM certificate`, { hint: `${flag} takes the registry's CA certificate in PEM` });
  return certs;
}

/** The keys the Keep will trust: trusted-keys.json plus each --trust-key (a JWK file, or a kid from that file). */
async function trustedKeys(flags: DeployFlags): Promise<string[]> {
  const [{ loadTrustedKeys, trustedKeysPath }, { keyId }] = await Promise.all([import('../registry.ts'), import('../../drawbridge/signing.ts')]);
  const stored = await loadTrustedKeys();
  const byKid = new Map<string, Record<string, unknown>>();
  for (const k of stored) byKid.set(k.kid, k.jwk);
  for (const value of flags.trustKey) {
    if (existsSync(value)) {
      let jwk: import('jose').JWK;
      try {
        const { kty, crv, x, y } = JSON.parse(readFileSync(value, 'utf8')) as import('jose').JWK;
        jwk = { kty, crv, x, ...(y ? { y } : {}) };
        byKid.set(await keyId(jwk), jwk as Record<string, unknown>);
      } catch (err) {
        throw new EnarxError(`--trust-key ${value}: ${(err as Error).message}`, { hint: 'pass a public JWK file such as the .pub.jwk that enarx key create wrote, or a kid from trusted-keys.json' });
      }
    } else if (!byKid.has(value)) {
      throw new EnarxError(`--trust-key ${value}: no such file, and no key with that kid in ${trustedKeysPath()}`, { hint: "trust the key with 'enarx key trust FILE', or pass its .pub.jwk file" });
    }
  }
  return [...byKid.values()].map((jwk) => JSON.stringify(jwk));
}

/** One-line refusals from the Keep, with what to do next. */
function hintFor(message: string): string | undefined {
  if (/is not trusted/.test(message)) return "trust the publisher's key with 'enarx key trust KEY.pub.jwk' or --trust-key, if you trust its publisher";
  if (/is not signed/.test(message)) return 'ask the publisher to sign it, or accept it explicitly with --allow-unsigned';
  if (/the signature is for/.test(message)) return 'the registry served a tag signed for another name or version (a downgrade or mix-up): do not use this registry answer';
  if (/digest|bytes, expected|more than the announced|its entry says/.test(message)) return 'the registry (or the path to it) served bytes other than what was signed: do not use this registry answer';
  if (/Steward refused/.test(message)) return "see the Steward's reason; check its policy and --trust-test-root";
  if (/TLS to the registry/.test(message)) return "trust the registry's CA with --drawbridge-ca (or ENARX_CA_BUNDLE)";
  if (/HTTP 401/.test(message)) return 'a private repository lets only attested Keeps read it: add --steward URL (a Steward whose CA the Drawbridge trusts with --ca)';
  if (/HTTP 403/.test(message)) return 'the repository refuses this Keep (see why); a development Keep needs a repository registered with --allow-debug-keeps or --allow-software-keeps';
  if (/cannot fetch|ECONNREFUSED|refused/.test(message)) return 'is the registry running at that address?';
  return undefined;
}

export async function deployCommand(target: string, args: string[], flags: DeployFlags): Promise<number> {
  const parsed = await parseDeployTarget(target);
  if (parsed.kind !== 'registry') {
    if (flags.drawbridgeCa || flags.trustKey.length > 0 || flags.allowUnsigned) {
      throw new UsageError('--drawbridge-ca, --trust-key and --allow-unsigned apply to registry packages', 'drop them for a local package');
    }
  }
  if (flags.steward) {
    const { stewardUrl } = await import('../../keep/steward.ts');
    try {
      stewardUrl(flags.steward);
    } catch (err) {
      throw new EnarxError((err as Error).message, { hint: 'serve the Steward over https, or reach it on 127.0.0.1' });
    }
  }
  const out: string[] = [];
  const err: string[] = [];
  const capture = (into: string[]) => {
    const { Writable } = process.getBuiltinModule('node:stream');
    return new Writable({
      write(chunk: Buffer, _enc, done) {
        into.push(chunk.toString('utf8'));
        done();
      },
    });
  };
  let deployed: { slug: string; digest: string; signer: string | null } | undefined;
  const run: RunFlags = {
    backend: flags.backend ?? (process.env.ENARX_BACKEND || 'process'),
    dir: [],
    env: flags.env,
    ...(flags.memoryLimit ? { memoryLimit: flags.memoryLimit } : {}),
    ...(flags.rssLimit ? { rssLimit: flags.rssLimit } : {}),
    ...(flags.wallTimeLimit ? { wallTimeLimit: flags.wallTimeLimit } : {}),
    ...(flags.descriptorLimit ? { descriptorLimit: flags.descriptorLimit } : {}),
    ...(flags.steward ? { steward: flags.steward } : {}),
    ...(flags.softwareEvidence ? { softwareEvidence: flags.softwareEvidence } : {}),
    ...Object.fromEntries(COLLATERAL_FLAG_KEYS.flatMap((k) => (flags[k] === undefined ? [] : [[k, flags[k]]]))),
    ...(flags.json ? { stdout: capture(out), stderr: capture(err) } : {}),
    onDeployed: (d) => (deployed = d),
  };
  let module: string;
  // As for the other registry commands, ENARX_CA_BUNDLE names the registry's CA when the flag does not.
  const caFile = flags.drawbridgeCa ?? (process.env.ENARX_CA_BUNDLE || undefined);
  if (parsed.kind === 'registry') {
    run.deploy = {
      origin: parsed.origin,
      user: parsed.user,
      repo: parsed.repo,
      tag: parsed.tag,
      ca: caFile ? readPemCertificates(caFile, flags.drawbridgeCa ? '--drawbridge-ca' : 'ENARX_CA_BUNDLE') : [],
      trustedKeys: await trustedKeys(flags),
      allowUnsigned: flags.allowUnsigned === true,
    };
    module = `${new URL(parsed.origin).host}/${parsed.user}/${parsed.repo}:${parsed.tag}`;
    process.stderr.write(`deploy: ${module} into a ${run.backend} Keep${flags.steward ? `, attesting to ${flags.steward} first` : ' (no Steward: nothing attests this Keep)'}\n`);
  } else if (parsed.kind === 'dir') {
    module = join(parsed.path, 'main.wasm');
    const toml = join(parsed.path, 'Enarx.toml');
    if (existsSync(toml)) run.wasmcfgfile = toml;
    run.packageDir = parsed.path;
  } else {
    module = parsed.path;
  }
  let code: number;
  try {
    code = await runCommand(module, args, run);
  } catch (e) {
    if (e instanceof EnarxError && !e.hint) {
      const hint = hintFor(e.message);
      if (hint) throw new EnarxError(e.message, { hint, exitCode: e.exitCode });
    }
    throw e;
  }
  if (flags.json) {
    let digest = deployed?.digest;
    if (!digest && parsed.kind !== 'registry') {
      const { createHash } = process.getBuiltinModule('node:crypto');
      digest = createHash('sha384').update(readFileSync(module)).digest('hex');
    }
    printJson({
      target,
      kind: parsed.kind,
      slug: deployed?.slug ?? null,
      digest: digest ? `sha-384:${digest}` : null,
      signer: deployed?.signer ?? null,
      steward: flags.steward ?? null,
      backend: run.backend,
      exit: code,
      stdout: out.join(''),
      stderr: err.join(''),
    });
  }
  return code;
}
