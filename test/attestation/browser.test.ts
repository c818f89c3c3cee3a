import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { build } from 'esbuild';
import { REPO_ROOT } from '../helpers/paths.ts';

const ATTESTATION = join(REPO_ROOT, 'src', 'attestation');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

test('every module of the attestation library bundles for the browser without any Node built-in', async () => {
  const entryPoints = sources(ATTESTATION);
  assert.ok(entryPoints.length >= 5, `found only ${entryPoints.length} modules`);
  const result = await build({
    entryPoints,
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    outdir: '/nonexistent',
    metafile: true,
    logLevel: 'silent',
  });
  assert.deepEqual(result.errors, []);
  const inputs = Object.keys(result.metafile.inputs);
  const nodeBuiltins = inputs.filter((i) => i.startsWith('node:') || /^(fs|path|crypto|buffer|os|child_process)$/.test(i));
  assert.deepEqual(nodeBuiltins, []);
  for (const out of Object.values(result.metafile.outputs)) {
    const external = out.imports.filter((i) => i.external).map((i) => i.path);
    assert.deepEqual(external, [], `external imports left in a bundle: ${external.join(', ')}`);
  }
  // The library's own sources are what was bundled (not a stale copy elsewhere).
  assert.ok(inputs.some((i) => relative(REPO_ROOT, join(REPO_ROOT, i)).startsWith(join('src', 'attestation'))));
});

test('a Node built-in import in the library would be caught', async () => {
  await assert.rejects(
    build({ stdin: { contents: "import { readFileSync } from 'node:fs'; export const x = readFileSync;", loader: 'ts' }, bundle: true, platform: 'browser', write: false, logLevel: 'silent' }),
    /node:fs/,
  );
});
