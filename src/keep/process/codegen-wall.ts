/**
 * The Keep's wall against JavaScript code generated from strings: eval and the constructors of
 * plain, async, generator and async generator functions throw an EvalError, as they do under V8's
 * --disallow-code-generation-from-strings. The Keep's entry raises it before any other module of
 * the Keep is evaluated, so before a byte from the host is read.
 *
 * Why not that flag: any V8 code-generation flag on Node's command line changes V8's flag hash,
 * and V8 then refuses Node's embedded code cache for every built-in module the Keep loads
 * (about 8 ms of CPU per Keep start). Set at run time (v8.setFlagsFromString) the flag does not
 * apply to the main context, which exists already. Neither the flag nor this wall covers node:vm
 * or import() of a data: URL; the Keep's code uses neither. docs/sallyport.md, "The Keep
 * process", weighs the trade.
 */

type Constructor = (...args: string[]) => unknown;

/** The intrinsic constructors that compile their string arguments, by name. */
function codeConstructors(): [string, Constructor][] {
  const ctorOf = (fn: object) => Object.getPrototypeOf(fn).constructor as Constructor;
  return [
    ['Function', Function as unknown as Constructor],
    ['AsyncFunction', ctorOf(async function () {})],
    ['GeneratorFunction', ctorOf(function* () {})],
    ['AsyncGeneratorFunction', ctorOf(async function* () {})],
  ];
}

function refusing(name: string, prototype: unknown): Constructor {
  const refuse = function () {
    throw new EvalError(`${name}: code generation from strings is disallowed in a Keep`);
  };
  Object.defineProperty(refuse, 'name', { value: name });
  // `f instanceof Function` keeps working: the stand-in's prototype is the intrinsic one.
  Object.defineProperty(refuse, 'prototype', { value: prototype, writable: false });
  return refuse;
}

const FIXED = { writable: false, enumerable: false, configurable: false } as const;

/** Replaces eval and every function constructor with one that throws; no one can put them back. */
export function closeCodeGeneration(): void {
  for (const [name, ctor] of codeConstructors()) {
    const refuse = refusing(name, ctor.prototype);
    Object.defineProperty(ctor.prototype, 'constructor', { value: refuse, ...FIXED });
    if (name === 'Function') Object.defineProperty(globalThis, 'Function', { value: refuse, ...FIXED });
  }
  Object.defineProperty(globalThis, 'eval', { value: refusing('eval', undefined), ...FIXED });
}
