/**
 * A hardware Keep's CSR carries the collateral its host relays, in Enarx 0.7's encoding, so that a
 * Steward that fetches nothing (Enarx 0.7's, or ours without collateral) can verify it. Over the
 * recorded real evidence: the Keep's encoding equals the evidence of Enarx's real CSRs byte for
 * byte; the host gets the collateral from (stand-ins for) AMD KDS and Intel PCS through its cache;
 * the Steward verifies it, and refuses a host's wrong collateral. The recorded evidence cannot bind
 * a fresh key, so a Steward's answer is at best a refusal at the binding: every step before it passed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseCertificates } from '../../src/attestation/x509.ts';
import { CollateralService, collateralForKeep, ENARX_CRL_URLS, keepCollateralSource, reportIdentity, vcekUrl } from '../../src/collateral/index.ts';
import { snpCollateralRequest, intelCollateralRequest, type CollateralFetch } from '../../src/keep/hardware/collateral.ts';
import { hardwareEvidenceSource } from '../../src/keep/hardware/source.ts';
import { FakeAttestationFs } from '../../src/keep/hardware/testing.ts';
import { requestStewardIdentity, StewardRefusedError, type EvidenceSource } from '../../src/keep/steward.ts';
import { buildCsr, parseCsr } from '../../src/pki/index.ts';
import { decodeMessage, encodeFrame, encodeMessage, FrameDecoder, type HostMessage } from '../../src/sallyport/index.ts';
import { startKeep } from '../helpers/process-keep.ts';
import { builtinVerifier, listen, type RunningSteward } from '../../src/steward/index.ts';
import { unpackEvidence } from '../../src/steward/verify.ts';
import { phalaTdxRoutes, TDX_FMSPC } from '../collateral/fixtures.ts';
import { startServer, type Route, type TestServer } from '../collateral/server.ts';
import { testdata } from '../helpers/paths.ts';
import { NOW, productionSteward, realCsr } from '../steward/helpers.ts';

const TSM = '/sys/kernel/config/tsm/report';
const GRAMINE = '/dev/attestation';
const read = (...p: string[]) => new Uint8Array(readFileSync(testdata(...p)));
const extracted = (csr: string, file: string) => read('enarx-steward', 'extracted', csr, file);
const toPem = (der: Uint8Array) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;

const milan = {
  report: extracted('milan', 'report.bin'),
  vcek: extracted('milan', 'vcek.der'),
  crlMilan: extracted('milan', 'crl-milan.der'),
  crlGenoa: extracted('milan', 'crl-genoa.der'),
  // What the recorded report binds: SHA-384 of the real CSR's key, then zeros.
  reportData: Uint8Array.from([...createHash('sha384').update(extracted('milan', 'spki.der')).digest(), ...new Uint8Array(16)]),
};
const i5 = {
  quote: extracted('icelake-i5', 'quote.bin'),
  tcbInfo: extracted('icelake-i5', 'tcb-info.json'),
  tcbSigning: extracted('icelake-i5', 'tcb-signing.der'),
  crlRoot: extracted('icelake-i5', 'crl-root.der'),
  crlProcessor: extracted('icelake-i5', 'crl-pck-processor.der'),
  crlPlatform: extracted('icelake-i5', 'crl-pck-platform.der'),
  reportData: Uint8Array.from([...createHash('sha256').update(extracted('icelake-i5', 'spki.der')).digest(), ...new Uint8Array(32)]),
};
const sgxRoot = read('enarx-steward', 'roots', 'sgx', 'root.der');
/** The evidence (extension value) of one of Enarx's real CSRs. */
const enarxEvidence = (name: 'milan' | 'icelake-i5') => parseCsr(realCsr(name)).evidence[0]!.der;

const dir = mkdtempSync(join(tmpdir(), 'enarx-hw-collateral-'));
const servers: (TestServer | RunningSteward)[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});
let caches = 0;
/** The host's collateral source over a local KDS/PCS stand-in, with an empty cache of its own. */
async function hostOver(routes: Record<string, Route>): Promise<{ fetch: CollateralFetch; server: TestServer; missing: string[] }> {
  const server = await startServer(routes);
  servers.push(server);
  const service = new CollateralService({ cacheDir: join(dir, `cache-${caches++}`), amdBaseUrl: server.url, intelBaseUrl: server.url, intelCertsBaseUrl: server.url, retries: 0 });
  const missing: string[] = [];
  return {
    server,
    missing,
    fetch: async (request) => {
      const got = await collateralForKeep(service, request);
      missing.push(...got.missing);
      return got.collateral;
    },
  };
}

