import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { parseCertificates } from '../../src/attestation/x509.ts';
import { encodeAnyOid, setOf, TAG, tlv } from '../../src/pki/der.ts';
import { ecdsaRawToDer, OID_ECDSA_SHA256, OID_ENARX_KVM, OID_EXTENSION_REQUEST } from '../../src/pki/index.ts';
import { listen, type RunningSteward, StewardRefusal } from '../../src/steward/index.ts';
import { debugSteward, keyPair, kvmCsr, realCsr, snpCsr, testRootSteward } from './helpers.ts';

interface Reply {
  status: number;
  type: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One raw HTTP request (node:http, so headers such as Content-Length can lie). */
function send(url: string, options: { method?: string; headers?: Record<string, string>; body?: Uint8Array | string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'POST', headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

function problem(reply: Reply, status: number, name: string, step = 'parse'): Record<string, unknown> {
  assert.equal(reply.status, status, reply.body.toString());
  assert.equal(reply.type, 'application/problem+json');
  const p = JSON.parse(reply.body.toString()) as Record<string, unknown>;
  assert.equal(p.type, `urn:enarx:steward:problem:${name}`);
  assert.equal(p.status, status);
  assert.equal(p.step, step);
  assert.equal(typeof p.title, 'string');
  assert.equal(typeof p.detail, 'string');
  return p;
}

const PKCS10 = { 'content-type': 'application/pkcs10' };

/** Writes `text` on a fresh connection and returns what comes back before the server closes it. */
function rawRequest(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
    socket.on('error', (err) => (chunks.length ? resolve(Buffer.concat(chunks).toString()) : reject(err)));
    socket.setTimeout(5000, () => socket.destroy());
  });
}

/** A correctly signed CSR whose extensionRequest holds `count` extensions. */
async function csrWithExtensions(count: number): Promise<Uint8Array> {
  const keys = await keyPair('P-256');
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', keys.publicKey));
  const exts = Array.from({ length: count }, (_, i) => tlv(TAG.SEQUENCE, encodeAnyOid(i === 0 ? OID_ENARX_KVM : `1.2.3.${i}`), tlv(TAG.OCTET_STRING, new Uint8Array(0))));
  const attr = tlv(TAG.SEQUENCE, encodeAnyOid(OID_EXTENSION_REQUEST), setOf([tlv(TAG.SEQUENCE, ...exts)]));
  const info = tlv(TAG.SEQUENCE, Uint8Array.of(2, 1, 0), Uint8Array.of(0x30, 0), spki, tlv(0xa0, attr));
  const sig = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keys.privateKey, info.slice()));
  return tlv(TAG.SEQUENCE, info, tlv(TAG.SEQUENCE, encodeAnyOid(OID_ECDSA_SHA256)), tlv(TAG.BIT_STRING, Uint8Array.of(0), ecdsaRawToDer(sig)));
}

