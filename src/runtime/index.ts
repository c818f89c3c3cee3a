/**
 * The engine: compiles a module (with its memory cap), links it to a WASI host over the
 * capabilities a Keep provides, and runs it. Used in-process by the nil Keep and inside the
 * process Keep alike.
 */
export { runWorkload, compileWorkload, describeTrap, WorkloadError } from './engine.ts';
export { OPTIMISING_TIER_FLAGS, hasOptimisingTier, useOptimisingTier } from './tier.ts';
export type { WorkloadLimits, WorkloadOutcome, WorkloadRequest } from './types.ts';
