/**
 * Symlink creation on behalf of a process Keep. Node's permission model refuses fs.symlink to
 * any process without full file-system access, so the Keep asks its host. The host does not
 * trust the request: the permission model is the wall behind the WASI layer, and a symlink is
 * the classic way through a path-string check like Node's. Two rules keep that wall whole:
 *
 * - the link is created only directly in a real (symlink-free) directory of a writable grant;
 * - its target only descends (isDescendingTarget: relative, plain names, no `.` or `..`).
 *   Wherever the Keep later moves the link inside its grant, it still points below the link's
 *   own directory, so a path that Node checks as inside a grant resolves inside it too. The
 *   WASI layer already refuses other targets (EPERM); the host checks again, as it must.
 */
import { realpathSync, symlinkSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { isDescendingTarget } from '../../wasi/paths.ts';

/** Thrown for a request no honest Keep makes: a link outside every writable grant. */
export class SymlinkViolation extends Error {}

/** Creates the link; returns null, or the POSIX error name to hand back to the Keep. */
export function createSymlinkForKeep(writableRoots: readonly string[], target: string, path: string): string | null {
  if (path.includes('\0') || resolve(path) !== path || !path.startsWith('/')) throw new SymlinkViolation('the symlink path is not a normalised absolute path');
  const parent = dirname(path);
  const name = basename(path);
  if (name === '' || name === '.' || name === '..' || path === '/') throw new SymlinkViolation('the symlink path names no entry');
  if (!writableRoots.some((root) => root === '/' || parent === root || parent.startsWith(`${root}/`))) {
    throw new SymlinkViolation('the symlink path is outside every writable directory');
  }
  if (!isDescendingTarget(target)) return 'EPERM';
  let real: string;
  try {
    real = realpathSync(parent);
  } catch (err) {
    return errorName(err);
  }
  // A component of the parent was replaced by a symlink since the Keep resolved it.
  if (real !== parent) return 'EACCES';
  try {
    symlinkSync(target, path);
    return null;
  } catch (err) {
    return errorName(err);
  }
}

/** The real paths of the writable grants, as the Keep's WASI layer resolves its preopens. */
export function writableRoots(dirs: readonly string[]): string[] {
  return dirs.flatMap((d) => {
    try {
      return [realpathSync(d)];
    } catch {
      return [];
    }
  });
}

function errorName(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' && /^E[A-Z0-9]{1,30}$/.test(code) ? code : 'EIO';
}
