import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CollateralError,
  CollateralService,
  type CollateralOptions,
  encodeCrlList,
  encodeTcbPackage,
  ENARX_CRL_URLS,
  fetchAmdCrl,
  fetchCertChain,
  fetchPckCrl,
  fetchQeIdentity,
  fetchRootCaCrl,
  fetchTcbInfo,
  fetchVcek,
  type ProgressEvent,
  reportIdentity,
} from '../../src/collateral/index.ts';
import { testdata } from '../helpers/paths.ts';
import * as fx from './fixtures.ts';
import { closedUrl, startServer, type TestServer } from './server.ts';

let server: TestServer;
const dirs: string[] = [];

before(async () => {
  server = await startServer({ ...fx.amdRoutes(), ...fx.intelRoutes() });
});
after(async () => {
  await server.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function service(options: Partial<CollateralOptions> & { now?: () => Date } = {}) {
  const cacheDir = options.cacheDir ?? mkdtempSync(join(tmpdir(), 'enarx-collateral-'));
  dirs.push(cacheDir);
  const events: ProgressEvent[] = [];
  const s = new CollateralService({
    cacheDir,
    amdBaseUrl: server.url,
    intelBaseUrl: server.url,
    intelCertsBaseUrl: server.url,
    timeoutMs: 2000,
    retries: 0,
    backoffMs: 5,
    now: () => new Date('2025-06-01T00:00:00Z'),
    onProgress: (e) => events.push(e),
    ...options,
  });
  return { s, events, cacheDir };
}

async function rejectsWith(p: Promise<unknown>, message: RegExp) {
  await assert.rejects(p, (err: unknown) => err instanceof CollateralError && message.test(err.message) && !err.message.includes('\n'));
}

describe('AMD KDS', () => {
  it('fetches a VCEK for the chip id and REPORTED_TCB of a report, then serves it from the cache', async () => {
    const { s, events } = service();
    const id = reportIdentity(fx.milanV2Report, 'Milan');
    const first = await fetchVcek(s, id.product, id.chipId, id.tcb);
    assert.equal(first.source, 'network');
    assert.deepEqual(first.body, fx.milanV2Vcek);
    assert.deepEqual(new Uint8Array(readFileSync(first.path)), fx.milanV2Vcek);
    assert.equal(first.meta.expiresAt, '2029-09-24T00:55:28.000Z');
    const again = await fetchVcek(s, id.product, id.chipId, id.tcb);
    assert.equal(again.source, 'cache');
    assert.equal(server.hits.get(fx.MILAN_V2_VCEK_PATH), 1);
    assert.deepEqual(events.map((e) => e.type), ['start', 'done', 'cache']);
  });
  it('detects Genoa from a v3 report, and needs the product for a v2 report', async () => {
    const id = reportIdentity(fx.genoaReport);
    assert.equal(id.product, 'Genoa');
    assert.deepEqual(id.tcb, { bootloader: 10, tee: 0, snp: 23, microcode: 84 });
    assert.deepEqual((await fetchVcek(service().s, id.product, id.chipId, id.tcb)).body, fx.genoaVcek);
    assert.throws(() => reportIdentity(fx.milanV2Report), /give --product/);
    assert.throws(() => reportIdentity(fx.genoaReport, 'Milan'), /from a Genoa CPU, not Milan/);
    assert.throws(() => reportIdentity(fx.genoaReport.subarray(1)), /1184 bytes, got 1183/);
    // The verifier's CPUID table: a dense Turin part (family 0x1A, model 0x12) is Turin here too.
    const denseTurin = fx.genoaReport.slice();
    denseTurin.set([0x1a, 0x12], 0x188);
    assert.equal(reportIdentity(denseTurin).product, 'Turin');
  });
  it('fetches cert chains and CRLs, which expire at their nextUpdate', async () => {
    const { s } = service();
    const chain = await fetchCertChain(s, 'Milan');
    assert.equal(new TextDecoder().decode(chain.body), fx.milanChain);
    const crl = await fetchAmdCrl(s, 'Genoa');
    assert.deepEqual(crl.body, fx.genoaCrl);
    assert.equal(crl.meta.expiresAt, '2025-11-03T01:00:00.000Z');
  });
  it('refreshes before expiry, keeps a still-valid copy when the refresh fails, and fails once it expired', async () => {
    let now = new Date('2025-06-01T00:00:00Z');
    const { s, cacheDir } = service({ now: () => now });
    await fetchAmdCrl(s, 'Milan');
    now = new Date('2026-04-01T00:00:00Z'); // within the last quarter of its life (fetched 2025-06-01, expires 2026-05-12)
    const refreshed = await fetchAmdCrl(s, 'Milan');
    assert.equal(refreshed.source, 'network');
    assert.equal(server.hits.get('/vcek/v1/Milan/crl'), 2);
    const down = service({ cacheDir, now: () => now, amdBaseUrl: await closedUrl() });
    now = new Date('2026-05-10T00:00:00Z');
    const stale = await fetchAmdCrl(down.s, 'Milan');
    assert.equal(stale.source, 'cache');
    assert.match(stale.warning!, /^could not refresh the Milan VCEK CRL \(cannot reach http:\/\/127\.0\.0\.1:\d+\/vcek\/v1\/Milan\/crl \(ECONNREFUSED\)/);
    now = new Date('2026-05-13T00:00:00Z');
    await rejectsWith(fetchAmdCrl(down.s, 'Milan'), /^cannot fetch the Milan VCEK CRL: cannot reach/);
  });
  it('works offline from the cache, and says what to do when it cannot', async () => {
    const { s, cacheDir } = service();
    await fetchCertChain(s, 'Genoa');
    const offline = service({ cacheDir, offline: true, amdBaseUrl: await closedUrl() });
    assert.equal((await fetchCertChain(offline.s, 'Genoa')).source, 'cache');
    await rejectsWith(fetchCertChain(offline.s, 'Milan'), /^the Milan VCEK certificate chain is not in the cache \(.*\); go online to fetch it$/);
    const late = service({ cacheDir, offline: true, now: () => new Date('2048-01-01T00:00:00Z') });
    await rejectsWith(fetchCertChain(late.s, 'Genoa'), /in the cache expired at 2047-01-26T15:34:37.000Z; go online to refresh it$/);
  });
});

describe('slow, failing and malformed answers', () => {
  it('times out a hanging server and retries', async () => {
    server.routes.set('/vcek/v1/Turin/cert_chain', { body: fx.milanChain, delayMs: 5000 });
    const { s, events } = service({ timeoutMs: 150, retries: 1 });
    const started = Date.now();
    await rejectsWith(fetchCertChain(s, 'Turin'), /did not answer within 0.15 s \(gave up after 2 attempts\)$/);
    assert.ok(Date.now() - started < 2000);
    assert.deepEqual(events.map((e) => e.type), ['start', 'retry', 'start']);
  });
  it('retries 5xx and 429 (honouring Retry-After), then succeeds', async () => {
    server.routes.set('/vlek/v1/Milan/crl', { body: fx.milanCrl, failTimes: 2 });
    const { s, events } = service({ retries: 2 });
    assert.deepEqual((await fetchAmdCrl(s, 'Milan', 'vlek')).body, fx.milanCrl);
    assert.equal(events.filter((e) => e.type === 'retry').length, 2);
    server.routes.set('/vlek/v1/Genoa/crl', { body: fx.genoaCrl, failTimes: 1, failStatus: 429, failHeaders: { 'Retry-After': '0' } });
    const second = service({ retries: 1, backoffMs: 10_000 });
    assert.equal((await fetchAmdCrl(second.s, 'Genoa', 'vlek')).source, 'network');
  });
  it('does not retry a 404, and explains it', async () => {
    const { s } = service({ retries: 3 });
    const id = reportIdentity(fx.milanV2Report, 'Milan');
    await rejectsWith(fetchVcek(s, 'Milan', id.chipId, { ...id.tcb, snp: 6 }), /answered HTTP 404 \(not found: check the product, chip id, TCB or FMSPC\)$/);
    assert.equal(server.hits.get(fx.MILAN_V2_VCEK_PATH.replace('snpSPL=5', 'snpSPL=6')), 1);
  });
  it('refuses malformed answers and caches nothing', async () => {
    const { s, cacheDir } = service();
    const chip = new Uint8Array(64).fill(7);
    const tcb = { bootloader: 1, tee: 0, snp: 1, microcode: 1 };
    const path = `/vcek/v1/Milan/${'07'.repeat(64)}?blSPL=1&teeSPL=0&snpSPL=1&ucodeSPL=1`;
    server.routes.set(path, { body: 'this is not a certificate' });
    await rejectsWith(fetchVcek(s, 'Milan', chip, tcb), /answered something that is not the Milan VCEK for chip 0707070707070707… at TCB 1-0-1-1: /);
    server.routes.set(path, { body: fx.milanChain });
    await rejectsWith(fetchVcek(s, 'Milan', chip, tcb), /not the Milan VCEK/);
    server.routes.set('/vcek/v1/Turin/crl', { body: fx.milanCrl });
    await rejectsWith(fetchAmdCrl(s, 'Turin'), /the CRL is issued by '.*ARK-Milan.*', not ARK-Turin$/);
    assert.deepEqual(readdirSync(cacheDir), []);
  });
  it('treats a damaged cache entry as missing, and leaves no temporary files', async () => {
    const { s, cacheDir } = service();
    const doc = await fetchCertChain(s, 'Milan');
    writeFileSync(`${doc.path}.meta.json`, '{ not json');
    assert.equal((await fetchCertChain(s, 'Milan')).source, 'network');
    assert.deepEqual(readdirSync(join(cacheDir, 'amd', 'Milan')).sort(), ['vcek-cert_chain.pem', 'vcek-cert_chain.pem.meta.json']);
  });
  it('rejects impossible inputs before any request', async () => {
    const { s } = service();
    assert.throws(() => fetchVcek(s, 'Milan', new Uint8Array(64), { bootloader: 1, tee: 0, snp: 1, microcode: 1 }), /chip id is all zero/);
    assert.throws(() => fetchVcek(s, 'Milan', new Uint8Array(64).fill(1), { bootloader: 256, tee: 0, snp: 1, microcode: 1 }), /blSPL must be 0..255/);
    assert.throws(() => fetchTcbInfo(s, 'sgx', '00906ED5'), /FMSPC is 6 bytes of hex/);
  });
});

const extracted = (...p: string[]) => new Uint8Array(readFileSync(testdata('enarx-steward', 'extracted', ...p)));

describe('Intel PCS v4', () => {
  const now = () => new Date('2023-07-20T00:00:00Z');
  it('fetches SGX TCB info and QE identity with their issuer chains, written beside them', async () => {
    const { s } = service({ now });
    const tcb = await fetchTcbInfo(s, 'sgx', fx.MOBILECOIN_FMSPC.toLowerCase());
    assert.deepEqual(tcb.body, fx.mcTcbInfo);
    assert.equal(tcb.meta.expiresAt, '2023-08-11T19:56:44.000Z');
    assert.match(readFileSync(`${tcb.path}.chain.pem`, 'utf8'), /^-----BEGIN CERTIFICATE-----/);
    const qe = await fetchQeIdentity(s, 'sgx');
    assert.equal(qe.meta.expiresAt, '2023-08-11T20:48:25.000Z');
  });
  it('fetches TDX TCB info and the TD_QE identity', async () => {
    const { s } = service({ now: () => new Date('2025-07-01T00:00:00Z') });
    assert.equal(new TextDecoder().decode((await fetchTcbInfo(s, 'tdx', fx.TDX_FMSPC)).body), fx.tdxTcbInfo);
    assert.equal((await fetchQeIdentity(s, 'tdx')).meta.expiresAt, '2025-07-19T10:32:27.000Z');
  });
  it('fetches the PCK and Root CA CRLs, and warns about one that is already stale', async () => {
    const { s } = service({ now });
    const pck = await fetchPckCrl(s, 'processor');
    assert.match(pck.warning!, /served the Intel PCK processor CA CRL that expired at 2023-05-21T22:00:36.000Z/);
    assert.ok(existsSync(`${pck.path}.chain.pem`));
    assert.deepEqual((await fetchRootCaCrl(s)).body, fx.mcRootCrl);
  });
  it('refuses answers without their issuer chain, or for another FMSPC or TEE', async () => {
    const { s } = service({ now });
    server.routes.set('/sgx/certification/v4/pckcrl?ca=platform&encoding=der', { body: extracted('icelake-i5', 'crl-pck-platform.der') });
    await rejectsWith(fetchPckCrl(s, 'platform'), /the sgx-pck-crl-issuer-chain header is missing$/);
    server.routes.set('/sgx/certification/v4/tcb?fmspc=00606A000000', fx.intelRoutes()[`/sgx/certification/v4/tcb?fmspc=${fx.MOBILECOIN_FMSPC}`]!);
    await rejectsWith(fetchTcbInfo(s, 'sgx', '00606A000000'), /it is for FMSPC 00906ed50000, not 00606A000000$/);
    server.routes.set('/tdx/certification/v4/tcb?fmspc=00906ED50000', fx.intelRoutes()[`/sgx/certification/v4/tcb?fmspc=${fx.MOBILECOIN_FMSPC}`]!);
    await rejectsWith(fetchTcbInfo(s, 'tdx', fx.MOBILECOIN_FMSPC), /its id is SGX, not TDX$/);
    server.routes.set('/sgx/certification/v4/qe/identity', { body: '{"enclaveIdentity": 5', headers: { 'SGX-Enclave-Identity-Issuer-Chain': 'x' } });
    await rejectsWith(fetchQeIdentity(service({ now }).s, 'sgx'), /is not the SGX QE identity: /);
  });
});

describe("Enarx's cache files", () => {
  const csr = (name: string) => new Uint8Array(readFileSync(testdata('enarx-steward', 'csr', name)));
  it('encodes a CrlList byte-for-byte as a real Enarx Keep embedded it', () => {
    const list = encodeCrlList([
      { url: ENARX_CRL_URLS.amd('Genoa'), der: extracted('milan', 'crl-genoa.der') },
      { url: ENARX_CRL_URLS.amd('Milan'), der: extracted('milan', 'crl-milan.der') },
    ]);
    assert.deepEqual(list, csr('milan.signed.crl.csr').subarray(1548, 1548 + list.length));
    assert.equal(list.length, 4 + 0x73e);
  });
  it('encodes a TcbPackage byte-for-byte as a real Enarx Keep embedded it', () => {
    const pkg = encodeTcbPackage(
      [extracted('icelake-i5', 'tcb-signing.der'), new Uint8Array(readFileSync(testdata('enarx-steward', 'roots', 'sgx', 'root.der')))],
      extracted('icelake-i5', 'tcb-info.json'),
    );
    assert.deepEqual(pkg, csr('icelake.signed.tcb.crl.single.i5.csr').subarray(8288, 9614 + 4719));
  });
});
