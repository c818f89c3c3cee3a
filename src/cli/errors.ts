/**
 * Errors that reach the user. Each carries its exit status and says what to do next,
 * so that the CLI prints one readable line instead of a stack trace.
 */
export class EnarxError extends Error {
  readonly exitCode: number;
  readonly hint: string | undefined;

  constructor(message: string, options: { exitCode?: number; hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'EnarxError';
    this.exitCode = options.exitCode ?? 1;
    this.hint = options.hint;
  }
}

/** Bad flags or arguments: exit status 2. */
export class UsageError extends EnarxError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: 2, hint: hint ?? "run 'enarx --help' for usage" });
    this.name = 'UsageError';
  }
}

/** One line for the user: the message, then what to do about it. */
export function formatError(err: unknown): string {
  if (err instanceof EnarxError) {
    return err.hint ? `enarx: ${oneLine(err.message)} (${oneLine(err.hint)})` : `enarx: ${oneLine(err.message)}`;
  }
  const message = err instanceof Error ? err.message : String(err);
  return `enarx: internal error: ${oneLine(message)} (please report it, with --log-level debug output)`;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

export function exitCodeOf(err: unknown): number {
  return err instanceof EnarxError ? err.exitCode : 1;
}
