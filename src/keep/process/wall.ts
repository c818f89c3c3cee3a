/**
 * The Keep's walls against what JavaScript inside it could reach beyond the permission model, in
 * case a bug ever hands an attacker JavaScript in the Keep (docs/sallyport.md, "The Keep process"):
 *
 * - code generated from strings: eval and the constructors of plain, async, generator and async
 *   generator functions throw an EvalError, as they do under V8's
 *   --disallow-code-generation-from-strings;
 * - module loading: only the bundle's own files and the built-in modules it imports load (no
 *   node:vm, node:module, node:repl, data: URLs...), and no one can add module hooks;
 * - signals: process.kill refuses (the Keep runs as its host's user, often root).
 *
 * They go up before any module of the Keep is evaluated, so before a byte from the host is read:
 * launch.ts puts keepWallSource() at the head of every file of the Keep's bundle (an esbuild
 * banner), and the first file evaluated runs it.
 *
 * Why not --disallow-code-generation-from-strings: any V8 code-generation flag on Node's command
 * line changes V8's flag hash, and V8 then refuses Node's embedded code cache for every built-in
 * module the Keep loads (about 8 ms of CPU per Keep start). Set at run time
 * (v8.setFlagsFromString) the flag does not apply to the main context, which exists already.
 */

/**
 * The built-in modules the Keep's bundle imports: the only ones its code may load.
 * test/keep/process-permission.test.ts checks the bundle against this list.
 */
export const KEEP_BUILTINS: readonly string[] = [
  'node:crypto', 'node:events', 'node:fs', 'node:fs/promises', 'node:http', 'node:https', 'node:net', 'node:path',
  'node:stream', 'node:stream/promises', 'node:tls', 'node:v8',
];

/**
 * Replaces eval and every function constructor with one that throws; no one can put them back.
 * Idempotent. Self-contained (it refers to nothing outside its body): its source is the banner.
 */
export function closeCodeGeneration(): void {
  const fixed = { writable: false, enumerable: false, configurable: false } as const;
  if (Object.getOwnPropertyDescriptor(globalThis, 'eval')?.configurable === false) return;
  const refusing = (name: string, prototype: unknown) => {
    const refuse = function () {
      throw new EvalError(`${name}: code generation from strings is disallowed in a Keep`);
    };
    Object.defineProperty(refuse, 'name', { value: name });
    // `f instanceof Function` keeps working: the stand-in's prototype is the intrinsic one.
    Object.defineProperty(refuse, 'prototype', { value: prototype, writable: false });
    return refuse;
  };
  const constructorOf = (fn: object) => Object.getPrototypeOf(fn).constructor as { prototype: object };
  const constructors: [string, { prototype: object }][] = [
    ['Function', Function],
    ['AsyncFunction', constructorOf(async function () {})],
    ['GeneratorFunction', constructorOf(function* () {})],
    ['AsyncGeneratorFunction', constructorOf(async function* () {})],
  ];
  for (const [name, ctor] of constructors) {
    const refuse = refusing(name, ctor.prototype);
    Object.defineProperty(ctor.prototype, 'constructor', { value: refuse, ...fixed });
    if (name === 'Function') Object.defineProperty(globalThis, 'Function', { value: refuse, ...fixed });
  }
  Object.defineProperty(globalThis, 'eval', { value: refusing('eval', undefined), ...fixed });
}

/**
 * Lets only the files of the bundle at `bundleUrl` (a directory URL ending in `/`) and the
 * built-ins named in `builtins` load, through import(), require() and process.getBuiltinModule,
 * and removes every way to add module hooks (which could hand Node any source text). Refused loads
 * throw ERR_ACCESS_DENIED. Idempotent. Self-contained, like closeCodeGeneration.
 */
export function closeModuleLoading(bundleUrl: string, builtins: readonly string[]): void {
  const fixed = { writable: false, enumerable: false, configurable: false } as const;
  if (Object.getOwnPropertyDescriptor(process, 'getBuiltinModule')?.configurable === false) return;
  const allowed = new Set(builtins);
  const denied = (what: string): never => {
    const error = new Error(`${what}: not loadable in a Keep`) as Error & { code: string };
    error.code = 'ERR_ACCESS_DENIED';
    throw error;
  };
  const loadable = (url: string) => url.startsWith('node:') ? allowed.has(url)
    : url.startsWith(bundleUrl) && !url.slice(bundleUrl.length).includes('/');
  const getBuiltinModule = process.getBuiltinModule;
  const mod = getBuiltinModule('node:module') as typeof import('node:module');
  mod.registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      return loadable(resolved.url) ? resolved : denied(specifier.slice(0, 256));
    },
  });
  const builtin = (id: string) => {
    const name = String(id);
    return loadable(name.startsWith('node:') ? name : `node:${name}`) ? getBuiltinModule(name) : denied(name.slice(0, 256));
  };
  Object.defineProperty(process, 'getBuiltinModule', { value: builtin, ...fixed });
  for (const name of ['registerHooks', 'register']) {
    Object.defineProperty(mod, name, { value: () => denied(`module.${name}`), ...fixed });
  }
}

/** Makes process.kill refuse: the Keep never signals, and runs as its host's user. Idempotent. */
export function closeSignals(): void {
  const fixed = { writable: false, enumerable: false, configurable: false } as const;
  for (const name of ['kill', '_kill']) {
    if (Object.getOwnPropertyDescriptor(process, name)?.configurable === false) continue;
    const refuse = () => {
      const error = new Error(`process.${name}: a Keep sends no signals`) as Error & { code: string };
      error.code = 'ERR_ACCESS_DENIED';
      throw error;
    };
    Object.defineProperty(process, name, { value: refuse, ...fixed });
  }
}

/**
 * Called once the Keep has set its wasm tier (main.ts): no later code may change V8's flags (one
 * could turn off the checks that keep wasm inside its memory).
 */
export function sealEngineFlags(): void {
  const v8 = process.getBuiltinModule('node:v8');
  if (Object.getOwnPropertyDescriptor(v8, 'setFlagsFromString')?.configurable === false) return;
  Object.defineProperty(v8, 'setFlagsFromString', {
    value: () => {
      throw new EvalError('v8.setFlagsFromString: V8 flags are fixed in a Keep');
    },
    writable: false,
    enumerable: true,
    configurable: false,
  });
}

/**
 * The statements that raise the walls, as JavaScript source (the Keep bundle's banner): at the
 * head of an ES module of the bundle, whose directory is the bundle's.
 */
export function keepWallSource(): string {
  return `(${closeCodeGeneration.toString()})();(${closeSignals.toString()})();` +
    `(${closeModuleLoading.toString()})(new URL('./', import.meta.url).href, ${JSON.stringify(KEEP_BUILTINS)});`;
}

