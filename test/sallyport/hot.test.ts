import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encode } from 'cborg';
import { ProtocolError, decodeMessage, encodeFrame, encodeMessage } from '../../src/sallyport/index.ts';
import { controlFrame, creditFrame, dataFrame, dataFrameHead, decodeHot, decodeHotControl, decodeHotDataPieces } from '../../src/sallyport/hot.ts';

const bytesOf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const stream = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 0xffff_ffff }));
const payload = fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 70_000 }).map((n) => new Uint8Array(n).fill(n & 0xff)));

test('hot frames are byte for byte the frames of the general encoder', () => {
  fc.assert(
    fc.property(stream, payload, (id, bytes) => {
      const general = encodeFrame(encodeMessage({ t: 'data', stream: id, bytes }));
      assert.ok(bytesOf(dataFrame(id, bytes)).equals(bytesOf(general)));
      const head = dataFrameHead(id, bytes.length);
      assert.ok(Buffer.concat([head, bytes]).equals(bytesOf(general)));
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(stream, fc.integer({ min: 1, max: 0x7fff_ffff }), (id, n) => {
      assert.ok(bytesOf(creditFrame(id, n)).equals(bytesOf(encodeFrame(encodeMessage({ t: 'credit', stream: id, bytes: n })))));
    }),
    { numRuns: 500 },
  );
});

test('the hot decoder gives what the general decoder gives, and a view rather than a copy', () => {
  fc.assert(
    fc.property(stream, payload, (id, bytes) => {
      const wire = encodeMessage({ t: 'data', stream: id, bytes });
      const hot = decodeHot(wire);
      assert.ok(hot && hot.t === 'data');
      assert.equal(hot.stream, id);
      assert.ok(bytesOf(hot.bytes).equals(bytesOf(bytes)));
      assert.equal(hot.bytes.buffer, wire.buffer);
      const general = decodeMessage(wire, 'keep-to-host');
      assert.ok(general.t === 'data' && bytesOf(general.bytes).equals(bytesOf(hot.bytes)) && general.stream === hot.stream);
    }),
    { numRuns: 300 },
  );
});

test('the hot decoder accepts only what the general decoder accepts, with the same meaning', () => {
  // Mutations of canonical data and credit messages: whatever the hot path accepts, the general
  // decoder must accept identically; what it passes on, the general decoder decides.
  const canonical = fc.oneof(
    fc.tuple(stream, fc.uint8Array({ minLength: 0, maxLength: 30 })).map(([id, b]) => encode(['data', id, b])),
    fc.tuple(stream, fc.integer({ min: 0, max: 2 ** 33 })).map(([id, n]) => encode(['credit', id, n])),
  );
  const mutated = fc.tuple(canonical, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.integer({ min: -3, max: 3 })).map(([wire, edits, cut]) => {
    const out = new Uint8Array(Math.max(0, wire.length + cut));
    out.set(wire.subarray(0, out.length));
    for (const [at, v] of edits) if (out.length > 0) out[at % out.length] = v;
    return out;
  });
  fc.assert(
    fc.property(mutated, (wire) => {
      const hot = decodeHot(wire);
      if (!hot) return;
      for (const dir of ['keep-to-host', 'host-to-keep'] as const) {
        const general = decodeMessage(wire, dir);
        assert.equal(general.t, hot.t);
        if (general.t === 'data' && hot.t === 'data') {
          assert.equal(general.stream, hot.stream);
          assert.ok(bytesOf(general.bytes).equals(bytesOf(hot.bytes)));
        } else assert.deepEqual(general, hot);
      }
    }),
    { numRuns: 5000 },
  );
});

test('non-canonical, out-of-range and trailing forms are left to the general decoder, which refuses them', () => {
  const d = [0x83, 0x64, 0x64, 0x61, 0x74, 0x61];
  const c = [0x83, 0x66, ...Buffer.from('credit')];
  const refused: [number[], RegExp][] = [
    [[...d, 0x18, 0x01, 0x41, 0x00], /undecodable/], // stream 1 in two bytes
    [[...d, 0x01, 0x58, 0x01, 0x00], /undecodable/], // 1-byte string with a 1-byte length
    [[...d, 0x01, 0x41, 0x00, 0x00], /undecodable/], // a trailing byte
    [[...d, 0x01, 0x40], /byte string of 1\.\./], // empty data
    [[...d, 0x20, 0x41, 0x00], /field 1 must be an integer/], // stream -1
    [[...c, 0x01, 0x00], /integer in 1\.\./], // credit 0
    [[...c, 0x01, 0x1a, 0x80, 0, 0, 0], /integer in 1\.\./], // credit 2^31
  ];
  for (const [bytes, reason] of refused) {
    const wire = Uint8Array.from(bytes);
    assert.equal(decodeHot(wire), undefined, Buffer.from(wire).toString('hex'));
    assert.throws(() => decodeMessage(wire, 'keep-to-host'), (e: unknown) => e instanceof ProtocolError && reason.test(e.message), Buffer.from(wire).toString('hex'));
  }
});

const control = fc.oneof(
  payload.map((bytes) => ({ t: 'module', bytes }) as const),
  stream.map((id) => ({ t: 'eof', stream: id }) as const),
  stream.map((id) => ({ t: 'close', stream: id }) as const),
  fc.integer({ min: 0, max: 255 }).map((code) => ({ t: 'exit', code }) as const),
);

test('hot control frames (module, eof, close, exit) are byte for byte the frames of the general encoder', () => {
  fc.assert(
    fc.property(control, (m) => {
      const hot = controlFrame(m);
      assert.ok(hot);
      assert.ok(bytesOf(hot).equals(bytesOf(encodeFrame(encodeMessage(m)))));
    }),
    { numRuns: 500 },
  );
  // Fields the hot path does not write are left to the general encoder.
  assert.equal(controlFrame({ t: 'exit', code: -1 }), undefined);
  assert.equal(controlFrame({ t: 'eof', stream: 2 ** 32 }), undefined);
  assert.equal(controlFrame({ t: 'data', stream: 1, bytes: Uint8Array.of(1) }), undefined);
});

test('the hot control decoder accepts only what the general decoder accepts, in that direction, with the same meaning', () => {
  const canonical = fc.oneof(
    control.map((m) => encodeMessage(m)),
    fc.tuple(fc.constantFrom('module', 'eof', 'exit', 'close'), fc.oneof(fc.integer({ min: -2, max: 2 ** 33 }), fc.uint8Array({ maxLength: 20 }))).map(([t, v]) => encode([t, v])),
  );
  const mutated = fc.tuple(canonical, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.integer({ min: -3, max: 3 })).map(([wire, edits, cut]) => {
    const out = new Uint8Array(Math.max(0, wire.length + cut));
    out.set(wire.subarray(0, out.length));
    for (const [at, v] of edits) if (out.length > 0) out[at % out.length] = v;
    return out;
  });
  let accepted = 0;
  fc.assert(
    fc.property(fc.oneof(canonical, mutated), fc.constantFrom('keep-to-host', 'host-to-keep') as fc.Arbitrary<'keep-to-host' | 'host-to-keep'>, (wire, dir) => {
      const hot = decodeHotControl(wire, dir);
      if (!hot) return;
      accepted++;
      const general = decodeMessage(wire, dir);
      if (general.t === 'module' && hot.t === 'module') assert.ok(bytesOf(general.bytes).equals(bytesOf(hot.bytes)));
      else assert.deepEqual(general, hot);
    }),
    { numRuns: 5000 },
  );
  assert.ok(accepted > 100, `only ${accepted} accepted`);
  // The direction is the general decoder's rule too: no module from the Keep, no exit from the host.
  assert.equal(decodeHotControl(encodeMessage({ t: 'module', bytes: Uint8Array.of(1) }), 'keep-to-host'), undefined);
  assert.equal(decodeHotControl(encodeMessage({ t: 'exit', code: 0 }), 'host-to-keep'), undefined);
  assert.equal(decodeHotControl(Uint8Array.from([0x82, 0x64, ...Buffer.from('exit'), 0x19, 0x01, 0x00]), 'keep-to-host'), undefined); // 256
  assert.equal(decodeHotControl(Uint8Array.from([0x82, 0x63, ...Buffer.from('eof'), 0x18, 0x01]), 'keep-to-host'), undefined); // 1 in two bytes
});

/** Cuts `wire` at the given offsets into pieces that are views of it. */
function cut(wire: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % wire.length).filter((c) => c > 0))].sort((a, b) => a - b);
  return [0, ...at].map((from, i) => wire.subarray(from, at[i] ?? wire.length));
}

