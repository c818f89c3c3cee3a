import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { attestKeep, provisionKeep, followOutput } from '../../src/keepmgr/index.ts';
import { startTestDaemon, WASM, type TestDaemon } from './helpers.ts';

// The daemon's dashboard in Debian's headless Chromium, against a live daemon.
let t: TestDaemon;
let context: BrowserContext;
let page: Page;
let profile: string;

before(async () => {
  t = await startTestDaemon({ poolSize: 1 });
  profile = mkdtempSync(join(tmpdir(), 'keepmgr-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    ignoreHTTPSErrors: true, // the daemon's own CA; the API tests check TLS properly
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = context.pages()[0] ?? (await context.newPage());
});

after(async () => {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
  await t?.close();
});

const row = (id: string) => page.locator(`tr[data-keep="${id}"]`);

test('the dashboard lists the live daemon\'s Keeps with states, verdicts and resource use, and a stop takes effect', { timeout: 120_000 }, async () => {
  const done = await t.client.create();
  const att = await attestKeep(t.client, done.id, { allowUnattested: true });
  const session = await provisionKeep(t.client, att, { wasm: WASM('hello'), config: null });
  await followOutput(t.client, session, () => {});
  const running = await t.client.create();
  const refused = await t.client.create();
  await attestKeep(t.client, refused.id).catch(() => {});

  await page.goto(`${t.daemon.url}/#token=${t.token}`);
  await row(running.id).waitFor();
  // The token moved out of the URL into the session.
  assert.equal(new URL(page.url()).hash, '');
  assert.equal(await row(done.id).getAttribute('data-state'), 'exited');
  assert.equal(await row(refused.id).getAttribute('data-state'), 'refused');
  assert.match((await row(refused.id).locator('.verdict').textContent())!, /^refused: policy: the Keep offers no attestation/);
  assert.match((await row(done.id).locator('.verdict').textContent())!, /^accepted/);
  // Resource use appears once the host has sampled the Keep (every 200 ms; the page polls every second).
  await page.waitForFunction((id) => /MiB \/ 256 MiB/.test(document.querySelector(`tr[data-keep="${id}"]`)?.textContent ?? ''), running.id, { timeout: 10_000 });
  assert.match((await page.locator('#capacity').textContent())!, /Keeps live/);

  await row(running.id).locator('button.stop').click();
  await page.waitForSelector(`tr[data-keep="${running.id}"][data-state="stopped"]`, { timeout: 10_000 });
  assert.equal((await t.client.get(running.id)).state, 'stopped');
  assert.equal(await row(running.id).locator('button.stop').count(), 0);
});

test('without a token the dashboard asks for one and shows nothing', { timeout: 120_000 }, async () => {
  const fresh = await context.newPage();
  await fresh.goto(`${t.daemon.url}/`);
  await fresh.evaluate(() => sessionStorage.clear());
  await fresh.reload();
  await fresh.waitForSelector('#login:not([hidden])');
  assert.equal(await fresh.locator('tr[data-keep]').count(), 0);
  await fresh.fill('#token', 'wrong-token-wrong-token');
  await fresh.click('#login button');
  await fresh.waitForSelector('#login:not([hidden])');
  assert.equal(await fresh.locator('tr[data-keep]').count(), 0);
  await fresh.fill('#token', t.token);
  await fresh.click('#login button');
  await fresh.waitForSelector('tr[data-keep]');
  await fresh.close();
});
