/**
 * The Keep side of attestation, end to end: a test root made as `enarx platform test-root create`
 * makes it, a production Steward trusting it (as --trust-test-root), a Keep identity obtained with
 * software SNP evidence through the real SNP verifier, a TLS server using it and clients trusting
 * only the Steward's CA; then each refusal, with the Steward's reason.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { parsePolicy } from '../../src/attestation/policy/index.ts';
import { parseCertificates } from '../../src/attestation/x509.ts';
import { createSelfSignedIdentity, type KeepIdentity } from '../../src/keep/identity.ts';
import { createTestRoot, softwareSnpEvidence } from '../../src/keep/software-evidence.ts';
import { requestStewardIdentity, stewardUrl, StewardIdentityError, StewardRefusedError, type EvidenceSource, type StewardPost } from '../../src/keep/steward.ts';
import { tlsServer } from '../../src/net/tls.ts';
import { isConfidential, readCertificateOrigin } from '../../src/pki/index.ts';
import { builtinVerifier, listen, parseSubjectAltName, Steward, type RunningSteward, type StewardOptions } from '../../src/steward/index.ts';
import { productionCa } from '../steward/helpers.ts';

const MEASUREMENT = new Uint8Array(48).fill(0xab);
const pemOf = (der: Uint8Array) => new X509Certificate(der).toString();

let dir: string;
let trust: { anchors: { name: string; certificate: ReturnType<typeof parseCertificates>[number] }[]; intermediates: Uint8Array[] };
let caRootPem: string;
const running: RunningSteward[] = [];

async function startSteward(options: Partial<StewardOptions> = {}): Promise<string> {
  const ca = await productionCa();
  const steward = await Steward.create({
    key: ca.key,
    chain: ca.chain,
    verify: builtinVerifier(),
    sans: [parseSubjectAltName('DNS:localhost'), parseSubjectAltName('IP:127.0.0.1')],
    trustedTestRoots: trust.anchors,
    testRootCerts: trust.intermediates,
    ...options,
  });
  const server = await listen(steward, { addr: '127.0.0.1', port: 0 });
  running.push(server);
  return server.url;
}

/** Serves `identity` on a TLS port that answers every line with "echo: line". */
async function serveTls(identity: KeepIdentity): Promise<{ port: number; server: Server }> {
  const server = createServer((raw) => {
    const tls = tlsServer(raw, identity);
    tls.on('data', (d: Buffer) => tls.write(`echo: ${d}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, server };
}

function talk(port: number, options: { ca: string; cert?: string; key?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: options.ca, ...(options.cert ? { cert: options.cert, key: options.key } : {}) }, () => socket.write('hi'));
    socket.once('data', (d) => {
      resolve(d.toString());
      socket.end();
    });
    socket.once('error', reject);
    socket.once('end', () => reject(new Error('closed without an answer')));
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'enarx-identity-'));
  await createTestRoot(join(dir, 'root'));
  const certs = parseCertificates(new Uint8Array(readFileSync(join(dir, 'root', 'ark.pem'))));
  trust = { anchors: [{ name: 'test:ark', certificate: certs.find((c) => c.isSelfIssued)! }], intermediates: certs.filter((c) => !c.isSelfIssued).map((c) => c.der) };
  caRootPem = pemOf((await productionCa()).root);
});
after(async () => {
  await Promise.all(running.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe('test root files', () => {
  it('keeps the VCEK key private and trusts nothing by itself', () => {
    assert.equal(statSync(join(dir, 'root', 'vcek.key')).mode & 0o777, 0o600);
    assert.match(new X509Certificate(trust.anchors[0]!.certificate.der).subject, /TEST/);
  });
});

describe('a Keep with software SNP evidence', () => {
  it('gets a P-384 certificate marked test-root, and a TLS client trusting only the Steward CA talks to it', async () => {
    const url = await startSteward();
    const phases: string[] = [];
    const identity = await requestStewardIdentity({ steward: url, evidence: await softwareSnpEvidence(join(dir, 'root'), { measurement: MEASUREMENT }), onPhase: (p) => phases.push(p) });
    assert.deepEqual(phases, ['keygen', 'evidence', 'csr', 'steward']);
    assert.equal(identity.issuer, 'steward');
    const leaf = new X509Certificate(identity.certificateChain[0]!);
    assert.equal((leaf.publicKey.asymmetricKeyDetails?.namedCurve), 'secp384r1');
    assert.ok(leaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(identity.privateKey)));
    const origin = readCertificateOrigin(new Uint8Array(leaf.raw));
    assert.ok(origin, 'the Steward records the origin');
    assert.deepEqual({ tee: origin.tee, testRoot: origin.testRoot, stewardDebug: origin.stewardDebug, confidential: isConfidential(origin) }, { tee: 'snp', testRoot: true, stewardDebug: false, confidential: false });
    assert.deepEqual([...origin.measurement], [...MEASUREMENT]);
    assert.ok(identity.certificateChain.length >= 2, 'leaf then the Steward chain');
    const { port, server } = await serveTls(identity);
    try {
      assert.equal(await talk(port, { ca: caRootPem }), 'echo: hi');
      // A client that trusts only some other CA refuses the Keep.
      const other = createSelfSignedIdentity().certificateChain[0]!;
      await assert.rejects(talk(port, { ca: other }), /self-signed|unable to verify|unable to get local issuer/i);
    } finally {
      server.close();
    }
  });

  it('requires client certificates from the configured CA (mutual TLS)', async () => {
    const url = await startSteward();
    const evidence = await softwareSnpEvidence(join(dir, 'root'), { measurement: MEASUREMENT });
    const client = await requestStewardIdentity({ steward: url, evidence });
    const keep = await requestStewardIdentity({ steward: url, evidence, clientCAs: [caRootPem] });
    const { port, server } = await serveTls(keep);
    try {
      assert.equal(await talk(port, { ca: caRootPem, cert: client.certificateChain.join(''), key: client.privateKey }), 'echo: hi');
      await assert.rejects(talk(port, { ca: caRootPem }), /certificate required|closed without|ECONNRESET|alert/i);
      const stranger = createSelfSignedIdentity();
      await assert.rejects(talk(port, { ca: caRootPem, cert: stranger.certificateChain[0]!, key: stranger.privateKey }), /unknown ca|closed without|ECONNRESET|alert/i);
    } finally {
      server.close();
    }
  });
});

describe("the Steward's answer: PEM chain or Enarx's DER", () => {
  // An Enarx 0.7 Steward ignores Accept and answers DER SEQUENCE OF Certificate, [issuer, leaf].
  const postWithoutAccept: StewardPost = async (url, csr) => {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/pkcs10' }, body: new Blob([csr as Uint8Array<ArrayBuffer>]) });
    return { status: r.status, contentType: undefined, body: new Uint8Array(await r.arrayBuffer()) };
  };

  it('takes a DER answer, finds the leaf by its key and orders the chain leaf first', async () => {
    const url = await startSteward();
    let der: Uint8Array | undefined;
    const identity = await requestStewardIdentity({
      steward: url,
      evidence: await softwareSnpEvidence(join(dir, 'root'), { measurement: MEASUREMENT }),
      post: async (u, csr) => {
        const r = await postWithoutAccept(u, csr);
        der = r.body;
        return r;
      },
    });
    const sent = parseCertificates(der!);
    assert.ok(sent.length >= 2 && !sent.at(-1)!.basicConstraints?.ca, 'the Steward sent the CA chain top-down, then the leaf');
    const chain = identity.certificateChain.map((p) => new X509Certificate(p));
    assert.deepEqual(chain.map((c) => c.fingerprint256), sent.toReversed().map((c) => new X509Certificate(c.der).fingerprint256));
    assert.ok(chain[0]!.checkPrivateKey((await import('node:crypto')).createPrivateKey(identity.privateKey)));
    const { port, server } = await serveTls(identity);
    try {
      assert.equal(await talk(port, { ca: caRootPem }), 'echo: hi');
    } finally {
      server.close();
    }
  });

  it('refuses an answer with no certificate for its key, and one that is no chain at all', async () => {
    const url = await startSteward();
    const evidence = await softwareSnpEvidence(join(dir, 'root'));
    const other = new Uint8Array(Buffer.from(createSelfSignedIdentity().certificateChain[0]!));
    const answer = (body: Uint8Array): StewardPost => async () => ({ status: 200, contentType: 'application/pkix-pkipath', body });
    await assert.rejects(requestStewardIdentity({ steward: url, evidence, post: answer(other) }), /answered with no certificate for this Keep's key/);
    await assert.rejects(requestStewardIdentity({ steward: url, evidence, post: answer(new Uint8Array([0x30, 0x03, 1, 2, 3])) }), /answered without a certificate chain \(content-type application\/pkix-pkipath: /);
    await assert.rejects(requestStewardIdentity({ steward: url, evidence, post: answer(new TextEncoder().encode('ok')) }), StewardIdentityError);
  });
});

describe('refusals carry the Steward reason', () => {
  const refused = async (url: string, evidence: EvidenceSource, pattern: RegExp) => {
    const err = await requestStewardIdentity({ steward: url, evidence }).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof StewardRefusedError, `expected a refusal, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(err.problem.step, 'the problem names its step');
    assert.ok(err.message.includes(`(step: ${err.problem.step})`), err.message);
    return err;
  };

  it('policy mismatch: the Steward pins another measurement', async () => {
    const url = await startSteward({ policy: parsePolicy(`[snp]\nhash = ["${'cd'.repeat(48)}"]\n`) });
    const err = await refused(url, await softwareSnpEvidence(join(dir, 'root'), { measurement: MEASUREMENT }), /policy refuses.*untrusted enarx measurement/i);
    assert.equal(err.problem.step, 'policy');
  });

  it('debug evidence in production mode', async () => {
    const url = await startSteward();
    await refused(url, await softwareSnpEvidence(join(dir, 'root'), { debug: true }), /debug/i);
  });

  it('a broken key binding', async () => {
    const url = await startSteward();
    const real = await softwareSnpEvidence(join(dir, 'root'));
    const broken: EvidenceSource = { ...real, collect: (reportData) => real.collect(reportData.map((b, i) => (i === 0 ? b ^ 1 : b))) };
    await refused(url, broken, /does not bind/i);
  });

  it("one Keep's evidence replayed with another key", async () => {
    const url = await startSteward();
    const real = await softwareSnpEvidence(join(dir, 'root'));
    let first: Awaited<ReturnType<EvidenceSource['collect']>> | undefined;
    await requestStewardIdentity({ steward: url, evidence: { ...real, collect: async (rd) => (first = await real.collect(rd)) } });
    const replay: EvidenceSource = { ...real, collect: async () => first! };
    await refused(url, replay, /does not bind/i);
  });

  it('an expired VCEK', async () => {
    const expired = join(dir, 'expired');
    await createTestRoot(expired, { notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') });
    const certs = parseCertificates(new Uint8Array(readFileSync(join(expired, 'ark.pem'))));
    const url = await startSteward({ trustedTestRoots: [{ name: 'test:expired', certificate: certs[0]! }], testRootCerts: [certs[1]!.der] });
    await refused(url, await softwareSnpEvidence(expired), /expired/i);
  });

  it('evidence from an untrusted test root when the Steward was not told to trust it', async () => {
    const url = await startSteward({ trustedTestRoots: [], testRootCerts: [] });
    await refused(url, await softwareSnpEvidence(join(dir, 'root')), /did not verify/i);
  });
});

describe('Steward URLs', () => {
  it('refuses plain http except on loopback', () => {
    assert.equal(stewardUrl('https://steward.example.com/').protocol, 'https:');
    for (const ok of ['http://127.0.0.1:3000/', 'http://localhost/', 'http://[::1]:1/', 'http://127.8.9.10/']) assert.equal(stewardUrl(ok).protocol, 'http:');
    for (const bad of ['http://steward.example.com/', 'http://10.0.0.1/', 'http://127.0.0.1.nip.io/', 'ftp://127.0.0.1/', 'not a url']) {
      assert.throws(() => stewardUrl(bad), StewardIdentityError, bad);
    }
  });

  it('says so when the Steward cannot be reached', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    server.close();
    await assert.rejects(requestStewardIdentity({ steward: `http://127.0.0.1:${port}/`, evidence: await softwareSnpEvidence(join(dir, 'root')) }), /cannot reach the Steward.*ECONNREFUSED/);
  });

  it('a broken test root directory is one clear error', async () => {
    await assert.rejects(softwareSnpEvidence(join(dir, 'missing')), /cannot read .*test-root create/);
  });
});

describe('Enarx.toml client_ca and ca', () => {
  it('parses them relative to the file, only for prot = "tls", and keeps unknown keys errors', async () => {
    const { parseConfig } = await import('../../src/config/index.ts');
    const base = '[[files]]\nname = "x"\n';
    const c = parseConfig(`${base}kind = "listen"\nclient_ca = "ca.pem"\n[[files]]\nkind = "connect"\nhost = "h"\nca = "/etc/ca.pem"\n`, 'Enarx.toml', '/srv');
    assert.deepEqual(c.files.map((f) => ('clientCaFile' in f ? f.clientCaFile : 'caFile' in f ? f.caFile : null)), ['/srv/ca.pem', '/etc/ca.pem']);
    assert.throws(() => parseConfig(`${base}kind = "listen"\nprot = "tcp"\nclient_ca = "ca.pem"\n`, 'E.toml', '/'), /client_ca: applies only to prot = "tls"/);
    assert.throws(() => parseConfig(`${base}kind = "connect"\nhost = "h"\nca = ""\n`, 'E.toml', '/'), /ca: must not be empty/);
    assert.throws(() => parseConfig(`${base}kind = "listen"\nclient_cert = "x"\n`, 'E.toml', '/'), /client_cert: unknown key/);
    assert.throws(() => parseConfig(`${base}kind = "listen"\nclient_ca = 3\n`, 'E.toml', '/'), /client_ca: expected a string/);
  });
});
