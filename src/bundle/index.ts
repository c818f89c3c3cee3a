/**
 * Our own code as cached esbuild bundles: one file (and its lazily loaded chunks) parses far
 * faster than a tree of TypeScript modules, which is most of a short run's start-up. A bundle is
 * built once into a cache directory and rebuilt when one of its inputs changes (path, size or
 * modification time; a dependency's as npm records it, see stamp); concurrent builders each write
 * a complete directory, and the index that names the current one is replaced atomically.
 *
 * Each source change leaves a build behind, so a new build prunes the old ones: every process that
 * uses a build sets its directory's modification time when it finds it, and again every 12 hours
 * while it lives (a long-running Steward, keep manager or Keep host may still load lazy chunks from
 * the build it started with, long after a newer one exists). A build nobody has marked for 7 days is
 * removed, unless it is the current one or the one it replaced; so are a dead builder's temporary
 * directories. Nothing else in the cache directory is touched.
 */
// process.getBuiltinModule: the ESM facades of these built-ins cost milliseconds each at start-up,
// and this module is on the path of every `enarx run`.
const { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } = process.getBuiltinModule('node:fs');
const { dirname, join, resolve } = process.getBuiltinModule('node:path');
const { pathToFileURL } = process.getBuiltinModule('node:url');

/**
 * This installation's root: its bundles are cached under node_modules/.cache. This module finds it
 * relative to itself, so bundled code imports it from its source (it is external in every bundle).
 */
export const INSTALL_ROOT = resolve(import.meta.dirname, '..', '..');

/** Where a bundle of this installation is cached. */
export function cacheDir(name: string): string {
  return join(INSTALL_ROOT, 'node_modules', '.cache', name);
}

/** The process Keep's bundle cache; ENARX_KEEP_CACHE moves it (tests use their own). */
export const KEEP_CACHE = process.env.ENARX_KEEP_CACHE ?? cacheDir('enarx-keep');

export interface BundleSpec {
  /** The directory that holds the builds and the index naming the current one. */
  cache: string;
  /** The entry module; the bundle's file is `<name>.mjs` (`<name>.cjs` for a script). */
  entry: string;
  name: string;
  /** The directory input paths are resolved against (the repository root). */
  root: string;
  /**
   * Modules left out and loaded from their sources, by absolute path: those whose state must be
   * shared with code outside the bundle (one instance of a module-level variable or class), or
   * that find files relative to themselves (import.meta).
   */
  external?: readonly string[];
  /**
   * JavaScript put at the head of every file of the bundle, so that it runs before any module's
   * own code, whichever file is evaluated first. Built with the bundle, so it must come from the
   * bundle's inputs (a module the entry imports), or a change to it would not rebuild the bundle.
   */
  banner?: () => Promise<string>;
  /**
   * Modules (`modules`: a bare package name or a path) that files matching `from` get a copy of
   * their own, with everything those copies import: the entry's graph then loads as one file
   * instead of also loading the chunks it would share with the lazily loaded modules (each file
   * costs a short run about a millisecond). Only for modules whose state (classes checked with
   * instanceof, module variables) the two sides never exchange.
   */
  entryCopies?: { from: RegExp; modules: RegExp };
  /**
   * One file, lazily loaded modules included (esbuild wraps each in a function that runs at its
   * first import): for a start-up path, where every file loaded costs about a millisecond. False
   * puts each lazily loaded module in a chunk of its own, with chunks for the code they share.
   * The sources' imports of built-in modules become process.getBuiltinModule calls (lazyBuiltins),
   * or one file would load every built-in that any lazily loaded module imports. Not with entryCopies.
   */
  oneFile?: boolean;
  /**
   * A classic script (CommonJS, `<name>.cjs`) rather than an ES module, which runScript runs with
   * a code cache made after a run. Node's compile cache of an ES module holds only the code V8
   * compiled as the module loaded, so every run compiled again each function it called, at its
   * first call; a script's code cache made once the run is over holds those too. Only with oneFile.
   * The externals it requires are handed to it by runScript (the lazily loaded ones it imports).
   */
  script?: boolean;
}

