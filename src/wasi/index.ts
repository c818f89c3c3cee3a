/**
 * Capability-based WASI preview1 host. Public surface: the host, its options, the capability
 * interfaces a Keep implements (io.ts), and the exceptions that end a guest.
 */
export { WasiHost, SUSPENDING_IMPORTS, type WasiOptions } from './host.ts';
export { ProcExit, Aborted, WasiError } from './errors.ts';
export { Errno } from './constants.ts';
export { isDescendingTarget } from './paths.ts';
export * from './io.ts';
