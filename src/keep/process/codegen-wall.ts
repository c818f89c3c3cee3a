/**
 * The Keep's wall against JavaScript code generated from strings: eval and the constructors of
 * plain, async, generator and async generator functions throw an EvalError, as they do under V8's
 * --disallow-code-generation-from-strings. It goes up before any module of the Keep is evaluated,
 * so before a byte from the host is read: launch.ts puts this function's source at the head of
 * every file of the Keep's bundle (an esbuild banner), and the first file evaluated runs it.
 *
 * Why not that flag: any V8 code-generation flag on Node's command line changes V8's flag hash,
 * and V8 then refuses Node's embedded code cache for every built-in module the Keep loads
 * (about 8 ms of CPU per Keep start). Set at run time (v8.setFlagsFromString) the flag does not
 * apply to the main context, which exists already. Neither the flag nor this wall covers node:vm
 * or import() of a data: URL; the Keep's code uses neither. docs/sallyport.md, "The Keep
 * process", weighs the trade.
 */

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

/** The statement that raises the wall, as JavaScript source (the Keep bundle's banner). */
export function codeGenerationWallSource(): string {
  return `(${closeCodeGeneration.toString()})();`;
}