/** The file name of a bundle's entry. */
function entryFile(spec: BundleSpec): string {
  return `${spec.name}.${spec.script ? 'cjs' : 'mjs'}`;
}

/** How the bundle is built beyond its inputs, as a line of its stamp: a change rebuilds it. */
function optionsLine(spec: BundleSpec): string {
  const copies = spec.entryCopies ? `${spec.entryCopies.from.source} ${spec.entryCopies.modules.source}` : '';
  return `options\0${spec.banner ? 'banner' : ''}\0${copies}${spec.oneFile ? '\0one file' : ''}${spec.script ? '\0script' : ''}\n`;
}

/** The esbuild namespace of the entry's own copies (BundleSpec.entryCopies). */
const COPY = 'entry-copy';

/** The index of the current bundle: its inputs, their stamp when it was built, its directory. */
const INDEX = 'current.json';

/**
 * npm's record of what it installed in a node_modules directory (its hidden lockfile,
 * `node_modules/.package-lock.json`), which npm rewrites whenever it changes what is installed
 * there: the record of the first node_modules on a file's path, or undefined outside one.
 */
function installRecord(file: string): string | undefined {
  const at = file.indexOf('/node_modules/');
  return at < 0 ? undefined : `${file.slice(0, at)}/node_modules/.package-lock.json`;
}

/** A file's line of a stamp (path, size, modification time), or null if it cannot be stat'ed. */
function statLine(file: string, seen: Map<string, string | null>): string | null {
  let line = seen.get(file);
  if (line === undefined) {
    try {
      const st = statSync(file);
      line = `${file}\0${st.size}\0${st.mtimeMs}\n`;
    } catch {
      line = null;
    }
    seen.set(file, line);
  }
  return line;
}

/**
 * What the bundle was built from, as one string: each input's path, size and modification time.
 * Compared as is on every start (hashing it would load node:crypto, tens of milliseconds of a
 * short run's start-up); hashed only to name a new bundle's directory. The inputs in a
 * node_modules that has npm's record (installRecord) count by that record's line instead of each
 * its own: a stat per input is milliseconds of a short run, and more than half of them are
 * dependencies. So a file there edited by hand (not by npm) is not seen until the record changes
 * (`touch node_modules/.package-lock.json`, or remove node_modules/.cache); without the record
 * (another package manager), each counts by itself.
 */
function stamp(inputs: readonly string[], seen = new Map<string, string | null>()): string | null {
  let out = '';
  const records = new Set<string>();
  for (const file of inputs) {
    const record = installRecord(file);
    const recordLine = record === undefined ? null : statLine(record, seen);
    if (recordLine !== null) {
      if (!records.has(record!)) out += recordLine;
      records.add(record!);
      continue;
    }
    const line = statLine(file, seen);
    if (line === null) return null;
    out += line;
  }
  return out;
}

/**
 * What `checkSources` found, by cache directory: the index it read, and the inputs' part of its
 * stamp if they were unchanged (null if not). The next indexedBundle of that cache (once) uses the
 * index instead of reading it again, and its isCurrent the finding instead of statting every input.
 */
const checked = new Map<string, { index: Index; sources: string | null }>();

/**
 * Stats the inputs of the current builds in these caches, each input once: the bundles one
 * `enarx run` loads (its host's and its Keep's) share most of their sources, and a stat per input
 * is milliseconds of a short run. What it finds serves each build's next isCurrent (which still
 * compares the build options); a build whose inputs changed is left to isCurrent to find stale.
 */
export function checkSources(caches: readonly string[]): void {
  const seen = new Map<string, string | null>();
  for (const cache of caches) {
    const index = readIndex(cache);
    if (!index) continue;
    const sources = stamp(index.inputs, seen);
    checked.set(cache, { index, sources: sources !== null && index.stamp.startsWith(`${sources}options\0`) ? sources : null });
  }
}

