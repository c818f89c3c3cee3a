import { Aborted, ProcExit, SUSPENDING_IMPORTS, WasiHost } from '../wasi/index.ts';
import { MemoryCapError, PAGE_SIZE, capMemory } from './memory-cap.ts';
import type { WorkloadOutcome, WorkloadRequest } from './types.ts';
import { oneLine } from '../attestation/text.ts';
import { WorkloadError } from './errors.ts';

export { WorkloadError };

const WASI_MODULE = 'wasi_snapshot_preview1';


/** JS Promise Integration (in Node 26; not yet in TypeScript's lib). */
const JSPI = WebAssembly as unknown as {
  Suspending: new (fn: (...args: never[]) => unknown) => object;
  promising: (fn: () => unknown) => () => Promise<unknown>;
};
/** The wasm32 address space: 65536 pages of 64 KiB. */
const MAX_PAGES = 65536;

/** Compiles a module, applying the memory cap. Errors say what is wrong with the module in one line. */
export function compileWorkload(bytes: Uint8Array, maxMemoryBytes?: number): WebAssembly.Module {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new WorkloadError('not a WebAssembly module (it does not start with \\0asm)', 'give the path of a .wasm file');
  }
  let capped = bytes;
  if (maxMemoryBytes !== undefined) {
    const pages = Math.min(MAX_PAGES, Math.floor(maxMemoryBytes / PAGE_SIZE));
    try {
      capped = capMemory(bytes, pages);
    } catch (err) {
      if (err instanceof MemoryCapError) throw new WorkloadError(err.message, err.hint ?? 'raise the memory limit');
      throw err;
    }
  }
  try {
    return new WebAssembly.Module(capped as Uint8Array<ArrayBuffer>);
  } catch (err) {
    const detail = err instanceof Error ? err.message.replace(/^WebAssembly\.Module\(\): /, '') : String(err);
    throw new WorkloadError(`invalid WebAssembly module: ${detail}`, 'rebuild it, e.g. clang --target=wasm32-wasi -O2');
  }
}

/** Checks the module is a WASI command this host can satisfy, before anything runs. */
function checkInterface(module: WebAssembly.Module, provided: Record<string, unknown>): void {
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.module !== WASI_MODULE || imp.kind !== 'function' || !Object.hasOwn(provided, imp.name)) {
      throw new WorkloadError(
        `the module imports ${imp.kind} '${imp.module}.${imp.name}', which a Keep does not provide`,
        `only ${WASI_MODULE} functions are available`,
      );
    }
  }
  const exports = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
  if (exports.get('_start') !== 'function') {
    throw new WorkloadError("the module has no '_start' function: it is not a WASI command", 'build an executable, not a library');
  }
  if (exports.get('memory') !== 'memory') {
    throw new WorkloadError("the module exports no 'memory'", 'WASI modules must export their linear memory');
  }
}

/** One readable line for a trap, e.g. "wasm trap: integer divide by zero (in function 'divide')". */
export function describeTrap(err: unknown): string | undefined {
  if (err instanceof WebAssembly.RuntimeError) {
    const where = /at (\S+) \(wasm:\/\//.exec(err.stack ?? '')?.[1];
    // The name comes from the module's name section: the guest's text, escaped before it reaches a terminal.
    const name = where && !/^\$?wasm-function\[/.test(where) ? ` in function '${oneLine(where.replace(/^\$/, ''))}'` : '';
    return `wasm trap: ${err.message}${name}`;
  }
  if (err instanceof RangeError && /call stack/i.test(err.message) && /wasm:\/\//.test(err.stack ?? '')) {
    return 'wasm trap: call stack exhausted';
  }
  return undefined;
}

/**
 * Runs a WASI command to completion. Host calls that wait suspend the guest through JSPI
 * (WebAssembly.Suspending / WebAssembly.promising), so the event loop keeps running.
 * Throws WorkloadError before the guest starts; once it runs, every ending is an outcome.
 */
export async function runWorkload(request: WorkloadRequest): Promise<WorkloadOutcome> {
  const limits = request.limits ?? {};
  const module =
    request.module instanceof WebAssembly.Module ? request.module : compileWorkload(request.module, limits.maxMemoryBytes);
  const host = new WasiHost({
    args: request.args,
    env: request.env,
    descriptors: request.descriptors,
    maxDescriptors: limits.maxDescriptors,
    signal: request.signal,
    onWait: request.onWait,
  });
  try {
    const raw = host.imports();
    checkInterface(module, raw);
    const wasi: Record<string, unknown> = {};
    for (const [name, fn] of Object.entries(raw)) wasi[name] = SUSPENDING_IMPORTS.has(name) ? new JSPI.Suspending(fn) : fn;
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(module, { [WASI_MODULE]: wasi } as WebAssembly.Imports);
    } catch (err) {
      const trap = describeTrap(err);
      if (trap) return { kind: 'trap', message: trap };
      throw new WorkloadError(`cannot instantiate the module: ${err instanceof Error ? err.message : String(err)}`);
    }
    host.setMemory(instance.exports.memory as WebAssembly.Memory);
    const start = JSPI.promising(instance.exports._start as () => unknown);
    return await settle(start());
  } finally {
    await flushOutputs(host);
    host.close();
  }
}

async function settle(run: Promise<unknown>): Promise<WorkloadOutcome> {
  try {
    await run;
    return { kind: 'exit', code: 0 };
  } catch (err) {
    if (err instanceof ProcExit) return { kind: 'exit', code: err.code };
    if (err instanceof Aborted) return { kind: 'aborted', reason: err.message };
    const trap = describeTrap(err);
    if (trap) return { kind: 'trap', message: trap };
    throw err;
  }
}

async function flushOutputs(host: WasiHost): Promise<void> {
  const pending: Promise<void>[] = [];
  for (const [, e] of host.fds.entries()) {
    if (e.type === 'output') pending.push(e.stream.flush());
    if (e.type === 'connection') pending.push(e.connection.output.flush());
  }
  await Promise.allSettled(pending);
}
