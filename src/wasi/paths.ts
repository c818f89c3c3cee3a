import { Errno } from './constants.ts';
import { WasiError } from './errors.ts';

const { lstatSync, readlinkSync } = process.getBuiltinModule('node:fs');

/** Symlinks followed while resolving one path before ELOOP, as Linux does. */
const MAX_SYMLINKS = 40;
const decoder = new TextDecoder('utf-8', { fatal: true });

/** A path resolved inside a preopen: `host` is the host path, `rel` its components below the preopen root. */
export interface ResolvedPath {
  readonly host: string;
  readonly rel: readonly string[];
  /** The guest's path ended in '/' (or '.', '..'): the target must be a directory. */
  readonly mustBeDir: boolean;
}

/** Decodes a guest path. WASI paths are UTF-8 with no NUL bytes. */
export function decodePath(bytes: Uint8Array): string {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new WasiError(Errno.ILSEQ, 'path is not UTF-8');
  }
  if (text.includes('\0')) throw new WasiError(Errno.INVAL, 'path contains NUL');
  return text;
}

/**
 * Whether a symlink target only leads down from the link: relative, non-empty, plain names
 * only (no `.` or `..`). Such a link points inside its own directory wherever it is moved, so
 * no path-string check (Node's permission model, a later rename) can be fooled by it. Guests
 * may create only these, in every Keep, so that a workload behaves the same in each.
 */
export function isDescendingTarget(target: string): boolean {
  if (target.includes('\0') || target.startsWith('/')) return false;
  const parts = target.split('/').filter((p) => p !== '');
  return parts.length > 0 && parts.every((p) => p !== '.' && p !== '..');
}

export function hostPathOf(root: string, rel: readonly string[]): string {
  return rel.length === 0 ? root : `${root}/${rel.join('/')}`;
}

function components(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * Resolves `path` relative to directory `base` (components below `root`) without ever leaving
 * `root`: the walk is done here, one component at a time, so `..` cannot climb above the root,
 * absolute paths are refused, and every symlink met is read and spliced into the walk with the
 * same rules (an absolute target is refused; a relative one cannot climb out either).
 * The final component is followed only when `followFinal` (or the path demands a directory).
 * The result names no symlink except, possibly, the final component when not following.
 *
 * Node has no openat/RESOLVE_BENEATH: a host process that swaps a checked directory for a
 * symlink between this walk and the open can still redirect it (see docs/wasi.md).
 */
export function resolvePath(root: string, base: readonly string[], path: string, followFinal: boolean): ResolvedPath {
  if (path === '') throw new WasiError(Errno.NOENT, 'empty path');
  if (path.startsWith('/')) throw new WasiError(Errno.NOTCAPABLE, 'absolute paths are outside the preopen');
  const last = path.split('/').pop();
  let mustBeDir = path.endsWith('/') || last === '.' || last === '..';
  const queue = components(path);
  const stack = [...base];
  let links = 0;
  while (queue.length > 0) {
    const name = queue.shift()!;
    if (name === '..') {
      // Like openat2(RESOLVE_BENEATH): a path never climbs above the directory it is resolved from.
      if (stack.length <= base.length) throw new WasiError(Errno.NOTCAPABLE, "'..' leads outside the directory");
      stack.pop();
      continue;
    }
    const isLast = queue.length === 0;
    const candidate = hostPathOf(root, [...stack, name]);
    let stat;
    try {
      stat = lstatSync(candidate);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (isLast && code === 'ENOENT') {
        stack.push(name);
        break;
      }
      throw err;
    }
    if (stat.isSymbolicLink() && (!isLast || followFinal || mustBeDir)) {
      if (++links > MAX_SYMLINKS) throw new WasiError(Errno.LOOP, 'too many symbolic links');
      const target = readlinkSync(candidate, 'utf8');
      if (target.startsWith('/')) throw new WasiError(Errno.NOTCAPABLE, 'symlink to an absolute path');
      if (isLast && target.endsWith('/')) mustBeDir = true;
      queue.unshift(...components(target));
      if (isLast && components(target).length === 0) {
        // A link to "." or "": the directory that holds it.
        mustBeDir = true;
      }
      continue;
    }
    if (!isLast && !stat.isDirectory()) throw new WasiError(Errno.NOTDIR, `'${name}' is not a directory`);
    stack.push(name);
  }
  return { host: hostPathOf(root, stack), rel: stack, mustBeDir };
}

/**
 * Runs `op` with the process's working directory in directory `dir` (components below `root`),
 * for operations that name their files relative to it: the kernel then looks their names up in
 * that very directory, whatever the path's names lead to by then (openat without openat, which
 * Node lacks). Where the move landed is read back from the kernel (getcwd) and must lie below
 * `root`: a directory of the path swapped for a symlink before the move is refused
 * (ENOTCAPABLE), one swapped after it no longer matters. The working directory is put back after
 * (the process Keep's permission model may refuse its starting one: it then stays here; no code
 * of a Keep names files relative to it).
 */
export function inDirectory<T>(root: string, dir: readonly string[], op: () => T): T {
  let back: string | undefined;
  try {
    back = process.cwd();
  } catch {
    // removed since: there is nothing to go back to
  }
  process.chdir(hostPathOf(root, dir));
  try {
    const here = process.cwd();
    if (!isBeneath(root, here)) {
      throw new WasiError(Errno.NOTCAPABLE, 'a directory of the path was replaced by a symlink to outside the preopen');
    }
    return op();
  } finally {
    try {
      if (back !== undefined) process.chdir(back);
    } catch {
      // refused or gone: stays
    }
  }
}

/** Whether the real path `path` is `root` or lies below it. */
export function isBeneath(root: string, path: string): boolean {
  return root === '/' || path === root || path.startsWith(`${root}/`);
}

/** `rel` as the directory that holds its last component and that component's name ('.' for the root itself). */
export function splitLast(rel: readonly string[]): [readonly string[], string] {
  return rel.length === 0 ? [rel, '.'] : [rel.slice(0, -1), rel.at(-1)!];
}