/** A build no process has marked in use for this long is pruned by the next build. */
export const PRUNE_UNUSED_MS = 7 * 24 * 3600_000;
/** How often a live process marks the builds it uses, well inside PRUNE_UNUSED_MS. */
const MARK_EVERY_MS = 12 * 3600_000;
const marking = new Set<string>();

/** Marks a build directory as in use now (its mtime), and every MARK_EVERY_MS while this process lives. */
function markInUse(dir: string): void {
  const mark = () => {
    try {
      const now = new Date();
      utimesSync(dir, now, now);
    } catch {
      // A read-only installation builds nothing, so prunes nothing either.
    }
  };
  mark();
  if (marking.has(dir)) return;
  marking.add(dir);
  setInterval(mark, MARK_EVERY_MS).unref();
}

const BUILD_DIR = /^[0-9a-f]{16}$/;
const TMP_DIR = /^tmp-\d+-\d+-[0-9a-f]*$/;

/**
 * Removes the builds in `spec.cache` that no process has marked in use for PRUNE_UNUSED_MS, and
 * temporary directories as old (a builder that died), except the builds named in `keep` (the
 * current one and the one it replaced). Returns the names it removed.
 */
export function pruneBuilds(spec: Pick<BundleSpec, 'cache'>, keep: readonly (string | undefined)[], now = Date.now()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(spec.cache);
  } catch {
    return removed;
  }
  for (const name of names) {
    if ((!BUILD_DIR.test(name) && !TMP_DIR.test(name)) || keep.includes(name)) continue;
    const path = join(spec.cache, name);
    try {
      const st = statSync(path);
      if (!st.isDirectory() || now - st.mtimeMs < PRUNE_UNUSED_MS) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(name);
    } catch {
      // Another process pruned it first, or it cannot be removed: leave it.
    }
  }
  return removed;
}

/** A cache's index: the current build's inputs, their stamp when it was built, its directory. */
interface Index {
  inputs: string[];
  stamp: string;
  dir: string;
}

