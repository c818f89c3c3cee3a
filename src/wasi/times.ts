/**
 * File times at the nanosecond precision WASI asks for. Node sets times only as seconds in a
 * double (about 240 ns of resolution at today's dates), so a guest that sets a time and reads
 * it back would see the last digits move. The host remembers, per file (device and inode), the
 * time the guest asked for and the time the file system actually stored, and reports the asked
 * time for as long as the file still carries the stored one. Any later change to the file
 * (a write, another program's touch) changes the stored time, and the file's own time shows.
 */
import type * as FsTypes from 'node:fs';

type Pair = { asked: bigint; stored: bigint };

/** Bounds the memory a guest can make the host spend on this: oldest entries go first. */
const MAX_FILES = 4096;

export class GuestTimes {
  readonly #files = new Map<string, { atime?: Pair; mtime?: Pair }>();

  /** Records what the guest asked for (undefined: not set explicitly) against what `st`, read after setting, holds. */
  record(st: FsTypes.BigIntStats, atime: bigint | undefined, mtime: bigint | undefined): void {
    const key = `${st.dev}:${st.ino}`;
    const entry = this.#files.get(key) ?? {};
    this.#files.delete(key); // re-inserted last: the Map's order is the eviction order
    // A time not set now keeps what was asked before (it still shows only while stored unchanged).
    if (atime !== undefined) entry.atime = atime !== st.atimeNs ? { asked: atime, stored: st.atimeNs } : undefined;
    if (mtime !== undefined) entry.mtime = mtime !== st.mtimeNs ? { asked: mtime, stored: st.mtimeNs } : undefined;
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
