import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { buildTree, type DrawbridgeClient, keyId, MEDIA_TYPES, parseTagEntry, SignatureError, signTagEntry, type TagEntry, verifyTagEntry } from '../../src/drawbridge/index.ts';
import { type Registry, startRegistry } from './helpers.ts';

async function keyPair(alg: 'ES256' | 'EdDSA'): Promise<{ priv: JWK; pub: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { priv: await exportJWK(privateKey), pub: await exportJWK(publicKey) };
}

describe('signed tags', () => {
  let reg: Registry;
  let alice: DrawbridgeClient;
  let pkg: string;
  before(async () => {
    reg = await startRegistry();
    alice = reg.client({ token: await reg.oidc.token({ sub: 'auth0|alice' }) });
    await alice.putUser('alice', { subject: 'auth0|alice' });
    await alice.putRepository('alice', 'app', { public: true });
    pkg = await mkdtemp(join(tmpdir(), 'drawbridge-sign-'));
    await writeFile(join(pkg, 'main.wasm'), '\0asm\x01\0\0\0');
    await writeFile(join(pkg, 'Enarx.toml'), 'x = 1\n');
  });
  after(async () => {
    await reg.close();
    await rm(pkg, { recursive: true, force: true });
  });

  for (const alg of ['ES256', 'EdDSA'] as const) {
    test(`${alg}: publish signed, fetch verifying the signature and the names`, async () => {
      const signer = await keyPair(alg);
      const at = { user: 'alice', repo: 'app', tag: alg === 'ES256' ? '1.0.0' : '1.1.0' };
      const tree = await buildTree(pkg);
      await alice.publish(at, tree, { sign: (root) => signTagEntry(root, at, signer.priv) });
      const served = await reg.client().getTag(at);
      assert.equal(served?.mediaType, MEDIA_TYPES.jws);
      const header = JSON.parse(Buffer.from(JSON.parse(served!.bytes.toString()).protected, 'base64url').toString());
      assert.deepEqual(header, { alg, kid: await keyId(signer.pub), cty: MEDIA_TYPES.entry });
      const dest = join(reg.dir, `fetched-${alg}`);
      let kid: string | undefined;
      await reg.client().fetchTree(at, dest, {
        verifyTag: async (entry) => {
          const v = await verifyTagEntry(entry, at, [signer.pub]);
          kid = v.kid;
          return v.root;
        },
      });
      assert.equal(kid, await keyId(signer.pub));
      assert.deepEqual(await readFile(join(dest, 'main.wasm')), await readFile(join(pkg, 'main.wasm')));
    });
  }

  test('refusals: untrusted key, unsigned, another name or version (downgrade), tampered payload', async () => {
    const signer = await keyPair('ES256');
    const stranger = await keyPair('EdDSA');
    const at = { user: 'alice', repo: 'app', tag: '2.0.0' };
    const root = (await buildTree(pkg)).root;
    const jws = await signTagEntry(root, at, signer.priv);
    const entry = parseTagEntry(MEDIA_TYPES.jws, Buffer.from(JSON.stringify(jws)));
    assert.equal((await verifyTagEntry(entry, at, [stranger.pub, signer.pub])).kid, await keyId(signer.pub));

    await assert.rejects(verifyTagEntry(entry, at, [stranger.pub]), (e: Error) => e instanceof SignatureError && /signed by key .* not trusted/.test(e.message));
    const unsigned: TagEntry = { kind: 'unsigned', root };
    await assert.rejects(verifyTagEntry(unsigned, at, [signer.pub]), /is not signed \(allow unsigned packages explicitly/);
    assert.equal((await verifyTagEntry(unsigned, at, [], { allowUnsigned: true })).kid, undefined);
    // A valid signature for 1.0.0 served as 2.0.0, or under another repository.
    await assert.rejects(verifyTagEntry(entry, { ...at, tag: '1.9.0' }, [signer.pub]), /signature is for alice\/app:2\.0\.0, not alice\/app:1\.9\.0/);
    await assert.rejects(verifyTagEntry(entry, { ...at, repo: 'other' }, [signer.pub]), /not alice\/other:2\.0\.0/);
    // The payload swapped for another tree's, signature kept.
    const other = { ...root, length: root.length + 1, user: 'alice', repo: 'app', tag: '2.0.0' };
    const tampered = { ...jws, payload: Buffer.from(JSON.stringify(other)).toString('base64url') };
    await assert.rejects(verifyTagEntry(parseTagEntry(MEDIA_TYPES.jws, Buffer.from(JSON.stringify(tampered))), at, [signer.pub]), /signature verification failed/);
    // An algorithm that is not the key's.
    const wrongAlg = { ...jws, protected: Buffer.from(JSON.stringify({ alg: 'ES384', kid: await keyId(signer.pub) })).toString('base64url') };
    await assert.rejects(verifyTagEntry(parseTagEntry(MEDIA_TYPES.jws, Buffer.from(JSON.stringify(wrongAlg))), at, [signer.pub]), SignatureError);
    await assert.rejects(signTagEntry(root, at, signer.pub), /needs the private key/);
  });
});