/** The cache's index, or undefined. */
function readIndex(cache: string): Index | undefined {
  try {
    const index = JSON.parse(readFileSync(join(cache, INDEX), 'utf8')) as Index;
    return typeof index.dir === 'string' && BUILD_DIR.test(index.dir) ? index : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The bundle the index names, if it exists, without checking it: `isCurrent` compares its inputs'
 * stamps, a stat per input (milliseconds), so a caller in a hurry may use the file first and check after.
 */
export function indexedBundle(spec: BundleSpec): { file: string; isCurrent: () => boolean } | null {
  const found = checked.get(spec.cache);
  checked.delete(spec.cache);
  const index = found?.index ?? readIndex(spec.cache);
  if (!index) return null;
  const file = join(spec.cache, index.dir, entryFile(spec));
  if (!existsSync(file)) return null;
  markInUse(join(spec.cache, index.dir));
  let pass = found?.sources;
  const isCurrent = () => {
    const sources = pass !== undefined ? pass : stamp(index.inputs);
    pass = undefined; // the pass's finding serves once; later checks stat again
    return sources !== null && sources + optionsLine(spec) === index.stamp;
  };
  return { file, isCurrent };
}

/** The current bundle's file, or null while it is missing or stale. */
export function cachedBundle(spec: BundleSpec): string | null {
  const index = indexedBundle(spec);
  return index?.isCurrent() ? index.file : null;
}

/** The bundle's file, built if missing or stale. */
export async function bundle(spec: BundleSpec): Promise<string> {
  return cachedBundle(spec) ?? build(spec);
}

async function build(spec: BundleSpec): Promise<string> {
  if (spec.script && !spec.oneFile) throw new Error(`the ${spec.name} bundle: a script bundle is one file`);
  const esbuild = await import('esbuild');
  const { cache, root } = spec;
  const external = new Set(spec.external ?? []);
  mkdirSync(cache, { recursive: true });
  const tmp = join(cache, `tmp-${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2)}`);
  const banner = spec.banner ? (await esbuild.transform(await spec.banner(), { minify: true, target: 'node22' })).code.trim() : undefined;
  const result = await esbuild.build({
    entryPoints: { [spec.name]: spec.entry },
    outdir: tmp,
    outExtension: { '.js': spec.script ? '.cjs' : '.mjs' },
    bundle: true,
    splitting: !spec.oneFile,
    format: spec.script ? 'cjs' : 'esm',
    platform: 'node',
    target: 'node22',
    minifySyntax: true,
    minifyWhitespace: true,
    metafile: true,
    ...(banner ? { banner: { js: banner } } : {}),
    logLevel: 'silent',
    absWorkingDir: root,
    plugins: [
      ...(external.size === 0 ? [] : [{
        name: 'external-sources',
        setup(b: import('esbuild').PluginBuild) {
          b.onResolve({ filter: /\.ts$/ }, (args) => {
            const path = resolve(args.resolveDir, args.path);
            return external.has(path) ? { path: pathToFileURL(path).href, external: true } : undefined;
          });
        },
      }]),
      ...(spec.entryCopies ? [entryCopies(spec.entryCopies)] : []),
      ...(spec.oneFile ? [lazyBuiltins(root)] : []),
    ],
  });
  // External modules are inputs too: the bundle names them, and a stale one must not be trusted.
  // A copy's input is named with its namespace: the file is the same.
  const sources = Object.keys(result.metafile.inputs).map((f) => resolve(root, f.startsWith(`${COPY}:`) ? f.slice(COPY.length + 1) : f));
  const inputs = [...new Set([...sources, ...external])].sort();
  const sourceStamp = stamp(inputs);
  if (sourceStamp === null) throw new Error(`an input of the ${spec.name} bundle vanished while it was built`);
  const built = sourceStamp + optionsLine(spec);
  const { createHash } = process.getBuiltinModule('node:crypto');
  const fp = createHash('sha256').update(built).digest('hex').slice(0, 16);
  const dir = join(cache, fp);
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another process built the same sources first
  }
  markInUse(dir);
  const replaced = readIndex(cache)?.dir;
  writeFileSync(join(cache, `${INDEX}.${process.pid}`), JSON.stringify({ inputs, stamp: built, dir: fp }));
  renameSync(join(cache, `${INDEX}.${process.pid}`), join(cache, INDEX));
  pruneBuilds(spec, [fp, replaced]);
  return join(dir, entryFile(spec));
}

/**
 * For BundleSpec.oneFile: an ES import of a built-in module (`import { x } from 'node:tls'`) stays
 * an import in the bundle, and the bundle's file imports them all when it loads, while a lazily
 * loaded module's `const { x } = process.getBuiltinModule('node:tls')` runs only when that module
 * does (node:tls and node:crypto alone cost milliseconds). So the project's own sources (under
 * `root`, not node_modules) get their value imports of built-ins rewritten that way.
 */
function lazyBuiltins(root: string): import('esbuild').Plugin {
  return {
    name: 'lazy-builtins',
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, (args) => {
        if (args.namespace !== 'file' || !args.path.startsWith(`${root}/`) || args.path.includes('/node_modules/')) return undefined;
        return { contents: builtinImportsAsCalls(readFileSync(args.path, 'utf8')), loader: 'ts' };
      });
    },
  };
}

