import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encode } from 'cborg';
import {
  ChannelError, OutputReader, decryptProvision, deriveOutputKey, encryptProvision, generateKeepKey, generateOutputKeyPair, importKeepPublicKey, importOutputPrivate,
} from '../../src/keepmgr/crypto.ts';
import { raw, startTestDaemon } from './helpers.ts';

// Everything here parses bytes an adversary chooses (the sallyport between host and Keep has its
// own property tests in test/sallyport): the provisioning JWE (the host relays it), output records (the host relays them) and API bodies.

test('output records: arbitrary or mutated records are rejected with a ChannelError, never opened', { timeout: 120_000 }, async () => {
  const keep = await generateKeepKey();
  const client = await generateOutputKeyPair();
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const key = await deriveOutputKey(await importOutputPrivate(client.privateJwk), await importKeepPublicKey(keep.spki), 'k', nonce);
  await fc.assert(
    fc.asyncProperty(fc.array(fc.record({ seq: fc.nat({ max: 3 }), ct: fc.uint8Array({ maxLength: 80 }) }), { minLength: 1, maxLength: 4 }), async (records) => {
      const reader = new OutputReader(key, 'k');
      await assert.rejects(
        (async () => {
          for (const r of records) await reader.open(r);
        })(),
        ChannelError,
      );
    }),
    { numRuns: 300 },
  );
});

test('provisioning: random text and mutated JWEs are refused with a ChannelError', { timeout: 120_000 }, async () => {
  const keep = await generateKeepKey();
  const { publicJwk } = await generateOutputKeyPair();
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const jwe = await encryptProvision(keep.spki, { keepId: 'k', nonce, wasm: Uint8Array.of(0, 0x61, 0x73, 0x6d), config: null, stdin: new Uint8Array(), outputKey: publicJwk });
  assert.equal((await decryptProvision(jwe, keep.privateKey, 'k', nonce)).keepId, 'k');
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.string({ maxLength: 200 }), fc.tuple(fc.nat({ max: jwe.length - 1 }), fc.constantFrom('A', 'z', '0', '_', '-', '.', '=')).map(([i, c]) => jwe.slice(0, i) + c + jwe.slice(i + 1))), async (input) => {
      if (input === jwe) return;
      try {
        await decryptProvision(input, keep.privateKey, 'k', nonce);
        // A mutation can land in base64url padding bits and leave the bytes unchanged; that is the same JWE.
      } catch (err) {
        assert.ok(err instanceof ChannelError, String(err));
      }
    }),
    { numRuns: 300 },
  );
});

test('provisioning: CA certificates travel sealed, and anything but a map of PEM certificate lists is refused', { timeout: 120_000 }, async () => {
  const keep = await generateKeepKey();
  const { publicJwk } = await generateOutputKeyPair();
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const base = { keepId: 'k', nonce, wasm: Uint8Array.of(0, 0x61, 0x73, 0x6d), config: null, stdin: new Uint8Array(), outputKey: publicJwk };
  const cert = '-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n';
  const opened = await decryptProvision(await encryptProvision(keep.spki, { ...base, cas: { server: [cert, cert] } }), keep.privateKey, 'k', nonce);
  assert.deepEqual(opened.cas, { server: [cert, cert] });
  assert.equal((await decryptProvision(await encryptProvision(keep.spki, base), keep.privateKey, 'k', nonce)).cas, undefined);
  const bad = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)),
    fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.constant([]), fc.array(fc.string({ maxLength: 40 }), { minLength: 1, maxLength: 3 })), { minKeys: 1, maxKeys: 3 }),
    fc.constant({ big: Array.from({ length: 40 }, () => `-----BEGIN CERTIFICATE-----\n${'A'.repeat(30_000)}\n-----END CERTIFICATE-----\n`) }),
  );
  await fc.assert(
    fc.asyncProperty(bad, async (cas) => {
      const jwe = await encryptProvision(keep.spki, { ...base, cas: cas as never });
      if (typeof cas === 'object' && cas !== null && !Array.isArray(cas) && Object.keys(cas).length === 0) {
        assert.deepEqual((await decryptProvision(jwe, keep.privateKey, 'k', nonce)).cas, {}, 'an empty map names no CA file');
        return;
      }
      await assert.rejects(decryptProvision(jwe, keep.privateKey, 'k', nonce), (err: Error) => err instanceof ChannelError && /invalid CA certificates/.test(err.message));
    }),
    { numRuns: 200 },
  );
});

test('API bodies: arbitrary JSON and CBOR never get a 500', { timeout: 120_000 }, async () => {
  const t = await startTestDaemon({ poolSize: 0, maxKeeps: 2 });
  try {
    const keep = await t.client.create();
    const paths = ['/api/v1/keeps', `/api/v1/keeps/${keep.id}/challenge`, `/api/v1/keeps/${keep.id}/verdict`, `/api/v1/keeps/${keep.id}/provision`];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...paths), fc.boolean(), fc.jsonValue({ maxDepth: 3 }), async (path, cbor, value) => {
        const method = path.endsWith('verdict') ? 'PUT' : 'POST';
        const body = cbor ? encode(value) : JSON.stringify(value);
        const r = await raw(t, method, path, { body, headers: { 'content-type': cbor ? 'application/cbor' : 'application/json' } });
        assert.ok(r.status < 500 || r.status === 503, `${method} ${path} ${JSON.stringify(value)} → ${r.status} ${r.text}`);
      }),
      { numRuns: 150 },
    );
  } finally {
    await t.close();
  }
});
