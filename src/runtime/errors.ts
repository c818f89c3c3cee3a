/**
 * The workload could not be started (bad module, missing import, limit too small): exit 1.
 * A module of its own so that the CLI can recognise it without loading the engine and the WASI host.
 */
export class WorkloadError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'WorkloadError';
    this.hint = hint;
  }
}
