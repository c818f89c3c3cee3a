import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawnSync } from 'node:child_process';
import { builtinImportsAsCalls, bundle, cachedBundle, checkSources, indexedBundle, PRUNE_UNUSED_MS, pruneBuilds, runScript, type BundleSpec } from '../../src/bundle/index.ts';
import { REPO_ROOT } from '../helpers/paths.ts';

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

test('a banner heads every file, entry copies keep the entry in one file, and changed options rebuild', async () => {
  const root = mkdtempSync(join(tmpdir(), 'enarx-bundle-'));
  try {
    writeFileSync(join(root, 'pure.ts'), 'export const twice = (x: number): number => x * 2;\n');
    writeFileSync(join(root, 'lazy.ts'), "import { twice } from './pure.ts';\nexport const four = (): number => twice(2);\n");
    writeFileSync(join(root, 'entry.ts'), "import { twice } from './pure.ts';\nexport const six = (): number => twice(3);\nexport const lazy = () => import('./lazy.ts');\n");
    const base: BundleSpec = { cache: join(root, 'cache'), entry: join(root, 'entry.ts'), name: 'entry', root, banner: async () => 'globalThis.bannerRuns = (globalThis.bannerRuns ?? 0) + 1;' };
    const chunksOf = (file: string) => readFileSync(file, 'utf8').match(/from\s*"\.\/chunk-[^"]+"/g) ?? [];

    const shared = await bundle(base);
    assert.equal(chunksOf(shared).length, 1, 'without copies the entry imports the chunk it shares with lazy.ts');
    const dir = join(shared, '..');
    for (const f of readdirSync(dir)) assert.match(readFileSync(join(dir, f), 'utf8'), /^globalThis\.bannerRuns/, `${f} starts with the banner`);

    const copies: BundleSpec = { ...base, entryCopies: { from: /entry\.ts$/, modules: /pure\.ts$/ } };
    assert.equal(cachedBundle(copies), null, 'other options: the cached bundle is not current');
    const own = await bundle(copies);
    assert.notEqual(own, shared);
    assert.deepEqual(chunksOf(own), [], 'the entry has its own copy');
    const m = (await import(pathToFileURL(own).href)) as { six: () => number; lazy: () => Promise<{ four: () => number }> };
    assert.equal(m.six(), 6);
    assert.equal((await m.lazy()).four(), 4);
    assert.ok(((globalThis as { bannerRuns?: number }).bannerRuns ?? 0) >= 2, 'the banner ran in the entry and in the lazy file');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a new build prunes builds unused for a week, never the current one, the one it replaced, a recently used one or anything else', async () => {
  const { root, spec } = tree();
  const at = (path: string, msAgo: number) => utimesSync(path, new Date(Date.now() - msAgo), new Date(Date.now() - msAgo));
  const DAY = 24 * 3600_000;
  const old = 30 * DAY;
  try {
    const first = join(await bundle(spec), '..');
    const fake = (name: string, msAgo: number) => {
      mkdirSync(join(spec.cache, name, 'chunks'), { recursive: true });
      writeFileSync(join(spec.cache, name, 'entry.mjs'), 'export {};\n');
      at(join(spec.cache, name), msAgo);
      return join(spec.cache, name);
    };
    const stale = fake('0123456789abcdef', old);
    const recent = fake('fedcba9876543210', DAY);
    const deadBuilder = fake('tmp-12345-1700000000000-9f3a', old);
    const liveBuilder = fake('tmp-12346-1700000000000-9f3b', 60_000);
    // Not builds: a file with a build's name, other names, the launcher's cached command.
    writeFileSync(join(spec.cache, 'aaaaaaaaaaaaaaaa'), 'not a directory');
    at(join(spec.cache, 'aaaaaaaaaaaaaaaa'), old);
    const other = fake('mine', old);
    writeFileSync(join(spec.cache, 'launcher-keep.json'), '{}');
    at(join(spec.cache, 'launcher-keep.json'), old);
    // The first build, unused for a month, but current until the rebuild below replaces it.
    at(first, old);

    utimesSync(join(root, 'part.ts'), new Date(), new Date(Date.now() + 5000));
    const second = join(await bundle(spec), '..');
    assert.notEqual(second, first);
    for (const gone of [stale, deadBuilder]) assert.equal(existsSync(gone), false, `${gone} was pruned`);
    for (const kept of [first, second, recent, liveBuilder, other, join(spec.cache, 'aaaaaaaaaaaaaaaa'), join(spec.cache, 'launcher-keep.json'), join(spec.cache, 'current.json')]) {
      assert.equal(existsSync(kept), true, `${kept} was kept`);
    }

    // Using a build marks it: the second build, found through the index, is fresh again.
    at(second, old);
    assert.ok(cachedBundle(spec));
    assert.ok(Date.now() - statSync(second).mtimeMs < DAY, 'marked in use');

    // The next build may drop the first (a month unused, and no longer the one replaced), not the second.
    at(first, old);
    utimesSync(join(root, 'part.ts'), new Date(), new Date(Date.now() + 10_000));
    const third = join(await bundle(spec), '..');
    assert.equal(existsSync(first), false);
    assert.equal(existsSync(second), true);
    assert.equal(existsSync(third), true);
    assert.equal(readFileSync(join(third, 'entry.mjs'), 'utf8').length > 0, true);

    // pruneBuilds alone: the age is what counts, and the builds named to keep stay.
    assert.deepEqual(pruneBuilds(spec, [], Date.now() + PRUNE_UNUSED_MS + DAY).toSorted(), [second, third, recent, liveBuilder].map((d) => d.slice(spec.cache.length + 1)).toSorted());
    assert.deepEqual(pruneBuilds({ cache: join(root, 'no-such-cache') }, []), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a Keep starts from one file of its bundle (and esbuild's helper chunk)", async () => {
  // Each further file the entry imports costs every Keep about a millisecond to start: a module
  // that the lazily loaded code starts to share with the Keep's start-up graph shows up here.
  const { keepBundle } = await import('../../src/keep/process/launch.ts');
  const entry = readFileSync(await keepBundle(), 'utf8');
  const imported = [...entry.matchAll(/(?:import|from)\s*"(\.\/[^"]+)"/g)].map((m) => m[1]);
  assert.ok(imported.length <= 1, `the Keep's entry imports ${imported.join(', ')}`);
});

test('one stat pass checks several bundles: the next isCurrent of each uses it once, and a stale one stays stale', async () => {
  const a = tree();
  const b = tree();
  try {
    const fileA = await bundle(a.spec);
    await bundle(b.spec);
    // b's input changes before the pass: the pass finds it stale, and so does b's isCurrent.
    utimesSync(join(b.root, 'part.ts'), new Date(), new Date(Date.now() + 5000));
    checkSources([a.spec.cache, b.spec.cache, join(a.root, 'no-such-cache')]);
    // a's input changes after the pass: a's next isCurrent answers as of the pass (the run's check),
    // the one after that stats again.
    utimesSync(join(a.root, 'part.ts'), new Date(), new Date(Date.now() + 5000));
    assert.equal(cachedBundle(a.spec), fileA, 'as of the pass');
    assert.equal(cachedBundle(a.spec), null, 'checked again: stale');
    assert.equal(cachedBundle(b.spec), null);
    // The pass checks the inputs only: other build options still make a build stale.
    const rebuilt = await bundle(a.spec);
    checkSources([a.spec.cache]);
    assert.equal(cachedBundle({ ...a.spec, oneFile: true }), null);
    assert.equal(cachedBundle(a.spec), rebuilt);
  } finally {
    rmSync(a.root, { recursive: true, force: true });
    rmSync(b.root, { recursive: true, force: true });
  }
});

test("a dependency counts by npm's record of node_modules, and by its own stamp where there is none", async () => {
  const root = mkdtempSync(join(tmpdir(), 'enarx-bundle-'));
  try {
    const dep = join(root, 'node_modules', 'dep', 'index.js');
    const record = join(root, 'node_modules', '.package-lock.json');
    mkdirSync(join(dep, '..'), { recursive: true });
    writeFileSync(dep, 'export const dep = 1;\n');
    writeFileSync(record, '{}\n');
    writeFileSync(join(root, 'entry.ts'), "import { dep } from './node_modules/dep/index.js';\nexport const value = (): number => dep;\n");
    const spec: BundleSpec = { cache: join(root, 'cache'), entry: join(root, 'entry.ts'), name: 'entry', root };
    const later = (file: string, s: number) => utimesSync(file, new Date(), new Date(Date.now() + s * 1000));
    const first = await bundle(spec);
    const index = JSON.parse(readFileSync(join(spec.cache, 'current.json'), 'utf8')) as { inputs: string[]; stamp: string };
    assert.ok(index.inputs.includes(dep), 'the dependency is an input');
    assert.ok(index.stamp.includes(`${record}\0`) && !index.stamp.includes(`${dep}\0`), 'stamped by the record, not by itself');

    // Edited by hand, npm's record unchanged: not seen (the documented limit).
    later(dep, 5);
    assert.equal(cachedBundle(spec), first);
    // npm changed what is installed: stale, rebuilt.
    later(record, 10);
    assert.equal(cachedBundle(spec), null);
    const second = await bundle(spec);
    assert.notEqual(second, first);

    // No record (another package manager): the dependency counts by itself.
    rmSync(record);
    assert.equal(cachedBundle(spec), null, 'a vanished record changes the stamp');
    const third = await bundle(spec);
    assert.equal(cachedBundle(spec), third);
    later(dep, 15);
    assert.equal(cachedBundle(spec), null, 'its own change is seen');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a one-file bundle holds its lazily loaded modules, which load their built-ins only when they run', async () => {
  const root = mkdtempSync(join(tmpdir(), 'enarx-bundle-'));
  try {
    writeFileSync(join(root, 'shared.ts'), 'export const state = { n: 0 };\n');
    writeFileSync(join(root, 'lazy.ts'), "import { state } from './shared.ts';\nimport { createHash } from 'node:crypto';\nimport * as zlib from 'node:zlib';\nexport const digest = (): string => { state.n += 1; return createHash('sha256').update(String(typeof zlib.gzipSync)).digest('hex').slice(0, 8); };\n");
    writeFileSync(join(root, 'entry.ts'), "import { state } from './shared.ts';\nimport type { Hash } from 'node:crypto';\nexport type H = Hash;\nexport { state };\nexport const lazy = () => import('./lazy.ts');\n");
    const spec: BundleSpec = { cache: join(root, 'cache'), entry: join(root, 'entry.ts'), name: 'entry', root, oneFile: true };
    const file = await bundle(spec);
    assert.deepEqual(readdirSync(join(file, '..')), ['entry.mjs'], 'one file');
    const text = readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /from\s*"node:|import\s*"node:/, 'no ES import of a built-in: the file would load them all');
    assert.match(text, /getBuiltinModule\("node:crypto"\)/);
    const m = (await import(pathToFileURL(file).href)) as { state: { n: number }; lazy: () => Promise<{ digest: () => string }> };
    assert.equal((await m.lazy()).digest().length, 8);
    assert.equal(m.state.n, 1, 'one instance of the module both use');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the one-file bundle's rewrite of built-in imports: every value import form, type imports kept, lines kept", () => {
  const source = [
    "import { a, b as c, type T } from 'node:tls';",
    "import type { X } from 'node:net';",
    "import fs, { readFileSync } from 'node:fs';",
    "import * as p from 'node:path';",
    "import {",
    '  x,',
    '  y,',
    "} from 'node:os';",
    "import { local } from './local.ts';",
    'use();',
  ].join('\n');
  assert.equal(
    builtinImportsAsCalls(source),
    [
      'const { a, b: c } = process.getBuiltinModule("node:tls");',
      "import type { X } from 'node:net';",
      'const fs = process.getBuiltinModule("node:fs"); const { readFileSync } = process.getBuiltinModule("node:fs");',
      'const p = process.getBuiltinModule("node:path");',
      'const { x, y } = process.getBuiltinModule("node:os");',
      '',
      '',
      '',
      "import { local } from './local.ts';",
      'use();',
    ].join('\n'),
  );
});

test("an `enarx run` host loads one file of its bundle", async () => {
  // Each further file costs every run about a millisecond: the run path's lazily loaded modules
  // stay in the same file (BundleSpec.oneFile), and only the bundle module itself and the Keep's
  // banner source (wall.ts, for building the Keep) are imported from their sources.
  const { loadFastPath } = await import('../../src/cli/run/load.ts');
  await loadFastPath();
  const index = JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', '.cache', 'enarx-run', 'current.json'), 'utf8')) as { dir: string };
  const dir = join(REPO_ROOT, 'node_modules', '.cache', 'enarx-run', index.dir);
  // Beside it, the code caches runs have left (runScript).
  assert.deepEqual(readdirSync(dir).filter((f) => !/^run\.cjs\.[\w-]+\.cache$/.test(f)), ['run.cjs']);
  const text = readFileSync(join(dir, 'run.cjs'), 'utf8');
  // Files, not built-ins (a lazily loaded module's `await import('node:http')` costs nothing until it runs).
  const imported = [...text.matchAll(/(?:import|from|require)\s*\(?"((?:\.|file:)[^"]+)"/g)].map((m) => m[1]!.replace(/^file:\/\/.*\/src\//, 'src/'));
  assert.deepEqual([...new Set(imported)].sort(), ['src/bundle/index.ts', 'src/keep/process/wall.ts']);
});

test('a script bundle runs with the external modules its loader hands it, and with a code cache made after a run', async () => {
  const { root, spec } = tree();
  try {
    const scriptSpec: BundleSpec = { ...spec, oneFile: true, script: true };
    const file = await bundle(scriptSpec);
    assert.match(file, /entry\.cjs$/);
    const shared = await import(pathToFileURL(join(root, 'shared.ts')).href);
    const url = pathToFileURL(join(root, 'shared.ts')).href;
    const first = runScript(file, { [url]: shared }, 'test');
    assert.equal(first.cache, 'missing');
    const { bump, state } = first.exports as { bump: () => number; state: { n: number } };
    assert.equal(state, shared.state, 'the external module is the loader\'s instance');
    assert.equal(bump(), 2);
    assert.throws(() => runScript(file, {}, 'test'), /requires file:.*shared\.ts, which its loader does not hand it/);

    // A process writes the cache as it exits with status 0 (not after a failure); the next one uses it.
    const run = (exit: number) => {
      const script = `import { runScript } from ${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'src', 'bundle', 'index.ts')).href)};
        const shared = await import(${JSON.stringify(url)});
        const r = runScript(${JSON.stringify(file)}, { [${JSON.stringify(url)}]: shared }, 'child');
        r.exports.bump();
        console.log(r.cache);
        process.exitCode = ${exit};`;
      return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    };
    assert.equal(run(1).stdout.trim(), 'missing');
    assert.equal(existsSync(`${file}.child.cache`), false, 'not written by a failed run');
    assert.equal(run(0).stdout.trim(), 'missing');
    assert.equal(existsSync(`${file}.child.cache`), true);
    assert.equal(run(0).stdout.trim(), 'accepted');
    writeFileSync(`${file}.child.cache`, 'not a code cache');
    assert.equal(run(0).stdout.trim(), 'rejected', 'a bad cache is only not used');
    assert.equal(run(0).stdout.trim(), 'accepted', 'and replaced');
    assert.equal(cachedBundle({ ...scriptSpec, script: false }), null, 'a module bundle of the same sources is another build');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
