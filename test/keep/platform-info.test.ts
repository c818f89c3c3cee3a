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

// setpriv empties a Keep's bounding set only if enarx holds CAP_SETPCAP, and says nothing when it
// cannot: a root enarx without it (a container that dropped it) would start Keeps with capabilities.
it('platform info says whether a Keep starts without capabilities, and why not as root without CAP_SETPCAP', { skip: process.geteuid?.() !== 0 && 'needs root' }, async () => {
  const { spawnSync } = await import('node:child_process');
  const { ENARX_BIN } = await import('../helpers/paths.ts');
  const { LAUNCHER_FLAGS } = await import('../helpers/cli.ts');
  const check = (prefix: string[]) => {
    const r = spawnSync(prefix[0]!, [...prefix.slice(1), process.execPath, ...LAUNCHER_FLAGS, ENARX_BIN, 'platform', 'info', '--json'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(r.stdout) as { backends: { backend: string; data: { name: string; pass: boolean; mesg?: string }[] }[] };
    return info.backends.find((b) => b.backend === 'process')!.data.find((c) => /no capabilities/.test(c.name))!;
  };
  assert.equal(check(['/usr/bin/env']).pass, true);
  const without = check(['setpriv', '--bounding-set=-setpcap', '--']);
  assert.equal(without.pass, false);
  assert.match(without.mesg!, /CAP_SETPCAP/);
});

it("a run's availability check of the process Keep agrees with the full checks of platform info", async () => {
  const { processAvailability, processChecks } = await import('../../src/keep/process/platform.ts');
  const required = processChecks().slice(0, 3);
  assert.equal(required[2]!.name, 'Node.js permission model');
  assert.ok(required[2]!.pass, "this Node's permission model has every wall (the run path relies on its version for that)");
  assert.equal(processAvailability().available, required.every((c) => c.pass));
});
