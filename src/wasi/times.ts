/**
 * File times at the nanosecond precision WASI asks for.
 *
 * Node sets times only as seconds in a double (fs.utimes/futimes/lutimes), which libuv turns into
 * a timespec by truncation: tv_sec = trunc(t), tv_nsec = trunc((t - tv_sec) * 1e9). At today's
 * dates a double has 22 bits below the second, so only one nanosecond value in about 238 can be
 * stored ({@link secondsFor} picks the double that lands nearest). A time left alone is passed as
 * an invalid Date, which libuv turns into UTIME_OMIT: the file keeps it exactly.
 *
 * For a set time that could not be stored exactly, the host remembers, per file (device and
 * inode), the time the guest asked for and the time the file system actually stored (when that is
 * exactly what libuv sent: the rounding, not a clamp or a coarser file system), and reports
 * the asked time for as long as the file still carries the stored one. Any later change to the
 * file (a write, another program's touch) changes the stored time, and the file's own time shows.
 */
import type * as FsTypes from 'node:fs';

type Pair = { asked: bigint; stored: bigint };

/** Bounds the memory a guest can make the host spend on this: oldest entries go first. */
const MAX_FILES = 4096;

/** What fs.utimes/futimes/lutimes take for "leave this time as it is" (libuv: NaN is UTIME_OMIT). */
export const OMIT_TIME: Date = new Date(Number.NaN);

/** The nanoseconds libuv stores for a time given to Node as `seconds` (see the module comment). */
export function storedNs(seconds: number): bigint {
  const sec = Math.trunc(seconds);
  return BigInt(sec) * 1_000_000_000n + BigInt(Math.trunc((seconds - sec) * 1e9));
}

/**
 * The double of seconds whose conversion by libuv lands nearest to `ns` (exactly on it when
 * some double does): the doubles next to ns/1e9 are tried, a few steps either way.
 */
export function secondsFor(ns: bigint): number {
  const sec = ns / 1_000_000_000n;
  const guess = Number(sec) + Number(ns % 1_000_000_000n) / 1e9;
  let best = guess;
  let bestError = distance(storedNs(guess), ns);
  for (const direction of [1, -1] as const) {
    let candidate = guess;
    for (let step = 0; step < 4 && bestError !== 0n; step++) {
      candidate = nextDouble(candidate, direction);
      const error = distance(storedNs(candidate), ns);
      if (error < bestError) {
        best = candidate;
        bestError = error;
      }
    }
  }
  return best;
}

function distance(a: bigint, b: bigint): bigint {
  return a > b ? a - b : b - a;
}

/** The neighbouring double of a non-negative finite `x`, up (1) or down (-1). */
function nextDouble(x: number, direction: 1 | -1): number {
  if (x === 0) return direction > 0 ? Number.MIN_VALUE : 0;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  view.setBigUint64(0, view.getBigUint64(0) + BigInt(direction));
  return view.getFloat64(0);
}

/**
 * Whether the file system stored `asked` exactly as Node could send it, only rounded by the
 * double: then the asked time is what the guest should read back. A file system that kept
 * something else (clamped to its range, coarser than a nanosecond) is reported as it is.
 */
function rounded(asked: bigint, stored: bigint): boolean {
  return asked !== stored && storedNs(secondsFor(asked)) === stored;
}

export class GuestTimes {
  readonly #files = new Map<string, { atime?: Pair; mtime?: Pair }>();

  /**
   * Records what the guest asked for against what `st`, read after setting, holds. A time the
   * guest did not set is `undefined`: what was asked for it before still shows while it stays
   * stored unchanged (the host omits it, so it does).
   */
  record(st: FsTypes.BigIntStats, atime: bigint | undefined, mtime: bigint | undefined): void {
    const key = `${st.dev}:${st.ino}`;
    const entry = this.#files.get(key) ?? {};
    this.#files.delete(key); // re-inserted last: the Map's order is the eviction order
    if (atime !== undefined) entry.atime = rounded(atime, st.atimeNs) ? { asked: atime, stored: st.atimeNs } : undefined;
    if (mtime !== undefined) entry.mtime = rounded(mtime, st.mtimeNs) ? { asked: mtime, stored: st.mtimeNs } : undefined;
    if (!entry.atime && !entry.mtime) return;
    this.#files.set(key, entry);
    if (this.#files.size > MAX_FILES) this.#files.delete(this.#files.keys().next().value!);
  }

  /** The access and modification times to report for `st`. */
  times(st: FsTypes.BigIntStats): { atimeNs: bigint; mtimeNs: bigint } {
    const entry = this.#files.size === 0 ? undefined : this.#files.get(`${st.dev}:${st.ino}`);
    return {
      atimeNs: entry?.atime && entry.atime.stored === st.atimeNs ? entry.atime.asked : st.atimeNs,
      mtimeNs: entry?.mtime && entry.mtime.stored === st.mtimeNs ? entry.mtime.asked : st.mtimeNs,
    };
  }
}
