/**
 * The Steward obtains the collateral a CSR's evidence lacks (src/steward/collateral.ts) from a
 * local stand-in for AMD KDS and Intel PCS that serves the recorded real collateral. The recorded
 * reports and quotes were made for other keys, so a Steward that verifies them fully refuses them
 * at the binding step: reaching that step is what proves the collateral was obtained and checked.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  attestationStatementType,
  buildCsr,
  encodeSgxEvidence,
  encodeSnpEvidence,
  encodeSnpReportEvidence,
  encodeTdxEvidence,
  OID_EVIDENCE_SNP_REPORT,
  reportDataFor,
} from '../../src/pki/index.ts';
import { createTestArkCrl, createTestSnpChain, createTestSnpReport } from '../../src/attestation/testing/snp.ts';
import { toPem } from '../../src/attestation/x509.ts';
import { collateralProvider, type CollateralProvider, StewardRefusal } from '../../src/steward/index.ts';
import { guardedFetch } from '../../src/steward/collateral.ts';
import { testdata } from '../helpers/paths.ts';
import * as fx from '../collateral/fixtures.ts';
import { startServer, type TestServer, type Route } from '../collateral/server.ts';
import { productionSteward } from './helpers.ts';
import { runEnarx, serveEnarx } from '../helpers/cli.ts';

const read = (...p: string[]) => new Uint8Array(readFileSync(testdata('attestation', ...p)));
const NO_COLLATERAL = { crls: [], tcb: { certs: [], report: new Uint8Array(0) } };

/** Phala's SGX collateral as PCS would serve it (FMSPC 00A067110000, Processor CA). */
const PHALA_SGX_FMSPC = '00A067110000';
function phalaSgxRoutes(): Record<string, Route> {
  const c = JSON.parse(readFileSync(testdata('attestation', 'sgx', 'phala-sgx-v3', 'collateral.json'), 'utf8')) as Record<string, string>;
  return {
    [`/sgx/certification/v4/tcb?fmspc=${PHALA_SGX_FMSPC}`]: {
      body: `{"tcbInfo":${c.tcb_info},"signature":"${c.tcb_info_signature}"}`,
      headers: { 'TCB-Info-Issuer-Chain': encodeURIComponent(c.tcb_info_issuer_chain!) },
    },
    '/sgx/certification/v4/qe/identity': {
      body: `{"enclaveIdentity":${c.qe_identity},"signature":"${c.qe_identity_signature}"}`,
      headers: { 'SGX-Enclave-Identity-Issuer-Chain': encodeURIComponent(c.qe_identity_issuer_chain!) },
    },
    '/sgx/certification/v4/pckcrl?ca=processor&encoding=der': {
      body: Buffer.from(c.pck_crl!, 'hex'),
      headers: { 'SGX-PCK-CRL-Issuer-Chain': encodeURIComponent(c.pck_crl_issuer_chain!) },
    },
    '/IntelSGXRootCA.der': { body: Buffer.from(c.root_ca_crl!, 'hex') },
  };
}

const p256 = () => crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']) as Promise<CryptoKeyPair>;
const p384 = () => crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign', 'verify']) as Promise<CryptoKeyPair>;

/** What a hardware Keep sends: the quote alone, in Enarx's SGX extension. */
async function sgxCsr(quote = read('sgx', 'phala-sgx-v3', 'quote.bin')): Promise<Uint8Array> {
  return (await buildCsr({ keys: await p256(), enarxEvidence: { kind: 'sgx', der: encodeSgxEvidence({ quote, ...NO_COLLATERAL }) } }));
}
async function tdxCsr(): Promise<Uint8Array> {
  const stmt = encodeTdxEvidence({ quote: read('tdx', 'phala-tdx-v4', 'quote.bin'), ...NO_COLLATERAL });
  return (await buildCsr({ keys: await p256(), attestation: { attestations: [{ type: attestationStatementType('tdx'), stmt }], certs: [] } }));
}
async function snpCsrWithVcek(): Promise<Uint8Array> {
  const der = encodeSnpEvidence({ vcek: fx.milanV2Vcek, crls: [], report: fx.milanV2Report });
  return (await buildCsr({ keys: await p384(), enarxEvidence: { kind: 'snp', der } }));
}

async function refusal(p: Promise<unknown>): Promise<StewardRefusal['problem']> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StewardRefusal) return err.problem;
    throw err;
  }
  assert.fail('the Steward issued a certificate');
}

