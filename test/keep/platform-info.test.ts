import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runEnarx } from '../helpers/cli.ts';

it('enarx platform info reports the hardware interfaces, with remedies', async () => {
  const r = await runEnarx(['platform', 'info', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { version: string; backends: { backend: string; data: { name: string; pass: boolean; mesg?: string }[] }[] };
  const names = info.backends.map((b) => b.backend);
  assert.deepEqual(names, ['sev', 'tdx', 'sgx', 'process', 'nil'], 'strongest first, with Enarx\'s names where it has them');
  for (const check of info.backends.flatMap((b) => b.data)) {
    assert.equal(typeof check.pass, 'boolean');
    if (!check.pass) assert.ok(check.mesg && check.mesg.length > 10, `${check.name} fails without saying what to do`);
  }
  const human = await runEnarx(['platform', 'info']);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /^sgx:\n {2}[✔✗] Gramine SGX attestation/m);
  assert.match(human.stdout, /^sev:\n {2}[✔✗] confidential VM guest device/m);
});
