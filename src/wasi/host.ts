import type * as FsTypes from 'node:fs';
import {
  Clockid, Errno, Eventrwflags, Eventtype, Fdflags, Filetype, Fstflags, Lookupflags, MAX_ADVICE, Oflags,
  Riflags, Rights, Sdflags, Subclockflags, Whence, DIR_RIGHTS, FILE_RIGHTS, type ErrnoValue,
} from './constants.ts';
import { Aborted, ProcExit, WasiError, errnoOf } from './errors.ts';
import {
  FdTable, KNOWN_FDFLAGS, entryFromCapability, type ConnectionEntry, type DirEntry, type Entry, type FileEntry,
} from './fdtable.ts';
import { WOULD_BLOCK, type DescriptorCapability, type InputStream, type OutputStream } from './io.ts';
import { GuestTimes, OMIT_TIME, secondsFor } from './times.ts';
import { decodePath, hostPathOf, inDirectory, isBeneath, isDescendingTarget, resolvePath, splitLast, type ResolvedPath } from './paths.ts';

// process.getBuiltinModule: the ESM facade of node:fs alone costs 10-50 ms of start-up.
const fs = process.getBuiltinModule('node:fs');
const { realpathSync } = fs;

export interface WasiOptions {
  /** argv, argv[0] included. */
  args: readonly string[];
  env: readonly (readonly [string, string])[];
  /** Descriptors in fd order. */
  descriptors: readonly DescriptorCapability[];
  /** Most descriptors open at once (EMFILE past it). */
  maxDescriptors?: number;
  /** Aborting wakes a waiting guest and unwinds it with {@link Aborted}. */
  signal?: AbortSignal;
  /**
   * Called when the guest starts waiting in a host call; the function it returns is called when
   * the wait ends. Lets a Keep react to Ctrl-C only while the event loop is free to deliver it.
   */
  onWait?: () => () => void;
}

/** The imports that may wait: the engine wraps these with WebAssembly.Suspending (JSPI). */
export const SUSPENDING_IMPORTS: ReadonlySet<string> = new Set([
  'fd_read', 'fd_write', 'poll_oneoff', 'sock_accept', 'sock_recv', 'sock_send',
  // Only when the Keep relays these to its host (DirectoryCapability.createSymlink, .syncFile).
  'path_symlink', 'fd_sync', 'fd_datasync',
]);

type HostFn = (...args: never[]) => number | Promise<number>;

const encoder = new TextEncoder();
const MAX_IOVS = 1024;
const PATH_MAX = 4096;
const MAX_TIMER_MS = 2 ** 31 - 1;
const SYNC_FLAGS = Fdflags.DSYNC | Fdflags.RSYNC | Fdflags.SYNC;
const oslen = (s: string) => Buffer.byteLength(s);
const I64_MAX = (1n << 63n) - 1n;
const { constants: C } = fs;
const WRITE_INTENT = Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE;
const READ_INTENT = Rights.FD_READ | Rights.FD_READDIR;

/**
 * A WASI preview1 host over capabilities. It knows nothing of the engine: bind it to the
 * instance's memory with {@link WasiHost.setMemory} and give {@link WasiHost.imports} to the
 * instantiation. Filesystem calls are synchronous (like a kernel's); streams, sockets and
 * poll return a Promise only when they must wait, which the engine turns into a suspension.
 */
export class WasiHost {
  readonly fds: FdTable;
  readonly #args: Uint8Array[];
  readonly #env: Uint8Array[];
  readonly #signal: AbortSignal | undefined;
  readonly #onWait: (() => () => void) | undefined;
  #memory: WebAssembly.Memory | undefined;
  #buffer: ArrayBuffer | SharedArrayBuffer | undefined;
  #view!: DataView;
  #bytes!: Uint8Array;
  readonly #times = new GuestTimes();

  constructor(options: WasiOptions) {
    this.#args = options.args.map((a) => encoder.encode(`${a}\0`));
    this.#env = options.env.map(([k, v]) => encoder.encode(`${k}=${v}\0`));
    this.#signal = options.signal;
    this.#onWait = options.onWait;
    this.fds = new FdTable(options.maxDescriptors ?? 1024);
    if (options.descriptors.length > (options.maxDescriptors ?? 1024)) {
      throw new RangeError(`${options.descriptors.length} descriptors configured, above the limit of ${options.maxDescriptors}`);
    }
    for (const cap of options.descriptors) this.fds.add(entryFromCapability(cap, realRoot));
  }

  setMemory(memory: WebAssembly.Memory): void {
    this.#memory = memory;
    this.#buffer = undefined;
  }

  /** Closes every descriptor (at guest exit). */
  close(): void {
    this.fds.closeAll();
  }

  // ---- memory access -------------------------------------------------------------------

