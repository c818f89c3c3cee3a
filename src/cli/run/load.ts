/**
 * The run path (run.ts and all it loads: backends, sallyport, CBOR) as one cached bundle, for the
 * fast path of `enarx run`: loading some 40 TypeScript modules cost the host about 20 ms of CPU
 * per run (with the compile cache warm), which on a 2-CPU machine competes with the Keep that
 * boots meanwhile. Built like the Keep's bundle (src/bundle), on the first run after a change.
 */
import { bundle, cachedBundle, type BundleSpec } from '../../bundle/index.ts';

const { join, resolve } = process.getBuiltinModule('node:path');
const { pathToFileURL } = process.getBuiltinModule('node:url');

type RunPath = typeof import('./run.ts');

const SRC = resolve(import.meta.dirname, '..', '..');
const REPO_ROOT = resolve(SRC, '..');

const RUN_BUNDLE: BundleSpec = {
  cache: join(REPO_ROOT, 'node_modules', '.cache', 'enarx-run'),
  entry: join(import.meta.dirname, 'run.ts'),
  name: 'run',
  root: REPO_ROOT,
  // Shared with the code that loads the bundle: the log level, the error classes the CLI
  // recognises, the early Keep; launch.ts finds the Keep's code relative to itself.
  external: [
    join(SRC, 'cli', 'errors.ts'),
    join(SRC, 'cli', 'output.ts'),
    join(SRC, 'keep', 'process', 'prestart.ts'),
    join(SRC, 'keep', 'process', 'launch.ts'),
  ],
};

/** run.ts, from the bundle (built first if missing or stale), or from its sources if no bundle can be built here. */
export async function loadRunPath(): Promise<RunPath> {
  let file = cachedBundle(RUN_BUNDLE);
  if (!file) {
    try {
      file = await bundle(RUN_BUNDLE);
    } catch {
      // A read-only installation: the sources run as they are.
      return import('./run.ts');
    }
  }
  return (await import(pathToFileURL(file).href)) as RunPath;
}
