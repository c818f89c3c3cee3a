/**
 * A registry deploy, inside the Keep, in this order (docs/deploy.md):
 *   1. attest and obtain a *fetch* certificate from the Steward (no workload identity yet);
 *   2. over mutual TLS that ends here (dialled through the host, which relays only ciphertext),
 *      fetch the tag and every node, each verified against its parent's digest and the tag's
 *      signature, which must name exactly the requested user/repo:tag;
 *   3. obtain the *workload* certificate, whose identity names the package digest, slug and signer;
 *   4. hand back the module, its Enarx.toml and the package's files, written to the stage
 *      directory only once every byte is verified.
 * Everything it trusts (registry, CAs, keys, Steward) comes from the start configuration.
 */
import type { Duplex } from 'node:stream';
import type { DeploySpec, LogLevel } from '../sallyport/index.ts';
import type { WorkloadIdentity } from '../pki/index.ts';
import type { EnarxConfig } from '../config/model.ts';
import { caFileOf, pemCertificateBlocks } from '../config/model.ts';
import type { KeepIdentity } from './identity.ts';

/** Where the verified package's files appear for the guest, read-only. */
export const PACKAGE_GUEST_PATH = '/package';
/** The most a deployed package may hold in total, verified in Keep memory before it is staged. */
export const MAX_PACKAGE_BYTES = 256 * 1024 * 1024;

/** A deploy refused before any guest code ran; `step` names where. */
export class DeployError extends Error {
  readonly step: 'registry' | 'fetch' | 'signature' | 'package' | 'steward';
  constructor(step: DeployError['step'], message: string) {
    super(message);
    this.name = 'DeployError';
    this.step = step;
  }
}

export interface DeployContext {
  dial(host: string, port: number): Promise<Duplex>;
  log(level: LogLevel, text: string): void;
  /** Asks the Steward for a certificate, with the workload identity when given; undefined without a Steward. */
  certify?: (workload?: WorkloadIdentity) => Promise<KeepIdentity>;
}

export interface DeployedPackage {
  module: Uint8Array;
  config: EnarxConfig | undefined;
  /** PEM CAs of the Enarx.toml files that name `client_ca` or `ca`, by file name, from the package. */
  cas: Map<string, string[]>;
  /** The workload certificate (with a Steward), for every TLS file. */
  identity: KeepIdentity | undefined;
  slug: string;
  /** sha-384 of main.wasm, hex. */
  digest: string;
  /** RFC 7638 thumbprint of the signing key; null for an unsigned package accepted explicitly. */
  signer: string | null;
}

export async function registryUrl(origin: string): Promise<URL> {
  const { httpsOrLoopback } = await import('./steward.ts');
  try {
    return httpsOrLoopback(origin, 'registry');
  } catch (err) {
    throw new DeployError('registry', (err as Error).message);
  }
}

/** How often a large file's transfer is reported while it streams. */
const PROGRESS_EVERY_MS = 2000;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** The DER SubjectPublicKeyInfo of a public JWK (P-256 or Ed25519), as the workload identity names the signer. */
async function spkiOf(jwk: Record<string, unknown>): Promise<Uint8Array> {
  const algorithm = jwk.kty === 'OKP' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: String(jwk.crv) };
  const key = await crypto.subtle.importKey('jwk', jwk as JsonWebKey, algorithm, true, ['verify']);
  return new Uint8Array(await crypto.subtle.exportKey('spki', key));
}