  #refresh(): void {
    const memory = this.#memory;
    if (!memory) throw new WasiError(Errno.FAULT, 'no memory bound');
    if (memory.buffer !== this.#buffer) {
      this.#buffer = memory.buffer;
      this.#view = new DataView(memory.buffer);
      this.#bytes = new Uint8Array(memory.buffer);
    }
  }

  #view32(): DataView {
    this.#refresh();
    return this.#view;
  }

  /** A view of guest memory [ptr, ptr+len), or EFAULT. */
  #slice(ptr: number, len: number): Uint8Array {
    this.#refresh();
    if (ptr < 0 || len < 0 || ptr + len > this.#bytes.length) throw new WasiError(Errno.FAULT, 'pointer out of bounds');
    return this.#bytes.subarray(ptr, ptr + len);
  }

  #check(ptr: number, size: number): DataView {
    this.#refresh();
    if (ptr + size > this.#bytes.length) throw new WasiError(Errno.FAULT, 'pointer out of bounds');
    return this.#view;
  }

  #setU32(ptr: number, v: number): void {
    this.#check(ptr, 4).setUint32(ptr, v, true);
  }

  #setU64(ptr: number, v: bigint): void {
    this.#check(ptr, 8).setBigUint64(ptr, v, true);
  }

  #iovs(ptr: number, count: number): Uint8Array[] {
    if (count > MAX_IOVS) throw new WasiError(Errno.INVAL, 'too many iovecs');
    const view = this.#check(ptr, count * 8);
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const buf = view.getUint32(ptr + i * 8, true);
      const len = view.getUint32(ptr + i * 8 + 4, true);
      out.push(this.#slice(buf, len));
    }
    return out;
  }

  #path(ptr: number, len: number): string {
    return decodePath(this.#slice(ptr, len));
  }

  // ---- descriptor helpers -------------------------------------------------------------

  /** The entry, if it holds `right`; EBADF for a closed fd, ENOTCAPABLE for a missing right. */
  #entry(fd: number, right: bigint): Entry {
    const e = this.fds.get(fd);
    if ((e.rightsBase & right) !== right) throw new WasiError(Errno.NOTCAPABLE, 'descriptor lacks the right');
    return e;
  }

  #dir(fd: number, right: bigint): DirEntry {
    const e = this.#entry(fd, 0n);
    if (e.type !== 'dir') throw new WasiError(Errno.NOTDIR, `fd ${fd} is not a directory`);
    if ((e.rightsBase & right) !== right) throw new WasiError(Errno.NOTCAPABLE, 'directory lacks the right');
    return e;
  }

  #file(fd: number, right: bigint): FileEntry {
    const e = this.#entry(fd, 0n);
    if (e.type === 'dir') throw new WasiError(Errno.ISDIR, `fd ${fd} is a directory`);
    if (e.type !== 'file') throw new WasiError(Errno.SPIPE, `fd ${fd} is not a file`);
    if ((e.rightsBase & right) !== right) throw new WasiError(Errno.NOTCAPABLE, 'file lacks the right');
    return e;
  }

  #resolve(dir: DirEntry, pathPtr: number, pathLen: number, follow: boolean): ResolvedPath {
    return resolvePath(dir.root, dir.rel, this.#path(pathPtr, pathLen), follow);
  }

  /**
   * Runs an operation on `r`'s last component by its name alone, from inside the directory that
   * holds it (paths.ts inDirectory): a directory of the path that another host process swaps for
   * a symlink after the walk cannot redirect it.
   */
  #at<T>(d: DirEntry, r: ResolvedPath, op: (name: string) => T): T {
    const [dir, name] = splitLast(r.rel);
    return inDirectory(d.root, dir, () => op(name));
  }

  /**
   * The same for two names (rename, link), from the deepest directory both lie in: the names below
   * it are still looked up component by component, and two preopens' paths (which share no
   * directory below a root) by their whole host paths, as before (docs/wasi.md, "The race that remains").
   */
  #atBoth<T>(a: DirEntry, ra: ResolvedPath, b: DirEntry, rb: ResolvedPath, op: (from: string, to: string) => T): T {
    if (a.root !== b.root) return op(ra.host, rb.host);
    const [da] = splitLast(ra.rel);
    const [db] = splitLast(rb.rel);
    let common = 0;
    while (common < da.length && common < db.length && da[common] === db[common]) common++;
    const below = (r: ResolvedPath) => (r.rel.length === 0 ? '.' : r.rel.slice(common).join('/'));
    return inDirectory(a.root, da.slice(0, common), () => op(below(ra), below(rb)));
  }

  /** A directory in which something will change: EROFS in a read-only preopen, then the right. */
  #writableDir(fd: number, right: bigint): DirEntry {
    const d = this.#dir(fd, 0n);
    if (d.readonly) throw new WasiError(Errno.ROFS, 'the preopen is read-only');
    if ((d.rightsBase & right) !== right) throw new WasiError(Errno.NOTCAPABLE, 'directory lacks the right');
    return d;
  }

  /**
   * What fd_read and fd_write share: the entry, its iovecs (EFAULT first), and the reply that
   * stores the byte count. Without the right it is EBADF as in POSIX (EISDIR for a directory).
   */
  #transfer(fd: number, iovs: number, iovsLen: number, out: number, right: bigint) {
    const e = this.fds.get(fd);
    const list = this.#iovs(iovs, iovsLen);
    if (e.type === 'listener') throw new WasiError(Errno.NOTCONN);
    if ((e.rightsBase & right) === 0n) throw new WasiError(e.type === 'dir' ? Errno.ISDIR : Errno.BADF);
    return { e, list, done: this.#replyCount(out) };
  }

  /** A continuation that stores a byte count at `out` and returns success. */
  #replyCount(out: number): (n: number) => number {
    return (n) => {
      this.#setU32(out, n);
      return 0;
    };
  }

  /** fd_pread / fd_pwrite: at an offset, leaving the position alone. */
  #positioned(
    fd: number, right: bigint, iovs: number, iovsLen: number, offset: bigint, out: number,
    io: (osfd: number, iovs: Uint8Array[], position: bigint) => number,
  ): number {
    const f = this.#file(fd, right | Rights.FD_SEEK);
    if (offset > I64_MAX) throw new WasiError(Errno.INVAL);
    return this.#replyCount(out)(io(f.osfd, this.#iovs(iovs, iovsLen), offset));
  }

  /**
   * fd_sync / fd_datasync: a file is flushed, by the Keep's host where the sandbox disables it
   * (Node's permission model); a directory descriptor here is a path, with nothing to flush.
   */
  #sync(fd: number, right: bigint, dataOnly: boolean): number | Promise<number> {
    const e = this.#entry(fd, right);
    if (e.type === 'dir') return 0;
    if (e.type !== 'file') throw new WasiError(Errno.INVAL, 'not a file');
    try {
      (dataOnly ? fs.fdatasyncSync : fs.fsyncSync)(e.osfd);
      return 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_ACCESS_DENIED' || !e.syncFile) throw err;
    }
    const { dev, ino } = fs.fstatSync(e.osfd, { bigint: true });
    return e.syncFile({ hostPath: e.hostPath, dev, ino }, dataOnly).then(() => 0);
  }

  /** Open files remember their path (FileEntry.hostPath): a rename by the guest moves it along. */
  #followRename(from: string, to: string, toRoot: string): void {
    for (const [, e] of this.fds.entries()) {
      if (e.type !== 'file') continue;
      if (e.hostPath === from) e.hostPath = to;
      else if (e.hostPath.startsWith(`${from}/`)) e.hostPath = to + e.hostPath.slice(from.length);
      else continue;
      e.root = toRoot;
    }
  }

  #nonblocking(e: Entry): boolean {
    return (e.fdflags & Fdflags.NONBLOCK) !== 0;
  }

  /** Waits (suspending the guest) for `ready`, then retries; an abort unwinds the guest. */
  #wait<T>(ready: Promise<void>, retry: () => T | Promise<T>): Promise<T> {
    const signal = this.#signal;
    if (signal?.aborted) return Promise.reject(new Aborted(String(signal.reason ?? 'aborted')));
    const done = this.#onWait?.();
    if (!signal) {
      return ready.then(() => {
        done?.();
        return retry();
      });
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        done?.();
        reject(new Aborted(String(signal.reason ?? 'aborted')));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      ready.then(() => {
        signal.removeEventListener('abort', onAbort);
        done?.();
        resolve();
      });
    }).then(retry);
  }

  // ---- streams ------------------------------------------------------------------------

  #readStream(e: Entry, stream: InputStream, iovs: Uint8Array[], waitAll: boolean, got = 0): number | Promise<number> {
    const total = iovs.reduce((n, v) => n + v.length, 0);
    if (total === 0) return 0;
    const conn = e.type === 'connection' ? e : undefined;
    if (conn?.readClosed) return got;
    while (got < total) {
      let chunk: Uint8Array | null | typeof WOULD_BLOCK;
      const fromPeek = conn?.peeked != null;
      if (conn?.peeked) {
        chunk = conn.peeked;
        conn.peeked = null;
      } else {
        chunk = stream.tryRead(total - got);
      }
      if (chunk === WOULD_BLOCK) {
        if (got > 0 && !waitAll) return got;
        if (this.#nonblocking(e)) {
          if (got > 0) return got;
          throw new WasiError(Errno.AGAIN);
        }
        const sofar = got;
        return this.#wait(stream.ready(), () => this.#readStream(e, stream, iovs, waitAll, sofar));
      }
      if (chunk === null) return got;
      const used = scatter(iovs, chunk, got);
      if (used < chunk.length && conn) conn.peeked = chunk.subarray(used);
      got += used;
      // Whatever else is already there comes with the first chunk, as read(2) returns what the
      // kernel holds: a TLS socket delivers records of 16 KiB, and a 64 KiB read would otherwise
      // take four guest calls (and four small sends back).
      if (!waitAll && !fromPeek && stream.readableBytes() === 0) return got;
    }
    return got;
  }

  /** MSG_PEEK: fills the descriptor's peek buffer (waiting only while it is empty) and copies it out. */
  #peekStream(c: ConnectionEntry, iovs: Uint8Array[]): number | Promise<number> {
    const total = iovs.reduce((n, v) => n + v.length, 0);
    if (total === 0 || c.readClosed) return 0;
    let buf = c.peeked ?? new Uint8Array(0);
    let ended = false;
    while (buf.length < total) {
      const chunk = c.connection.input.tryRead(total - buf.length);
      if (chunk === WOULD_BLOCK) break;
      if (chunk === null) {
        ended = true;
        break;
      }
      buf = buf.length === 0 ? chunk : concat(buf, chunk);
    }
    c.peeked = buf.length > 0 ? buf : null;
    if (buf.length === 0 && !ended) {
      if (this.#nonblocking(c)) throw new WasiError(Errno.AGAIN);
      return this.#wait(c.connection.input.ready(), () => this.#peekStream(c, iovs));
    }
    return scatter(iovs, buf.subarray(0, total), 0);
  }

  #writeStream(e: Entry, stream: OutputStream, iovs: Uint8Array[], index = 0, offset = 0, written = 0): number | Promise<number> {
    for (let i = index; i < iovs.length; i++) {
      const iov = iovs[i]!;
      let off = i === index ? offset : 0;
      while (off < iov.length) {
        const n = stream.tryWrite(off === 0 ? iov : iov.subarray(off));
        off += n;
        written += n;
        if (off < iov.length && n === 0) {
          if (this.#nonblocking(e)) {
            if (written > 0) return written;
            throw new WasiError(Errno.AGAIN);
          }
          const at = off;
          const sofar = written;
          return this.#wait(stream.ready(), () => this.#writeStream(e, stream, iovs, i, at, sofar));
        }
      }
    }
    return written;
  }

  // ---- the imports --------------------------------------------------------------------

  /** The `wasi_snapshot_preview1` import object. Names in SUSPENDING_IMPORTS may return a Promise. */
  imports(): Record<string, HostFn> {
    const fns: Record<string, HostFn> = {
      args_get: (argv: number, buf: number) => this.#putStrings(this.#args, argv, buf),
      args_sizes_get: (argc: number, size: number) => this.#putSizes(this.#args, argc, size),
      environ_get: (env: number, buf: number) => this.#putStrings(this.#env, env, buf),
      environ_sizes_get: (count: number, size: number) => this.#putSizes(this.#env, count, size),
      clock_res_get: (id: number, out: number) => {
        this.#setU64(out, clockResolution(id));
        return 0;
      },
      clock_time_get: (id: number, _precision: bigint, out: number) => {
        this.#setU64(out, clockNow(id));
        return 0;
      },
      fd_advise: (fd: number, offset: bigint, len: bigint, advice: number) => {
        this.#file(fd, Rights.FD_ADVISE);
        if (advice > MAX_ADVICE || offset > I64_MAX || len > I64_MAX) throw new WasiError(Errno.INVAL);
        return 0; // advice is a hint; the host's page cache already does well without it
      },
      fd_allocate: (fd: number, offset: bigint, len: bigint) => {
        const f = this.#file(fd, Rights.FD_ALLOCATE);
        if (len === 0n || offset + len > I64_MAX) throw new WasiError(Errno.INVAL);
        const size = fs.fstatSync(f.osfd, { bigint: true }).size;
        if (offset + len > size) fs.ftruncateSync(f.osfd, Number(offset + len));
        return 0;
      },
      fd_close: (fd: number) => {
        this.fds.close(fd);
        return 0;
      },
      fd_datasync: (fd: number) => this.#sync(fd, Rights.FD_DATASYNC, true),
      fd_sync: (fd: number) => this.#sync(fd, Rights.FD_SYNC, false),
      fd_fdstat_get: (fd: number, out: number) => {
        const e = this.fds.get(fd);
        const view = this.#check(out, 24);
        view.setUint8(out, this.#filetype(e));
        view.setUint8(out + 1, 0);
        view.setUint16(out + 2, e.fdflags, true);
        view.setUint32(out + 4, 0, true);
        view.setBigUint64(out + 8, e.rightsBase, true);
        view.setBigUint64(out + 16, e.rightsInheriting, true);
        return 0;
      },
      fd_fdstat_set_flags: (fd: number, flags: number) => {
        const e = this.#entry(fd, Rights.FD_FDSTAT_SET_FLAGS);
        if (flags & ~KNOWN_FDFLAGS) throw new WasiError(Errno.INVAL);
        // The sync flags live in the host descriptor (O_DSYNC, O_SYNC), which Node cannot change after open.
        if ((flags ^ e.fdflags) & SYNC_FLAGS) throw new WasiError(Errno.NOTSUP, 'sync flags are set at open');
        e.fdflags = flags;
        return 0;
      },
      fd_fdstat_set_rights: (fd: number, base: bigint, inheriting: bigint) => {
        const e = this.fds.get(fd);
        if ((base & ~e.rightsBase) !== 0n || (inheriting & ~e.rightsInheriting) !== 0n) {
          throw new WasiError(Errno.NOTCAPABLE, 'rights can only be dropped');
        }
        e.rightsBase = base;
        e.rightsInheriting = inheriting;
        return 0;
      },
      fd_filestat_get: (fd: number, out: number) => {
        const e = this.#entry(fd, Rights.FD_FILESTAT_GET);
        if (e.type === 'file') this.#putFilestat(out, fs.fstatSync(e.osfd, { bigint: true }));
        else if (e.type === 'dir') this.#putFilestat(out, inDirectory(e.root, e.rel, () => fs.statSync('.', { bigint: true })));
        else this.#putStreamFilestat(out, this.#filetype(e));
        return 0;
      },
      fd_filestat_set_size: (fd: number, size: bigint) => {
        const f = this.#file(fd, Rights.FD_FILESTAT_SET_SIZE);
        if (size > I64_MAX) throw new WasiError(Errno.FBIG);
        fs.ftruncateSync(f.osfd, Number(size));
        return 0;
      },
      fd_filestat_set_times: (fd: number, atim: bigint, mtim: bigint, flags: number) => {
        const e = this.#entry(fd, Rights.FD_FILESTAT_SET_TIMES);
        if (e.type === 'file') {
          const [a, m] = setTimes(flags, atim, mtim);
          setFileTimes(e, a, m);
          this.#recordTimes(flags, atim, mtim, fs.fstatSync(e.osfd, { bigint: true }));
        } else if (e.type === 'dir') {
          // The read-only preopen keeps its directory rights (so changes say EROFS): check here too.
          if (e.readonly) throw new WasiError(Errno.ROFS, 'the preopen is read-only');
          const [a, m] = setTimes(flags, atim, mtim);
          inDirectory(e.root, e.rel, () => {
            fs.utimesSync('.', a, m);
            this.#recordTimes(flags, atim, mtim, fs.statSync('.', { bigint: true }));
          });
        } else {
          throw new WasiError(Errno.BADF, 'not a file');
        }
        return 0;
      },
      fd_pread: (fd: number, iovs: number, iovsLen: number, offset: bigint, out: number) =>
        this.#positioned(fd, Rights.FD_READ, iovs, iovsLen, offset, out, readvAt),
      fd_pwrite: (fd: number, iovs: number, iovsLen: number, offset: bigint, out: number) =>
        this.#positioned(fd, Rights.FD_WRITE, iovs, iovsLen, offset, out, writevAt),
      fd_prestat_get: (fd: number, out: number) => {
        const e = this.fds.get(fd);
        if (e.preopenName === undefined) throw new WasiError(Errno.BADF, 'not a preopen');
        const view = this.#check(out, 8);
        view.setUint32(out, 0, true); // tag = dir, and padding
        view.setUint32(out + 4, encoder.encode(e.preopenName).length, true);
        return 0;
      },
      fd_prestat_dir_name: (fd: number, buf: number, len: number) => {
        const e = this.fds.get(fd);
        if (e.preopenName === undefined) throw new WasiError(Errno.BADF, 'not a preopen');
        const name = encoder.encode(e.preopenName);
        if (len < name.length) throw new WasiError(Errno.NAMETOOLONG);
        this.#slice(buf, name.length).set(name);
        return 0;
      },
      fd_read: (fd: number, iovs: number, iovsLen: number, out: number) => {
        const { e, list, done } = this.#transfer(fd, iovs, iovsLen, out, Rights.FD_READ);
        switch (e.type) {
          case 'file': {
            const n = readvAt(e.osfd, list, e.position);
            e.position += BigInt(n);
            return done(n);
          }
          case 'null': return done(0);
          case 'input': return then(this.#readStream(e, e.stream, list, false), done);
          case 'connection': return then(this.#readStream(e, e.connection.input, list, false), done);
          default: throw new WasiError(Errno.BADF);
        }
      },
      fd_readdir: (fd: number, buf: number, bufLen: number, cookie: bigint, out: number) => {
        const d = this.#dir(fd, Rights.FD_READDIR);
        if (cookie === 0n || !d.listing) d.listing = inDirectory(d.root, d.rel, () => listDirectory('.'));
        const target = this.#slice(buf, bufLen);
        let used = 0;
        for (let i = Number(cookie); i < d.listing.length && used < bufLen; i++) {
          const ent = d.listing[i]!;
          const header = new Uint8Array(24);
          const hv = new DataView(header.buffer);
          hv.setBigUint64(0, BigInt(i + 1), true);
          hv.setBigUint64(8, ent.ino, true);
          hv.setUint32(16, ent.name.length, true);
          hv.setUint8(20, ent.type);
          const record = concat(header, ent.name);
          const n = Math.min(record.length, bufLen - used);
          target.set(record.subarray(0, n), used);
          used += n;
        }
        this.#setU32(out, used);
        return 0;
      },
      fd_renumber: (from: number, to: number) => {
        this.fds.renumber(from, to);
        return 0;
      },
      fd_seek: (fd: number, unsignedOffset: bigint, whence: number, out: number) => {
        const offset = BigInt.asIntN(64, unsignedOffset); // filedelta is signed
        const e = this.fds.get(fd);
        if (e.type === 'dir') throw new WasiError(Errno.ISDIR);
        if (e.type !== 'file') throw new WasiError(Errno.SPIPE);
        const needed = offset === 0n && whence === Whence.CUR ? Rights.FD_TELL : Rights.FD_SEEK;
        if ((e.rightsBase & needed) === 0n) throw new WasiError(Errno.NOTCAPABLE);
        let base: bigint;
        if (whence === Whence.SET) base = 0n;
        else if (whence === Whence.CUR) base = e.position;
        else if (whence === Whence.END) base = fs.fstatSync(e.osfd, { bigint: true }).size;
        else throw new WasiError(Errno.INVAL, 'bad whence');
        const next = base + offset;
        if (next < 0n || next > I64_MAX) throw new WasiError(Errno.INVAL, 'seek out of range');
        e.position = next;
        this.#setU64(out, next);
        return 0;
      },
      fd_tell: (fd: number, out: number) => {
        const f = this.#file(fd, Rights.FD_TELL);
        this.#setU64(out, f.position);
        return 0;
      },
      fd_write: (fd: number, iovs: number, iovsLen: number, out: number) => {
        const { e, list, done } = this.#transfer(fd, iovs, iovsLen, out, Rights.FD_WRITE);
        switch (e.type) {
          case 'file': {
            if (e.fdflags & Fdflags.APPEND) {
              // Append is emulated (Node cannot fcntl O_APPEND off again): the Keep is the file's only writer.
              const end = fs.fstatSync(e.osfd, { bigint: true }).size;
              const n = writevAt(e.osfd, list, end);
              e.position = end + BigInt(n);
              return done(n);
            }
            const n = writevAt(e.osfd, list, e.position);
            e.position += BigInt(n);
            return done(n);
          }
          case 'null': return done(list.reduce((n, v) => n + v.length, 0));
          case 'output': return then(this.#writeStream(e, e.stream, list), done);
          case 'connection': return then(this.#writeStream(e, e.connection.output, list), done);
          default: throw new WasiError(Errno.BADF);
        }
      },
      path_create_directory: (fd: number, path: number, len: number) => {
        const d = this.#writableDir(fd, Rights.PATH_CREATE_DIRECTORY);
        this.#at(d, this.#resolve(d, path, len, false), (name) => fs.mkdirSync(name));
        return 0;
      },
      path_filestat_get: (fd: number, flags: number, path: number, len: number, out: number) => {
        const d = this.#dir(fd, Rights.PATH_FILESTAT_GET);
        const r = this.#resolve(d, path, len, (flags & Lookupflags.SYMLINK_FOLLOW) !== 0);
        const st = this.#at(d, r, (name) => fs.lstatSync(name, { bigint: true }));
        if (r.mustBeDir && !st.isDirectory()) throw new WasiError(Errno.NOTDIR);
        this.#putFilestat(out, st);
        return 0;
      },
      path_filestat_set_times: (fd: number, flags: number, path: number, len: number, atim: bigint, mtim: bigint, fst: number) => {
        const d = this.#writableDir(fd, Rights.PATH_FILESTAT_SET_TIMES);
        const r = this.#resolve(d, path, len, (flags & Lookupflags.SYMLINK_FOLLOW) !== 0);
        const [a, m] = setTimes(fst, atim, mtim);
        this.#at(d, r, (name) => {
          if (r.mustBeDir && !fs.lstatSync(name).isDirectory()) throw new WasiError(Errno.NOTDIR, 'a trailing slash names a directory');
          fs.lutimesSync(name, a, m);
          this.#recordTimes(fst, atim, mtim, fs.lstatSync(name, { bigint: true }));
        });
        return 0;
      },
      path_link: (oldFd: number, oldFlags: number, oldPath: number, oldLen: number, newFd: number, newPath: number, newLen: number) => {
        // A hard link out of a read-only tree would make its file writable under the new name.
        const src = this.#writableDir(oldFd, Rights.PATH_LINK_SOURCE);
        const dst = this.#writableDir(newFd, Rights.PATH_LINK_TARGET);
        const from = this.#resolve(src, oldPath, oldLen, (oldFlags & Lookupflags.SYMLINK_FOLLOW) !== 0);
        const to = this.#resolve(dst, newPath, newLen, false);
        this.#atBoth(src, from, dst, to, (a, b) => {
          if (fs.lstatSync(a).isDirectory()) throw new WasiError(Errno.PERM, 'hard links to directories are not allowed');
          if (from.mustBeDir) throw new WasiError(Errno.NOTDIR, 'a trailing slash names a directory');
          if (to.mustBeDir) throw new WasiError(Errno.NOENT);
          fs.linkSync(a, b);
        });
        return 0;
      },
      path_open: (
        fd: number, dirflags: number, path: number, len: number, oflags: number,
        base: bigint, inheriting: bigint, fdflags: number, out: number,
      ) => {
        const d = this.#dir(fd, Rights.PATH_OPEN);
        this.#setU32(out, this.#open(d, dirflags, this.#path(path, len), oflags, base, inheriting, fdflags));
        return 0;
      },
      path_readlink: (fd: number, path: number, len: number, buf: number, bufLen: number, out: number) => {
        const d = this.#dir(fd, Rights.PATH_READLINK);
        const dest = this.#slice(buf, bufLen); // the whole buffer is the guest's claim: check it all, before any I/O
        const r = this.#resolve(d, path, len, false);
        const target = this.#at(d, r, (name) => fs.readlinkSync(name, { encoding: 'buffer' }));
        const n = Math.min(target.length, bufLen);
        dest.set(target.subarray(0, n));
        this.#setU32(out, n);
        return 0;
      },
      path_remove_directory: (fd: number, path: number, len: number) => {
        const d = this.#writableDir(fd, Rights.PATH_REMOVE_DIRECTORY);
        const guestPath = this.#path(path, len);
        const r = resolvePath(d.root, d.rel, guestPath, false);
        if (r.rel.length === 0) throw new WasiError(Errno.BUSY, 'cannot remove the preopen itself');
        // rmdir("x/.") is EINVAL in POSIX: it would remove a directory through a name that is not its own.
        if (guestPath.split('/').filter((c) => c !== '').pop() === '.') throw new WasiError(Errno.INVAL, "cannot remove '.'");
        this.#at(d, r, (name) => {
          if (!fs.lstatSync(name).isDirectory()) throw new WasiError(Errno.NOTDIR);
          fs.rmdirSync(name);
        });
        return 0;
      },
      path_rename: (fd: number, oldPath: number, oldLen: number, newFd: number, newPath: number, newLen: number) => {
        const src = this.#writableDir(fd, Rights.PATH_RENAME_SOURCE);
        const dst = this.#writableDir(newFd, Rights.PATH_RENAME_TARGET);
        const from = this.#resolve(src, oldPath, oldLen, false);
        const to = this.#resolve(dst, newPath, newLen, false);
        if (from.rel.length === 0 || to.rel.length === 0) throw new WasiError(Errno.BUSY, 'cannot rename a preopen');
        this.#atBoth(src, from, dst, to, (a, b) => {
          if ((from.mustBeDir || to.mustBeDir) && !fs.lstatSync(a).isDirectory()) throw new WasiError(Errno.NOTDIR);
          fs.renameSync(a, b);
        });
        this.#followRename(from.host, to.host, dst.root);
        return 0;
      },
      path_symlink: (oldPath: number, oldLen: number, fd: number, newPath: number, newLen: number) => {
        const d = this.#writableDir(fd, Rights.PATH_SYMLINK);
        const target = this.#path(oldPath, oldLen);
        if (target === '') throw new WasiError(Errno.NOENT, 'empty symlink target');
        if (target.startsWith('/')) throw new WasiError(Errno.NOTCAPABLE, 'symlinks to absolute paths are refused');
        if (!isDescendingTarget(target)) throw new WasiError(Errno.PERM, "a symlink target may not contain '.' or '..'");
        const r = this.#resolve(d, newPath, newLen, false);
        if (r.mustBeDir) throw new WasiError(Errno.NOENT);
        // Linux's PATH_MAX, checked here so that both Keeps answer alike (the sallyport caps both at 4096 bytes).
        if (oslen(target) >= PATH_MAX || oslen(r.host) >= PATH_MAX) throw new WasiError(Errno.NAMETOOLONG);
        if (d.createSymlink) return d.createSymlink(target, r.host).then(() => 0);
        this.#at(d, r, (name) => fs.symlinkSync(target, name));
        return 0;
      },
      path_unlink_file: (fd: number, path: number, len: number) => {
        const d = this.#writableDir(fd, Rights.PATH_UNLINK_FILE);
        const r = this.#resolve(d, path, len, false);
        this.#at(d, r, (name) => {
          if (fs.lstatSync(name).isDirectory()) throw new WasiError(Errno.ISDIR);
          if (r.mustBeDir) throw new WasiError(Errno.NOTDIR);
          fs.unlinkSync(name);
        });
        return 0;
      },
      poll_oneoff: (inPtr: number, outPtr: number, n: number, neventsPtr: number) => this.#poll(inPtr, outPtr, n, neventsPtr),
      proc_exit: (code: number) => {
        throw new ProcExit(code >>> 0);
      },
      proc_raise: (_sig: number) => {
        // Signals do not exist in a Keep; wasi-libc's raise() maps this to "not supported".
        throw new WasiError(Errno.NOSYS, 'signals are not supported');
      },
      sched_yield: () => {
        if (this.#signal?.aborted) throw new Aborted(String(this.#signal.reason ?? 'aborted'));
        return 0;
      },
      random_get: (buf: number, len: number) => {
        const target = this.#slice(buf, len);
        for (let off = 0; off < len; off += 65536) crypto.getRandomValues(target.subarray(off, Math.min(len, off + 65536)) as Uint8Array<ArrayBuffer>);
        return 0;
      },
      sock_accept: (fd: number, flags: number, out: number) => this.#accept(fd, flags, out),
      sock_recv: (fd: number, iovs: number, iovsLen: number, riflags: number, outLen: number, outFlags: number) => {
        const c = this.#socket(fd, Rights.FD_READ);
        if (riflags & ~(Riflags.RECV_PEEK | Riflags.RECV_WAITALL)) throw new WasiError(Errno.INVAL);
        const list = this.#iovs(iovs, iovsLen);
        const received = riflags & Riflags.RECV_PEEK
          ? this.#peekStream(c, list)
          : this.#readStream(c, c.connection.input, list, (riflags & Riflags.RECV_WAITALL) !== 0);
        return then(
          received,
          (got) => {
            this.#setU32(outLen, got);
            this.#check(outFlags, 2).setUint16(outFlags, 0, true);
            return 0;
          },
        );
      },
      sock_send: (fd: number, iovs: number, iovsLen: number, siflags: number, out: number) => {
        const c = this.#socket(fd, Rights.FD_WRITE);
        if (siflags !== 0) throw new WasiError(Errno.INVAL);
        return then(this.#writeStream(c, c.connection.output, this.#iovs(iovs, iovsLen)), this.#replyCount(out));
      },
      sock_shutdown: (fd: number, how: number) => {
        const c = this.#socket(fd, Rights.SOCK_SHUTDOWN);
        if (how === 0 || how & ~(Sdflags.RD | Sdflags.WR)) throw new WasiError(Errno.INVAL);
        const mode = how === (Sdflags.RD | Sdflags.WR) ? 'both' : how === Sdflags.RD ? 'read' : 'write';
        if (how & Sdflags.RD) {
          c.readClosed = true;
          c.peeked = null;
        }
        c.connection.shutdown(mode);
        return 0;
      },
    };
    for (const [name, fn] of Object.entries(fns)) fns[name] = guard(fn);
    return fns;
  }

  // ---- implementations too long to inline ---------------------------------------------

  #putSizes(list: Uint8Array[], countPtr: number, sizePtr: number): number {
    this.#setU32(countPtr, list.length);
    this.#setU32(sizePtr, list.reduce((n, s) => n + s.length, 0));
    return 0;
  }

  #putStrings(list: Uint8Array[], ptrs: number, buf: number): number {
    const view = this.#check(ptrs, list.length * 4);
    let at = buf;
    list.forEach((s, i) => {
      this.#slice(at, s.length).set(s);
      view.setUint32(ptrs + i * 4, at, true);
      at += s.length;
    });
    return 0;
  }

  #filetype(e: Entry): number {
    switch (e.type) {
      case 'dir': return Filetype.DIRECTORY;
      case 'file': return filetypeOf(fs.fstatSync(e.osfd));
      case 'connection':
      case 'listener': return Filetype.SOCKET_STREAM;
      default: return Filetype.CHARACTER_DEVICE;
    }
  }

  #putFilestat(out: number, st: FsTypes.BigIntStats): void {
    const view = this.#check(out, 64);
    view.setBigUint64(out, st.dev, true);
    view.setBigUint64(out + 8, st.ino, true);
    view.setBigUint64(out + 16, BigInt(filetypeOf(st)), true);
    view.setBigUint64(out + 24, st.nlink, true);
    view.setBigUint64(out + 32, st.size, true);
    const { atimeNs, mtimeNs } = this.#times.times(st);
    view.setBigUint64(out + 40, atimeNs, true);
    view.setBigUint64(out + 48, mtimeNs, true);
    view.setBigUint64(out + 56, st.ctimeNs, true);
  }

  /**
   * Remembers the exact times the guest set where the file system stored them rounded (see
   * times.ts); `after` is the file after setting. A time set to "now" forgets what was asked before.
   */
  #recordTimes(flags: number, atim: bigint, mtim: bigint, after: FsTypes.BigIntStats): void {
    const asked = (set: number, setNow: number, value: bigint, stored: bigint) => (flags & set ? value : flags & setNow ? stored : undefined);
    this.#times.record(after, asked(Fstflags.ATIM, Fstflags.ATIM_NOW, atim, after.atimeNs), asked(Fstflags.MTIM, Fstflags.MTIM_NOW, mtim, after.mtimeNs));
  }

  #putStreamFilestat(out: number, type: number): void {
    const view = this.#check(out, 64);
    for (let i = 0; i < 64; i += 8) view.setBigUint64(out + i, 0n, true);
    view.setUint8(out + 16, type);
    view.setBigUint64(out + 24, 1n, true);
  }

  #open(d: DirEntry, dirflags: number, path: string, oflags: number, base: bigint, inheriting: bigint, fdflags: number): number {
    if (oflags & ~(Oflags.CREAT | Oflags.DIRECTORY | Oflags.EXCL | Oflags.TRUNC)) throw new WasiError(Errno.INVAL);
    // A directory is neither created, exclusively created nor truncated by path_open (wasmtime and Linux since 6.4 agree).
    if (oflags & Oflags.DIRECTORY && oflags & (Oflags.CREAT | Oflags.EXCL | Oflags.TRUNC)) throw new WasiError(Errno.INVAL, 'O_DIRECTORY with O_CREAT, O_EXCL or O_TRUNC');
    if (fdflags & ~KNOWN_FDFLAGS) throw new WasiError(Errno.INVAL);
    // An explicit directory open asks for a directory handle: write rights are moot there.
    const wantsWrite =
      ((base & WRITE_INTENT) !== 0n && !(oflags & Oflags.DIRECTORY)) || (oflags & Oflags.TRUNC) !== 0 || (fdflags & Fdflags.APPEND) !== 0;
    const wantsRead = (base & READ_INTENT) !== 0n || !wantsWrite;
    if (d.readonly && (wantsWrite || oflags & Oflags.CREAT)) throw new WasiError(Errno.ROFS, 'the preopen is read-only');
    if (oflags & Oflags.CREAT && (d.rightsBase & Rights.PATH_CREATE_FILE) === 0n) throw new WasiError(Errno.NOTCAPABLE);
    if (oflags & Oflags.TRUNC && (d.rightsBase & Rights.PATH_FILESTAT_SET_SIZE) === 0n) throw new WasiError(Errno.NOTCAPABLE);
    // O_CREAT|O_EXCL never follows a final symlink (POSIX): a dangling link is EEXIST, not a way to create its target.
    const exclusive = (oflags & Oflags.CREAT) !== 0 && (oflags & Oflags.EXCL) !== 0;
    const r = resolvePath(d.root, d.rel, path, (dirflags & Lookupflags.SYMLINK_FOLLOW) !== 0 && !exclusive);
    let st: FsTypes.Stats | undefined;
    try {
      st = fs.lstatSync(r.host);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (st) {
      if (oflags & Oflags.CREAT && oflags & Oflags.EXCL) throw new WasiError(Errno.EXIST);
      if (st.isSymbolicLink()) throw new WasiError(Errno.LOOP, 'final component is a symlink and following was not asked');
      if (st.isDirectory()) {
        if (wantsWrite || (base & Rights.FD_WRITE) !== 0n || (oflags & Oflags.CREAT && !(oflags & Oflags.DIRECTORY))) {
          throw new WasiError(Errno.ISDIR);
        }
        return this.fds.add({
          type: 'dir', root: d.root, rel: r.rel, readonly: d.readonly, fdflags: fdflags & Fdflags.NONBLOCK,
          ...(d.createSymlink ? { createSymlink: d.createSymlink } : {}),
          ...(d.syncFile ? { syncFile: d.syncFile } : {}),
          rightsBase: base & d.rightsInheriting & DIR_RIGHTS, rightsInheriting: inheriting & d.rightsInheriting,
        });
      }
      if (oflags & Oflags.DIRECTORY || r.mustBeDir) throw new WasiError(Errno.NOTDIR);
    } else {
      if (!(oflags & Oflags.CREAT)) throw new WasiError(Errno.NOENT);
      if (oflags & Oflags.DIRECTORY) throw new WasiError(Errno.INVAL, 'cannot create a directory with path_open');
      if (r.mustBeDir) throw new WasiError(Errno.ISDIR);
    }
    let flags = wantsRead && wantsWrite ? C.O_RDWR : wantsWrite ? C.O_WRONLY : C.O_RDONLY;
    flags |= C.O_NOFOLLOW | C.O_NONBLOCK;
    if (oflags & Oflags.CREAT) flags |= C.O_CREAT;
    if (oflags & Oflags.EXCL) flags |= C.O_EXCL;
    // O_TRUNC is applied once the open is confirmed inside the preopen (#confirmBeneath).
    if (fdflags & Fdflags.DSYNC) flags |= C.O_DSYNC;
    if (fdflags & (Fdflags.SYNC | Fdflags.RSYNC)) flags |= C.O_SYNC;
    let rights = base & d.rightsInheriting & FILE_RIGHTS;
    // futimes works on a read-only descriptor, so only the writing rights go.
    if (!wantsWrite) rights &= ~WRITE_INTENT;
    if (!wantsRead) rights &= ~Rights.FD_READ;
    // A file the walk found missing is created exclusively, so that a failed confirmation removes
    // only a file this open made; if one appeared since, it is opened as any existing file.
    let created = st === undefined && (flags & C.O_CREAT) !== 0;
    let osfd: number;
    try {
      osfd = fs.openSync(r.host, created ? flags | C.O_EXCL : flags, 0o666);
    } catch (err) {
      if (!created || flags & C.O_EXCL || (err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      created = false;
      osfd = fs.openSync(r.host, flags & ~C.O_CREAT, 0o666);
    }
    try {
      this.#confirmBeneath(d.root, r.host, osfd, created);
      if (oflags & Oflags.TRUNC) fs.ftruncateSync(osfd, 0);
      return this.fds.add({
        type: 'file', osfd, hostPath: r.host, root: d.root, ...(d.syncFile ? { syncFile: d.syncFile } : {}), position: 0n, fdflags, rightsBase: rights, rightsInheriting: inheriting & d.rightsInheriting & FILE_RIGHTS,
      });
    } catch (err) {
      fs.closeSync(osfd);
      throw err;
    }
  }

  /**
   * Node has no openat: the walk checked each directory of the path, then the open named it
   * again. If another process swapped a checked directory for a symlink in between, the open went
   * wherever that leads. So the file opened (osfd) must still be the one `hostPath` names once its
   * symlinks are resolved, below `root`; otherwise the open escaped: it is undone (a file it
   * created is removed if its path still names it) and refused. Truncation waits for this check.
   */
  #confirmBeneath(root: string, hostPath: string, osfd: number, created: boolean): void {
    const opened = fs.fstatSync(osfd, { bigint: true });
    let real: string | undefined;
    try {
      real = realpathSync.native(hostPath);
    } catch {
      // renamed or removed since the open: nothing confirms it
    }
    const inside = real !== undefined && isBeneath(root, real);
    if (inside) {
      const named = fs.statSync(real!, { bigint: true });
      if (named.dev === opened.dev && named.ino === opened.ino) return;
    }
    if (created && real !== undefined) {
      try {
        const named = fs.lstatSync(real, { bigint: true });
        if (named.dev === opened.dev && named.ino === opened.ino) fs.unlinkSync(real);
      } catch {
        // gone already
      }
    }
    throw new WasiError(Errno.NOTCAPABLE, 'a directory of the path was replaced by a symlink while it was opened');
  }

  #socket(fd: number, right: bigint): ConnectionEntry {
    const e = this.fds.get(fd);
    if (e.type === 'listener') throw new WasiError(Errno.NOTCONN);
    if (e.type !== 'connection') throw new WasiError(Errno.NOTSOCK);
    if ((e.rightsBase & right) !== right) throw new WasiError(Errno.NOTCAPABLE);
    return e;
  }

  #accept(fd: number, flags: number, out: number): number | Promise<number> {
    const e = this.fds.get(fd);
    if (e.type === 'connection') throw new WasiError(Errno.INVAL, 'not listening');
    if (e.type !== 'listener') throw new WasiError(Errno.NOTSOCK);
    if ((e.rightsBase & Rights.SOCK_ACCEPT) === 0n) throw new WasiError(Errno.NOTCAPABLE);
    if (flags & ~Fdflags.NONBLOCK) throw new WasiError(Errno.INVAL);
    this.#check(out, 4);
    const got = e.listener.tryAccept();
    if (got === WOULD_BLOCK) {
      if (this.#nonblocking(e)) throw new WasiError(Errno.AGAIN);
      return this.#wait(e.listener.ready(), () => this.#accept(fd, flags, out));
    }
    let newFd: number;
    try {
      newFd = this.fds.add({
        type: 'connection', connection: got, peeked: null, readClosed: false,
        rightsBase: e.rightsInheriting, rightsInheriting: 0n, fdflags: flags,
      });
    } catch (err) {
      got.close();
      throw err;
    }
    this.#setU32(out, newFd);
    return 0;
  }

  #poll(inPtr: number, outPtr: number, n: number, neventsPtr: number): number | Promise<number> {
    if (n === 0) throw new WasiError(Errno.INVAL, 'no subscriptions');
    const view = this.#check(inPtr, n * 48);
    this.#check(outPtr, n * 32);
    this.#check(neventsPtr, 4);
    const subs: Subscription[] = [];
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const at = inPtr + i * 48;
      const userdata = view.getBigUint64(at, true);
      const tag = view.getUint8(at + 8);
      if (tag === Eventtype.CLOCK) {
        const id = view.getUint32(at + 16, true);
        const timeout = view.getBigUint64(at + 24, true);
        const abs = (view.getUint16(at + 40, true) & Subclockflags.ABSTIME) !== 0;
        let deadline: bigint | null = null;
        if (id === Clockid.MONOTONIC) deadline = abs ? timeout : start + timeout;
        else if (id === Clockid.REALTIME) deadline = abs ? start + (timeout - clockNow(Clockid.REALTIME)) : start + timeout;
        else if (id === Clockid.PROCESS_CPUTIME_ID || id === Clockid.THREAD_CPUTIME_ID) {
          deadline = start + (abs ? timeout - clockNow(id) : timeout);
        }
        subs.push({ userdata, type: Eventtype.CLOCK, deadline, error: deadline === null ? Errno.INVAL : 0 });
      } else if (tag === Eventtype.FD_READ || tag === Eventtype.FD_WRITE) {
        const fd = view.getUint32(at + 16, true);
        subs.push({ userdata, type: tag, fd, error: 0 });
      } else {
        throw new WasiError(Errno.INVAL, 'unknown subscription type');
      }
    }
    return this.#pollRound(subs, outPtr, neventsPtr);
  }

  #pollRound(subs: Subscription[], outPtr: number, neventsPtr: number): number | Promise<number> {
    const now = process.hrtime.bigint();
    const events: PollEvent[] = [];
    const waits: Promise<void>[] = [];
    let nearest: bigint | null = null;
    for (const s of subs) {
      if (s.type === Eventtype.CLOCK) {
        const deadline = s.deadline ?? null;
        if (s.error || deadline === null || deadline <= now) events.push({ userdata: s.userdata, type: s.type, error: s.error, nbytes: 0n, flags: 0 });
        else if (nearest === null || deadline < nearest) nearest = deadline;
        continue;
      }
      const r = this.#readiness(s.fd!, s.type === Eventtype.FD_READ);
      if (r.wait) waits.push(r.wait);
      else events.push({ userdata: s.userdata, type: s.type, error: r.error, nbytes: r.nbytes, flags: r.hangup ? Eventrwflags.HANGUP : 0 });
    }
    if (events.length > 0) {
      const view = this.#view32();
      events.forEach((ev, i) => {
        const at = outPtr + i * 32;
        for (let k = 0; k < 32; k += 8) view.setBigUint64(at + k, 0n, true);
        view.setBigUint64(at, ev.userdata, true);
        view.setUint16(at + 8, ev.error, true);
        view.setUint8(at + 10, ev.type);
        view.setBigUint64(at + 16, ev.nbytes, true);
        view.setUint16(at + 24, ev.flags, true);
      });
      view.setUint32(neventsPtr, events.length, true);
      return 0;
    }
    let timer: NodeJS.Timeout | undefined;
    if (nearest !== null) {
      const ms = Number(nearest - now) / 1e6;
      // Past 2^31-1 ms Node fires at once (with a warning): wake at the cap, and the next round waits again.
      waits.push(new Promise((resolve) => (timer = setTimeout(resolve, Math.min(Math.max(0, ms), MAX_TIMER_MS)))));
    }
    const ready = Promise.race(waits);
    // A descriptor that wins the race must not leave the clock's timer behind (it would hold the event loop).
    if (timer) void ready.then(() => clearTimeout(timer));
    return this.#wait(ready, () => this.#pollRound(subs, outPtr, neventsPtr));
  }

  /** Whether fd is ready for reading/writing; `wait` when it is not yet. */
  #readiness(fd: number, read: boolean): { error: ErrnoValue; nbytes: bigint; hangup?: boolean; wait?: Promise<void> } {
    if (!this.fds.has(fd)) return { error: Errno.BADF, nbytes: 0n };
    const e = this.fds.get(fd);
    if ((e.rightsBase & Rights.POLL_FD_READWRITE) === 0n && e.type !== 'listener') return { error: Errno.NOTCAPABLE, nbytes: 0n };
    switch (e.type) {
      case 'file': {
        if (!read) return { error: 0, nbytes: 0n };
        const size = fs.fstatSync(e.osfd, { bigint: true }).size;
        return { error: 0, nbytes: size > e.position ? size - e.position : 0n };
      }
      case 'null': return { error: 0, nbytes: 0n, hangup: read };
      case 'input': return read ? inputReadiness(e.stream, null) : { error: Errno.BADF, nbytes: 0n };
      case 'output': return read ? { error: Errno.BADF, nbytes: 0n } : outputReadiness(e.stream);
      case 'connection':
        return read ? inputReadiness(e.connection.input, e.readClosed ? new Uint8Array(0) : e.peeked) : outputReadiness(e.connection.output);
      case 'listener': {
        if (!read) return { error: Errno.NOTSUP, nbytes: 0n };
        const pending = e.listener.pendingConnections();
        return pending > 0 ? { error: 0, nbytes: BigInt(pending) } : { error: 0, nbytes: 0n, wait: e.listener.ready() };
      }
      case 'dir': return { error: Errno.ISDIR, nbytes: 0n };
    }
  }
}

