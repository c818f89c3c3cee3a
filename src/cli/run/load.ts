/**
 * The host side of `enarx run`'s fast path (fast.ts and all it loads: the early Keep, the run
 * path, the backends, the sallyport, CBOR) as one cached bundle file. Loading some 50 TypeScript
 * modules cost the host about 20 ms of CPU per run even with the compile cache warm, and every
 * file more than one costs about a millisecond, on a machine where the Keep boots meanwhile.
 * Built like the Keep's bundle (src/bundle), on the first run after a change.
 */
import * as bundleModule from '../../bundle/index.ts';
import { bundle, cacheDir, cachedBundle, checkSources, INSTALL_ROOT, KEEP_CACHE, runScript, type BundleSpec } from '../../bundle/index.ts';

const { join } = process.getBuiltinModule('node:path');
const { pathToFileURL } = process.getBuiltinModule('node:url');

type FastPath = typeof import('./fast.ts');

const SRC = join(INSTALL_ROOT, 'src');

const HOST_BUNDLE: BundleSpec = {
  cache: cacheDir('enarx-run'),
  entry: join(SRC, 'cli', 'run', 'fast.ts'),
  name: 'run',
  root: INSTALL_ROOT,
  oneFile: true,
  // With a code cache of what a run compiles: a run compiled 5-6 ms of the bundle's functions again.
  script: true,
  external: [
    // Finds the installation relative to itself (import.meta), and remembers this run's check of
    // the bundles' sources for the Keep's (checkSources).
    join(SRC, 'bundle', 'index.ts'),
    // Only to build the Keep's bundle: its functions' source text is the Keep's banner, which
    // must not depend on how the host's code was built.
    join(SRC, 'keep', 'process', 'wall.ts'),
  ],
};

/**
 * fast.ts, from the bundle (built first if missing or stale), or from its sources if no bundle
 * can be built here (a read-only installation). The host's bundle and the Keep's share most of
 * their sources: one stat of each input checks both, and the Keep's check later uses it.
 */
export async function loadFastPath(): Promise<FastPath> {
  checkSources([HOST_BUNDLE.cache, KEEP_CACHE]);
  let file = cachedBundle(HOST_BUNDLE);
  if (!file) {
    try {
      file = await bundle(HOST_BUNDLE);
    } catch {
      return import('./fast.ts');
    }
  }
  // The bundle requires one external (bundle/index.ts, which it shares with this module); it
  // imports wall.ts only to build the Keep's bundle. bin/enarx.js sets V8's wasm tier flags before
  // a run that compiles wasm here (the nil Keep): the code cache is V8's for one set of flags.
  const variant = (globalThis as { [k: symbol]: unknown })[Symbol.for('enarx.wasm-optimising-tier')] === true ? 'optimising-tier' : 'default';
  return runScript(file, { [pathToFileURL(join(SRC, 'bundle', 'index.ts')).href]: bundleModule }, variant).exports as FastPath;
}
