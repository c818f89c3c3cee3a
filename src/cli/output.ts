/**
 * Where enarx itself writes. stdout belongs to the guest (or to exactly one JSON document
 * with --json); everything enarx says goes to stderr.
 */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';
const ORDER: readonly LogLevel[] = ['error', 'warn', 'info', 'debug', 'trace'];

let threshold: LogLevel = (process.env.ENARX_LOG as LogLevel | undefined) ?? 'warn';

export function setLogLevel(level: string): void {
  if (!ORDER.includes(level as LogLevel)) {
    throw new Error(`unknown log level '${level}' (use one of ${ORDER.join(', ')})`);
  }
  threshold = level as LogLevel;
}

export function logEnabled(level: LogLevel): boolean {
  return ORDER.indexOf(level) <= ORDER.indexOf(threshold);
}

export function log(level: LogLevel, message: string): void {
  if (logEnabled(level)) process.stderr.write(`[${level}] ${message}\n`);
}

/** Writes exactly one JSON document to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
