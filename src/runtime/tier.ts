/**
 * Which V8 tier compiles workloads. Liftoff, V8's baseline compiler, keeps a long-running loop in
 * slow code until its function is called again (V8 has no on-stack replacement for wasm): CPU
 * kernels ran 1.5-2.7x slower than under TurboFan, the optimising tier. So workloads compile with
 * TurboFan from the start.
 *
 * These flags are set at run time, not on Node's command line: any code-generation flag on the
 * command line makes V8 refuse Node's code cache for every built-in module (10-20 ms more
 * start-up per process), while set at run time they cost that only for built-ins loaded later.
 * They must be set before this process compiles any wasm at all: set after Node's own wasm (its
 * TypeScript stripper, undici, wabt in tests) has run, each combination of them we tried aborted
 * V8 in one case or another (failed CHECKs on tiering feedback, inlining or deopt data).
 * The launcher sets them first thing unless the run's workload goes to a process Keep, and the
 * process Keep sets them once its entry has loaded its code and opened its pipe. Code that runs
 * Keeps in-process (tests) does not.
 */
export const OPTIMISING_TIER_FLAGS = '--no-liftoff --no-wasm-dynamic-tiering --no-wasm-deopt';

// Shared with bin/enarx.js (plain JavaScript, which sets the flags before it loads any module).
const SET = Symbol.for('enarx.wasm-optimising-tier');

/** Sets the flags; call it only where no wasm has been compiled yet in this process. */
export function useOptimisingTier(): void {
  const g = globalThis as { [SET]?: boolean };
  if (g[SET]) return;
  process.getBuiltinModule('node:v8').setFlagsFromString(OPTIMISING_TIER_FLAGS);
  g[SET] = true;
}

/** True once this process compiles workloads with the optimising tier. */
export function hasOptimisingTier(): boolean {
  return (globalThis as { [SET]?: boolean })[SET] === true;
}