/** Rewrites `import [D,] [{ a, b as c } | * as N] from 'node:M';` as getBuiltinModule calls (type-only imports stay). */
export function builtinImportsAsCalls(source: string): string {
  return source.replace(/^import\s+(?!type\s)([\w$]+\s*,\s*)?(\{[^}]*\}|\*\s+as\s+[\w$]+|[\w$]+)\s+from\s+'(node:[\w/]+)';/gm, (whole, first: string | undefined, clause: string, name: string) => {
    const call = `process.getBuiltinModule(${JSON.stringify(name)})`;
    const bindings: string[] = [];
    if (first) bindings.push(`const ${first.replace(/[\s,]/g, '')} = ${call};`);
    if (clause.startsWith('{')) {
      const names = clause
        .slice(1, -1)
        .split(',')
        .map((n) => n.trim())
        .filter((n) => n !== '' && !/^type\s/.test(n))
        .map((n) => n.replace(/^([\w$]+)\s+as\s+([\w$]+)$/, '$1: $2'));
      if (names.length > 0) bindings.push(`const { ${names.join(', ')} } = ${call};`);
    } else {
      bindings.push(`const ${clause.replace(/^\*\s+as\s+/, '')} = ${call};`);
    }
    // Same line count, so that positions in errors stay those of the source.
    return bindings.join(' ') + '\n'.repeat((whole.match(/\n/g) ?? []).length);
  });
}

/** The esbuild plugin behind BundleSpec.entryCopies: the copies live in their own namespace. */
function entryCopies(copies: { from: RegExp; modules: RegExp }): import('esbuild').Plugin {
  return {
    name: 'entry-copies',
    setup(b) {
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === COPY) return undefined;
        const wanted = args.namespace === COPY || (copies.modules.test(args.path) && copies.from.test(args.importer));
        if (!wanted) return undefined;
        const found = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: COPY });
        if (found.errors.length > 0 || found.external) return found;
        return { path: found.path, namespace: COPY };
      });
      b.onLoad({ filter: /.*/, namespace: COPY }, (args) => ({
        contents: readFileSync(args.path, 'utf8'),
        resolveDir: dirname(args.path),
        loader: args.path.endsWith('.ts') ? 'ts' : 'js',
      }));
    },
  };
}

/** How runScript found the code cache of a script bundle. */
export type CodeCacheUse = 'accepted' | 'rejected' | 'missing';

/**
 * Runs a script bundle (BundleSpec.script) and returns its exports. `modules` are the external
 * modules it requires, by the file URL it names them with, loaded already (a module it shares with
 * its loader must be the same instance); a built-in it requires is the process's. V8's code cache
 * for `variant` (a name for the V8 flags this process runs with: V8 rejects a cache made under
 * others) is read from beside the file; when it is missing or rejected, the process writes a new
 * one as it exits with status 0, holding every function the run compiled (a read-only
 * installation just goes without). The cache is as trusted as the bundle beside it: whoever can
 * write one can write the other, and V8 rejects a cache made for other source or flags.
 */
export function runScript(file: string, modules: Readonly<Record<string, unknown>>, variant: string): { exports: unknown; cache: CodeCacheUse } {
  const { Script, constants } = process.getBuiltinModule('node:vm');
  const cacheFile = `${file}.${variant}.cache`;
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // none yet: written as this process exits
  }
  // On the first line, so that stack traces keep the bundle's line numbers. Strict, as the ES
  // modules the bundle is made of are.
  const script = new Script(`(function (exports, require, module) {'use strict';${readFileSync(file, 'utf8')}\n})`, {
    filename: file,
    ...(cachedData ? { cachedData } : {}),
    importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const cache: CodeCacheUse = !cachedData ? 'missing' : script.cachedDataRejected ? 'rejected' : 'accepted';
  if (cache !== 'accepted') {
    process.once('exit', (code) => {
      if (code !== 0) return; // a run that failed early compiled little of the bundle
      try {
        const tmp = `${cacheFile}.${process.pid}`;
        writeFileSync(tmp, script.createCachedData());
        renameSync(tmp, cacheFile);
      } catch {
        // a read-only installation
      }
    });
  }
  const require = (id: string): unknown => {
    if (Object.hasOwn(modules, id)) return modules[id];
    const builtin = process.getBuiltinModule(id);
    if (builtin) return builtin;
    throw new Error(`the bundle ${file} requires ${id}, which its loader does not hand it`);
  };
  const module = { exports: {} as unknown };
  (script.runInThisContext() as (exports: unknown, require: (id: string) => unknown, module: { exports: unknown }) => void)(module.exports, require, module);
  return { exports: module.exports, cache };
}