const snpKeep = (collateral?: CollateralFetch, warnings: string[] = []) =>
  hardwareEvidenceSource('snp', { via: 'configfs-tsm', root: TSM }, {
    fs: new FakeAttestationFs().addTsm(TSM, { provider: 'sev_guest', outblob: milan.report }),
    ...(collateral ? { collateral } : {}),
    warn: (m) => warnings.push(m),
  });
const sgxKeep = (collateral?: CollateralFetch) =>
  hardwareEvidenceSource('sgx', { via: 'gramine', root: GRAMINE }, {
    fs: new FakeAttestationFs().addGramine(GRAMINE, { attestationType: 'dcap', quote: i5.quote }),
    ...(collateral ? { collateral } : {}),
  });

/** What the Keep's CSR carries, verified as the Steward verifies it (at `now`, with nothing fetched). */
async function verifyAsSteward(source: EvidenceSource, reportData: Uint8Array, now = NOW) {
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: source.kind === 'snp' ? 'P-384' : 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = parseCsr(await buildCsr({ keys, ...(await source.collect(reportData)) }));
  const { input } = unpackEvidence(csr.evidence[0]!, csr.attestationCerts);
  return builtinVerifier()({ ...input, now, trustedTestRoots: [] });
}

/** Through HTTP to a Steward that fetches no collateral, as Enarx 0.7's: the refusal it answers. */
async function refusalFrom0_7Steward(source: EvidenceSource, reportData: Uint8Array): Promise<StewardRefusedError> {
  const steward = await productionSteward();
  const server = await listen(steward, { addr: '127.0.0.1', port: 0 });
  servers.push(server);
  // As a lying collector would: the report data the recorded evidence carries, not the fresh key's.
  const err = await requestStewardIdentity({ steward: server.url, evidence: { ...source, collect: () => source.collect(reportData) } }).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof StewardRefusedError, String(err));
  return err;
}

