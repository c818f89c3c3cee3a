import { Errno, type ErrnoValue } from './constants.ts';
import { IoError } from './io.ts';

/** Thrown inside a host function to return an errno to the guest. */
export class WasiError extends Error {
  readonly errno: ErrnoValue;
  constructor(errno: ErrnoValue, message?: string) {
    super(message ?? `errno ${errno}`);
    this.name = 'WasiError';
    this.errno = errno;
  }
}

/** The guest called proc_exit: unwinds the wasm stack up to the runtime. */
export class ProcExit extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`proc_exit(${code})`);
    this.name = 'ProcExit';
    this.code = code;
  }
}

/** The run was aborted (signal, limit) while the guest waited in a host call. */
export class Aborted extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'Aborted';
  }
}

/** Host (libuv/POSIX) error codes and the WASI errno each becomes. */
const HOST_CODES: Record<string, ErrnoValue> = {
  E2BIG: Errno.TOOBIG, EACCES: Errno.ACCES, EADDRINUSE: Errno.ADDRINUSE, EADDRNOTAVAIL: Errno.ADDRNOTAVAIL,
  EAFNOSUPPORT: Errno.AFNOSUPPORT, EAGAIN: Errno.AGAIN, EWOULDBLOCK: Errno.AGAIN, EALREADY: Errno.ALREADY,
  EBADF: Errno.BADF, EBUSY: Errno.BUSY, ECANCELED: Errno.CANCELED, ECONNABORTED: Errno.CONNABORTED,
  ECONNREFUSED: Errno.CONNREFUSED, ECONNRESET: Errno.CONNRESET, EDQUOT: Errno.DQUOT, EEXIST: Errno.EXIST,
  EFAULT: Errno.FAULT, EFBIG: Errno.FBIG, EHOSTUNREACH: Errno.HOSTUNREACH, EINTR: Errno.INTR, EINVAL: Errno.INVAL,
  EIO: Errno.IO, EISCONN: Errno.ISCONN, EISDIR: Errno.ISDIR, ELOOP: Errno.LOOP, EMFILE: Errno.MFILE,
  EMLINK: Errno.MLINK, EMSGSIZE: Errno.MSGSIZE, ENAMETOOLONG: Errno.NAMETOOLONG, ENETDOWN: Errno.NETDOWN,
  ENETUNREACH: Errno.NETUNREACH, ENFILE: Errno.NFILE, ENOBUFS: Errno.NOBUFS, ENODEV: Errno.NODEV,
  ENOENT: Errno.NOENT, ENOMEM: Errno.NOMEM, ENOSPC: Errno.NOSPC, ENOSYS: Errno.NOSYS, ENOTCONN: Errno.NOTCONN,
  ENOTDIR: Errno.NOTDIR, ENOTEMPTY: Errno.NOTEMPTY, ENOTSOCK: Errno.NOTSOCK, ENOTSUP: Errno.NOTSUP,
  EOPNOTSUPP: Errno.NOTSUP, ENOTTY: Errno.NOTTY, ENXIO: Errno.NXIO, EOVERFLOW: Errno.OVERFLOW, EPERM: Errno.PERM,
  EPIPE: Errno.PIPE, EPROTO: Errno.PROTO, ERANGE: Errno.RANGE, EROFS: Errno.ROFS, ESPIPE: Errno.SPIPE,
  ESRCH: Errno.SRCH, ESTALE: Errno.STALE, ETIMEDOUT: Errno.TIMEDOUT, ETXTBSY: Errno.TXTBSY, EXDEV: Errno.XDEV,
  // Node's permission model (the process Keep) refusing an operation the host has no relay or fallback for.
  ERR_ACCESS_DENIED: Errno.ACCES,
};

/** Maps anything a host function threw to an errno; programming errors and unknown failures become EIO. */
export function errnoOf(err: unknown): ErrnoValue {
  if (err instanceof WasiError) return err.errno;
  if (err instanceof IoError) return HOST_CODES[err.code] ?? Errno.IO;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && Object.hasOwn(HOST_CODES, code)) return HOST_CODES[code]!;
  return Errno.IO;
}