let server: TestServer;
const dirs: string[] = [];
const cacheDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'enarx-steward-collateral-'));
  dirs.push(d);
  return d;
};
const provider = (extra: Partial<Parameters<typeof collateralProvider>[0]> = {}): CollateralProvider =>
  collateralProvider({ cacheDir: cacheDir(), amdBaseUrl: server.url, intelBaseUrl: server.url, intelCertsBaseUrl: server.url, retries: 0, backoffMs: 1, ...extra });

before(async () => {
  server = await startServer({ ...fx.amdRoutes(), ...phalaSgxRoutes(), ...fx.phalaTdxRoutes() });
});
after(async () => {
  await server.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const SGX_NOW = new Date('2025-07-01T00:00:00Z');

describe('Steward: collateral the evidence lacks', () => {
  it('without a collateral source, refuses a bare SGX quote for want of TCB info', async () => {
    const steward = await productionSteward({ now: () => SGX_NOW });
    const p = await refusal(steward.issue(await sgxCsr()));
    assert.equal(p.type, 'urn:enarx:steward:problem:evidence-rejected');
    assert.equal(p.step, 'collateral');
    assert.match(p.detail, /TCB info/);
  });

  it('fetches TCB info, QE identity and both CRLs for a bare SGX quote, verifies it fully, then refuses at the binding step', async () => {
    const warnings: string[] = [];
    const steward = await productionSteward({ now: () => SGX_NOW, collateral: provider(), warn: (m) => warnings.push(m) });
    const p = await refusal(steward.issue(await sgxCsr()));
    assert.equal(p.step, 'binding', p.detail);
    assert.equal(p.type, 'urn:enarx:steward:problem:binding-mismatch');
    assert.ok((server.hits.get(`/sgx/certification/v4/tcb?fmspc=${PHALA_SGX_FMSPC}`) ?? 0) >= 1);
    assert.ok((server.hits.get('/sgx/certification/v4/qe/identity') ?? 0) >= 1);
    assert.ok((server.hits.get('/IntelSGXRootCA.der') ?? 0) >= 1);
    assert.deepEqual(warnings, []);
  });

  it('fetches the TDX collateral for a bare TDX quote and reaches the binding step', async () => {
    const steward = await productionSteward({ now: () => SGX_NOW, collateral: provider() });
    const p = await refusal(steward.issue(await tdxCsr()));
    assert.equal(p.step, 'binding', p.detail);
    assert.ok((server.hits.get(`/tdx/certification/v4/tcb?fmspc=${fx.TDX_FMSPC}`) ?? 0) >= 1);
  });

  it('adds the ARK CRL to an SNP report whose CSR carries only the VCEK', async () => {
    const before = server.hits.get('/vcek/v1/Milan/crl') ?? 0;
    const steward = await productionSteward({ now: () => new Date('2025-12-06T00:00:00Z'), collateral: provider() });
    const p = await refusal(steward.issue(await snpCsrWithVcek()));
    assert.equal(p.step, 'binding', p.detail);
    assert.equal(server.hits.get('/vcek/v1/Milan/crl'), before + 1);
  });

  it('offline with an empty cache: 503, naming what is missing and what to run', async () => {
    const steward = await productionSteward({ now: () => SGX_NOW, collateral: provider({ offline: true }) });
    const p = await refusal(steward.issue(await sgxCsr()));
    assert.equal(p.status, 503);
    assert.equal(p.type, 'urn:enarx:steward:problem:collateral-unavailable');
    assert.equal(p.step, 'collateral');
    assert.doesNotMatch(p.detail, /\n/);
    assert.match(p.detail, /the SGX TCB info for FMSPC 00A067110000 is not in the cache .*go online/);
    assert.match(p.detail, /enarx platform sgx cache-tcb --fmspc 00A067110000 && enarx platform sgx cache-crl/);
  });

  it('stale collateral is refused at its step, as the verifier judges it', async () => {
    // After the TCB info's nextUpdate (2025-07-19T10:56:11Z) and the PCK CRL's.
    const steward = await productionSteward({ now: () => new Date('2025-08-01T00:00:00Z'), collateral: provider() });
    const p = await refusal(steward.issue(await sgxCsr()));
    assert.equal(p.type, 'urn:enarx:steward:problem:evidence-rejected');
    assert.ok(p.step === 'crl' || p.step === 'collateral', p.step);
    assert.match(p.detail, /expired|nextUpdate/);
    assert.match(p.detail, /refresh its cache with enarx update-cache, or check its clock/);
    assert.doesNotMatch(p.detail, /\n/);
  });

  it('TCB info for another FMSPC is not collateral for this quote: 503, nothing cached', async () => {
    const wrong = await startServer({
      ...phalaSgxRoutes(),
      [`/sgx/certification/v4/tcb?fmspc=${PHALA_SGX_FMSPC}`]: { body: fx.mcTcbInfo, headers: { 'TCB-Info-Issuer-Chain': 'x' } },
    });
    try {
      const dir = cacheDir();
      const steward = await productionSteward({
        now: () => SGX_NOW,
        collateral: collateralProvider({ cacheDir: dir, intelBaseUrl: wrong.url, intelCertsBaseUrl: wrong.url, retries: 0 }),
      });
      const p = await refusal(steward.issue(await sgxCsr()));
      assert.equal(p.status, 503);
      assert.match(p.detail, /is not the SGX TCB info for FMSPC 00A067110000: it is for FMSPC 00906ed50000/i);
      assert.equal(existsSync(join(dir, 'intel', 'sgx', `tcb-${PHALA_SGX_FMSPC}.json`)), false);
    } finally {
      await wrong.close();
    }
  });

  it('a PCS that does not know the FMSPC (404) makes the evidence at fault: 400 at step collateral', async () => {
    const empty = await startServer({});
    try {
      const steward = await productionSteward({
        now: () => SGX_NOW,
        collateral: collateralProvider({ cacheDir: cacheDir(), intelBaseUrl: empty.url, intelCertsBaseUrl: empty.url, retries: 0 }),
      });
      const p = await refusal(steward.issue(await sgxCsr()));
      assert.equal(p.status, 400);
      assert.equal(p.step, 'collateral');
      assert.match(p.detail, /HTTP 404 \(not found: check the product, chip id, TCB or FMSPC\)/);
    } finally {
      await empty.close();
    }
  });

  it('a vendor\'s 404 is remembered: the same unknown FMSPC again does not reach the PCS', async () => {
    const empty = await startServer({});
    try {
      const steward = await productionSteward({
        now: () => SGX_NOW,
        collateral: collateralProvider({ cacheDir: cacheDir(), intelBaseUrl: empty.url, intelCertsBaseUrl: empty.url, retries: 0 }),
      });
      for (let i = 0; i < 3; i++) assert.equal((await refusal(steward.issue(await sgxCsr()))).status, 400);
      const asked = [...empty.hits.entries()].filter(([path]) => path.includes('/tcb?'));
      assert.deepEqual(asked.map(([, n]) => n), [1], `TCB info requests: ${JSON.stringify(asked)}`);
    } finally {
      await empty.close();
    }
  });

  it('a PCS that does not answer in time: 503 saying so', async () => {
    const slow = await startServer(Object.fromEntries(Object.entries(phalaSgxRoutes()).map(([k, r]) => [k, { ...r, delayMs: 5_000 }])));
    try {
      const steward = await productionSteward({
        now: () => SGX_NOW,
        collateral: collateralProvider({ cacheDir: cacheDir(), intelBaseUrl: slow.url, intelCertsBaseUrl: slow.url, retries: 0, timeoutMs: 200 }),
      });
      const p = await refusal(steward.issue(await sgxCsr()));
      assert.equal(p.status, 503);
      assert.match(p.detail, /did not answer within 0\.2 s/);
    } finally {
      await slow.close();
    }
  });
});

/** Serves the recorded SGX collateral after an hour: a PCS that never answers (closing the server ends its connections). */
const hangingPcs = () => startServer(Object.fromEntries(Object.entries(phalaSgxRoutes()).map(([k, r]) => [k, { ...r, delayMs: 3_600_000 }])));

describe("one budget for a CSR's collateral downloads", () => {
  it("a PCS that never answers holds a CSR no longer than the budget: 503 with the budget's message", async () => {
    const hanging = await hangingPcs();
    try {
      // Per-download timeouts and retries far beyond the budget: only the budget can end the wait.
      const urls = { intelBaseUrl: hanging.url, intelCertsBaseUrl: hanging.url, retries: 3, timeoutMs: 3_600_000 };
      const steward = await productionSteward({ now: () => SGX_NOW, collateral: collateralProvider({ cacheDir: cacheDir(), ...urls }, { budgetMs: 300 }) });
      const p = await refusal(steward.issue(await sgxCsr()));
      assert.equal(p.status, 503);
      assert.equal(p.type, 'urn:enarx:steward:problem:collateral-unavailable');
      assert.match(p.detail, /cannot fetch the SGX TCB info .*the Steward's collateral budget of 0\.3 s ran out \(--collateral-budget\)/);
    } finally {
      await hanging.close();
    }
  });

  it("a request that joins another's download of the same document still ends at its own budget", { timeout: 60_000 }, async () => {
    const hanging = await hangingPcs();
    try {
      const guard = guardedFetch(globalThis.fetch);
      const url = `${hanging.url}/sgx/certification/v4/tcb?fmspc=${PHALA_SGX_FMSPC}`;
      const owner = guard(url).catch((e: unknown) => e); // no budget of its own: it waits until the server closes
      await assert.rejects(guard(url, { signal: AbortSignal.timeout(300) }), { name: 'TimeoutError' });
      assert.equal(hanging.hits.get('/sgx/certification/v4/tcb?fmspc=' + PHALA_SGX_FMSPC), 1, 'the second request joined the first download');
      await hanging.close();
      await owner;
    } finally {
      await hanging.close();
    }
  });
});

/** Starts `enarx steward serve ARGS --port 0 --json`. */
async function serve(args: string[], env: NodeJS.ProcessEnv) {
  const served = await serveEnarx<{ url: string }>(['steward', 'serve', '--port', '0', '--json', ...args], { env });
  return { json: served.doc, stderr: served.stderr, stop: () => served.stop() };
}

describe('enarx steward serve: collateral', () => {
  const post = async (url: string, csr: Uint8Array) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/pkcs10' }, body: Buffer.from(csr) });
    return { status: res.status, problem: (await res.json()) as { type: string; step: string; detail: string } };
  };

  it('--offline-collateral with an empty cache: the Keep is told what is missing and what the operator runs', async () => {
    const home = cacheDir();
    const steward = await serve(['--offline-collateral', '--collateral-dir', join(home, 'collateral')], { XDG_DATA_HOME: home });
    try {
      assert.match(steward.stderr(), /collateral that evidence lacks comes from the cache .* only \(offline\)/);
      const { status, problem } = await post(steward.json.url, await sgxCsr());
      assert.equal(status, 503);
      assert.equal(problem.type, 'urn:enarx:steward:problem:collateral-unavailable');
      assert.match(problem.detail, /not in the cache .*enarx platform sgx cache-tcb --fmspc 00A067110000/);
    } finally {
      await steward.stop();
    }
  });

  it('fetches from the configured PCS; collateral stale at the wall clock is refused, saying what to do', async () => {
    const home = cacheDir();
    const before = server.hits.get(`/sgx/certification/v4/tcb?fmspc=${PHALA_SGX_FMSPC}`) ?? 0;
    const steward = await serve(['--collateral-dir', join(home, 'collateral'), '--pcs-url', server.url, '--intel-certs-url', server.url], { XDG_DATA_HOME: home });
    try {
      // The recorded collateral expired in July 2025, so at today's clock the verifier refuses it at its own step.
      const { status, problem } = await post(steward.json.url, await sgxCsr());
      assert.equal(status, 400);
      assert.ok(problem.step === 'crl' || problem.step === 'collateral', problem.step);
      assert.match(problem.detail, /expired .*refresh its cache with enarx update-cache, or check its clock/);
      assert.equal(server.hits.get(`/sgx/certification/v4/tcb?fmspc=${PHALA_SGX_FMSPC}`), before + 1);
    } finally {
      await steward.stop();
    }
  });

  it('--collateral-budget: a PCS that never answers holds a CSR no longer than the budget, whatever --collateral-timeout says', async () => {
    const hanging = await hangingPcs();
    const home = cacheDir();
    const steward = await serve(
      ['--collateral-dir', join(home, 'collateral'), '--pcs-url', hanging.url, '--intel-certs-url', hanging.url, '--collateral-timeout', '3600', '--collateral-budget', '0.5'],
      { XDG_DATA_HOME: home },
    );
    try {
      assert.match(steward.stderr(), /refreshed from AMD KDS and Intel PCS \(0\.5 s in all per CSR\)/);
      const { status, problem } = await post(steward.json.url, await sgxCsr());
      assert.equal(status, 503);
      assert.equal(problem.type, 'urn:enarx:steward:problem:collateral-unavailable');
      assert.match(problem.detail, /the Steward's collateral budget of 0\.5 s ran out \(--collateral-budget\)/);
    } finally {
      await steward.stop();
      await hanging.close();
    }
  });

  it('--no-fetch-collateral keeps Enarx 0.7 behaviour: evidence must carry its collateral', async () => {
    const home = cacheDir();
    const steward = await serve(['--no-fetch-collateral', '--pcs-url', server.url], { XDG_DATA_HOME: home });
    try {
      const { status, problem } = await post(steward.json.url, await sgxCsr());
      assert.equal(status, 400);
      assert.equal(problem.step, 'collateral');
      assert.match(problem.detail, /TCB info/);
    } finally {
      await steward.stop();
    }
  });
});

describe('Steward: an SNP report without a VCEK (no host-provisioned certificates)', () => {
  const bareCsr = async (report: Uint8Array, keys?: CryptoKeyPair) =>
    buildCsr({ keys: keys ?? (await p384()), attestation: { attestations: [{ type: OID_EVIDENCE_SNP_REPORT, stmt: encodeSnpReportEvidence(report) }], certs: [] } });

  it('over HTTP, a client that spent its download budget is refused with 503, and a client from another address is still served', async () => {
    const { listen } = await import('../../src/steward/index.ts');
    const { request } = await import('node:http');
    const steward = await productionSteward({
      now: () => new Date('2025-06-01T00:00:00Z'),
      // Each of these bare reports costs three downloads (VCEK, ASK/ARK chain, CRL): one CSR's worth per client.
      collateral: collateralProvider({ cacheDir: cacheDir(), amdBaseUrl: server.url, retries: 0 }, { perClientPerMinute: 3, clock: () => 0 }),
    });
    const http = await listen(steward, { addr: '127.0.0.1', port: 0 });
    const post = (body: Uint8Array, localAddress: string) =>
      new Promise<{ status: number; problem: { step?: string; detail?: string } }>((resolve, reject) => {
        const url = new URL(http.url);
        const req = request({ host: url.hostname, port: url.port, method: 'POST', localAddress, headers: { 'content-type': 'application/pkcs10' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, problem: JSON.parse(Buffer.concat(chunks).toString() || '{}') }));
        });
        req.on('error', reject);
        req.end(body);
      });
    try {
      const first = await post(await bareCsr(fx.milanV2Report), '127.0.0.1');
      assert.equal(first.problem.step, 'binding', String(first.problem.detail));
      const spent = await post(await bareCsr(fx.genoaReport), '127.0.0.1');
      assert.equal(spent.status, 503, String(spent.problem.detail));
      assert.match(spent.problem.detail ?? '', /this client's collateral download budget at the Steward \(3 per minute\) is spent/);
      const other = await post(await bareCsr(fx.genoaReport), '127.0.0.2');
      assert.equal(other.problem.step, 'binding', String(other.problem.detail));
    } finally {
      await http.close();
    }
  });

  it('over HTTP, clients behind a trusted proxy have budgets of their own; an untrusted peer\'s header changes nothing', async () => {
    const { listen } = await import('../../src/steward/index.ts');
    const { request } = await import('node:http');
    // A Steward of its own (and so an empty cache) per part: each bare report costs three downloads, one CSR's worth per client.
    const behindProxy = async () => {
      const steward = await productionSteward({
        now: () => new Date('2025-06-01T00:00:00Z'),
        collateral: collateralProvider({ cacheDir: cacheDir(), amdBaseUrl: server.url, retries: 0 }, { perClientPerMinute: 3, clock: () => 0 }),
      });
      return listen(steward, { addr: '127.0.0.1', port: 0, trustedProxies: ['127.0.0.1'] });
    };
    const post = (url: URL, body: Uint8Array, localAddress: string, forwardedFor: string) =>
      new Promise<{ status: number; problem: { step?: string; detail?: string } }>((resolve, reject) => {
        const headers = { 'content-type': 'application/pkcs10', 'x-forwarded-for': forwardedFor };
        const req = request({ host: url.hostname, port: url.port, method: 'POST', localAddress, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, problem: JSON.parse(Buffer.concat(chunks).toString() || '{}') }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const spentBudget = /this client's collateral download budget at the Steward \(3 per minute\) is spent/;
    const proxied = await behindProxy();
    const direct = await behindProxy();
    try {
      // 127.0.0.1 is the proxy: each client it forwards for spends a budget of its own.
      const url = new URL(proxied.url);
      const first = await post(url, await bareCsr(fx.milanV2Report), '127.0.0.1', '198.51.100.7');
      assert.equal(first.problem.step, 'binding', String(first.problem.detail));
      const spent = await post(url, await bareCsr(fx.genoaReport), '127.0.0.1', '198.51.100.7');
      assert.equal(spent.status, 503, String(spent.problem.detail));
      assert.match(spent.problem.detail ?? '', spentBudget);
      const other = await post(url, await bareCsr(fx.genoaReport), '127.0.0.1', '198.51.100.8');
      assert.equal(other.problem.step, 'binding', String(other.problem.detail));

      // 127.0.0.3 is not a proxy: its header is ignored, so it cannot pass itself off as a fresh client.
      const durl = new URL(direct.url);
      const mine = await post(durl, await bareCsr(fx.milanV2Report), '127.0.0.3', '203.0.113.50');
      assert.equal(mine.problem.step, 'binding', String(mine.problem.detail));
      const again = await post(durl, await bareCsr(fx.genoaReport), '127.0.0.3', '203.0.113.51');
      assert.equal(again.status, 503, String(again.problem.detail));
      assert.match(again.problem.detail ?? '', spentBudget);
    } finally {
      await Promise.all([proxied.close(), direct.close()]);
    }
  });

  it('without a collateral source, refuses it and gives the KDS URL of its VCEK', async () => {
    const steward = await productionSteward({ now: () => new Date('2025-06-01T00:00:00Z') });
    const p = await refusal(steward.issue(await bareCsr(fx.genoaReport)));
    assert.equal(p.step, 'collateral');
    assert.match(p.detail, /kdsintf\.amd\.com\/vcek\/v1\/Genoa\//);
  });

  it('a v3 Genoa report: the VCEK is fetched from the Genoa path by CHIP_ID and REPORTED_TCB, then the binding is checked', async () => {
    const steward = await productionSteward({ now: () => new Date('2025-06-01T00:00:00Z'), collateral: provider() });
    const p = await refusal(steward.issue(await bareCsr(fx.genoaReport)));
    assert.equal(p.step, 'binding', p.detail);
    assert.ok((server.hits.get(fx.GENOA_VCEK_PATH) ?? 0) >= 1);
  });

  it('Turin: the 8-byte hwid and fmcSPL key the VCEK; a report that binds the key is certified (local test root)', async () => {
    const chain = await createTestSnpChain({ product: 'turin', modulusLength: 2048, notBefore: new Date('2024-01-01T00:00:00Z'), notAfter: new Date('2030-01-01T00:00:00Z') });
    const keys = await p384();
    const report = await createTestSnpReport(chain, { reportData: await reportDataFor('snp', new Uint8Array(await crypto.subtle.exportKey('spki', keys.publicKey))) });
    const hwid = Buffer.from(chain.chipId.subarray(0, 8)).toString('hex');
    const t = chain.tcb;
    const vcekPath = `/vcek/v1/Turin/${hwid}?fmcSPL=${t.fmc}&blSPL=${t.bootloader}&teeSPL=${t.tee}&snpSPL=${t.snp}&ucodeSPL=${t.microcode}`;
    const kds = await startServer({
      [vcekPath]: { body: chain.leaf.der },
      '/vcek/v1/Turin/cert_chain': { body: toPem('CERTIFICATE', chain.ask.der) + toPem('CERTIFICATE', chain.ark.der) },
      '/vcek/v1/Turin/crl': { body: (await createTestArkCrl(chain)).der },
    });
    try {
      const steward = await productionSteward({
        now: () => new Date('2025-06-01T00:00:00Z'),
        trustedTestRoots: [chain.anchor],
        collateral: collateralProvider({ cacheDir: cacheDir(), amdBaseUrl: kds.url, retries: 0 }),
      });
      const issued = await steward.issue(await bareCsr(report, keys));
      assert.equal(issued.origin.tee, 'snp');
      assert.equal(issued.origin.testRoot, true);
      assert.equal(kds.hits.get(vcekPath), 1);
    } finally {
      await kds.close();
    }
  });

  it('KDS that does not answer in time: 503 naming the VCEK and the command that fetches it', async () => {
    const slow = await startServer(Object.fromEntries(Object.entries(fx.amdRoutes()).map(([k, r]) => [k, { ...r, delayMs: 5_000 }])));
    try {
      const steward = await productionSteward({
        now: () => new Date('2025-06-01T00:00:00Z'),
        collateral: collateralProvider({ cacheDir: cacheDir(), amdBaseUrl: slow.url, retries: 0, timeoutMs: 200 }),
      });
      const p = await refusal(steward.issue(await bareCsr(fx.genoaReport)));
      assert.equal(p.status, 503);
      assert.match(p.detail, /cannot fetch the Genoa VCEK for chip 0506ffba875e939c… at TCB 10-0-23-84: .* did not answer within 0\.2 s/);
      assert.match(p.detail, /enarx platform snp update --product Genoa --chip-id 0506ffba[0-9a-f]{120} --tcb 10,0,23,84 && enarx platform snp cache-crl$/);
    } finally {
      await slow.close();
    }
  });
});

describe("the Steward's collateral downloads are guarded", () => {
  type Call = { url: string; resolve: (r: Response) => void };
  function fakeFetch() {
    const calls: Call[] = [];
    const fetch = ((input: string | URL | Request) => new Promise<Response>((resolve) => calls.push({ url: String(input), resolve }))) as typeof globalThis.fetch;
    return { calls, fetch };
  }

  it('concurrent requests for one URL share one download', async () => {
    const { calls, fetch } = fakeFetch();
    const guarded = guardedFetch(fetch);
    const a = guarded('https://kds.example/vcek/x');
    const b = guarded('https://kds.example/vcek/x');
    await new Promise((r) => setImmediate(r));
    assert.equal(calls.length, 1);
    calls[0]!.resolve(new Response('DER', { status: 200, headers: { 'x-test': '1' } }));
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(await ra.text(), 'DER');
    assert.equal(await rb.text(), 'DER');
    assert.equal(rb.headers.get('x-test'), '1');
  });

  it('a 404 is answered from memory until it expires', async () => {
    const { calls, fetch } = fakeFetch();
    let now = 0;
    const guarded = guardedFetch(fetch, { notFoundMs: 60_000, clock: () => now });
    const first = guarded('https://kds.example/vcek/unknown');
    await new Promise((r) => setImmediate(r));
    calls[0]!.resolve(new Response(null, { status: 404 }));
    assert.equal((await first).status, 404);
    now = 59_000;
    assert.equal((await guarded('https://kds.example/vcek/unknown')).status, 404);
    assert.equal(calls.length, 1, 'remembered');
    now = 61_000;
    const again = guarded('https://kds.example/vcek/unknown');
    await new Promise((r) => setImmediate(r));
    assert.equal(calls.length, 2, 'asked again once the memory expired');
    calls[1]!.resolve(new Response('DER'));
    assert.equal((await again).status, 200);
  });

  it('beyond the budget of downloads per minute, a request is refused without reaching the vendor', async () => {
    const { calls, fetch } = fakeFetch();
    let now = 0;
    const guarded = guardedFetch(fetch, { perMinute: 2, clock: () => now });
    const done = (i: number) => calls[i]!.resolve(new Response('ok'));
    const one = guarded('https://pcs.example/a');
    const two = guarded('https://pcs.example/b');
    await new Promise((r) => setImmediate(r));
    done(0);
    done(1);
    await Promise.all([one, two]);
    await assert.rejects(guarded('https://pcs.example/c'), /collateral download budget \(2 per minute\) is spent/);
    assert.equal(calls.length, 2);
    now = 30_000; // half a minute refills one download
    const three = guarded('https://pcs.example/c');
    await new Promise((r) => setImmediate(r));
    done(2);
    assert.equal(await (await three).text(), 'ok');
  });

  it('each client has its own budget under the global one: one that spends its own cannot starve the others', async () => {
    const { calls, fetch } = fakeFetch();
    const guard = guardedFetch(fetch, { perMinute: 5, perClientPerMinute: 2, clock: () => 0 });
    const [a, b, c] = ['addr:10.0.0.1', 'addr:10.0.0.2', 'cert:AB:CD'].map((k) => guard.forClient(k));
    const answered = (p: Promise<Response>) => {
      calls.at(-1)!.resolve(new Response('ok'));
      return p;
    };
    const next = async (f: typeof globalThis.fetch, url: string) => {
      const p = f(url);
      await new Promise((r) => setImmediate(r));
      return answered(p);
    };
    await next(a!, 'https://kds.example/1');
    await next(a!, 'https://kds.example/2');
    await assert.rejects(a!('https://kds.example/3'), /this client's collateral download budget at the Steward \(2 per minute\) is spent/);
    // A download another client already started is shared, whatever the asker's budget.
    const fromB = b!('https://kds.example/3');
    await new Promise((r) => setImmediate(r));
    const sharedWithA = a!('https://kds.example/3');
    calls.at(-1)!.resolve(new Response('shared'));
    assert.equal(await (await sharedWithA).text(), 'shared');
    await fromB;
    await next(b!, 'https://kds.example/4');
    await next(c!, 'https://kds.example/5');
    assert.equal(calls.length, 5);
    // Five downloads in all: the global budget is spent for everyone, anonymous requests included.
    await assert.rejects(c!('https://kds.example/6'), /the Steward's collateral download budget \(5 per minute\) is spent/);
    await assert.rejects(guard('https://kds.example/6'), /the Steward's collateral download budget \(5 per minute\) is spent/);
    assert.equal(calls.length, 5);
  });

  it('clients are told apart by TLS client certificate, else by address: an IPv6 host by its /64, IPv4-mapped as IPv4', async () => {
    const { addressKey, clientKey } = await import('../../src/steward/http.ts');
    assert.equal(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:DB8:1:2::9'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    const req = (socket: object) => ({ socket }) as never;
    assert.equal(clientKey(req({ remoteAddress: '::ffff:127.0.0.2' })), 'addr:127.0.0.2');
    assert.equal(clientKey(req({ remoteAddress: '127.0.0.2', getPeerCertificate: () => ({}) })), 'addr:127.0.0.2');
    assert.equal(clientKey(req({ remoteAddress: '127.0.0.2', getPeerCertificate: () => ({ fingerprint256: 'AA:BB' }) })), 'cert:AA:BB');
  });

  it('behind trusted proxies the client is the first hop from the right that is not one; a client cannot choose its own name', async () => {
    const { forwardedClient, trustedProxies } = await import('../../src/steward/http.ts');
    const proxies = trustedProxies(['10.0.0.0/8', '2001:db8:ffff::/48', '192.0.2.1']);
    const via = (peer: string, headers: Record<string, string>) => forwardedClient(peer, headers, proxies);
    assert.equal(via('10.1.2.3', { 'x-forwarded-for': '198.51.100.7' }), '198.51.100.7');
    assert.equal(via('::ffff:10.1.2.3', { 'x-forwarded-for': '198.51.100.7:51234' }), '198.51.100.7');
    // What a client put in front of the proxies' own entries is never read.
    assert.equal(via('10.1.2.3', { 'x-forwarded-for': '203.0.113.99, 198.51.100.7, 10.9.9.9' }), '198.51.100.7');
    assert.equal(via('192.0.2.1', { 'x-forwarded-for': '2001:db8:1::5, 2001:db8:ffff::2' }), '2001:db8:1::5');
    // RFC 7239, when there is no X-Forwarded-For.
    assert.equal(via('10.1.2.3', { forwarded: 'for=203.0.113.99, for="[2001:db8:2::7]:4711";proto=https;by=10.1.2.3' }), '2001:db8:2::7');
    // An untrusted peer is the client whatever it claims; a proxy that names nobody is the client.
    assert.equal(via('198.51.100.8', { 'x-forwarded-for': '203.0.113.1' }), '198.51.100.8');
    assert.equal(via('10.1.2.3', {}), '10.1.2.3');
    assert.equal(via('10.1.2.3', { 'x-forwarded-for': 'unknown' }), '10.1.2.3');
    assert.equal(via('10.1.2.3', { 'x-forwarded-for': '203.0.113.1, _hidden, 10.0.0.5' }), '10.0.0.5');
    assert.equal(via('10.1.2.3', { 'x-forwarded-for': '10.0.0.4, 10.0.0.5' }), '10.0.0.4', 'all trusted: the farthest');
    for (const bad of ['10.0.0.0/33', 'proxy.example', '10.0.0.1/8/1', '2001:db8::/129', '']) assert.throws(() => trustedProxies([bad]), /is not an IP address or CIDR range/, bad);
    const cli = await runEnarx(['steward', 'serve', '--port', '0', '--trusted-proxy', '10.0.0.0/8', '--trusted-proxy', 'proxy.example']);
    assert.equal(cli.code, 2, cli.stderr);
    assert.match(cli.stderr, /--trusted-proxy: 'proxy\.example' is not an IP address or CIDR range/);
    const served = await serve(['--trusted-proxy', '10.0.0.0/8', '--trusted-proxy', '192.0.2.1', '--no-fetch-collateral'], { ...process.env, XDG_DATA_HOME: cacheDir() });
    try {
      // stderr and stdout are two pipes: the line may arrive after the JSON document.
      for (let i = 0; i < 200 && !served.stderr().includes('--trusted-proxy)'); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(served.stderr(), /clients are named by the X-Forwarded-For \/ Forwarded headers of 10\.0\.0\.0\/8, 192\.0\.2\.1 \(--trusted-proxy\)/);
    } finally {
      await served.stop();
    }
  });

  it('an answer too large to hold is refused', async () => {
    const huge = new Uint8Array(9 * 1024 * 1024);
    const guarded = guardedFetch((async () => new Response(huge)) as typeof globalThis.fetch);
    await assert.rejects(guarded('https://kds.example/huge'), /answered more than the 8388608 bytes allowed/);
  });
});