test('a data payload in pieces decodes exactly as decodeHot decodes it whole, as views of the pieces', () => {
  fc.assert(
    fc.property(stream, payload, fc.array(fc.nat(), { maxLength: 6 }), (id, bytes, cuts) => {
      const wire = encodeMessage({ t: 'data', stream: id, bytes });
      const pieces = cut(wire, cuts);
      const split = decodeHotDataPieces(pieces);
      assert.ok(split);
      assert.equal(split.stream, id);
      assert.ok(Buffer.concat(split.pieces).equals(bytesOf(bytes)));
      for (const p of split.pieces) assert.ok(p.length > 0 && p.buffer === wire.buffer, 'a non-empty view, not a copy');
    }),
    { numRuns: 500 },
  );
});

test('in pieces, the hot data decoder accepts only what decodeHot accepts whole', () => {
  const mutated = fc.tuple(stream, fc.uint8Array({ minLength: 0, maxLength: 30 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.integer({ min: -3, max: 3 }), fc.array(fc.nat(), { maxLength: 5 })).map(([id, b, edits, trim, cuts]) => {
    const wire = encode(['data', id, b]);
    const out = new Uint8Array(Math.max(1, wire.length + trim));
    out.set(wire.subarray(0, out.length));
    for (const [at, v] of edits) out[at % out.length] = v;
    return { out, cuts };
  });
  fc.assert(
    fc.property(mutated, ({ out, cuts }) => {
      const whole = decodeHot(out);
      const split = decodeHotDataPieces(cut(out, cuts));
      if (!whole || whole.t !== 'data') return assert.equal(split, undefined, Buffer.from(out).toString('hex'));
      assert.ok(split && split.stream === whole.stream && Buffer.concat(split.pieces).equals(bytesOf(whole.bytes)));
    }),
    { numRuns: 5000 },
  );
});
