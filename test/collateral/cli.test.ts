import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeCrlList, ENARX_CRL_URLS } from '../../src/collateral/index.ts';
import { runEnarx } from '../helpers/cli.ts';
import { testdata } from '../helpers/paths.ts';
import * as fx from './fixtures.ts';
import { closedUrl, startServer, type TestServer } from './server.ts';

let server: TestServer;
let cacheDir: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  server = await startServer({
    ...fx.amdRoutes(),
    ...fx.intelRoutes(),
    '/sgx/certification/v4/pckcrl?ca=platform&encoding=der': {
      body: readFileSync(testdata('enarx-steward', 'extracted', 'icelake-i5', 'crl-pck-platform.der')),
      headers: fx.intelRoutes()['/sgx/certification/v4/pckcrl?ca=processor&encoding=der']!.headers,
    },
  });
  cacheDir = mkdtempSync(join(tmpdir(), 'enarx-collateral-cli-'));
  env = { ENARX_KDS_URL: server.url, ENARX_PCS_URL: server.url, ENARX_INTEL_CERTS_URL: server.url, ENARX_COLLATERAL_DIR: cacheDir };
});
after(async () => {
  await server.close();
  rmSync(cacheDir, { recursive: true, force: true });
});

describe('enarx platform snp/sgx collateral commands', () => {
  it('snp update downloads the VCEK named by a report, with progress on stderr', async () => {
    const report = testdata('attestation', 'sev-snp', 'milan-v2-gosevguest', 'report.bin');
    const r = await runEnarx(['platform', 'snp', 'update', '--report', report, '--product', 'milan', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(new Uint8Array(readFileSync(out.documents.vcek.path)), fx.milanV2Vcek);
    assert.equal(out.documents.chain.source, 'network');
    assert.match(r.stderr, /^downloading http:\/\/127\.0\.0\.1:\d+\/vcek\/v1\/Milan\/3ac3fe21/m);
    const again = await runEnarx(['platform', 'snp', 'update', '--report', report, '--product', 'Milan', '--offline'], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^vcek: .*vcek-3ac3fe21[0-9a-f]+-2-0-5-68\.der \(cached, valid until 2029-09-24T00:55:28\.000Z\)$/m);
  });
  it('snp cache-crl writes an Enarx CrlList', async () => {
    const r = await runEnarx(['platform', 'snp', 'cache-crl', '--products', 'Milan,Genoa', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const written = JSON.parse(r.stdout).written['AMD CrlList'];
    const expected = encodeCrlList([
      { url: ENARX_CRL_URLS.amd('Milan'), der: fx.milanCrl },
      { url: ENARX_CRL_URLS.amd('Genoa'), der: fx.genoaCrl },
    ]);
    assert.deepEqual(new Uint8Array(readFileSync(written)), expected);
  });
  it('sgx cache-crl and cache-tcb write Enarx files', async () => {
    const crl = await runEnarx(['platform', 'sgx', 'cache-crl', '--json'], { env });
    assert.equal(crl.code, 0, crl.stderr);
    assert.equal(Object.keys(JSON.parse(crl.stdout).documents).length, 3);
    const tcb = await runEnarx(['platform', 'sgx', 'cache-tcb', '--fmspc', fx.MOBILECOIN_FMSPC], { env });
    assert.equal(tcb.code, 0, tcb.stderr);
    assert.match(tcb.stdout, /^TcbPackage: .*intel\/tcb\.der$/m);
  });
  it('sgx cache-pck saves the PCK certificate and its FMSPC, sending the API key', async () => {
    server.routes.set(fx.I5_PCKCERT_PATH, fx.pckCertRoute());
    const pckid = join(cacheDir, 'pckid.csv');
    writeFileSync(pckid, `${fx.I5_PCKID}\n`);
    const r = await runEnarx(['platform', 'sgx', 'cache-pck', '--pckid', pckid, '--api-key', 'k3y', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(JSON.parse(r.stdout).written.FMSPC, 'utf8'), '00706E470000\n');
    assert.equal(server.headers.get(fx.I5_PCKCERT_PATH)?.['ocp-apim-subscription-key'], 'k3y');
    writeFileSync(pckid, 'not,a,pck,id\n');
    const bad = await runEnarx(['platform', 'sgx', 'cache-pck', '--pckid', pckid], { env });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^enarx: the PCK id file must hold one CSV line/);
  });
  it('fails in one line, exit 1, when the collateral is neither cached nor reachable', async () => {
    const r = await runEnarx(['platform', 'snp', 'cache-crl', '--products', 'Turin', '--offline'], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^enarx: the Turin VCEK CRL is not in the cache \(.*\); go online to fetch it \(check the network/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    const dead = await closedUrl();
    const down = await runEnarx(['update-cache', '--retries', '0'], { env: { ...env, ENARX_KDS_URL: dead } });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /^enarx: cannot fetch the Milan VCEK CRL: cannot reach http:\/\/127\.0\.0\.1:\d+\/vcek\/v1\/Milan\/crl \(ECONNREFUSED\) \(gave up after 1 attempt\)/m);
  });
  it('rejects bad arguments with exit 2', async () => {
    for (const args of [
      ['platform', 'snp', 'update'],
      ['platform', 'snp', 'update', '--chip-id', 'zz', '--tcb', '1,2,3,4', '--product', 'Milan'],
      ['platform', 'snp', 'update', '--chip-id', 'aa', '--tcb', '1,2', '--product', 'Milan'],
      ['platform', 'snp', 'update', '--report', '/no/such/file'],
      ['platform', 'sgx', 'cache-tcb', '--cache-dir', join(cacheDir, 'empty')],
      ['platform', 'sgx', 'cache-crl', '--timeout', 'soon'],
    ]) {
      const r = await runEnarx(args, { env });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^enarx: /);
    }
  });
});
