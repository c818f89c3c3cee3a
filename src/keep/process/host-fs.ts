/**
 * File-system calls a process Keep's host makes on its behalf, because Node's permission model
 * refuses them to the Keep: fs.symlink (allowed only with full file-system access) and
 * fsync/fdatasync (disabled outright).
 *
 * Symlinks: the Keep asks its host to create them. The host does not
 * trust the request: the permission model is the wall behind the WASI layer, and a symlink is
 * the classic way through a path-string check like Node's. Two rules keep that wall whole:
 *
 * - the link is created only directly in a real (symlink-free) directory of a writable grant;
 * - its target only descends (isDescendingTarget: relative, plain names, no `.` or `..`).
 *   Wherever the Keep later moves the link inside its grant, it still points below the link's
 *   own directory, so a path that Node checks as inside a grant resolves inside it too. The
 *   WASI layer already refuses other targets (EPERM); the host checks again, as it must.
 */
import { closeSync, constants, fdatasyncSync, fstatSync, fsyncSync, openSync, realpathSync, symlinkSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { isDescendingTarget } from '../../wasi/paths.ts';

/** Thrown for a request no honest Keep makes: a path outside its grants, or not normalised. */
export class HostFsViolation extends Error {}

/** Creates the link; returns null, or the POSIX error name to hand back to the Keep. */
export function createSymlinkForKeep(writableRoots: readonly string[], target: string, path: string): string | null {
  const parent = entryInside(writableRoots, path, 'the symlink path', 'writable directory');
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

/**
 * fsync (or fdatasync) of the regular file at `path`, in a real (symlink-free) directory inside
 * one of the grants, provided it is still the file the Keep opened (device and inode, as decimal text). Any descriptor of an
 * inode flushes its data, so the host opens the path read-only, without following a final
 * symlink or blocking on a FIFO. Returns null or the POSIX error name for the Keep.
 */
export function syncFileForKeep(roots: readonly string[], path: string, dev: string, ino: string, dataOnly: boolean): string | null {
  const parent = entryInside(roots, path, 'the file to sync', 'granted directory');
  // The Keep names files by their real paths: a directory on the way that is a symlink (one the
  // host left in the grant, or swapped in since) could lead the host to open files outside.
  try {
    if (realpathSync(parent) !== parent) return 'EACCES';
  } catch (err) {
    return errorName(err);
  }
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    return errorName(err);
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile()) return 'EINVAL';
    // Renamed or replaced since the Keep opened it: this is not the file whose data it wrote.
    if (String(st.dev) !== dev || String(st.ino) !== ino) return 'ESTALE';
    (dataOnly ? fdatasyncSync : fsyncSync)(fd);
    return null;
  } catch (err) {
    return errorName(err);
  } finally {
    closeSync(fd);
  }
}

/** The directory holding `path`, which must name an entry below one of `roots`; else a violation. */
function entryInside(roots: readonly string[], path: string, what: string, where: string): string {
  if (path.includes('\0') || resolve(path) !== path || !path.startsWith('/')) throw new HostFsViolation(`${what} is not a normalised absolute path`);
  const parent = dirname(path);
  const name = basename(path);
  if (name === '' || name === '.' || name === '..' || path === '/') throw new HostFsViolation(`${what} names no entry`);
  if (!roots.some((root) => root === '/' || parent === root || parent.startsWith(`${root}/`))) {
    throw new HostFsViolation(`${what} is outside every ${where}`);
  }
  return parent;
}

/** The real paths of the grants, as the Keep's WASI layer resolves its preopens. */
export function realRoots(dirs: readonly string[]): string[] {
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
