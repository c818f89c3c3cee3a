import {
  ALL_RIGHTS, DIR_RIGHTS, Errno, Fdflags, INHERITABLE_RIGHTS, LISTENER_RIGHTS, Rights, SOCKET_RIGHTS, STREAM_RIGHTS,
} from './constants.ts';
import { WasiError } from './errors.ts';
import type { Connection, DescriptorCapability, DirectoryCapability, InputStream, Listener, OutputStream } from './io.ts';

const { closeSync } = process.getBuiltinModule('node:fs');

interface Common {
  rightsBase: bigint;
  rightsInheriting: bigint;
  fdflags: number;
  /** Set on preopened directories: the name fd_prestat_dir_name reports. */
  preopenName?: string;
}

export interface FileEntry extends Common {
  readonly type: 'file';
  readonly osfd: number;
  /**
   * The host path it was opened at, kept up to date through the guest's own renames: for calls a
   * sandbox refuses on descriptors (futimes, fsync under Node's permission model).
   */
  hostPath: string;
  /** The real root of the preopen `hostPath` lies in (it follows the guest's renames too). */
  root: string;
  readonly syncFile?: DirectoryCapability['syncFile'];
  position: bigint;
}

export interface DirEntry extends Common {
  readonly type: 'dir';
  /** Host path of the preopen this directory lies in (resolved once, at start). */
  readonly root: string;
  /** Components below root. */
  readonly rel: readonly string[];
  readonly readonly: boolean;
  readonly createSymlink?: DirectoryCapability['createSymlink'];
  readonly syncFile?: DirectoryCapability['syncFile'];
  /** Listing taken at cookie 0, so that cookies stay stable across fd_readdir calls. */
  listing?: { name: Uint8Array; ino: bigint; type: number }[];
}

export interface NullEntry extends Common {
  readonly type: 'null';
}

export interface InputEntry extends Common {
  readonly type: 'input';
  readonly stream: InputStream;
}

export interface OutputEntry extends Common {
  readonly type: 'output';
  readonly stream: OutputStream;
}

export interface ConnectionEntry extends Common {
  readonly type: 'connection';
  readonly connection: Connection;
  /** Bytes taken from the stream by a MSG_PEEK receive, handed out first by the next read. */
  peeked: Uint8Array | null;
  readClosed: boolean;
}

export interface ListenerEntry extends Common {
  readonly type: 'listener';
  readonly listener: Listener;
}

export type Entry = FileEntry | DirEntry | NullEntry | InputEntry | OutputEntry | ConnectionEntry | ListenerEntry;

/**
 * The guest's descriptor table. Numbers are allocated lowest-free first, like POSIX, and the
 * table never holds more than `max` entries (EMFILE past it).
 */
export class FdTable {
  readonly #entries: (Entry | undefined)[] = [];
  readonly #max: number;
  #count = 0;

