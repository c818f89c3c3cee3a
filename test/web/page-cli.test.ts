import assert from 'node:assert/strict';
import { once } from 'node:events';
import { it } from 'node:test';
import { runEnarx, spawnEnarx } from '../helpers/cli.ts';

it('enarx attest page serves the page on a free port', async () => {
  const child = spawnEnarx(['attest', 'page', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    child.stdout!.setEncoding('utf8');
    while (!out.includes('\n')) {
      const [chunk] = (await Promise.race([once(child.stdout!, 'data'), once(child, 'exit').then(() => [''])])) as [string];
      if (chunk === '') assert.fail('enarx attest page exited early');
      out += chunk;
    }
    const url = out.trim();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const html = await fetch(url);
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-security-policy') ?? '', /connect-src 'none'/);
    assert.match(await html.text(), /<script type="module" src="app.js">/);
    const js = await fetch(`${url}app.js`);
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal((await fetch(`${url}../../etc/passwd`)).status, 404);
    assert.equal((await fetch(url, { method: 'POST' })).status, 405);
  } finally {
    child.kill('SIGTERM');
  }
});

it('enarx attest page refuses a bad port with exit 2', async () => {
  const r = await runEnarx(['attest', 'page', '--port', '70000']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^enarx: --port must be 0 to 65535/);
});
