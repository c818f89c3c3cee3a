import type { Command } from 'commander';
import { EnarxError, UsageError } from '../errors.ts';
import { printJson } from '../output.ts';
import { withRegistryOptions } from '../registry.ts';

interface Flags {
  caBundle?: string;
  token?: string;
  json?: boolean;
  progress?: boolean;
}

async function tagSpec(spec: string) {
  const { parsePackageReference } = await import('../../drawbridge/index.ts');
  try {
    return parsePackageReference(spec);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Trusted public keys: --trust-key files, else the trusted-keys file. */
export async function trustedJwks(files: string[] | undefined): Promise<import('jose').JWK[]> {
  if (files && files.length > 0) {
    const { readFile } = await import('node:fs/promises');
    const out: import('jose').JWK[] = [];
    for (const f of files) {
      try {
        const { kty, crv, x, y } = JSON.parse(await readFile(f, 'utf8')) as import('jose').JWK;
        out.push({ kty, crv, x, ...(y ? { y } : {}) });
      } catch (err) {
        throw new EnarxError(`--trust-key ${f}: ${(err as Error).message}`, { hint: 'pass a JWK file such as the .pub.jwk that enarx key create wrote' });
      }
    }
    return out;
  }
  const { loadTrustedKeys } = await import('../registry.ts');
  return (await loadTrustedKeys()).map((k) => k.jwk as import('jose').JWK);
}

export function register(program: Command): void {
  const cmd = program.command('package').description('publish, inspect and fetch Drawbridge packages');
  const common = (c: Command) => withRegistryOptions(c);

  common(
    cmd
      .command('publish')
      .description('publish a package directory (main.wasm, Enarx.toml and any data files) or a .wasm file; resumes an interrupted publish')
      .argument('<spec>', 'host[:port]/user/repo:tag')
      .argument('<path>', 'the package directory or .wasm file')
      .option('--sign-key <file>', 'sign the tag entry with this private JWK (enarx key create)')
      .option('--no-progress', 'no progress on stderr'),
  ).action(async (spec: string, path: string, o: Flags & { signKey?: string }) => {
    const reg = await import('../registry.ts');
    const at = await tagSpec(spec);
    const db = await import('../../drawbridge/index.ts');
    let tree;
    try {
      tree = await db.buildTree(path);
    } catch (err) {
      throw new EnarxError(`cannot read package ${path}: ${(err as Error).message}`, { hint: 'pass a directory with main.wasm (and Enarx.toml), or a .wasm file' });
    }
    let sign: ((root: import('../../drawbridge/index.ts').TreeEntry) => Promise<import('../../drawbridge/index.ts').FlattenedJws>) | undefined;
    let kid: string | undefined;
    if (o.signKey) {
      const { readFile } = await import('node:fs/promises');
      let jwk: import('jose').JWK;
      try {
        jwk = JSON.parse(await readFile(o.signKey, 'utf8')) as import('jose').JWK;
      } catch (err) {
        throw new EnarxError(`--sign-key ${o.signKey}: ${(err as Error).message}`, { hint: "make a key with 'enarx key create FILE'" });
      }
      if (!jwk.d) throw new EnarxError(`--sign-key ${o.signKey} is a public key`, { hint: 'pass the private key file (not .pub.jwk)' });
      kid = await db.keyId(jwk);
      sign = (root) => db.signTagEntry(root, at, jwk);
    }
    const client = await reg.openClient(at.origin, o);
    const progress = reg.progressReporter(o.progress !== false);
    try {
      const result = await client.publish(at, tree, { sign, onProgress: (p) => progress.update(p) });
      progress.done();
      const out = { origin: at.origin, user: at.user, repo: at.repo, tag: at.tag, digest: tree.root.digest, signedBy: kid ?? null, tagStatus: result.tag, uploaded: result.uploaded, skipped: result.skipped };
      if (o.json) printJson(out);
      else
        process.stderr.write(
          `published ${at.user}/${at.repo}:${at.tag} to ${at.origin}${kid ? ` signed by ${kid}` : ' (unsigned)'}: ${result.uploaded} uploaded, ${result.skipped} already there${result.tag === 'exists' ? ' (resumed)' : ''}\n`,
        );
    } catch (err) {
      progress.done();
      if ((err as { status?: number }).status === 409) throw new EnarxError(`${at.origin}: ${(err as Error).message}`, { hint: 'a published tag is immutable; publish a new version' });
      throw reg.registryError(err, at.origin);
    } finally {
      client.close();
    }
  });

  common(cmd.command('info').description("show a tag's entry, its signer and its files").argument('<spec>', 'host[:port]/user/repo:tag')).action(async (spec: string, o: Flags) => {
    const reg = await import('../registry.ts');
    const at = await tagSpec(spec);
    const client = await reg.openClient(at.origin, o);
    try {
      const tag = await client.getTag(at);
      if (!tag) throw new EnarxError(`tag ${at.user}/${at.repo}:${at.tag} not found at ${at.origin}`, { hint: `see 'enarx repo info ${at.origin.replace(/^https:\/\//, '')}/${at.user}/${at.repo}'` });
      let kid: string | null = null;
      if (tag.entry.kind === 'signed') {
        const header = JSON.parse(Buffer.from(tag.entry.jws.protected, 'base64url').toString('utf8')) as { kid?: string };
        kid = header.kid ?? null;
      }
      const out = { origin: at.origin, user: at.user, repo: at.repo, tag: at.tag, pending: tag.pending, signed: tag.entry.kind === 'signed', kid, root: tag.entry.root };
      if (o.json) printJson(out);
      else
        process.stdout.write(
          `${at.user}/${at.repo}:${at.tag} at ${at.origin}${tag.pending ? ' (publish unfinished)' : ''}\nsigned: ${kid ? `yes, kid ${kid} (not verified here; package fetch verifies)` : 'no'}\ntype: ${tag.entry.root.type}\nlength: ${tag.entry.root.length}\ndigest: ${Object.entries(tag.entry.root.digest).map(([a, d]) => `${a}=${d}`).join(' ')}\n`,
        );
    } catch (err) {
      throw reg.registryError(err, at.origin);
    } finally {
      client.close();
    }
  });

  common(
    cmd
      .command('fetch')
      .description('fetch a tag into a new directory, verifying every node and the signature')
      .argument('<spec>', 'host[:port]/user/repo:tag')
      .option('-o, --output <dir>', 'where to put the package (must not exist)')
      .option('--trust-key <jwk...>', 'trust only these public keys (default: the trusted-keys file)')
      .option('--allow-unsigned', 'accept an unsigned tag (its bytes are still verified against the tag entry)')
      .option('--no-progress', 'no progress on stderr'),
  ).action(async (spec: string, o: Flags & { output?: string; trustKey?: string[]; allowUnsigned?: boolean }) => {
    const reg = await import('../registry.ts');
    const at = await tagSpec(spec);
    const db = await import('../../drawbridge/index.ts');
    const dest = o.output ?? `${at.repo}-${at.tag}`;
    const { existsSync } = await import('node:fs');
    if (existsSync(dest)) throw new UsageError(`${dest} already exists`, 'pick another --output directory');
    const trusted = await trustedJwks(o.trustKey);
    const client = await reg.openClient(at.origin, o);
    const progress = reg.progressReporter(o.progress !== false);
    let kid: string | undefined;
    try {
      const result = await client.fetchTree(at, dest, {
        verifyTag: async (entry) => {
          const v = await db.verifyTagEntry(entry, at, trusted, { allowUnsigned: o.allowUnsigned });
          kid = v.kid;
          return v.root;
        },
        onProgress: (p) => progress.update(p),
      });
      progress.done();
      const out = { origin: at.origin, user: at.user, repo: at.repo, tag: at.tag, path: dest, signedBy: kid ?? null, files: result.files, bytes: result.bytes, digest: result.root.digest };
      if (o.json) printJson(out);
      else process.stderr.write(`fetched ${at.user}/${at.repo}:${at.tag} into ${dest}: ${result.files} files, ${result.bytes} bytes, ${kid ? `signed by ${kid}` : 'UNSIGNED (allowed)'}\n`);
    } catch (err) {
      progress.done();
      if ((err as Error).name === 'SignatureError') throw new EnarxError(`refused ${at.user}/${at.repo}:${at.tag}: ${(err as Error).message}`, { hint: "trust the publisher's key with 'enarx key trust KEY.pub.jwk' (or --trust-key), or --allow-unsigned for an unsigned package" });
      throw reg.registryError(err, at.origin);
    } finally {
      client.close();
    }
  });
}
