/**
 * Signed tags: the tag entry as a flattened JWS (served as application/jose+json) whose payload is
 * the root TreeEntry plus the `user`, `repo` and `tag` it is published under, so that a signature
 * cannot be replayed under another name or version. `kid` is the RFC 7638 thumbprint of the
 * signer's public key; ES256 and EdDSA are accepted.
 */
import { calculateJwkThumbprint, type CryptoKey, FlattenedSign, flattenedVerify, importJWK, type JWK } from 'jose';
import { serializeTreeEntry, type FlattenedJws, type TagEntry, type TreeEntry, validateTreeEntry } from './types.ts';
import type { Coordinates } from './client.ts';

export const SIGNING_ALGORITHMS = ['ES256', 'EdDSA'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

export class SignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SignatureError';
  }
}

function algorithmOf(jwk: JWK): SigningAlgorithm {
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  throw new SignatureError(`unsupported signing key (${jwk.kty}${jwk.crv ? ` ${jwk.crv}` : ''}): use ES256 (P-256) or EdDSA (Ed25519)`);
}

/** The RFC 7638 thumbprint that names a public key as `kid`. */
export function keyId(publicJwk: JWK): Promise<string> {
  const { kty, crv, x, y } = publicJwk;
  return calculateJwkThumbprint({ kty, crv, x, y } as JWK);
}

/** Signs `root` as the entry of tag `at` with a private JWK (ES256 or EdDSA). */
export async function signTagEntry(root: TreeEntry, at: Coordinates, privateJwk: JWK): Promise<FlattenedJws> {
  if (!privateJwk.d) throw new SignatureError('signing needs the private key');
  const alg = algorithmOf(privateJwk);
  const key = (await importJWK(privateJwk, alg)) as CryptoKey;
  const { digest, length, type } = root;
  const payload = new TextEncoder().encode(serializeTreeEntry({ digest, length, type, user: at.user, repo: at.repo, tag: at.tag }));
  const jws = await new FlattenedSign(payload).setProtectedHeader({ alg, kid: await keyId(privateJwk), cty: 'application/vnd.drawbridge.entry.v1+json' }).sign(key);
  return { protected: jws.protected as string, payload: jws.payload, signature: jws.signature };
}

export interface VerifiedTag {
  root: TreeEntry;
  /** The signer's key id, or undefined for an unsigned tag accepted with allowUnsigned. */
  kid: string | undefined;
}

/**
 * Verifies a tag entry fetched for `at`: it must be signed by one of `trusted` (public JWKs, found
 * by `kid`), and its payload must name exactly `at`. An unsigned entry is refused unless
 * `allowUnsigned`. Returns the root entry to fetch the tree against.
 */
export async function verifyTagEntry(entry: TagEntry, at: Coordinates, trusted: JWK[], options: { allowUnsigned?: boolean } = {}): Promise<VerifiedTag> {
  if (entry.kind === 'unsigned') {
    if (options.allowUnsigned) return { root: entry.root, kid: undefined };
    throw new SignatureError(`tag ${at.user}/${at.repo}:${at.tag} is not signed (allow unsigned packages explicitly to use it)`);
  }
  const byKid = new Map<string, JWK>();
  for (const jwk of trusted) byKid.set(await keyId(jwk), jwk);
  let result;
  try {
    result = await flattenedVerify(
      entry.jws,
      async (header: { kid?: string; alg?: string }) => {
        const jwk = header.kid ? byKid.get(header.kid) : undefined;
        if (!jwk) throw new SignatureError(`tag ${at.user}/${at.repo}:${at.tag} is signed by key ${header.kid ?? '(no kid)'}, which is not trusted`);
        if (header.alg !== algorithmOf(jwk)) throw new SignatureError(`signature algorithm ${header.alg} does not match key ${header.kid}`);
        return importJWK(jwk, header.alg);
      },
      { algorithms: [...SIGNING_ALGORITHMS] },
    );
  } catch (err) {
    if (err instanceof SignatureError) throw err;
    throw new SignatureError(`tag ${at.user}/${at.repo}:${at.tag}: ${(err as Error).message}`);
  }
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(result.payload));
  } catch {
    throw new SignatureError('the signed payload is not JSON');
  }
  const root = validateTreeEntry(payload, 'signed payload');
  for (const k of ['user', 'repo', 'tag'] as const) {
    if (root[k] !== at[k]) {
      throw new SignatureError(`the signature is for ${String(root.user)}/${String(root.repo)}:${String(root.tag)}, not ${at.user}/${at.repo}:${at.tag}`);
    }
  }
  return { root, kid: result.protectedHeader?.kid };
}