interface Subscription {
  userdata: bigint;
  type: number;
  deadline?: bigint | null;
  fd?: number;
  error: ErrnoValue;
}

interface PollEvent {
  userdata: bigint;
  type: number;
  error: ErrnoValue;
  nbytes: bigint;
  flags: number;
}

function inputReadiness(stream: InputStream, peeked: Uint8Array | null) {
  if (peeked) return { error: 0 as const, nbytes: BigInt(peeked.length), hangup: peeked.length === 0 };
  const n = stream.readableBytes();
  if (n > 0) return { error: 0 as const, nbytes: BigInt(n) };
  if (stream.ended) return { error: 0 as const, nbytes: 0n, hangup: true };
  return { error: 0 as const, nbytes: 0n, wait: stream.ready() };
}

function outputReadiness(stream: OutputStream) {
  const n = stream.writableBytes();
  return n > 0 ? { error: 0 as const, nbytes: BigInt(n) } : { error: 0 as const, nbytes: 0n, wait: stream.ready() };
}

/**
 * Wraps a host function so that failures become errnos, and exit/abort unwind the guest.
 * Every integer of preview1's signatures is unsigned, but JS receives wasm's i32 and i64 as
 * signed: a pointer above 2 GiB, fd 0xffffffff or an offset of 2^64-1 would arrive negative.
 * They are read back as unsigned here (fd_seek alone takes a signed delta and converts it).
 */
