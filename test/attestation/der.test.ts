import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DerError,
  TAG,
  children,
  decodeBoolean,
  decodeOid,
  decodeSmallUint,
  encodeOid,
  encodeTlv,
  integerHex,
  readTlv,
  readWhole,
} from '../../src/attestation/der.ts';

const bytes = (...b: number[]) => Uint8Array.from(b);

test('DER lengths: short and long forms; indefinite, non-minimal, oversized and overrunning ones are refused', () => {
  assert.equal(readTlv(bytes(0x04, 0x02, 1, 2)).content.length, 2);
  const long = encodeTlv(TAG.OCTET_STRING, new Uint8Array(300));
  assert.deepEqual([...long.subarray(0, 4)], [0x04, 0x82, 0x01, 0x2c]);
  assert.equal(readWhole(long).content.length, 300);
  assert.throws(() => readTlv(bytes(0x30, 0x80, 0, 0)), /indefinite length/);
  assert.throws(() => readTlv(bytes(0x04, 0x81, 0x05, 1, 2, 3, 4, 5)), /non-minimal DER length/);
  assert.throws(() => readTlv(bytes(0x04, 0x82, 0x00, 0x90, ...new Uint8Array(0x90))), /non-minimal DER length/);
  assert.throws(() => readTlv(bytes(0x04, 0x85, 1, 1, 1, 1, 1)), /DER length too large/);
  assert.throws(() => readTlv(bytes(0x04, 0x05, 1, 2)), /runs past the end/);
  assert.throws(() => readTlv(bytes(0x04)), /truncated DER header/);
  assert.throws(() => readTlv(bytes(0x1f, 0x01, 0x00)), /multi-byte DER tags/);
  assert.throws(() => readWhole(bytes(0x05, 0x00, 0x00)), /1 bytes after the DER value/);
  assert.throws(() => children(readTlv(bytes(0x04, 0x00))), /not constructed/);
});

test('OIDs round-trip, and malformed encodings are refused', () => {
  for (const oid of ['1.2.840.113549.1.1.10', '2.5.29.19', '1.3.6.1.4.1.3704.1.3.8', '2.16.840.1.101.3.4.2.2', '1.2.840.113741.1.13.1', '2.999.1']) {
    assert.equal(decodeOid(readWhole(encodeOid(oid))), oid);
  }
  assert.throws(() => decodeOid(readTlv(bytes(0x06, 0x00))), /empty OID/);
  assert.throws(() => decodeOid(readTlv(bytes(0x06, 0x02, 0x2a, 0x86))), /truncated OID/);
  assert.throws(() => decodeOid(readTlv(bytes(0x06, 0x02, 0x80, 0x01))), /non-minimal OID arc/);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 39 }), fc.array(fc.nat({ max: 2 ** 40 }), { maxLength: 8 }), (a, b, rest) => {
      const oid = [a, b, ...rest].join('.');
      assert.equal(decodeOid(readWhole(encodeOid(oid))), oid);
    }),
  );
});

test('INTEGERs and BOOLEANs are read strictly; serial numbers normalise to minimal hex', () => {
  assert.equal(decodeSmallUint(readTlv(bytes(0x02, 0x02, 0x00, 0xde))), 222); // AMD ucodeSPL 222
  assert.equal(decodeSmallUint(readTlv(bytes(0x02, 0x01, 0x00))), 0);
  assert.throws(() => decodeSmallUint(readTlv(bytes(0x02, 0x01, 0x80))), /negative INTEGER/);
  assert.throws(() => decodeSmallUint(readTlv(bytes(0x02, 0x02, 0x00, 0x05))), /non-minimal INTEGER/);
  assert.throws(() => decodeSmallUint(readTlv(bytes(0x02, 0x00))), /empty INTEGER/);
  assert.throws(() => decodeSmallUint(readTlv(bytes(0x04, 0x01, 0x00))), DerError);
  assert.equal(integerHex(bytes(0x00)), '0');
  assert.equal(integerHex(bytes(0x00, 0x80, 0x01)), '8001');
  assert.equal(integerHex(bytes(0x02, 0x00, 0x01)), '20001');
  assert.equal(decodeBoolean(readTlv(bytes(0x01, 0x01, 0xff))), true);
  assert.throws(() => decodeBoolean(readTlv(bytes(0x01, 0x01, 0x01))), /0x00 or 0xff/);
});

test('the reader never reads outside its buffer, whatever the bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (input) => {
      try {
        const tlv = readTlv(input);
        assert.ok(tlv.end <= input.length);
        if (tlv.tag & 0x20) for (const c of children(tlv)) assert.ok(c.end <= tlv.content.length);
      } catch (err) {
        assert.ok(err instanceof DerError, String(err));
      }
    }),
    { numRuns: 1000 },
  );
});
