import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decode, encode } from 'cborg';
import { ProtocolError, decodeMessage, encodeMessage } from '../../src/sallyport/index.ts';
import type { HostMessage, KeepInit, KeepMessage } from '../../src/sallyport/index.ts';

const init: KeepInit = {
  moduleSize: 1234,
  argv: ['main.wasm', 'a'],
  env: [['FD_COUNT', '4'], ['X', 'y=z']],
  files: [
    { kind: 'stdin', name: 'stdin' },
    { kind: 'stdout', name: 'stdout' },
    { kind: 'listen', name: 'ingest', prot: 'tls', listener: 17, addr: '127.0.0.1', port: 0 },
    { kind: 'connect', name: 'db', prot: 'tcp', host: '127.0.0.1', port: 5432, ca: [] },
    { kind: 'dir', name: '/data', path: '/tmp/x', readonly: true },
  ],
  limits: { memory: 1 << 20, descriptors: null },
  logLevel: 'warn',
  steward: null,
};

const deployInit: KeepInit = {
  ...init,
  moduleSize: 0,
  files: [],
  steward: 'http://127.0.0.1:9000/',
  evidence: 'snp',
  deploy: { origin: 'https://registry.example:8443', user: 'alice', repo: 'hello', tag: '1.0.0', ca: ['-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n'], trustedKeys: ['{"kty":"OKP","crv":"Ed25519","x":"AA"}'], allowUnsigned: false, stage: '/tmp/stage' },
};

/** Whatever `m` decodes to must re-encode to a message that decodes identically; anything else is a ProtocolError. */
function roundTripsOrRefuses(m: unknown, dir: 'host-to-keep' | 'keep-to-host'): void {
  try {
    const decoded = decodeMessage(encode(m), dir);
    assert.deepEqual(decodeMessage(encodeMessage(decoded), dir), decoded);
  } catch (e) {
    assert.ok(e instanceof ProtocolError, String(e));
  }
}