export async function deployPackage(spec: DeploySpec, ctx: DeployContext): Promise<DeployedPackage> {
  const url = await registryUrl(spec.origin);
  const at = { user: spec.user, repo: spec.repo, tag: spec.tag };
  const slug = `${url.host}/${at.user}/${at.repo}:${at.tag}`;
  // The client, names and signing modules only: the registry's server and store stay out of the Keep.
  const [client_, names, signing, { tlsClient }] = await Promise.all([import('../drawbridge/client.ts'), import('../drawbridge/names.ts'), import('../drawbridge/signing.ts'), import('../net/tls.ts')]);
  const db = { ...client_, ...names, ...signing };
  try {
    db.parseUserName(at.user);
    db.parseRepositoryName(at.repo);
    db.parseTagName(at.tag);
  } catch (err) {
    throw new DeployError('registry', `${slug}: ${(err as Error).message}`);
  }
  const trusted: Record<string, unknown>[] = [];
  for (const text of spec.trustedKeys) {
    try {
      const { kty, crv, x, y } = JSON.parse(text) as Record<string, unknown>;
      trusted.push({ kty, crv, x, ...(y ? { y } : {}) });
    } catch {
      throw new DeployError('signature', 'a trusted key in the start configuration is not a JWK');
    }
  }

  // 1. The fetch certificate: proves an attested Keep, names no workload yet.
  let fetchIdentity: KeepIdentity | null = null;
  if (ctx.certify) {
    ctx.log('info', 'deploy: attesting for a fetch certificate');
    fetchIdentity = await ctx.certify();
    ctx.log('info', 'deploy: the Steward issued the fetch certificate');
  }

  // 2. Fetch and verify, TLS ending here (mutual, with the fetch certificate).
  const client = new db.DrawbridgeClient({
    url: url.origin,
    connect: async (host, port) => {
      const raw = await ctx.dial(host, port);
      if (url.protocol !== 'https:') return raw;
      return tlsClient(raw, { host, identity: fetchIdentity, ca: spec.ca }).catch((err: Error) => {
        raw.destroy();
        throw new DeployError('fetch', `TLS to the registry ${url.origin} failed: ${err.message}`);
      });
    },
  });
  let kid: string | undefined;
  let lastProgress = Date.now();
  let fetched: Awaited<ReturnType<typeof client.fetchTreeToMemory>>;
  ctx.log('info', `deploy: fetching ${slug}`);
  try {
    fetched = await client.fetchTreeToMemory(at, {
      maxBytes: MAX_PACKAGE_BYTES,
      verifyTag: async (entry) => {
        const verified = await db.verifyTagEntry(entry, at, trusted as import('jose').JWK[], { allowUnsigned: spec.allowUnsigned });
        kid = verified.kid;
        ctx.log('info', verified.kid ? `deploy: tag signature verified (key ${verified.kid})` : 'deploy: the tag is UNSIGNED (allowed explicitly)');
        return verified.root;
      },
      onProgress: (p) => {
        if (p.bytes >= p.total) ctx.log('info', `deploy: verified ${p.path} (${p.total} bytes)`);
        else if (Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
          lastProgress = Date.now();
          ctx.log('info', `deploy: ${p.path}: ${p.bytes}/${p.total} bytes (${Math.floor((p.bytes / p.total) * 100)}%)`);
        }
      },
    });
  } catch (err) {
    const e = err as Error & { status?: number };
    if (e.name === 'SignatureError') throw new DeployError('signature', `refused ${slug}: ${e.message}`);
    if (e.name === 'IntegrityError') throw new DeployError('fetch', `refused ${slug}: ${e.message}`);
    if (e.name === 'DrawbridgeError') throw new DeployError('fetch', `${url.origin}: ${e.message}${e.status ? ` (HTTP ${e.status})` : ''}`);
    if (err instanceof DeployError) throw err;
    throw new DeployError('fetch', `cannot fetch ${slug} from ${url.origin}: ${e.message}`);
  } finally {
    client.close();
  }

  const module = fetched.files.get('main.wasm');
  if (!module) throw new DeployError('package', `${slug} has no main.wasm`);
  let config: EnarxConfig | undefined;
  const cas = new Map<string, string[]>();
  const toml = fetched.files.get('Enarx.toml');
  if (toml) {
    const { parseConfig } = await import('../config/index.ts');
    try {
      config = parseConfig(new TextDecoder('utf-8', { fatal: true }).decode(toml), `${slug} Enarx.toml`, spec.stage);
    } catch (err) {
      throw new DeployError('package', (err as Error).message);
    }
    for (const f of config.files) {
      if (f.kind === 'dir') throw new DeployError('package', `${slug}: Enarx.toml file '${f.name}' preopens a host directory, which a registry package cannot name (its own files are at ${PACKAGE_GUEST_PATH})`);
      // client_ca / ca name files of the package itself, read from what was verified.
      const caFile = caFileOf(f);
      if (!caFile) continue;
      const rel = caFile.startsWith(`${spec.stage}/`) ? caFile.slice(spec.stage.length + 1) : undefined;
      const pem = rel === undefined ? undefined : fetched.files.get(rel);
      const certs = pem ? pemCertificateBlocks(new TextDecoder().decode(pem)) : [];
      if (certs.length === 0) throw new DeployError('package', `${slug}: Enarx.toml file '${f.name}' names the CA file ${rel ?? caFile}, which is not a PEM certificate file of the package`);
      cas.set(f.name, certs);
    }
  }

  // 3. The workload certificate: digest of main.wasm, slug and signer, bound in the evidence.
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-384', module as Uint8Array<ArrayBuffer>));
  let identity: KeepIdentity | undefined;
  if (ctx.certify) {
    let signer: Uint8Array | undefined;
    if (kid) {
      for (const jwk of trusted) if ((await db.keyId(jwk as import('jose').JWK)) === kid) signer = await spkiOf(jwk);
    }
    const workload: WorkloadIdentity = { digest: { algorithm: 'sha-384', value: digest }, ...(signer ? { package: { slug, signer } } : {}) };
    ctx.log('info', 'deploy: attesting for the workload certificate');
    identity = await ctx.certify(workload);
    ctx.log('info', `deploy: the Steward certified workload sha-384:${hex(digest)}${signer ? ` of ${slug}` : ''}`);
  }

  // 4. Only verified bytes reach the stage directory, which the guest then sees read-only.
  const { mkdir, writeFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  for (const dir of fetched.directories) await mkdir(join(spec.stage, ...dir.split('/')), { recursive: true, mode: 0o755 });
  for (const [path, bytes] of fetched.files) await writeFile(join(spec.stage, ...path.split('/')), bytes, { mode: 0o444, flag: 'wx' });
  return { module, config, cas, identity, slug, digest: hex(digest), signer: kid ?? null };
}
