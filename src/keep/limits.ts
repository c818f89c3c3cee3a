/**
 * Keep limits as the user writes them: `--memory-limit 64MiB`, `--wall-time-limit 30s`, or an
 * Enarx.toml `[limits]` table with the same names. Parsed once here for both.
 */

export interface KeepLimitSettings {
  /** Linear memory, bytes: memory.grow fails past it (both Keeps). */
  memory?: number;
  /** Resident set size of the Keep process, bytes: the host kills the Keep past it (process Keep). */
  rss?: number;
  /** Wall time, milliseconds: the Keep is stopped past it. */
  wallTime?: number;
  /** Open descriptors the guest may hold at once. */
  descriptors?: number;
}

/**
 * The descriptors a guest may hold when neither the command line, nor Enarx.toml, nor a deployed
 * package sets a limit: a process's usual `ulimit -n`, and the WASI descriptor table's own default
 * (src/wasi/fdtable.ts), so that the process Keep's host, which relays every socket, and the guest
 * agree. It bounds what one Keep can make its host buffer: a window (1 MiB) per connection. There
 * is no unlimited setting; a limit may be raised (up to 2^20) or lowered (to 3).
 */
export const DEFAULT_DESCRIPTORS = 1024;

/** The longest wall-time limit: Node's timers hold at most 2^31-1 ms. */
export const MAX_WALL_TIME_MS = 2 ** 31 - 1;

export const LIMIT_KEYS = ['memory', 'rss', 'wall-time', 'descriptors'] as const;
export type LimitKey = (typeof LIMIT_KEYS)[number];

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1e6, mib: 1024 ** 2, g: 1024 ** 3, gb: 1e9, gib: 1024 ** 3 };
const TIME_UNITS: Record<string, number> = { ms: 1, s: 1000, '': 1000, m: 60_000, min: 60_000, h: 3_600_000 };

export function parseSize(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value;
  const m = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value) : null;
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined || Number(m[1]) <= 0) {
    throw new Error(`${what} must be a size such as 65536, "64MiB" or "2GiB", not ${JSON.stringify(value)}`);
  }
  return Math.floor(Number(m[1]) * unit);
}

export function parseDuration(value: unknown, what: string): number {
  if (typeof value === 'number' && value > 0 && Number.isFinite(value)) return Math.round(value * 1000);
  const m = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/.exec(value) : null;
  const unit = m ? TIME_UNITS[m[2]!] : undefined;
  if (!m || unit === undefined || Number(m[1]) <= 0) {
    throw new Error(`${what} must be a duration such as 30 (seconds), "500ms", "30s" or "5m", not ${JSON.stringify(value)}`);
  }
  return Math.round(Number(m[1]) * unit);
}

/** A duration in milliseconds as people write it back: "3s", "1500ms". */
export function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

export function parseCount(value: unknown, what: string, min: number): number {
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) throw new Error(`${what} must be a whole number of at least ${min}, not ${JSON.stringify(value)}`);
  return n;
}

/** One limit from its key; `what` names it in errors (a flag or a TOML key). */
export function parseLimit(key: LimitKey, value: unknown, what: string): Partial<KeepLimitSettings> {
  switch (key) {
    case 'memory':
      return { memory: parseSize(value, what) };
    case 'rss':
      return { rss: parseSize(value, what) };
    case 'wall-time': {
      const wallTime = parseDuration(value, what);
      // A longer timer fires at once in Node (it wraps to 1 ms): refuse it rather than stop the Keep at start.
      if (wallTime > MAX_WALL_TIME_MS) throw new Error(`${what} may be at most ${MAX_WALL_TIME_MS} ms (about 24.8 days), not ${JSON.stringify(value)}`);
      return { wallTime };
    }
    case 'descriptors':
      return { descriptors: parseCount(value, what, 3) };
  }
}

/** The Enarx.toml `[limits]` table: memory, rss, wall-time, descriptors. */
export function parseLimitsTable(value: unknown): KeepLimitSettings {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('must be a table, e.g. [limits] memory = "64MiB"');
  let out: KeepLimitSettings = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (!(LIMIT_KEYS as readonly string[]).includes(key)) throw new Error(`has unknown key '${key}' (known: ${LIMIT_KEYS.join(', ')})`);
    out = { ...out, ...parseLimit(key as LimitKey, v, `'${key}'`) };
  }
  return out;
}