  // 1024 unless told: a process's usual `ulimit -n`, and what the process Keep's host allows (src/keep/limits.ts DEFAULT_DESCRIPTORS).
  constructor(max = 1024) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`descriptor limit must be a positive integer, got ${max}`);
    this.#max = max;
  }

  get(fd: number): Entry {
    const e = this.#entries[fd];
    if (!e) throw new WasiError(Errno.BADF, `fd ${fd} is not open`);
    return e;
  }

  has(fd: number): boolean {
    return this.#entries[fd] !== undefined;
  }

  /** Adds at the lowest free number. */
  add(entry: Entry): number {
    if (this.#count >= this.#max) throw new WasiError(Errno.MFILE, 'descriptor limit reached');
    let fd = this.#entries.indexOf(undefined);
    if (fd < 0) fd = this.#entries.length;
    this.#entries[fd] = entry;
    this.#count++;
    return fd;
  }

  close(fd: number): void {
    const e = this.get(fd);
    this.#entries[fd] = undefined;
    this.#count--;
    releaseEntry(e);
  }

  /** fd_renumber: `to` must be open; it is closed and replaced by `from`. */
  renumber(from: number, to: number): void {
    const e = this.get(from);
    this.get(to);
    if (from === to) return;
    this.close(to);
    this.#entries[to] = e;
    this.#entries[from] = undefined;
  }

  closeAll(): void {
    for (let fd = 0; fd < this.#entries.length; fd++) {
      if (this.#entries[fd]) this.close(fd);
    }
  }

  *entries(): Iterable<[number, Entry]> {
    for (let fd = 0; fd < this.#entries.length; fd++) {
      const e = this.#entries[fd];
      if (e) yield [fd, e];
    }
  }
}

function releaseEntry(e: Entry): void {
  try {
    switch (e.type) {
      case 'file': closeSync(e.osfd); break;
      case 'input': e.stream.close(); break;
      case 'output': e.stream.close(); break;
      case 'connection': e.connection.close(); break;
      case 'listener': e.listener.close(); break;
      case 'dir':
      case 'null':
        break;
    }
  } catch {
    // Closing is best effort: the guest has already let go of the descriptor.
  }
}

const WRITE_RIGHTS_IN_DIR =
  Rights.PATH_CREATE_DIRECTORY | Rights.PATH_CREATE_FILE | Rights.PATH_LINK_TARGET | Rights.PATH_RENAME_SOURCE |
  Rights.PATH_RENAME_TARGET | Rights.PATH_FILESTAT_SET_SIZE | Rights.PATH_FILESTAT_SET_TIMES |
  Rights.FD_FILESTAT_SET_TIMES | Rights.PATH_SYMLINK | Rights.PATH_REMOVE_DIRECTORY | Rights.PATH_UNLINK_FILE;
const WRITE_RIGHTS_ON_FILE =
  Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE | Rights.FD_FILESTAT_SET_TIMES | Rights.FD_DATASYNC | Rights.FD_SYNC;

/**
 * Rights of a directory descriptor. A read-only tree keeps its directory rights (changes are
 * refused with EROFS, which says why) but hands no write rights to what is opened below it.
 */
export function dirRights(readonly: boolean): { base: bigint; inheriting: bigint } {
  return readonly
    ? { base: DIR_RIGHTS, inheriting: INHERITABLE_RIGHTS & ~WRITE_RIGHTS_IN_DIR & ~WRITE_RIGHTS_ON_FILE }
    : { base: DIR_RIGHTS, inheriting: INHERITABLE_RIGHTS };
}

/** Turns a Keep's capability into the table entry for it. */
export function entryFromCapability(cap: DescriptorCapability, realRoot: (path: string) => string): Entry {
  switch (cap.kind) {
    case 'null':
      return { type: 'null', rightsBase: STREAM_RIGHTS, rightsInheriting: 0n, fdflags: 0 };
    case 'input':
      return { type: 'input', stream: cap.stream, rightsBase: STREAM_RIGHTS & ~Rights.FD_WRITE, rightsInheriting: 0n, fdflags: 0 };
    case 'output':
      return { type: 'output', stream: cap.stream, rightsBase: STREAM_RIGHTS & ~Rights.FD_READ, rightsInheriting: 0n, fdflags: 0 };
    case 'connection':
      return {
        type: 'connection', connection: cap.connection, peeked: null, readClosed: false,
        rightsBase: SOCKET_RIGHTS, rightsInheriting: 0n, fdflags: 0,
      };
    case 'listener':
      return { type: 'listener', listener: cap.listener, rightsBase: LISTENER_RIGHTS, rightsInheriting: SOCKET_RIGHTS, fdflags: 0 };
    case 'dir': {
      const r = dirRights(cap.dir.readonly);
      return {
        type: 'dir', root: realRoot(cap.dir.hostPath), rel: [], readonly: cap.dir.readonly,
        ...(cap.dir.createSymlink && !cap.dir.readonly ? { createSymlink: cap.dir.createSymlink } : {}),
        ...(cap.dir.syncFile ? { syncFile: cap.dir.syncFile } : {}),
        rightsBase: r.base, rightsInheriting: r.inheriting, fdflags: 0, preopenName: cap.dir.guestPath,
      };
    }
  }
}

export const KNOWN_FDFLAGS = Fdflags.APPEND | Fdflags.DSYNC | Fdflags.NONBLOCK | Fdflags.RSYNC | Fdflags.SYNC;
export { ALL_RIGHTS };