describe('steward over HTTP: bad input never yields a 5xx', () => {
  let running: RunningSteward;
  const logged: string[] = [];
  before(async () => {
    running = await listen(await debugSteward(), { addr: '127.0.0.1', port: 0, maxBodyBytes: 64 * 1024, log: (level, m) => logged.push(`${level} ${m}`) });
  });
  after(() => running.close());

  it('GET / and HEAD / are the health check; other paths 404; other methods 405', async () => {
    assert.equal((await send(running.url, { method: 'GET' })).status, 200);
    assert.equal((await send(running.url, { method: 'HEAD' })).status, 200);
    problem(await send(`${running.url}certs`, { method: 'GET' }), 404, 'not-found');
    const put = await send(running.url, { method: 'PUT', headers: PKCS10, body: 'x' });
    problem(put, 405, 'method-not-allowed');
    assert.equal(put.headers.allow, 'GET, HEAD, POST');
  });

  it('issues for a software CSR (debug mode), in DER or as a PEM chain', async () => {
    const csr = await kvmCsr();
    const der = await send(running.url, { headers: PKCS10, body: csr });
    assert.equal(der.status, 200);
    assert.equal(parseCertificates(new Uint8Array(der.body)).length, 2);
    const pem = await send(running.url, { headers: { ...PKCS10, accept: 'application/pem-certificate-chain' }, body: csr });
    assert.equal(pem.type, 'application/pem-certificate-chain');
    const certs = parseCertificates(pem.body.toString());
    assert.equal(certs.length, 2);
    assert.equal(certs[1]!.isSelfIssued, true, 'leaf first, then the CA');
    const odd = await send(running.url, { headers: { 'content-type': 'Application/PKCS10; charset=binary' }, body: csr });
    assert.equal(odd.status, 200, 'media types match without parameters, in any case');
    assert.ok(logged.some((l) => /^info issued serial [0-9a-f]+ to a software Keep \(anchor none, steward-debug\)/.test(l)), logged.join('\n'));
  });

  it('wrong or missing content types: 415, with the accepted types', async () => {
    const csr = await kvmCsr();
    const reply = await send(running.url, { headers: { 'content-type': 'application/octet-stream' }, body: csr });
    problem(reply, 415, 'unsupported-media-type');
    assert.match(String(reply.headers['accept-post']), /application\/pkcs10/);
    problem(await send(running.url, { body: csr }), 415, 'unsupported-media-type');
    problem(await send(running.url, { headers: { 'content-type': 'application/x-pem-file' }, body: 'x' }), 415, 'unsupported-media-type');
  });

  it('oversized bodies: 413, by Content-Length before reading, and while reading a chunked body', async () => {
    // Only the headers are sent: the answer must come without the body being read.
    const raw = await rawRequest(running.url, `POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/pkcs10\r\ncontent-length: ${10 << 20}\r\n\r\n`);
    assert.match(raw, /^HTTP\/1\.1 413 /);
    assert.match(raw, /urn:enarx:steward:problem:payload-too-large/);
    problem(await send(running.url, { headers: { ...PKCS10, 'transfer-encoding': 'chunked' }, body: new Uint8Array(200 * 1024) }), 413, 'payload-too-large');
    problem(await send(running.url, { headers: { 'content-type': 'application/vnd.steward.pkcs10-bundle.v1' }, body: new Uint8Array(65 * 1024) }), 413, 'payload-too-large');
  });

  it('bad DER, a thousand extensions and a CSR whose signature does not match: 400 with the step', async () => {
    problem(await send(running.url, { headers: PKCS10, body: 'not DER at all' }), 400, 'bad-csr');
    problem(await send(running.url, { headers: PKCS10, body: new Uint8Array(0) }), 400, 'bad-csr');
    const many = problem(await send(running.url, { headers: PKCS10, body: await csrWithExtensions(1000) }), 400, 'bad-csr');
    assert.match(String(many.detail), /too many requested extensions: 1000/);
    const csr = await kvmCsr();
    csr[csr.length - 2]! ^= 0x55;
    problem(await send(running.url, { headers: PKCS10, body: csr }), 400, 'bad-csr-signature', 'signature');
    problem(await send(running.url, { headers: { 'content-type': 'application/vnd.steward.pkcs10-bundle.v1' }, body: 'junk' }), 400, 'bad-request');
  });

  it('no evidence: 401, as Enarx', async () => {
    const { buildCsr } = await import('../../src/pki/index.ts');
    problem(await send(running.url, { headers: PKCS10, body: await buildCsr({ keys: await keyPair('P-384') }) }), 401, 'attestation-required');
  });

  it('random and mutated bodies: always a 200 or a 4xx problem', async () => {
    const base = await kvmCsr();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
            const b = base.slice();
            b[i]! ^= x;
            return b;
          }),
          fc.nat(base.length).map((n) => base.slice(0, n)),
        ),
        fc.constantFrom('application/pkcs10', 'application/vnd.steward.pkcs10-bundle.v1'),
        async (body, type) => {
          const reply = await send(running.url, { headers: { 'content-type': type }, body });
          assert.ok(reply.status === 200 || (reply.status >= 400 && reply.status < 500), `${reply.status} ${reply.body}`);
          if (reply.status !== 200) assert.equal(reply.type, 'application/problem+json');
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('steward core: untrusted bytes end in a refusal, never another error', () => {
  it('mutated real and software-root CSRs, and bundles of them', async () => {
    const steward = await testRootSteward();
    const bases = [realCsr('milan'), realCsr('icelake-i5'), (await snpCsr()).der];
    await fc.assert(
      fc.asyncProperty(
        fc.nat(bases.length - 1).chain((k) =>
          fc.oneof(
            fc.tuple(fc.nat(bases[k]!.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
              const b = bases[k]!.slice();
              b[i]! ^= x;
              return b;
            }),
            fc.nat(bases[k]!.length).map((n) => bases[k]!.slice(0, n)),
          ),
        ),
        async (csr) => {
          for (const attempt of [() => steward.issue(csr), () => steward.certifyBundle(tlv(TAG.SEQUENCE, csr))]) {
            try {
              await attempt();
            } catch (err) {
              assert.ok(err instanceof StewardRefusal, `not a refusal: ${(err as Error).stack}`);
              assert.ok(err.problem.status >= 400 && err.problem.status < 500);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
