import type { Command } from 'commander';
import { EnarxError, UsageError } from '../errors.ts';
import { printJson } from '../output.ts';

async function readJwk(path: string): Promise<Record<string, unknown>> {
  const { readFile } = await import('node:fs/promises');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new EnarxError(`cannot read key ${path}: ${(err as Error).message}`);
  }
  try {
    const jwk = JSON.parse(text) as Record<string, unknown>;
    if (typeof jwk !== 'object' || jwk === null || typeof jwk.kty !== 'string') throw new Error('no kty');
    return jwk;
  } catch {
    throw new EnarxError(`${path} is not a JWK (JSON with "kty")`, { hint: "make one with 'enarx key create', or pass the .pub.jwk it printed" });
  }
}

/** The public part of a JWK, with only the members RFC 7638 names (plus alg). */
export function publicPart(jwk: Record<string, unknown>): Record<string, unknown> {
  const { kty, crv, x, y } = jwk;
  const alg = kty === 'EC' ? 'ES256' : 'EdDSA';
  return y === undefined ? { kty, crv, x, alg } : { kty, crv, x, y, alg };
}

export function register(program: Command): void {
  const cmd = program.command('key').description('signing keys for packages, and the keys you trust');

  cmd
    .command('create')
    .description('make a signing key: private JWK in FILE (0600), public JWK in FILE.pub.jwk')
    .argument('<file>', 'where to write the private key (must not exist)')
    .option('--alg <alg>', 'ES256 or EdDSA', 'ES256')
    .option('--json', 'print one JSON document')
    .action(async (file: string, o: { alg: string; json?: boolean }) => {
      const { SIGNING_ALGORITHMS, keyId } = await import('../../drawbridge/index.ts');
      if (!(SIGNING_ALGORITHMS as readonly string[]).includes(o.alg)) throw new UsageError(`--alg ${o.alg}: use ES256 or EdDSA`);
      const { generateKeyPair, exportJWK } = await import('jose');
      const { privateKey } = await generateKeyPair(o.alg, { crv: o.alg === 'EdDSA' ? 'Ed25519' : undefined, extractable: true });
      const jwk = (await exportJWK(privateKey)) as Record<string, unknown>;
      const kid = await keyId(jwk);
      const priv = { ...jwk, alg: o.alg, kid };
      const pub = { ...publicPart(jwk), kid };
      const { writeFile } = await import('node:fs/promises');
      try {
        await writeFile(file, `${JSON.stringify(priv, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
        await writeFile(`${file}.pub.jwk`, `${JSON.stringify(pub, null, 2)}\n`, { mode: 0o644 });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new EnarxError(`cannot write ${file}: ${(err as Error).message}`, { hint: code === 'EEXIST' ? 'pick a new file name; an existing key is never overwritten' : undefined });
      }
      if (o.json) printJson({ kid, alg: o.alg, private: file, public: `${file}.pub.jwk`, jwk: pub });
      else process.stdout.write(`${JSON.stringify(pub)}\nthumbprint (kid): ${kid}\nprivate key: ${file} (0600)\npublic key: ${file}.pub.jwk\n`);
    });

  cmd
    .command('trust')
    .description('trust a public key to sign packages (adds it to trusted-keys.json)')
    .argument('<jwk-file>', 'a public (or private: only its public part is kept) JWK file')
    .option('--comment <text>', 'a note stored with the key')
    .option('--json', 'print one JSON document')
    .action(async (path: string, o: { comment?: string; json?: boolean }) => {
      const reg = await import('../registry.ts');
      const { keyId, SignatureError } = await import('../../drawbridge/index.ts');
      const jwk = publicPart(await readJwk(path));
      let kid: string;
      try {
        if (!((jwk.kty === 'EC' && jwk.crv === 'P-256') || (jwk.kty === 'OKP' && jwk.crv === 'Ed25519'))) throw new SignatureError('only ES256 (P-256) and EdDSA (Ed25519) keys sign packages');
        kid = await keyId(jwk);
      } catch (err) {
        throw new EnarxError(`${path}: ${(err as Error).message}`);
      }
      const keys = await reg.loadTrustedKeys();
      const fresh = !keys.some((k) => k.kid === kid);
      if (fresh) keys.push({ kid, jwk: { ...jwk, kid }, ...(o.comment ? { comment: o.comment } : {}) });
      await reg.saveTrustedKeys(keys);
      if (o.json) printJson({ kid, added: fresh, file: reg.trustedKeysPath() });
      else process.stderr.write(`${fresh ? 'trusting' : 'already trusted:'} ${kid} (${reg.trustedKeysPath()})\n`);
    });

  cmd
    .command('untrust')
    .description('stop trusting a key')
    .argument('<kid>', 'its thumbprint, as key list shows')
    .option('--json', 'print one JSON document')
    .action(async (kid: string, o: { json?: boolean }) => {
      const reg = await import('../registry.ts');
      const keys = await reg.loadTrustedKeys();
      const kept = keys.filter((k) => k.kid !== kid);
      if (kept.length === keys.length) throw new EnarxError(`no trusted key ${kid}`, { hint: "see 'enarx key list'" });
      await reg.saveTrustedKeys(kept);
      if (o.json) printJson({ kid, removed: true });
      else process.stderr.write(`no longer trusting ${kid}\n`);
    });

  cmd
    .command('list')
    .description('the keys you trust to sign packages')
    .option('--json', 'print one JSON document')
    .action(async (o: { json?: boolean }) => {
      const reg = await import('../registry.ts');
      const keys = await reg.loadTrustedKeys();
      if (o.json) printJson({ file: reg.trustedKeysPath(), keys });
      else if (keys.length === 0) process.stderr.write(`no trusted keys (${reg.trustedKeysPath()}); add one with 'enarx key trust KEY.pub.jwk'\n`);
      else for (const k of keys) process.stdout.write(`${k.kid}  ${k.jwk.kty}/${k.jwk.crv}${k.comment ? `  ${k.comment}` : ''}\n`);
    });
}
