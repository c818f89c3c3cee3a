import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameDecoder, MAX_FRAME_BYTES, ProtocolError, encodeFrame, joinPieces } from '../../src/sallyport/index.ts';

test('frames survive any split of the byte stream', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
      (payloads, cuts) => {
        const wire = Buffer.concat(payloads.map((p) => encodeFrame(p)));
        const decoder = new FrameDecoder();
        const out: Uint8Array[] = [];
        let at = 0;
        for (let i = 0; at < wire.length; i++) {
          const n = cuts[i % cuts.length]!;
          out.push(...decoder.push(wire.subarray(at, at + n)));
          at += n;
        }
        assert.equal(decoder.pending, 0);
        assert.deepEqual(out.map((b) => Buffer.from(b)), payloads.map((b) => Buffer.from(b)));
      },
    ),
  );
});

test('a zero length or an oversized length prefix is refused before any payload is buffered', () => {
  assert.throws(() => new FrameDecoder().push(Uint8Array.of(0, 0, 0, 0)), /empty frame/);
  const huge = new Uint8Array(4);
  new DataView(huge.buffer).setUint32(0, MAX_FRAME_BYTES + 1);
  assert.throws(() => new FrameDecoder().push(huge), (e: unknown) => e instanceof ProtocolError && /exceeds/.test(e.message));
  assert.throws(() => encodeFrame(new Uint8Array(0)), ProtocolError);
});

test('arbitrary bytes either frame or fail with a ProtocolError, never anything else', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
      const decoder = new FrameDecoder(1024);
      try {
        for (const c of chunks) for (const f of decoder.push(c)) assert.ok(f.length >= 1 && f.length <= 1024);
      } catch (e) {
        assert.ok(e instanceof ProtocolError, String(e));
      }
    }),
  );
});

test('pushPieces hands out views of the pushed chunks, never copies, for a frame split across any number of reads', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 400 }), { minLength: 1, maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
      (payloads, cuts) => {
        const wire = Buffer.concat(payloads.map((p) => encodeFrame(p)));
        const decoder = new FrameDecoder();
        const frames: Uint8Array[][] = [];
        let at = 0;
        for (let i = 0; at < wire.length; i++) {
          const n = cuts[i % cuts.length]!;
          frames.push(...decoder.pushPieces(wire.subarray(at, at + n)));
          at += n;
        }
        assert.equal(decoder.pending, 0);
        assert.deepEqual(frames.map((f) => Buffer.from(joinPieces(f))), payloads.map((b) => Buffer.from(b)));
        for (const f of frames) for (const piece of f) assert.equal(piece.buffer, wire.buffer, 'a view of the wire, not a copy');
      },
    ),
  );
});