function guard(fn: HostFn): HostFn {
  const fail = (err: unknown): number => {
    if (err instanceof ProcExit || err instanceof Aborted) throw err;
    return errnoOf(err);
  };
  return (...args: never[]) => {
    const raw = args as unknown as (number | bigint)[];
    for (let i = 0; i < raw.length; i++) {
      const a = raw[i]!;
      raw[i] = typeof a === 'number' ? a >>> 0 : BigInt.asUintN(64, a);
    }
    try {
      const r = fn(...args);
      return typeof r === 'number' ? r : r.then(undefined, fail);
    } catch (err) {
      return fail(err);
    }
  };
}

function then<T>(v: T | Promise<T>, f: (v: T) => number): number | Promise<number> {
  return v instanceof Promise ? v.then(f) : f(v);
}

/** Copies `chunk` into the iovecs starting `skip` bytes in; returns how many bytes fitted. */
function scatter(iovs: Uint8Array[], chunk: Uint8Array, skip: number): number {
  let copied = 0;
  for (const iov of iovs) {
    if (skip >= iov.length) {
      skip -= iov.length;
      continue;
    }
    const n = Math.min(iov.length - skip, chunk.length - copied);
    iov.set(chunk.subarray(copied, copied + n), skip);
    copied += n;
    skip = 0;
    if (copied === chunk.length) break;
  }
  return copied;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** One iovec (the common case) takes the plain call: fewer allocations than the vector one. */
function writevAt(osfd: number, iovs: Uint8Array[], position: bigint | null): number {
  if (iovs.length === 1) return fs.writeSync(osfd, iovs[0]!, 0, iovs[0]!.length, position === null ? null : Number(position));
  return fs.writevSync(osfd, iovs, position === null ? undefined : Number(position));
}

function readvAt(osfd: number, iovs: Uint8Array[], position: bigint): number {
  if (iovs.length === 1) return fs.readSync(osfd, iovs[0]!, 0, iovs[0]!.length, position);
  return fs.readvSync(osfd, iovs, Number(position));
}

/** The filetype of a stat result or a directory entry (both answer the same is* questions). */
function filetypeOf(st: FsTypes.Stats | FsTypes.BigIntStats | FsTypes.Dirent<Buffer>): number {
  if (st.isFile()) return Filetype.REGULAR_FILE;
  if (st.isDirectory()) return Filetype.DIRECTORY;
  if (st.isSymbolicLink()) return Filetype.SYMBOLIC_LINK;
  if (st.isCharacterDevice()) return Filetype.CHARACTER_DEVICE;
  if (st.isBlockDevice()) return Filetype.BLOCK_DEVICE;
  if (st.isSocket()) return Filetype.SOCKET_STREAM;
  return Filetype.UNKNOWN;
}

function listDirectory(path: string): { name: Uint8Array; ino: bigint; type: number }[] {
  const out: { name: Uint8Array; ino: bigint; type: number }[] = [
    { name: encoder.encode('.'), ino: fs.statSync(path, { bigint: true }).ino, type: Filetype.DIRECTORY },
    { name: encoder.encode('..'), ino: 0n, type: Filetype.DIRECTORY },
  ];
  const entries = fs.readdirSync(path, { withFileTypes: true, encoding: 'buffer' });
  entries.sort((a, b) => Buffer.compare(a.name, b.name));
  for (const d of entries) {
    let ino = 0n;
    try {
      ino = fs.lstatSync(Buffer.concat([Buffer.from(`${path}/`), d.name]), { bigint: true }).ino;
    } catch {
      // Removed meanwhile: keep the name, as readdir would have.
    }
    out.push({ name: new Uint8Array(d.name), ino, type: filetypeOf(d) });
  }
  return out;
}

/** A time as Node's utimes family takes it: seconds, or {@link OMIT_TIME} to leave it as it is. */
type TimeArg = number | Date;

/** Applies fst_flags: the [atime, mtime] to give utimes (the nearest storable seconds, "now", or omitted). */
function setTimes(flags: number, atim: bigint, mtim: bigint): [TimeArg, TimeArg] {
  if ((flags & Fstflags.ATIM && flags & Fstflags.ATIM_NOW) || (flags & Fstflags.MTIM && flags & Fstflags.MTIM_NOW)) {
    throw new WasiError(Errno.INVAL, 'both a time and "now" given');
  }
  if (flags & ~(Fstflags.ATIM | Fstflags.ATIM_NOW | Fstflags.MTIM | Fstflags.MTIM_NOW)) throw new WasiError(Errno.INVAL);
  const now = Date.now() / 1000;
  const pick = (set: number, setNow: number, value: bigint): TimeArg => (flags & setNow ? now : flags & set ? secondsFor(value) : OMIT_TIME);
  return [pick(Fstflags.ATIM, Fstflags.ATIM_NOW, atim), pick(Fstflags.MTIM, Fstflags.MTIM_NOW, mtim)];
}

/**
 * futimes, or where Node's permission model disables it (the process Keep), lutimes on the path
 * the file was opened at, provided that path still names this very file.
 */
function setFileTimes(f: FileEntry, atime: TimeArg, mtime: TimeArg): void {
  try {
    fs.futimesSync(f.osfd, atime, mtime);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_ACCESS_DENIED') throw err;
  }
  const open = fs.fstatSync(f.osfd, { bigint: true });
  const moved = () => new WasiError(Errno.NOTSUP, 'the file was moved since it was opened, and this Keep cannot set times on a descriptor');
  // From inside its directory (paths.ts inDirectory), so that the name checked is the name set.
  const [dir, name] = splitLast(f.hostPath.slice(f.root.length + 1).split('/'));
  try {
    inDirectory(f.root, dir, () => {
      const named = fs.lstatSync(name, { bigint: true });
      if (named.ino !== open.ino || named.dev !== open.dev) throw moved();
      fs.lutimesSync(name, atime, mtime);
    });
  } catch (err) {
    if (err instanceof WasiError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw moved(); // removed or renamed since it was opened
    throw err;
  }
}

function clockResolution(id: number): bigint {
  switch (id) {
    case Clockid.REALTIME: return 1000n;
    case Clockid.MONOTONIC: return 1n;
    case Clockid.PROCESS_CPUTIME_ID:
    case Clockid.THREAD_CPUTIME_ID: return 1000n;
    default: throw new WasiError(Errno.INVAL, 'unknown clock');
  }
}

const realtimeOrigin = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

function clockNow(id: number): bigint {
  switch (id) {
    case Clockid.REALTIME: return realtimeOrigin + process.hrtime.bigint();
    case Clockid.MONOTONIC: return process.hrtime.bigint();
    case Clockid.PROCESS_CPUTIME_ID:
    case Clockid.THREAD_CPUTIME_ID: {
      const u = process.cpuUsage();
      return BigInt(u.user + u.system) * 1000n;
    }
    default: throw new WasiError(Errno.INVAL, 'unknown clock');
  }
}

function realRoot(path: string): string {
  return realpathSync(path);
}
