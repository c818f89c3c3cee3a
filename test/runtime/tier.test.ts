// Workloads compile with V8's optimising tier, set at run time (src/runtime/tier.ts), both by the
// launcher (the nil Keep) and by the process Keep.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ENARX_BIN, REPO_ROOT } from '../helpers/paths.ts';
import { runEnarx } from '../helpers/cli.ts';
import { OPTIMISING_TIER_FLAGS } from '../../src/runtime/index.ts';

const TIER = pathToFileURL(join(REPO_ROOT, 'src', 'runtime', 'tier.ts')).href;
// (module (func (export "f") (param i32) (result i32) local.get 0))
const MODULE = '0,97,115,109,1,0,0,0,1,6,1,96,1,127,1,127,3,2,1,0,7,5,1,1,102,0,0,10,6,1,4,0,32,0,11';

/** Which tier compiled an exported function, in a fresh Node that may call useOptimisingTier first. */
function tierOf(setFlags: boolean): string {
  const script = `
    const { useOptimisingTier, hasOptimisingTier } = await import(${JSON.stringify(TIER)});
    if (${setFlags}) useOptimisingTier();
    const f = new WebAssembly.Instance(new WebAssembly.Module(Uint8Array.of(${MODULE}))).exports.f;
    f(1);
    process.stdout.write(JSON.stringify({ turbofan: eval('%IsTurboFanFunction(f)'), liftoff: eval('%IsLiftoffFunction(f)'), set: hasOptimisingTier() }));`;
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { turbofan: boolean; liftoff: boolean; set: boolean };
  assert.equal(out.set, setFlags);
  assert.notEqual(out.turbofan, out.liftoff);
  return out.turbofan ? 'turbofan' : 'liftoff';
}

test('useOptimisingTier: wasm compiled afterwards is TurboFan code, not Liftoff code', () => {
  assert.equal(tierOf(false), 'liftoff');
  assert.equal(tierOf(true), 'turbofan');
});

test('the launcher sets the same flags as the runtime, and none on its command line', () => {
  const launcher = readFileSync(ENARX_BIN, 'utf8');
  assert.ok(launcher.includes(`setFlagsFromString('${OPTIMISING_TIER_FLAGS}')`), 'bin/enarx.js and src/runtime/tier.ts name the same flags');
  assert.doesNotMatch(launcher.split('\n')[0]!, /liftoff|wasm/);
});

test('the nil Keep runs its workload with the optimising tier, however the backend is chosen', async () => {
  const hello = join(REPO_ROOT, 'examples', 'hello.wasm');
  for (const [args, env] of [
    [['--backend', 'nil'], {}],
    [['--backend=nil'], {}],
    [['--dir', REPO_ROOT, '--backend', 'nil'], {}],
    [[], { ENARX_BACKEND: 'nil' }],
    // Switches take no value: the backend flag after one is still read as such.
    [['--no-fetch-collateral', '--backend', 'nil'], {}],
    [['--offline-collateral', '--backend', 'nil'], {}],
  ] as const) {
    const r = await runEnarx(['run', '--log-level', 'debug', ...args, hello], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /in the nil Keep/);
    assert.doesNotMatch(r.stderr, /baseline tier/, `enarx run ${args.join(' ')} ${JSON.stringify(env)}`);
  }
});
