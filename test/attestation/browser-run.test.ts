// The verifier really runs in a browser: bundle src/attestation/index.ts for the browser, load it in
// headless Chromium from a 127.0.0.1 page (a secure context, so WebCrypto is there) and verify real
// evidence inside the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { REPO_ROOT, testdata } from '../helpers/paths.ts';

function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`no Chromium found (tried ${candidates.join(', ')}); install chromium or set CHROMIUM_PATH`);
  return found;
}

test('verifyEvidence runs in headless Chromium and gives the same verdicts as in Node', { timeout: 60_000 }, async () => {
  const bundle = await build({
    entryPoints: [join(REPO_ROOT, 'src', 'attestation', 'index.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    logLevel: 'silent',
  });
  const code = bundle.outputFiles[0]!.text;
  const server = createServer((req, res) => {
    if (req.url === '/attestation.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(code);
    else res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>verifier</title>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    const b64 = (...p: string[]) => readFileSync(testdata('attestation', ...p)).toString('base64');
    const inputs = {
      report: b64('sev-snp', 'milan-v2-gosevguest', 'report.bin'),
      vcek: b64('sev-snp', 'milan-v2-gosevguest', 'vcek.der'),
      genoaReport: b64('sev-snp', 'genoa-v3-azure-trustee', 'report.bin'),
      genoaVcek: b64('sev-snp', 'genoa-v3-azure-trustee', 'vcek.pem'),
      milanChain: b64('sev-snp', 'amd-roots', 'ask_ark_milan.pem'),
      quote: b64('sgx', 'phala-sgx-v3', 'quote.bin'),
      collateral: b64('sgx', 'phala-sgx-v3', 'collateral.json'),
    };
    const outcome = await page.evaluate(async ({ url, inputs }) => {
      const bytes = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
      const lib = await import(url);
      const snp = await lib.verifyEvidence({ evidence: bytes(inputs.report), certs: [bytes(inputs.vcek)], now: new Date('2025-12-06T00:00:00Z') });
      const wrongChain = await lib.verifyEvidence({ evidence: bytes(inputs.genoaReport), certs: [bytes(inputs.genoaVcek), bytes(inputs.milanChain)], now: new Date('2025-06-01T00:00:00Z') });
      const sgx = await lib.verifyEvidence({ evidence: bytes(inputs.quote), collateral: [bytes(inputs.collateral)], now: new Date('2025-07-01T00:00:00Z') });
      return {
        hasNodeProcess: typeof (globalThis as { process?: unknown }).process !== 'undefined',
        snp: [snp.verified, snp.trustAnchor, snp.measurement, snp.failure],
        wrongChain: [wrongChain.verified, wrongChain.failure?.step],
        sgx: [sgx.verified, sgx.tcbStatus, sgx.failure],
      };
    }, { url: `http://127.0.0.1:${port}/attestation.js`, inputs });
    assert.equal(outcome.hasNodeProcess, false);
    assert.deepEqual(outcome.snp, [true, 'amd-milan', 'b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01', null]);
    assert.deepEqual(outcome.wrongChain, [false, 'chain']);
    assert.deepEqual(outcome.sgx, [true, 'ConfigurationAndSWHardeningNeeded', null]);
  } finally {
    await browser.close();
    server.close();
  }
});