describe("the Keep's CSR in Enarx 0.7's encoding, with the host's collateral", () => {
  it("SNP: the report, the VCEK and the ARK CRLs make exactly the evidence of Enarx's real Milan CSR", async () => {
    const asked: unknown[] = [];
    const host: CollateralFetch = async (request) => {
      asked.push(request);
      // What Enarx's host cache held: both products' ARK CRLs, Genoa's first.
      return { leaf: milan.vcek, crls: [{ url: ENARX_CRL_URLS.amd('Genoa'), crl: milan.crlGenoa }, { url: ENARX_CRL_URLS.amd('Milan'), crl: milan.crlMilan }], tcb: null, qe: null };
    };
    const got = await snpKeep(host).collect(milan.reportData);
    assert.ok('enarxEvidence' in got);
    assert.deepEqual(got.enarxEvidence.der, enarxEvidence('milan'));
    // The host learns public identifiers only: never the report, whose report data binds the Keep.
    const id = reportIdentity(milan.report, 'Milan');
    assert.deepEqual(asked, [{ kind: 'snp', key: 'vcek', product: null, chipId: id.chipId, tcb: milan.report.slice(0x180, 0x188), leaf: true }]);
  });

  it("SGX: the quote, the Intel CRLs and the TCB info with its chain make exactly the evidence of Enarx's real Ice Lake CSR", async () => {
    const host: CollateralFetch = async (request) => {
      assert.deepEqual(request, { kind: 'sgx', fmspc: '00706E470000', ca: 'processor' });
      return {
        leaf: null,
        crls: [
          { url: ENARX_CRL_URLS.intelRoot, crl: i5.crlRoot },
          { url: ENARX_CRL_URLS.intelPck('processor'), crl: i5.crlProcessor },
          { url: ENARX_CRL_URLS.intelPck('platform'), crl: i5.crlPlatform },
        ],
        tcb: { certs: [i5.tcbSigning, sgxRoot], report: i5.tcbInfo },
        qe: null,
      };
    };
    const got = await sgxKeep(host).collect(i5.reportData);
    assert.ok('enarxEvidence' in got);
    assert.deepEqual(got.enarxEvidence.der, enarxEvidence('icelake-i5'));
  });

  it('a host VCEK never replaces the one from the certificate table, and a host without collateral leaves the CSR as before', async () => {
    const { buildCertTable } = await import('../../src/keep/hardware/index.ts');
    const other = read('enarx-steward', 'enarx-snp-kds', 'vcek.der');
    const auxblob = buildCertTable([{ guid: '63da758d-e664-4564-adc5-f4b93be8accd', der: milan.vcek }]);
    let leafAsked: boolean | undefined;
    const source = hardwareEvidenceSource('snp', { via: 'configfs-tsm', root: TSM }, {
      fs: new FakeAttestationFs().addTsm(TSM, { provider: 'sev_guest', outblob: milan.report, auxblob }),
      collateral: async (request) => {
        leafAsked = request.kind === 'snp' && request.leaf;
        return { leaf: other, crls: [], tcb: null, qe: null };
      },
    });
    const got = await source.collect(milan.reportData);
    assert.equal(leafAsked, false);
    assert.ok('enarxEvidence' in got);
    const { decodeSnpEvidence } = await import('../../src/pki/index.ts');
    assert.deepEqual(decodeSnpEvidence(got.enarxEvidence.der).vcek, milan.vcek);

    const warnings: string[] = [];
    const bare = await snpKeep(async () => Promise.reject(new Error('the Milan VCEK is not in the cache')), warnings).collect(milan.reportData);
    assert.ok('attestation' in bare, 'no VCEK from anyone: the bare report, for a Steward that fetches it');
    assert.deepEqual(warnings, ["the CSR goes without the host's collateral (the Milan VCEK is not in the cache); a Steward that fetches none, as Enarx 0.7's, will refuse it"]);
  });
});

