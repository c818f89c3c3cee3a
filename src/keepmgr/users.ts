/**
 * One user per Keep. Node's permission model does not cover signals or ptrace, so Keeps that
 * share a user could signal or trace each other's processes. A daemon running as root starts
 * each Keep under its own uid and gid (no supplementary groups), drawn from a range no account
 * uses, so the kernel keeps Keeps apart. Without root, Keeps share the daemon's user, and the
 * daemon says so at start-up and in its contracts.
 */
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, parse } from 'node:path';

export interface KeepUserRange {
  first: number;
  count: number;
}

/** Far above the ranges distributions give accounts and subordinate ids (100000 + 65536 × n). */
export const DEFAULT_KEEP_USERS: KeepUserRange = { first: 3_000_000, count: 65_536 };

export type Isolation = { users: 'per-keep'; range: KeepUserRange } | { users: 'shared'; reason: string };

export class KeepUsers {
  readonly range: KeepUserRange;
  readonly #inUse = new Set<number>();
  #next: number;

  constructor(range: KeepUserRange) {
    this.range = range;
    this.#next = range.first;
  }

  /** A uid (and the gid of the same number) no live Keep has; undefined when the range is used up. */
  take(): { uid: number; gid: number } | undefined {
    for (let i = 0; i < this.range.count; i++) {
      const uid = this.#next;
      this.#next = uid + 1 >= this.range.first + this.range.count ? this.range.first : uid + 1;
      if (!this.#inUse.has(uid)) {
        this.#inUse.add(uid);
        return { uid, gid: uid };
      }
    }
    return undefined;
  }

  /** Called once the Keep's process is gone, so nothing of that uid remains. */
  release(uid: number): void {
    this.#inUse.delete(uid);
  }

  get inUse(): number {
    return this.#inUse.size;
  }
}

/** The first directory or file on the way to `path` that other users cannot pass or read; null if none. */
export function blockedForOthers(path: string, need: 'read' | 'exec'): string | null {
  const dirs: string[] = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    dirs.unshift(d);
    if (d === parse(d).root) break;
  }
  for (const d of dirs) if ((statSync(d).mode & 0o001) === 0) return d;
  const mode = statSync(path).mode;
  return (mode & (need === 'read' ? 0o004 : 0o001)) === 0 ? path : null;
}

/**
 * A copy of the Keep bundle that any user may read (a fresh 0755 directory in the temporary
 * directory), for Keeps that run as their own users while the bundle cache sits somewhere they
 * cannot reach. The bundle is the project's public code: nothing secret is exposed. `release`
 * removes the copy once no Keep runs from it any more (the daemon's close); it does nothing when
 * the bundle itself was readable and no copy was made.
 */
export function shareBundle(bundle: string): { file: string; release: () => void } {
  if (blockedForOthers(bundle, 'read') === null && readdirSync(dirname(bundle)).every((f) => blockedForOthers(join(dirname(bundle), f), 'read') === null)) {
    return { file: bundle, release: () => {} };
  }
  const dir = mkdtempSync(join(tmpdir(), 'enarx-keep-bundle-'));
  chmodSync(dir, 0o755);
  for (const f of readdirSync(dirname(bundle))) {
    copyFileSync(join(dirname(bundle), f), join(dir, f));
    chmodSync(join(dir, f), 0o644);
  }
  return { file: join(dir, parse(bundle).base), release: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Decides how Keeps are kept apart: their own users when the daemon is root (and the Node binary
 * is reachable for them), else the daemon's user, with the reason.
 */
export function keepIsolation(requested: KeepUserRange | null | undefined): Isolation {
  const root = process.getuid?.() === 0;
  if (requested === null) return { users: 'shared', reason: 'per-Keep users are turned off (--keep-users off)' };
  if (!root) {
    if (requested) throw new Error('--keep-users needs the daemon to run as root (it starts Keeps under other users)');
    return { users: 'shared', reason: 'the daemon does not run as root, so every Keep runs as its user and Keeps could signal or ptrace each other' };
  }
  const blocked = blockedForOthers(process.execPath, 'exec');
  if (blocked) return { users: 'shared', reason: `other users cannot reach the Node binary (${blocked} is closed to them), so Keeps run as root's user` };
  return { users: 'per-keep', range: requested ?? DEFAULT_KEEP_USERS };
}
