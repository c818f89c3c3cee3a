import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { buildWebPage } from '../../src/web/build.ts';
import { PAGE_CSP, servePage } from '../../src/web/server.ts';
import { testdata } from '../helpers/paths.ts';

// The verification page, built with esbuild as `npm run build:web` builds it, served from
// 127.0.0.1 and driven in Debian's headless Chromium with the shared vectors.
let server: Server;
let url: string;
let context: BrowserContext;
let page: Page;
let profile: string;
const requests: string[] = [];

before(async () => {
  ({ server, url } = await servePage(await buildWebPage()));
  profile = mkdtempSync(join(tmpdir(), 'enarx-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('request', (r) => requests.push(r.url()));
});

after(async () => {
  await context?.close();
  await new Promise((r) => server?.close(r));
  rmSync(profile, { recursive: true, force: true });
});

async function open(now: string): Promise<void> {
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]');
  await page.$eval('#now', (input, value) => {
    (input as HTMLInputElement).value = value;
  }, now);
}

const renders = () => page.evaluate(() => Number(document.body.dataset.renders ?? '0'));

/** Does something that makes the page verify, and waits until that verification is shown. */
async function act(action: () => Promise<unknown>): Promise<void> {
  const before = await renders();
  await action();
  await page.waitForFunction((n) => Number(document.body.dataset.renders ?? '0') > n, before);
}

async function choose(paths: string[]): Promise<void> {
  await act(() => page.setInputFiles('#files', paths));
}

async function verdict(): Promise<{ verdict: string; policy: string; reasons: string[]; claims: Record<string, string>; files: string[] }> {
  return page.evaluate(() => ({
    verdict: document.getElementById('verdict')!.textContent!,
    policy: document.getElementById('policy-verdict')!.textContent!,
    reasons: [...document.querySelectorAll('#reasons li')].map((li) => li.textContent!),
    claims: Object.fromEntries([...document.querySelectorAll('#claims tr')].map((tr) => [tr.children[0]!.textContent!, tr.children[1]!.textContent!])),
    files: [...document.querySelectorAll('#file-list tbody tr')].map((tr) => `${tr.children[0]!.textContent}: ${tr.children[1]!.textContent}`),
  }));
}

const steward = (...p: string[]) => testdata('enarx-steward', ...p);
const att = (...p: string[]) => testdata('attestation', ...p);

describe('verification page in headless Chromium', () => {
  it('verifies a real Enarx SNP Keep and applies steward.toml', async () => {
    await open('2023-02-01T00:00:00');
    await choose([
      steward('extracted', 'milan', 'report.bin'),
      steward('extracted', 'milan', 'vcek.der'),
      steward('extracted', 'milan', 'crl-milan.der'),
      steward('policies', 'steward.toml'),
    ]);
    const v = await verdict();
    assert.equal(v.verdict, 'VERIFIED: AMD SEV-SNP report (anchored at amd-milan)');
    assert.equal(v.policy, 'Policy: ACCEPTED');
    assert.equal(v.claims.measurement, 'ff717ae719840c93c1fca3b7db96488454c3c21b43531488eecff51cfed3febcd91da8be87a4cbcbc52a3bae770987c3');
    assert.equal(v.claims['policy.abiMinor'], '51');
    assert.deepEqual(v.files, ['report.bin: evidence: AMD SEV-SNP report', 'vcek.der: 1 certificate (DER)', 'crl-milan.der: CRL (DER)', 'steward.toml: policy (TOML)']);
  });
  it('verifies a TDX quote with its collateral JSON', async () => {
    await open('2025-07-01T00:00:00');
    await choose([att('tdx', 'phala-tdx-v4', 'quote.bin'), att('tdx', 'phala-tdx-v4', 'collateral.json')]);
    const v = await verdict();
    assert.equal(v.verdict, 'VERIFIED: Intel TDX quote, TCB UpToDate (anchored at intel-sgx-root)');
    assert.equal(v.claims.mrtd, '91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7');
    assert.equal(v.policy, '');
  });
  it('shows a policy refusal of genuine SGX evidence with its reasons', async () => {
    await open('2023-02-01T00:00:00');
    const x = (f: string) => steward('extracted', 'icelake-i5', f);
    await choose([x('quote.bin'), x('tcb-info.json'), x('tcb-signing.der'), x('crl-root.der'), x('crl-pck-processor.der'), steward('policies', 'derived', 'sgx-product-id-1.toml')]);
    const v = await verdict();
    assert.equal(v.verdict, 'VERIFIED: Intel SGX quote, TCB OutOfDate (anchored at intel-sgx-root)');
    assert.equal(v.policy, 'Policy: REFUSED');
    assert.deepEqual(v.reasons, ['sgx untrusted enclave product id 0']);
  });
  it('takes dropped files, and re-verifies when the time changes', async () => {
    await open('2025-12-06T00:00:00');
    const files = [att('sev-snp', 'milan-v2-gosevguest', 'report.bin'), att('sev-snp', 'milan-v2-gosevguest', 'vcek.der')].map((p) => ({
      name: basename(p),
      b64: readFileSync(p).toString('base64'),
    }));
    const transfer = await page.evaluateHandle((list) => {
      const dt = new DataTransfer();
      for (const f of list) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name));
      return dt;
    }, files);
    await act(() => page.dispatchEvent('#drop', 'drop', { dataTransfer: transfer }));
    assert.match((await verdict()).verdict, /^VERIFIED: AMD SEV-SNP report/);
    await act(() =>
      page.$eval('#now', (input) => {
        (input as HTMLInputElement).value = '2031-01-01T00:00:00';
        input.dispatchEvent(new Event('change'));
      }),
    );
    assert.match((await verdict()).verdict, /^REJECTED at step 'chain': /);
  });
  it('explains missing evidence and a bad policy', async () => {
    await open('2023-02-01T00:00:00');
    await choose([steward('extracted', 'milan', 'vcek.der')]);
    assert.equal((await verdict()).verdict, 'Drop an evidence file: a raw SEV-SNP report or an SGX/TDX quote.');
    await choose([steward('extracted', 'milan', 'report.bin'), steward('policies', 'parse', 'snp-signer-too-short.toml')]);
    assert.equal((await verdict()).verdict, 'Policy snp-signer-too-short.toml: [snp] signer[0]: expected digest to have length of 48, got 47');
  });
  it('loads nothing but itself, under a CSP that forbids any connection', async () => {
    const response = await page.goto(url);
    assert.equal(response?.headers()['content-security-policy'], PAGE_CSP);
    assert.deepEqual(requests.filter((r) => !r.startsWith(url)), []);
  });
});