const hostSamples: HostMessage[] = [
  { t: 'hello', version: 1, init },
  { t: 'hello', version: 1, init: { ...init, steward: 'https://steward.example/', evidence: 'snp', collect: { via: 'configfs-tsm', root: '/sys/kernel/config/tsm/report' } } },
  { t: 'hello', version: 1, init: deployInit },
  { t: 'module', bytes: Uint8Array.of(0, 97, 115, 109) },
  { t: 'data', stream: 0, bytes: Uint8Array.of(1, 2, 3) },
  { t: 'eof', stream: 0 },
  { t: 'credit', stream: 1, bytes: 4096 },
  { t: 'accept', listener: 17, stream: 19, peer: '127.0.0.1', port: 40000 },
  { t: 'dialed', stream: 16, error: null },
  { t: 'dialed', stream: 18, error: 'ECONNREFUSED' },
  { t: 'reset', stream: 19, reason: 'ECONNRESET' },
  { t: 'evidence', id: 1, kind: 'snp', bytes: Uint8Array.of(9), error: null },
  { t: 'evidence', id: 2, kind: null, bytes: null, error: 'no attestation on this backend' },
  { t: 'symlinked', id: 1, error: null },
  { t: 'symlinked', id: 2, error: 'EEXIST' },
  { t: 'fsynced', id: 3, error: null },
  // Version 2: provisioned Keeps.
  { t: 'standby', version: 2, init: { limits: { memory: 1 << 26, descriptors: 32 }, logLevel: 'warn', steward: 'https://steward.example', evidence: 'snp' } },
  { t: 'standby', version: 2, init: { limits: { memory: null, descriptors: null }, logLevel: 'error', steward: null } },
  { t: 'assign', keep: '0b5e3a36-4c1f-4d59-9e1e-4f7b2f8c9a10' },
  { t: 'challenge', nonce: new Uint8Array(32).fill(7) },
  { t: 'provision', bytes: Uint8Array.of(101, 121, 74), more: true },
  { t: 'provision', bytes: Uint8Array.of(46), more: false },
  { t: 'listening', listener: 16, port: 41000, error: null },
  { t: 'listening', listener: 18, port: 0, error: 'EADDRINUSE' },
  { t: 'collateral', id: 1, collateral: { leaf: Uint8Array.of(0x30, 0), crls: [{ url: 'https://kdsintf.amd.com/vcek/v1/Milan/crl', crl: Uint8Array.of(0x30, 1, 5) }], tcb: null, qe: null }, error: null },
  { t: 'collateral', id: 2, collateral: { leaf: null, crls: [], tcb: { certs: [Uint8Array.of(0x30, 0)], report: Uint8Array.of(123, 125) }, qe: { certs: [], report: Uint8Array.of(1) } }, error: null },
  { t: 'collateral', id: 3, collateral: null, error: 'the Milan VCEK is not in the cache' },
];
const keepSamples: KeepMessage[] = [
  { t: 'data', stream: 1, bytes: Uint8Array.of(104, 105) },
  { t: 'eof', stream: 16 },
  { t: 'credit', stream: 0, bytes: 1 },
  { t: 'close', stream: 19 },
  { t: 'dial', stream: 16, host: 'example.com', port: 443 },
  { t: 'attest', id: 1, reportData: new Uint8Array(64) },
  { t: 'get-collateral', id: 2, request: { kind: 'snp', key: 'vcek', product: null, chipId: new Uint8Array(64).fill(1), tcb: Uint8Array.of(2, 0, 0, 0, 0, 0, 6, 93), leaf: true } },
  { t: 'get-collateral', id: 3, request: { kind: 'snp', key: 'vlek', product: 'Genoa', chipId: new Uint8Array(64), tcb: new Uint8Array(8), leaf: false } },
  { t: 'get-collateral', id: 4, request: { kind: 'tdx', fmspc: 'B0C06F000000', ca: 'platform' } },
  { t: 'symlink', id: 1, target: 'sub/file', path: '/data/link' },
  { t: 'fsync', id: 2, path: '/data/file', dev: '2049', ino: '18446744073709551615', dataOnly: 1 },
  { t: 'log', level: 'info', text: 'hello' },
  { t: 'deployed', slug: 'registry.example:8443/alice/hello:1.0.0', digest: 'ab'.repeat(48), signer: 'kid', rss: 64 * 2 ** 20, wallTime: 30_000, descriptors: 16 },
  { t: 'deployed', slug: 'registry.example:8443/alice/hello:1.0.0', digest: 'ab'.repeat(48), signer: null, rss: null, wallTime: null, descriptors: null },
  { t: 'exit', code: 3 },
  { t: 'fail', kind: 'limit', message: 'memory' },
  { t: 'ready', publicKey: Uint8Array.of(48, 118) },
  { t: 'provisioned' },
  { t: 'refused', reason: 'provisioning JWE is addressed to another Keep' },
  { t: 'listen', listener: 16, name: 'ingest', prot: 'tls' },
  { t: 'listen', listener: 18, name: 'ingest', prot: 'tcp', at: { addr: '0.0.0.0', port: 8443 } },
  { t: 'certified', chain: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' },
];

test('every message round-trips in its own direction', () => {
  for (const m of hostSamples) assert.deepEqual(decodeMessage(encodeMessage(m), 'host-to-keep'), m);
  for (const m of keepSamples) assert.deepEqual(decodeMessage(encodeMessage(m), 'keep-to-host'), m);
});

test('collateral requests and answers are checked field by field: only well-formed DER and https CRL URLs reach a CSR', () => {
  const snp = { kind: 'snp', key: 'vcek', product: null, chipId: new Uint8Array(64), tcb: new Uint8Array(8), leaf: true };
  const badRequests: [unknown, RegExp][] = [
    [{ ...snp, chipId: new Uint8Array(63) }, /chipId must be a byte string of 64\.\.64/],
    [{ ...snp, tcb: new Uint8Array(9) }, /tcb must be a byte string of 8\.\.8/],
    [{ ...snp, product: 'Naples' }, /product must be one of Milan, Genoa, Turin/],
    [{ ...snp, key: 'vcek2' }, /key must be one of vcek, vlek/],
    [{ ...snp, leaf: 1 }, /leaf must be a boolean/],
    [{ ...snp, fmspc: '00906ED50000' }, /unknown key 'fmspc'/],
    [{ kind: 'kvm' }, /kind must be one of snp, sgx, tdx/],
    [{ kind: 'sgx', fmspc: '00906ed50000', ca: 'processor' }, /fmspc must be 12 upper-case hex digits/],
    [{ kind: 'sgx', fmspc: '00906ED5000', ca: 'processor' }, /fmspc must be a text string of 12\.\.12/],
    [{ kind: 'sgx', fmspc: '00906ED50000', ca: 'root' }, /ca must be one of processor, platform/],
    [{ kind: 'sgx', fmspc: '00906ED50000' }, /lacks key 'ca'/],
    ['snp', /must be a map/],
  ];
  for (const [request, reason] of badRequests) {
    assert.throws(() => decodeMessage(encode(['get-collateral', 1, request]), 'keep-to-host'), (e: unknown) => e instanceof ProtocolError && reason.test(e.message), JSON.stringify(request));
  }
  const ok = { leaf: null, crls: [], tcb: null, qe: null };
  const der = (n: number) => Uint8Array.of(0x30, n, ...new Uint8Array(n));
  const badAnswers: [unknown, unknown, RegExp][] = [
    [ok, 'and an error', /either the collateral or an error/],
    [null, null, /either the collateral or an error/],
    [{ ...ok, leaf: Uint8Array.of(4, 0) }, null, /collateral\.leaf must be one DER SEQUENCE/],
    [{ ...ok, leaf: Uint8Array.of(0x30, 1, 0, 0) }, null, /collateral\.leaf must be one DER SEQUENCE/],
    [{ ...ok, leaf: Uint8Array.of(0x30, 3, 0) }, null, /collateral\.leaf must be one DER SEQUENCE/],
    [{ ...ok, leaf: Uint8Array.of(0x30, 0x81, 1, 0) }, null, /collateral\.leaf must be one DER SEQUENCE/],
    [{ ...ok, leaf: Uint8Array.of(0x30, 0x80, 0, 0) }, null, /collateral\.leaf must be one DER SEQUENCE/],
    [{ ...ok, crls: [['http://kdsintf.amd.com/vcek/v1/Milan/crl', der(1)]] }, null, /crls\[0\] must be \[an https URL/],
    [{ ...ok, crls: [['https://a b', der(1)]] }, null, /crls\[0\] must be \[an https URL/],
    [{ ...ok, crls: [['https://x/' + 'a'.repeat(600), der(1)]] }, null, /crls\[0\] must be \[an https URL/],
    [{ ...ok, crls: [['https://x/crl', der(1), 'extra']] }, null, /crls\[0\] must be/],
    [{ ...ok, crls: [['https://x/crl', 'text']] }, null, /crls\[0\]\.crl must be one DER SEQUENCE/],
    [{ ...ok, crls: new Array(9).fill(['https://x/crl', der(1)]) }, null, /crls must be at most 8 entries/],
    [{ ...ok, tcb: { certs: [der(1)] } }, null, /collateral\.tcb lacks key 'report'/],
    [{ ...ok, tcb: { certs: [der(1)], report: new Uint8Array(0) } }, null, /report must be a byte string of 1\.\./],
    [{ ...ok, qe: { certs: new Array(9).fill(der(1)), report: Uint8Array.of(1) } }, null, /certs must be at most 8 certificates/],
    [{ ...ok, qe: { certs: [Uint8Array.of(0x31, 0)], report: Uint8Array.of(1) } }, null, /qe\.certs\[0\] must be one DER SEQUENCE/],
    [{ ...ok, extra: 1 }, null, /unknown key 'extra'/],
  ];
  for (const [collateral, error, reason] of badAnswers) {
    assert.throws(() => decodeMessage(encode(['collateral', 1, collateral, error]), 'host-to-keep'), (e: unknown) => e instanceof ProtocolError && reason.test(e.message), JSON.stringify(collateral));
  }
  // Long DER lengths are fine when minimal and exact.
  const long = Uint8Array.of(0x30, 0x82, 0x01, 0x00, ...new Uint8Array(256));
  assert.deepEqual(decodeMessage(encode(['collateral', 1, { ...ok, leaf: long }, null]), 'host-to-keep'), { t: 'collateral', id: 1, collateral: { ...ok, leaf: long }, error: null });
  assert.throws(() => decodeMessage(encode(['collateral', 1, { ...ok, leaf: Uint8Array.of(0x30, 0x82, 0x00, 0x80, ...new Uint8Array(128)) }, null]), 'host-to-keep'), /one DER SEQUENCE/);
});

test('collateral messages with well-shaped keys and random values decode or fail with ProtocolError, and what decodes round-trips', () => {
  const der = fc.uint8Array({ maxLength: 40 }).map((b) => Uint8Array.of(0x30, b.length, ...b));
  const bytes = fc.oneof(der, fc.uint8Array({ maxLength: 70 }), fc.constant(Uint8Array.of(0x30, 0x81, 0x80)));
  const anything = fc.oneof(bytes, fc.string({ maxLength: 20 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(bytes, { maxLength: 3 }));
  const doc = fc.oneof(fc.constant(null), fc.record({ certs: fc.oneof(fc.array(der, { maxLength: 9 }), anything), report: fc.oneof(bytes, anything) }));
  const url = fc.oneof(fc.constant('https://kdsintf.amd.com/vcek/v1/Milan/crl'), fc.webUrl(), fc.string({ maxLength: 20 }));
  const answer = fc.record({
    leaf: fc.oneof(fc.constant(null), bytes, anything),
    crls: fc.oneof(fc.array(fc.tuple(url, fc.oneof(der, anything)), { maxLength: 9 }), anything),
    tcb: doc,
    qe: doc,
  });
  const request = fc.oneof(
    fc.record({ kind: fc.constantFrom('snp', 'sgx', 'kvm'), key: fc.constantFrom('vcek', 'vlek', 'x'), product: fc.constantFrom(null, 'Milan', 'Turin', 'Naples'), chipId: fc.uint8Array({ minLength: 62, maxLength: 66 }), tcb: fc.uint8Array({ minLength: 7, maxLength: 9 }), leaf: fc.oneof(fc.boolean(), anything) }, { requiredKeys: ['kind'] }),
    fc.record({ kind: fc.constantFrom('sgx', 'tdx', 'snp'), fmspc: fc.oneof(fc.constant('00906ED50000'), fc.string({ maxLength: 13 })), ca: fc.constantFrom('processor', 'platform', 'root') }, { requiredKeys: ['kind'] }),
  );
  const messages = fc.oneof(
    fc.tuple(fc.constant('host-to-keep' as const), fc.tuple(fc.constant('collateral'), fc.nat(), fc.oneof(answer, anything), fc.oneof(fc.constant(null), fc.string({ maxLength: 30 })))),
    fc.tuple(fc.constant('keep-to-host' as const), fc.tuple(fc.constant('get-collateral'), fc.nat(), fc.oneof(request, anything))),
  );
  fc.assert(
    fc.property(messages, ([dir, m]) => roundTripsOrRefuses(m, dir)),
    { numRuns: 2000 },
  );
});

test('a message is refused in the wrong direction', () => {
  assert.throws(() => decodeMessage(encodeMessage({ t: 'exit', code: 0 }), 'host-to-keep'), /host may not send 'exit'/);
  assert.throws(() => decodeMessage(encodeMessage(hostSamples[0]!), 'keep-to-host'), /Keep may not send 'hello'/);
});

test('malformed messages are refused with a reason', () => {
  const bad: [unknown, RegExp][] = [
    [{ t: 'data' }, /must be a CBOR array/],
    [[], /must be a CBOR array/],
    [[1, 2], /must be a CBOR array/],
    [['data', 1], /must have 2 field/],
    [['data', 1, 'text'], /field 2 must be a byte string/],
    [['data', -1, Uint8Array.of(1)], /field 1 must be an integer/],
    [['data', 2 ** 32, Uint8Array.of(1)], /field 1 must be an integer/],
    [['data', 1, new Uint8Array(0)], /byte string of 1\.\./],
    [['exit', 256], /integer in 0\.\.255/],
    [['log', 'loud', 'x'], /one of error/],
    [['attest', 1, new Uint8Array(63)], /64\.\.64 bytes/],
    [['dial', 16, '', 443], /text string of 1\.\./],
    [['dial', 16, 'h', 0], /integer in 1\.\.65535/],
    [['symlink', 1, '', '/d/l'], /text string of 1\.\.4096/],
    [['symlink', 1, 'x'.repeat(4097), '/d/l'], /text string of 1\.\.4096/],
    [['symlink', 1, 't', Uint8Array.of(47)], /field 3 must be a text string/],
    [['symlink', 1, 't'], /must have 3 field/],
    [['fsync', 1, '/d/f', '1', '2', 2], /field 5 must be an integer in 0\.\.1/],
    [['fsync', 1, '/d/f', '1', 'x'.repeat(21), 0], /field 4 must be a text string of 1\.\.20/],
    [['fsync', 1, '/d/f', '-1', '2', 0], /dev and ino must be decimal digits/],
    [['nope'], /may not send 'nope'/],
  ];
  for (const [value, reason] of bad) {
    assert.throws(() => decodeMessage(encode(value), 'keep-to-host'), (e: unknown) => e instanceof ProtocolError && reason.test(e.message), JSON.stringify(value));
  }
  assert.throws(() => decodeMessage(encode(['evidence', 1, 'snp', Uint8Array.of(1), 'and an error']), 'host-to-keep'), /either kind and bytes, or an error/);
  const wireInit = (decode(encodeMessage(hostSamples[0]!)) as unknown[])[2] as Record<string, unknown>;
  const hello = (collect: unknown) => encode(['hello', 1, { ...wireInit, collect }]);
  for (const [collect, reason] of [
    [{ via: 'ioctl', root: '/dev/sev-guest' }, /collect\.via must be one of configfs-tsm, gramine/],
    [{ via: 'gramine', root: 'dev/attestation' }, /collect\.root must be an absolute path/],
    [{ via: 'gramine' }, /collect lacks key 'root'/],
    [{ via: 'gramine', root: '/dev/attestation', extra: 1 }, /unknown key 'extra'/],
    ['gramine', /collect must be a map/],
  ] as [unknown, RegExp][]) {
    assert.throws(() => decodeMessage(hello(collect), 'host-to-keep'), (e: unknown) => e instanceof ProtocolError && reason.test(e.message), JSON.stringify(collect));
  }
  assert.throws(() => decodeMessage(encode(['symlinked', 1, 'x'.repeat(33)]), 'host-to-keep'), /text string of 0\.\.32/);
  // Version 2.
  const badHost: [unknown, RegExp][] = [
    [['assign', 'not-a-uuid'], /text string of 36\.\.36 bytes/],
    [['assign', '0B5E3A36-4C1F-4D59-9E1E-4F7B2F8C9A10'], /a Keep id/],
    [['challenge', new Uint8Array(31)], /32\.\.32 bytes/],
    [['provision', Uint8Array.of(1), 1], /field 2 must be a boolean/],
    [['listening', 16, 0, null], /either a port or an error/],
    [['listening', 16, 443, 'and an error'], /either a port or an error/],
    [['standby', 2, { limits: { memory: null, descriptors: null }, logLevel: 'warn' }], /lacks key 'steward'/],
    [['standby', 2, { limits: { memory: null, descriptors: null }, logLevel: 'warn', steward: null, files: [] }], /unknown key 'files'/],
  ];
  for (const [value, reason] of badHost) {
    assert.throws(() => decodeMessage(encode(value), 'host-to-keep'), (e: unknown) => e instanceof ProtocolError && reason.test(e.message), JSON.stringify(value));
  }
  assert.throws(() => decodeMessage(encode(['certified', 'not PEM']), 'keep-to-host'), /a PEM certificate chain/);
  assert.throws(() => decodeMessage(encode(['refused', '']), 'keep-to-host'), /text string of 1\.\./);
  assert.throws(() => decodeMessage(encode(['ready']), 'keep-to-host'), /must have 1 field/);
});

test('non-canonical or extended CBOR is refused', () => {
  // indefinite-length array, a float, undefined, a tag, trailing bytes, a duplicate map key
  const cases = [
    Uint8Array.of(0x9f, 0x64, 0x65, 0x78, 0x69, 0x74, 0x00, 0xff),
    Uint8Array.of(0x82, 0x64, 0x65, 0x78, 0x69, 0x74, 0xf9, 0x3c, 0x00),
    Uint8Array.of(0x82, 0x64, 0x65, 0x78, 0x69, 0x74, 0xf7),
    Uint8Array.of(0x82, 0x64, 0x65, 0x78, 0x69, 0x74, 0xc1, 0x00),
    Uint8Array.of(0x82, 0x64, 0x65, 0x78, 0x69, 0x74, 0x00, 0x00),
    Uint8Array.of(0x82, 0x64, 0x65, 0x78, 0x69, 0x74, 0x18, 0x01), // non-minimal integer
  ];
  for (const c of cases) assert.throws(() => decodeMessage(c, 'keep-to-host'), ProtocolError, Buffer.from(c).toString('hex'));
  const dup = encode(['hello', 1, init]);
  assert.ok(decodeMessage(dup, 'host-to-keep'));
});

test('the hello configuration is validated key by key', () => {
  const withInit = (patch: Record<string, unknown>) => encode(['hello', 1, { ...init, limits: { ...init.limits }, ...patch }]);
  assert.throws(() => decodeMessage(withInit({ extra: 1 }), 'host-to-keep'), /unknown key 'extra'/);
  // A deploy: no module follows and the package names the files; everything it trusts is checked.
  const deploy = deployInit.deploy!;
  assert.throws(() => decodeMessage(withInit({ moduleSize: 0 }), 'host-to-keep'), /moduleSize/);
  assert.throws(() => decodeMessage(withInit({ moduleSize: 0, files: [{ kind: 'stdin', name: 'stdin' }], deploy }), 'host-to-keep'), /files must be empty for a deploy/);
  assert.throws(() => decodeMessage(withInit({ moduleSize: 10, files: [], deploy }), 'host-to-keep'), /moduleSize/);
  assert.throws(() => decodeMessage(withInit({ moduleSize: 0, files: [], deploy: { ...deploy, allowUnsigned: 'yes' } }), 'host-to-keep'), /allowUnsigned must be a boolean/);
  assert.throws(() => decodeMessage(withInit({ moduleSize: 0, files: [], deploy: { ...deploy, trustedKeys: [7] } }), 'host-to-keep'), /trustedKeys\[0\]/);
  assert.throws(() => decodeMessage(withInit({ moduleSize: 0, files: [], deploy: { ...deploy, ca: ['not a pem'] } }), 'host-to-keep'), /ca\[0\]/);
  const { stage: _, ...noStage } = deploy;
  assert.throws(() => decodeMessage(withInit({ moduleSize: 0, files: [], deploy: noStage }), 'host-to-keep'), /lacks key 'stage'/);
  assert.throws(() => decodeMessage(encode(['deployed', 'x', '', null, null, null, null]), 'keep-to-host'), /field 2/);
  assert.throws(() => decodeMessage(encode(['deployed', 'x', 'ab', null]), 'keep-to-host'), /must have 6 field/);
  assert.throws(() => decodeMessage(encode(['deployed', 'x', 'ab', null, 0, null, null]), 'keep-to-host'), /field 4/);
  assert.throws(() => decodeMessage(encode(['deployed', 'x', 'ab', null, null, 2 ** 31, null]), 'keep-to-host'), /field 5/);
  assert.throws(() => decodeMessage(encode(['deployed', 'x', 'ab', null, null, null, 2]), 'keep-to-host'), /field 6/);
  assert.throws(() => decodeMessage(encode(['listen', 16, 'l', 'tcp', '0.0.0.0']), 'keep-to-host'), /must have 5 field/);
  assert.throws(() => decodeMessage(encode(['listen', 16, 'l', 'tcp', '', 80]), 'keep-to-host'), /field 4/);
  assert.throws(() => decodeMessage(encode(['listen', 16, 'l', 'tcp', '0.0.0.0', 70000]), 'keep-to-host'), /field 5/);
  assert.throws(() => decodeMessage(withInit({ argv: ['a', 1] }), 'host-to-keep'), /argv\[1\]/);
  assert.throws(() => decodeMessage(withInit({ env: [['A=B', 'c']] }), 'host-to-keep'), /env\[0\]/);
  assert.throws(() => decodeMessage(withInit({ files: [{ kind: 'socket', name: 'x' }] }), 'host-to-keep'), /kind must be one of/);
  assert.throws(() => decodeMessage(withInit({ files: [{ kind: 'stdin', name: 'a:b' }] }), 'host-to-keep'), /without ':'/);
  assert.throws(() => decodeMessage(withInit({ files: [{ kind: 'listen', name: 'l', prot: 'udp', listener: 17, addr: '::', port: 1 }] }), 'host-to-keep'), /prot must be one of tcp, tls/);
  assert.throws(() => decodeMessage(withInit({ files: [{ kind: 'listen', name: 'l', prot: 'tcp', listener: 3, addr: '::', port: 1 }] }), 'host-to-keep'), /listener must be/);
  assert.throws(() => decodeMessage(withInit({ files: [{ kind: 'connect', name: 'c', prot: 'tls', host: 'h', port: 1, ca: ['not pem'] }] }), 'host-to-keep'), /ca\[0\] must be a PEM/);
  assert.throws(() => decodeMessage(withInit({ limits: { memory: 1 } }), 'host-to-keep'), /lacks key 'descriptors'/);
  assert.throws(() => decodeMessage(withInit({ moduleSize: 2 ** 40 }), 'host-to-keep'), /moduleSize/);
  const { steward: _drop, ...missing } = init;
  assert.throws(() => decodeMessage(encode(['hello', 1, missing]), 'host-to-keep'), /lacks key 'steward'/);
});

test('random CBOR values never crash the decoder: they decode or fail with ProtocolError', () => {
  const value = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: 'small' },
      fc.constantFrom('data', 'eof', 'credit', 'exit', 'fail', 'dial', 'attest', 'log', 'hello', 'accept', 'evidence', 'symlink', 'symlinked', 'fsync', 'fsynced'),
      fc.integer(),
      fc.string(),
      fc.uint8Array({ maxLength: 70 }),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie('node'), { maxLength: 5 }),
      fc.dictionary(fc.string({ maxLength: 8 }), tie('node'), { maxKeys: 4 }),
    ),
  })).node;
  const message = fc.tuple(fc.constantFrom('data', 'eof', 'credit', 'close', 'dial', 'attest', 'log', 'exit', 'fail', 'hello', 'accept', 'dialed', 'reset', 'evidence', 'module', 'symlink', 'symlinked', 'fsync', 'fsynced'), fc.array(value, { maxLength: 5 })).map(([t, rest]) => [t, ...rest]);
  fc.assert(
    fc.property(message, fc.constantFrom('host-to-keep', 'keep-to-host') as fc.Arbitrary<'host-to-keep' | 'keep-to-host'>, roundTripsOrRefuses),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        decodeMessage(bytes, 'keep-to-host');
      } catch (e) {
        assert.ok(e instanceof ProtocolError, String(e));
      }
    }),
    { numRuns: 3000 },
  );
});

test('deep nesting fails cleanly', () => {
  const deep = new Uint8Array(200_000).fill(0x81);
  assert.throws(() => decodeMessage(deep, 'keep-to-host'), ProtocolError);
});
