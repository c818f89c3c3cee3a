/**
 * The capabilities a WASI host is given. The WASI layer never opens a socket or touches the
 * process's stdio itself: whoever starts a Keep (the nil Keep in-process, the process Keep
 * behind its sallyport) builds these objects and hands them over. Everything here is
 * engine-agnostic and Node-agnostic.
 *
 * Every stream follows one pattern: a synchronous `try*` operation that never waits, plus a
 * `ready()` promise that resolves once that operation would make progress. The WASI layer
 * takes the fast synchronous path when it can (no suspension), returns EAGAIN on
 * non-blocking descriptors, and otherwise suspends the guest (JSPI) on `ready()`, so a
 * waiting guest never blocks the event loop. poll_oneoff is built on the same two calls.
 */

/** WASI errno names that a capability may raise through {@link IoError}. */
export type IoErrorCode =
  | 'EPIPE'
  | 'ECONNRESET'
  | 'ECONNREFUSED'
  | 'ECONNABORTED'
  | 'ENOTCONN'
  | 'ETIMEDOUT'
  | 'EHOSTUNREACH'
  | 'ENETUNREACH'
  | 'EIO'
  | 'EBADF'
  | 'EINVAL'
  | 'ENOTSUP';

/** A failure of a capability, reported to the guest as that errno. Anything else thrown becomes EIO. */
export class IoError extends Error {
  readonly code: IoErrorCode;
  constructor(code: IoErrorCode, message?: string) {
    super(message ?? code);
    this.name = 'IoError';
    this.code = code;
  }
}

/** What {@link InputStream.tryRead} returns when nothing can be read yet. */
export const WOULD_BLOCK: unique symbol = Symbol('would block');
export type WouldBlock = typeof WOULD_BLOCK;

/** A readable byte stream: stdin, the read half of a socket. */
export interface InputStream {
  /**
   * Takes up to `max` (> 0) bytes that are already available, without waiting.
   * Returns a non-empty array, `null` at end of stream, or WOULD_BLOCK when nothing is
   * available yet. The caller owns the returned bytes. Throws IoError on a stream error.
   */
  tryRead(max: number): Uint8Array | null | WouldBlock;
  /**
   * Bytes that tryRead would return right now (0 when none, or at end of stream),
   * for poll_oneoff's `nbytes` and sock_recv's readiness.
   */
  readableBytes(): number;
  /** True once the end of the stream (or an error) is reached: tryRead no longer blocks. */
  readonly ended: boolean;
  /** Resolves when tryRead would not return WOULD_BLOCK (data, end of stream or error). Never rejects. */
  ready(): Promise<void>;
  /** Releases the stream; later calls may throw IoError('EBADF'). Idempotent. */
  close(): void;
}

/** A writable byte stream: stdout, stderr, the write half of a socket. */
export interface OutputStream {
  /**
   * Accepts a prefix of `bytes` without waiting and returns its length: all of it normally,
   * fewer (even 0) when the stream applies back-pressure. The bytes belong to guest memory
   * and change after the call: copy whatever is kept. Throws IoError (EPIPE after shutdown
   * or a peer reset).
   */
  tryWrite(bytes: Uint8Array): number;
  /**
   * Bytes tryWrite would accept right now without back-pressure (0 when full), for
   * poll_oneoff's `nbytes`. A stream without a fixed window may return any positive hint.
   */
  writableBytes(): number;
  /** Resolves when tryWrite would accept at least one byte, or would throw. Never rejects. */
  ready(): Promise<void>;
  /** Resolves once everything accepted so far has been handed on (used at guest exit). */
  flush(): Promise<void>;
  /** Releases the stream. Idempotent. */
  close(): void;
}

export type ShutdownHow = 'read' | 'write' | 'both';

/**
 * A connected socket (a `connect` entry, or one returned by a Listener). TLS, if any, is
 * already inside: the two halves carry plaintext.
 */
export interface Connection {
  /** The read half: fd_read, sock_recv, poll_oneoff FD_READ. */
  readonly input: InputStream;
  /** The write half: fd_write, sock_send, poll_oneoff FD_WRITE. */
  readonly output: OutputStream;
  /** sock_shutdown: stops reads (later reads see end of stream), writes (sends FIN / TLS close_notify) or both. */
  shutdown(how: ShutdownHow): void;
  /** Closes the socket (both halves). Idempotent. */
  close(): void;
}

/** A listening socket (a `listen` entry). */
export interface Listener {
  /** Takes one pending connection without waiting, or WOULD_BLOCK. Throws IoError. */
  tryAccept(): Connection | WouldBlock;
  /** Number of connections tryAccept could return now (poll_oneoff readiness). */
  pendingConnections(): number;
  /** Resolves when tryAccept would not return WOULD_BLOCK. Never rejects. */
  ready(): Promise<void>;
  close(): void;
}

/** A host directory given to the guest as a preopen. Paths never resolve outside `hostPath`. */
export interface DirectoryCapability {
  /** Absolute host path of the directory. */
  readonly hostPath: string;
  /** The name the guest sees (fd_prestat_dir_name), e.g. "/data" or ".". */
  readonly guestPath: string;
  /** When true, every operation that would create, change or remove anything fails with EROFS/EPERM. */
  readonly readonly: boolean;
  /**
   * Creates the symlink `linkPath` (an absolute host path the host resolved inside this
   * directory) holding `target`, for a Keep whose own sandbox may not create symlinks (Node's
   * permission model allows it only with full file-system access). Absent: the host calls
   * fs.symlink itself. Rejects with an Error whose `code` is a POSIX error name.
   */
  readonly createSymlink?: (target: string, linkPath: string) => Promise<void>;
  /**
   * fsync (fdatasync if `dataOnly`) of a file opened below this directory, for a Keep whose
   * sandbox disables it on descriptors (Node's permission model does). `dev` and `ino` name the
   * file that was opened at `hostPath`. Absent: the host calls fs.fsync itself.
   */
  readonly syncFile?: (file: { hostPath: string; dev: bigint; ino: bigint }, dataOnly: boolean) => Promise<void>;
}

/**
 * One WASI descriptor, in fd order (index = fd number). This is what an Enarx.toml
 * `[[files]]` entry becomes once the Keep has opened it.
 */
export type DescriptorCapability =
  | { readonly kind: 'null'; readonly name: string }
  | { readonly kind: 'input'; readonly name: string; readonly stream: InputStream }
  | { readonly kind: 'output'; readonly name: string; readonly stream: OutputStream }
  | { readonly kind: 'connection'; readonly name: string; readonly connection: Connection }
  | { readonly kind: 'listener'; readonly name: string; readonly listener: Listener }
  | { readonly kind: 'dir'; readonly name: string; readonly dir: DirectoryCapability };

/** What a Keep needs to turn `listen` / `connect` entries into capabilities (implemented by the sallyport side). */
export interface NetworkProvider {
  listen(spec: { name: string; prot: 'tcp' | 'tls'; addr: string; port: number }): Promise<Listener>;
  connect(spec: { name: string; prot: 'tcp' | 'tls'; host: string; port: number }): Promise<Connection>;
}
