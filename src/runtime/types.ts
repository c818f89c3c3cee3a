import type { DescriptorCapability } from '../wasi/io.ts';

/** Limits a Keep enforces on its workload. Absent fields mean "no limit beyond the engine's". */
export interface WorkloadLimits {
  /** Linear memory cap in bytes: memory.grow fails (returns -1) past it. */
  maxMemoryBytes?: number;
  /** Most descriptors open at once (fd table size); opening more fails with ENFILE. */
  maxDescriptors?: number;
  /** Resident set size of the Keep's process, bytes: its host kills it past this (process Keep only). */
  maxRssBytes?: number;
  /** Wall time from start, milliseconds: the Keep is stopped past it. */
  maxWallTimeMs?: number;
}

/** Everything needed to run one WASI preview1 module; the same shape in the nil and process Keeps. */
export interface WorkloadRequest {
  /** The module's bytes (or an already compiled module). */
  module: Uint8Array | WebAssembly.Module;
  /** argv, argv[0] included. */
  args: readonly string[];
  /** Environment, in order (FD_COUNT / FD_NAMES first when built from an Enarx.toml). */
  env: readonly (readonly [string, string])[];
  /** Descriptors in fd order: index 0 is fd 0. */
  descriptors: readonly DescriptorCapability[];
  limits?: WorkloadLimits;
  /** Aborting stops the guest at its next host call or poll (Ctrl-C, SIGTERM, wall-time limit). */
  signal?: AbortSignal;
  /** Called when the guest starts waiting in a host call; the returned function when it stops. */
  onWait?: () => () => void;
}

/** How a run ended. */
export type WorkloadOutcome =
  /** The guest returned from _start (code 0) or called proc_exit(code). */
  | { readonly kind: 'exit'; readonly code: number }
  /** The guest trapped; `message` is one readable line (e.g. "wasm trap: integer divide by zero"). Exit status 134. */
  | { readonly kind: 'trap'; readonly message: string }
  /** The run was stopped by its AbortSignal; `reason` names why (e.g. "wall-time limit 10s"). */
  | { readonly kind: 'aborted'; readonly reason: string };
