import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encode } from 'cborg';
import { FrameDecoder, FrameError, encodeFrame } from '../../src/keepmgr/keep/frame.ts';
import {
  ChannelError, OutputReader, decryptProvision, deriveOutputKey, encryptProvision, generateKeepKey, generateOutputKeyPair, importKeepPublicKey, importOutputPrivate,
} from '../../src/keepmgr/crypto.ts';
import { raw, startTestDaemon } from './helpers.ts';

// Everything here parses bytes an adversary chooses: the pipe (either side may be hostile), the
// provisioning JWE (the host relays it), output records (the host relays them) and API bodies.

test('the pipe framing: any bytes, split anywhere, give messages or a FrameError, nothing else', { timeout: 120_000 }, () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
      const d = new FrameDecoder(4096);
      try {
        for (const c of chunks) for (const m of d.push(c)) assert.equal(typeof m.t, 'string');
      } catch (err) {
        assert.ok(err instanceof FrameError, String(err));
      }
    }),
    { numRuns: 2000 },
  );
});

test('the pipe framing: messages survive any split into chunks', { timeout: 120_000 }, () => {
  const msg = fc.record({ t: fc.string({ maxLength: 10 }), n: fc.integer(), b: fc.uint8Array({ maxLength: 100 }), s: fc.string() });
  fc.assert(
    fc.property(fc.array(msg, { minLength: 1, maxLength: 5 }), fc.array(fc.nat({ max: 50 }), { maxLength: 10 }), (msgs, cuts) => {
      const bytes = Buffer.concat(msgs.map((m) => encodeFrame(m)));
      const d = new FrameDecoder();
      const got = [];
      let at = 0;
      for (const c of cuts) {
        got.push(...d.push(bytes.subarray(at, at + c)));
        at = Math.min(bytes.length, at + c);
      }
      got.push(...d.push(bytes.subarray(at)));
      assert.deepEqual(got.map((m) => ({ ...m, b: new Uint8Array(m.b as Uint8Array) })), msgs.map((m) => ({ ...m })));
    }),
    { numRuns: 300 },
  );
  assert.throws(() => new FrameDecoder(10).push(Uint8Array.of(0, 0, 1, 0)), /exceeds the 10-byte limit/);
  assert.throws(() => new FrameDecoder().push(Uint8Array.of(0, 0, 0, 0)), /empty frame/);
  assert.throws(() => new FrameDecoder().push(Buffer.concat([Uint8Array.of(0, 0, 0, 2), encode([1])])), /CBOR map/);
});

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
