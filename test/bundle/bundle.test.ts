import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundle, cachedBundle, indexedBundle, type BundleSpec } from '../../src/bundle/index.ts';

function tree(): { root: string; spec: BundleSpec } {
  const root = mkdtempSync(join(tmpdir(), 'enarx-bundle-'));
  writeFileSync(join(root, 'shared.ts'), 'export const state: { n: number } = { n: 0 };\n');
  writeFileSync(join(root, 'part.ts'), 'export const part = (x: number): number => x * 2;\n');
  writeFileSync(join(root, 'entry.ts'), "import { state } from './shared.ts';\nimport { part } from './part.ts';\nexport function bump(): number { state.n += 1; return part(state.n); }\nexport { state };\n");
  return { root, spec: { cache: join(root, 'cache'), entry: join(root, 'entry.ts'), name: 'entry', root, external: [join(root, 'shared.ts')] } };
}

test('a bundle is built once, reused while its inputs are unchanged, and rebuilt after a change', async () => {
  const { root, spec } = tree();
  try {
    assert.equal(cachedBundle(spec), null, 'nothing built yet');
    const file = await bundle(spec);
    assert.equal(cachedBundle(spec), file);
    assert.equal(await bundle(spec), file, 'reused, not rebuilt');
    const text = readFileSync(file, 'utf8');
    assert.match(text, /x\s*\*\s*2/, 'part.ts is inside');
    assert.ok(text.includes(pathToFileURL(join(root, 'shared.ts')).href), 'the external module is imported from its source');

    // One instance of the external module, whether reached through the bundle or directly.
    const bundled = (await import(pathToFileURL(file).href)) as { bump: () => number; state: { n: number } };
    const direct = (await import(pathToFileURL(join(root, 'shared.ts')).href)) as { state: { n: number } };
    assert.equal(bundled.bump(), 2);
    assert.equal(direct.state.n, 1);
    assert.equal(bundled.state, direct.state);

    // Any input changing (here its modification time) makes the bundle stale: not used unchecked, rebuilt.
    utimesSync(join(root, 'part.ts'), new Date(), new Date(Date.now() + 5000));
    assert.equal(indexedBundle(spec)?.isCurrent(), false);
    assert.equal(cachedBundle(spec), null);
    const rebuilt = await bundle(spec);
    assert.notEqual(rebuilt, file);
    assert.equal(cachedBundle(spec), rebuilt);
    assert.equal(readdirSync(spec.cache).filter((f) => f.startsWith('tmp-') || f.includes('.json.')).length, 0, 'no temporary files left');

    // A vanished input: stale, and building fails (no index that could never match is written).
    rmSync(join(root, 'part.ts'));
    assert.equal(cachedBundle(spec), null);
    await assert.rejects(bundle(spec));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('concurrent builds of the same sources agree on one bundle', async () => {
  const { root, spec } = tree();
  try {
    const files = await Promise.all([bundle(spec), bundle(spec), bundle(spec)]);
    assert.equal(new Set(files).size, 1);
    assert.equal(cachedBundle(spec), files[0]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
