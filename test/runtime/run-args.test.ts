import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRunArgs } from '../../src/cli/run/fast.ts';
import { parseDirFlag, parseEnvFlag, buildPlanParts, PlanError } from '../../src/keep/plan.ts';

test('the fast run parser takes the documented grammar', () => {
  assert.deepEqual(parseRunArgs(['--backend', 'nil', '--dir', 'a::/b', '--dir=c', '--env', 'K=V', '--wasmcfgfile=E.toml', 'm.wasm', '--dir', 'x', '--']), {
    module: 'm.wasm',
    args: ['--dir', 'x', '--'],
    flags: { backend: 'nil', dir: ['a::/b', 'c'], env: ['K=V'], wasmcfgfile: 'E.toml' },
  });
  assert.deepEqual(parseRunArgs(['--', '--odd-name.wasm', 'a'])?.module, '--odd-name.wasm');
  assert.equal(parseRunArgs(['--log-level', 'debug', 'm.wasm'])?.logLevel, 'debug');
});

test('anything else is left to the full parser', () => {
  for (const argv of [[], ['--help'], ['-h', 'm.wasm'], ['--bogus', 'm.wasm'], ['--dir'], ['--env', 'K=V']]) {
    assert.equal(parseRunArgs(argv), undefined, argv.join(' '));
  }
});

test('--dir and --env values', () => {
  assert.deepEqual(parseDirFlag('/host'), { kind: 'dir', name: '/host', path: '/host', readonly: false });
  assert.deepEqual(parseDirFlag('/host::/guest'), { kind: 'dir', name: '/guest', path: '/host', readonly: false });
  assert.throws(() => parseDirFlag('::/g'), PlanError);
  assert.throws(() => parseDirFlag('/h::a:b'), /must not contain ':'/);
  assert.deepEqual(parseEnvFlag('A=b=c', {}), ['A', 'b=c']);
  assert.deepEqual(parseEnvFlag('HOME', { HOME: '/root' }), ['HOME', '/root']);
  assert.equal(parseEnvFlag('UNSET', {}), undefined);
  assert.throws(() => parseEnvFlag('=x', {}), PlanError);
});

test('merging Enarx.toml and the command line', () => {
  const config = {
    args: ['f1'], env: [['A', 'file'], ['B', 'file']] as [string, string][], extensions: {},
    files: [{ kind: 'stdout', name: 'out' }, { kind: 'null', name: 'nil' }] as const,
  };
  const p = buildPlanParts({ module: 'm.wasm', args: ['c1'], dirs: ['/d::/data'], env: ['B=cli', 'C=cli'] }, config, {});
  assert.deepEqual(p.args, ['m.wasm', 'f1', 'c1']);
  assert.deepEqual(p.env, [['FD_COUNT', '3'], ['FD_NAMES', 'out:nil:/data'], ['A', 'file'], ['B', 'cli'], ['C', 'cli']]);
  assert.deepEqual(p.files.map((f) => f.name), ['out', 'nil', '/data']);
  assert.throws(() => buildPlanParts({ module: 'm', args: [], dirs: [], env: ['FD_COUNT=1'] }, config, {}), /set by the Keep/);
  const bare = buildPlanParts({ module: 'm', args: [], dirs: ['/x'], env: ['K=V'] }, undefined, {});
  assert.deepEqual(bare.env, [['K', 'V']]);
  assert.deepEqual(bare.files.map((f) => f.kind), ['stdin', 'stdout', 'stderr', 'dir']);
});