describe('the host gets the collateral through its cache; a Steward that fetches none verifies it', () => {
  const id = reportIdentity(milan.report, 'Milan');
  const vcekPath = vcekUrl('', 'Milan', id.chipId, id.tcb);
  const kds = (vcek: Uint8Array): Record<string, Route> => ({ [vcekPath]: { body: vcek }, '/vcek/v1/Milan/crl': { body: milan.crlMilan } });

  it('SNP without a provisioned VCEK: the host fetches the VCEK once; the evidence verifies, and only the binding is refused', async () => {
    const host = await hostOver(kds(milan.vcek));
    const keep = snpKeep(host.fetch);
    const request = await snpCollateralRequest(milan.report, true);
    const first = await host.fetch(request);
    assert.deepEqual(first, { leaf: milan.vcek, crls: [{ url: 'https://kdsintf.amd.com/vcek/v1/Milan/crl', crl: milan.crlMilan }], tcb: null, qe: null });
    const result = await verifyAsSteward(keep, milan.reportData);
    assert.equal(result.verified, true, String(result.failure?.message));
    assert.equal(result.revocationChecked, true);
    const refused = await refusalFrom0_7Steward(keep, milan.reportData);
    assert.equal(refused.problem.step, 'binding', refused.message);
    // Later asks got the VCEK from the host's cache; the recorded CRL expired in 2023, so the host
    // (on today's clock) asks KDS for a newer one each time and, getting the same, passes it on.
    assert.equal(host.server.hits.get(vcekPath), 1);
    assert.equal(host.server.hits.get('/vcek/v1/Milan/crl'), 3);
  });

  it("the host's wrong VCEK (another chip's) is refused at verification, and no collateral at all is refused as missing", async () => {
    const host = await hostOver(kds(read('enarx-steward', 'enarx-snp-kds', 'vcek.der')));
    const wrong = await verifyAsSteward(snpKeep(host.fetch), milan.reportData);
    assert.equal(wrong.verified, false);
    const refused = await refusalFrom0_7Steward(snpKeep(host.fetch), milan.reportData);
    assert.equal(refused.problem.type, 'urn:enarx:steward:problem:evidence-rejected');
    assert.notEqual(refused.problem.step, 'binding');

    const empty = await hostOver({});
    const warnings: string[] = [];
    const none = await refusalFrom0_7Steward(snpKeep(empty.fetch, warnings), milan.reportData);
    assert.equal(none.problem.type, 'urn:enarx:steward:problem:evidence-rejected', none.message);
    assert.match(warnings[0] ?? '', /^the CSR goes without the host's collateral \(no SNP collateral could be obtained: .*Milan VCEK.*HTTP 404/);
  });

  it('SGX: the host fetches the TCB info, its chain and the CRLs for the quote\'s FMSPC; the 0.7 Steward verifies them', async () => {
    const pckChain = parseCertificates(i5.quote.subarray(1052)).map((c) => c.der);
    const host = await hostOver({
      '/sgx/certification/v4/tcb?fmspc=00706E470000': { body: i5.tcbInfo, headers: { 'TCB-Info-Issuer-Chain': encodeURIComponent(toPem(i5.tcbSigning) + toPem(sgxRoot)) } },
      '/IntelSGXRootCA.der': { body: i5.crlRoot },
      '/sgx/certification/v4/pckcrl?ca=processor&encoding=der': { body: i5.crlProcessor, headers: { 'SGX-PCK-CRL-Issuer-Chain': encodeURIComponent(toPem(pckChain[1]!) + toPem(sgxRoot)) } },
    });
    const request = await intelCollateralRequest('sgx', i5.quote);
    const answer = await host.fetch(request);
    assert.deepEqual(answer.tcb, { certs: [i5.tcbSigning, sgxRoot], report: i5.tcbInfo });
    assert.deepEqual(answer.crls.map((c) => c.url), [ENARX_CRL_URLS.intelRoot, ENARX_CRL_URLS.intelPck('processor')]);
    const result = await verifyAsSteward(sgxKeep(host.fetch), i5.reportData);
    assert.equal(result.verified, true, String(result.failure?.message));
    assert.equal(result.revocationChecked, true);
    const refused = await refusalFrom0_7Steward(sgxKeep(host.fetch), i5.reportData);
    assert.equal(refused.problem.step, 'binding', refused.message);
  });

  it('TDX: the TCB info, the TD_QE identity and the CRLs go in our TdxEvidence, and verify with nothing fetched', async () => {
    const quote = read('attestation', 'tdx', 'phala-tdx-v4', 'quote.bin');
    const host = await hostOver(phalaTdxRoutes());
    const request = await intelCollateralRequest('tdx', quote);
    assert.deepEqual(request, { kind: 'tdx', fmspc: TDX_FMSPC, ca: 'platform' });
    const source = hardwareEvidenceSource('tdx', { via: 'configfs-tsm', root: TSM }, { fs: new FakeAttestationFs().addTsm(TSM, { provider: 'tdx_guest', outblob: quote }), collateral: host.fetch });
    const result = await verifyAsSteward(source, quote.slice(568, 632), new Date('2025-07-01T00:00:00Z'));
    assert.equal(result.verified, true, String(result.failure?.message));
    assert.notEqual(result.claims.qeStatus, undefined, 'the QE identity came with the evidence');
    assert.deepEqual(host.missing, []);
  });

  it('a VLEK is never fetched (KDS does not publish them): the host says so, and still gives the CRL', async () => {
    const vlekReport = read('attestation', 'sev-snp', 'milan-v3-vlek-aws-trustee', 'report.bin');
    const request = await snpCollateralRequest(vlekReport, true);
    assert.equal(request.kind === 'snp' && request.key, 'vlek');
    const host = await hostOver({ '/vlek/v1/Milan/crl': { body: milan.crlMilan } });
    const got = await collateralForKeep(new CollateralService({ cacheDir: join(dir, 'vlek'), amdBaseUrl: host.server.url, retries: 0 }), request);
    assert.equal(got.collateral.leaf, null);
    assert.deepEqual(got.collateral.crls, [{ url: 'https://kdsintf.amd.com/vlek/v1/Milan/crl', crl: milan.crlMilan }]);
    assert.deepEqual(got.missing, ['a VLEK is not published by AMD KDS: the cloud provider installs it in the certificate table']);
    assert.deepEqual([...host.server.hits.keys()], ['/vlek/v1/Milan/crl']);
  });

});

/** Answers after an hour: a collateral host that never answers (the test server closes its connections). */
const HANG = 3_600_000;
const tdxRequest = { kind: 'tdx', fmspc: TDX_FMSPC, ca: 'platform' } as const;
const BUDGET_LINE = /^the host's collateral budget of 0\.3 s ran out \(--collateral-budget\): the Keep goes on without /;

describe("one budget for a Keep's collateral downloads", () => {
  /** A host source over `routes`, with a short overall budget and per-download timeouts far beyond it. */
  async function budgetedSource(name: string, routes: Record<string, Route>, budgetMs = 300) {
    const server = await startServer(routes);
    servers.push(server);
    const urls = { amdBaseUrl: server.url, intelBaseUrl: server.url, intelCertsBaseUrl: server.url };
    return { server, source: keepCollateralSource({ budgetMs, options: { cacheDir: join(dir, name), ...urls, timeoutMs: HANG, retries: 3 } }) };
  }

  it('a host that never answers: the source finishes, says so in one line, and a later request adds none', async () => {
    const hanging = Object.fromEntries(Object.entries(phalaTdxRoutes()).map(([k, r]) => [k, { ...r, delayMs: HANG }]));
    const { server, source } = await budgetedSource('budget-hang', hanging);
    const got = await source(tdxRequest);
    assert.deepEqual(got.collateral, { leaf: null, crls: [], tcb: null, qe: null });
    assert.equal(got.missing.length, 1, got.missing.join('\n'));
    assert.match(got.missing[0]!, BUDGET_LINE);
    assert.match(got.missing[0]!, /without the TCB info, the QE identity, the Root CA CRL, the PCK CRL$/);
    const again = await source(tdxRequest);
    assert.deepEqual(again, { collateral: { leaf: null, crls: [], tcb: null, qe: null }, missing: [] });
    // At most the first download was under way: none was retried, and none started after the budget ran out.
    assert.ok([...server.hits.values()].reduce((a, b) => a + b, 0) <= 1, JSON.stringify([...server.hits]));
  });

  it('what arrived in time goes to the Keep; only the rest is missing', async () => {
    const routes = phalaTdxRoutes();
    for (const [path, route] of Object.entries(routes)) if (/pckcrl|RootCA/.test(path)) routes[path] = { ...route, delayMs: HANG };
    // A budget the loopback answers fit in many times over, even on a loaded machine.
    const { source } = await budgetedSource('budget-partial', routes, 5000);
    const got = await source(tdxRequest);
    assert.notEqual(got.collateral.tcb, null);
    assert.notEqual(got.collateral.qe, null);
    assert.deepEqual(got.collateral.crls, []);
    const said = got.missing.filter((m) => m.startsWith("the host's collateral budget"));
    assert.deepEqual(said, ["the host's collateral budget of 5 s ran out (--collateral-budget): the Keep goes on without the Root CA CRL, the PCK CRL"], got.missing.join('\n'));
  });

  it('--no-fetch-collateral: the host relays none, and says why', async () => {
    await assert.rejects(keepCollateralSource({ fetch: false })(tdxRequest), /this host relays no collateral \(--no-fetch-collateral\)/);
  });
});

describe('the sallyport relays collateral to hardware Keeps only, a few times', () => {
  /** A stand-in Keep that sends `frames` and appends what the host answers to a file. */
  async function fakeKeep(name: string, frames: Uint8Array[]): Promise<{ launch: () => Promise<{ command: string; args: string[] }>; answers: () => HostMessage[] }> {
    const file = join(dir, `${name}.mjs`);
    const received = join(dir, `${name}.bin`);
    writeFileSync(received, '');
    writeFileSync(file, `import { Socket } from 'node:net';
import { appendFileSync } from 'node:fs';
const s = new Socket({ fd: 3, readable: true, writable: true });
s.on('data', (d) => appendFileSync(${JSON.stringify(received)}, d));
s.write(Buffer.from('${Buffer.concat(frames).toString('hex')}', 'hex'));
setInterval(() => {}, 1000);`);
    return {
      launch: async () => ({ command: process.execPath, args: [file] }),
      answers: () => new FrameDecoder().push(readFileSync(received)).map((p) => decodeMessage(p, 'host-to-keep') as HostMessage).filter((m) => m.t === 'collateral'),
    };
  }
  const request = { kind: 'sgx', fmspc: '00706E470000', ca: 'processor' } as const;
  const ask = (id: number) => encodeFrame(encodeMessage({ t: 'get-collateral', id, request }));
  const answerOf = async (answers: () => HostMessage[], n: number) => {
    const deadline = Date.now() + 30_000;
    while (answers().length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    return answers();
  };

  it('a hardware Keep gets the answer of its host\'s source, at most four times; another Keep gets none', async () => {
    const seen: unknown[] = [];
    const collateral = async (r: unknown) => {
      seen.push(r);
      return { collateral: { leaf: null, crls: [{ url: ENARX_CRL_URLS.intelRoot, crl: i5.crlRoot }], tcb: null, qe: null }, missing: ['the TCB info is not in the cache'] };
    };
    const keep = await fakeKeep('hw', [1, 2, 3, 4, 5].map(ask));
    const stop = new AbortController();
    const run = startKeep('hello', [], { launch: keep.launch, collect: { kind: 'sgx', via: 'gramine', root: GRAMINE }, collateral, signal: stop.signal });
    // The refusal goes at once, the answers once the source has them: compare in request order.
    const got = (await answerOf(keep.answers, 5)).toSorted((a, b) => (a.t === 'collateral' && b.t === 'collateral' ? a.id - b.id : 0));
    stop.abort();
    await run.outcome;
    assert.deepEqual(seen, [request, request, request, request]);
    assert.deepEqual(got.slice(0, 4).map((m) => m.t === 'collateral' && m.collateral?.crls[0]?.crl), [i5.crlRoot, i5.crlRoot, i5.crlRoot, i5.crlRoot]);
    assert.deepEqual(got[4], { t: 'collateral', id: 5, collateral: null, error: 'a Keep gets at most 4 collateral answers' });
    assert.ok(run.logs.includes("warn: collateral for the Keep's CSR: the TCB info is not in the cache"), run.logs.join('\n'));

    const plain = await fakeKeep('plain', [ask(1)]);
    const stop2 = new AbortController();
    const run2 = startKeep('hello', [], { launch: plain.launch, collateral, signal: stop2.signal });
    const refused = await answerOf(plain.answers, 1);
    stop2.abort();
    await run2.outcome;
    assert.deepEqual(refused, [{ t: 'collateral', id: 1, collateral: null, error: 'this host relays no collateral (only hardware Keeps get it)' }]);
    assert.equal(seen.length, 4);
  });

  it("a Keep whose host's collateral server never answers is answered once the budget runs out, and the host says so once", async () => {
    const server = await startServer(Object.fromEntries(Object.entries(phalaTdxRoutes()).map(([k, r]) => [k, { ...r, delayMs: HANG }])));
    servers.push(server);
    const urls = { amdBaseUrl: server.url, intelBaseUrl: server.url, intelCertsBaseUrl: server.url };
    const collateral = keepCollateralSource({ budgetMs: 300, options: { cacheDir: join(dir, 'budget-keep'), ...urls, timeoutMs: HANG } });
    const keep = await fakeKeep('hw-hang', [1, 2].map((id) => encodeFrame(encodeMessage({ t: 'get-collateral', id, request: tdxRequest }))));
    const stop = new AbortController();
    const run = startKeep('hello', [], { launch: keep.launch, collect: { kind: 'tdx', via: 'configfs-tsm', root: TSM }, collateral, signal: stop.signal });
    const got = await answerOf(keep.answers, 2);
    stop.abort();
    await run.outcome;
    assert.deepEqual(got.map((m) => m.t === 'collateral' && [m.error, m.collateral?.tcb ?? null]), [[null, null], [null, null]]);
    const said = run.logs.filter((l) => l.includes('collateral'));
    assert.equal(said.length, 1, said.join('\n'));
    assert.match(said[0]!, /^warn: collateral for the Keep's CSR: the host's collateral budget of 0\.3 s ran out/);
  });
});
