/**
 * A deliberately small WASI preview1 host for workloads provisioned through the keep manager:
 * stdio only (stdin from the provisioned bytes, stdout/stderr into the sealed output channel),
 * args, environment, clocks and randomness. Everything else answers ENOSYS.
 *
 * It is the seam where the project's full capability-based WASI host (src/runtime) plugs in once
 * it can write stdio to a callback; until then this keeps provisioned workloads runnable.
 */
export interface WorkloadIo {
  args: string[];
  env: string[];
  stdin: Uint8Array;
  write(fd: 1 | 2, bytes: Uint8Array): void;
}

export interface WorkloadExit {
  code: number;
  reason: string | null;
}

const ESUCCESS = 0;
const EBADF = 8;
const EINVAL = 28;
const ENOSYS = 52;
const ESPIPE = 70;

class ProcExit {
  readonly code: number;
  constructor(code: number) {
    this.code = code;
  }
}

export async function runWasi(wasm: Uint8Array, io: WorkloadIo): Promise<WorkloadExit> {
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(new Uint8Array(wasm));
  } catch (err) {
    return { code: 1, reason: `invalid wasm: ${(err as Error).message}` };
  }
  let memory: WebAssembly.Memory | undefined;
  const te = new TextEncoder();
  const view = () => new DataView(memory!.buffer);
  const bytes = () => new Uint8Array(memory!.buffer);
  let stdinPos = 0;

  const writeStrings = (list: string[], ptrs: number, buf: number) => {
    for (const s of list) {
      const b = te.encode(`${s}\0`);
      view().setUint32(ptrs, buf, true);
      bytes().set(b, buf);
      ptrs += 4;
      buf += b.length;
    }
    return ESUCCESS;
  };
  const sizes = (list: string[], countPtr: number, sizePtr: number) => {
    view().setUint32(countPtr, list.length, true);
    view().setUint32(sizePtr, list.reduce((n, s) => n + te.encode(s).length + 1, 0), true);
    return ESUCCESS;
  };

  const wasi: Record<string, (...a: number[]) => number> = {
    args_sizes_get: (c, s) => sizes(io.args, c, s),
    args_get: (p, b) => writeStrings(io.args, p, b),
    environ_sizes_get: (c, s) => sizes(io.env, c, s),
    environ_get: (p, b) => writeStrings(io.env, p, b),
    fd_write: (fd, iovs, len, nwritten) => {
      if (fd !== 1 && fd !== 2) return EBADF;
      let total = 0;
      for (let i = 0; i < len; i++) {
        const ptr = view().getUint32(iovs + i * 8, true);
        const n = view().getUint32(iovs + i * 8 + 4, true);
        if (n > 0) io.write(fd, bytes().slice(ptr, ptr + n));
        total += n;
      }
      view().setUint32(nwritten, total, true);
      return ESUCCESS;
    },
    fd_read: (fd, iovs, len, nread) => {
      if (fd !== 0) return EBADF;
      let total = 0;
      for (let i = 0; i < len && stdinPos < io.stdin.length; i++) {
        const ptr = view().getUint32(iovs + i * 8, true);
        const n = Math.min(view().getUint32(iovs + i * 8 + 4, true), io.stdin.length - stdinPos);
        bytes().set(io.stdin.subarray(stdinPos, stdinPos + n), ptr);
        stdinPos += n;
        total += n;
      }
      view().setUint32(nread, total, true);
      return ESUCCESS;
    },
    fd_fdstat_get: (fd, ptr) => {
      if (fd > 2) return EBADF;
      new Uint8Array(memory!.buffer, ptr, 24).fill(0);
      view().setUint8(ptr, 2); // character device
      view().setBigUint64(ptr + 8, fd === 0 ? 0x2n : 0x40n, true); // fd_read / fd_write rights
      return ESUCCESS;
    },
    fd_close: (fd) => (fd <= 2 ? ESUCCESS : EBADF),
    fd_seek: (fd) => (fd <= 2 ? ESPIPE : EBADF),
    fd_prestat_get: () => EBADF,
    fd_prestat_dir_name: () => EBADF,
    proc_exit: (code) => {
      throw new ProcExit(code);
    },
    random_get: (ptr, len) => {
      for (let o = 0; o < len; o += 65536) crypto.getRandomValues(new Uint8Array(memory!.buffer, ptr + o, Math.min(65536, len - o)));
      return ESUCCESS;
    },
    clock_time_get: (id, _precision, ptr) => {
      if (id > 3) return EINVAL;
      const ns = id === 0 ? BigInt(Date.now()) * 1_000_000n : process.hrtime.bigint();
      view().setBigUint64(ptr, ns, true);
      return ESUCCESS;
    },
    clock_res_get: (_id, ptr) => {
      view().setBigUint64(ptr, 1000n, true);
      return ESUCCESS;
    },
    sched_yield: () => ESUCCESS,
  };
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.kind !== 'function') return { code: 1, reason: `unsupported import ${imp.module}.${imp.name} (${imp.kind})` };
    const fn = imp.module === 'wasi_snapshot_preview1' ? wasi[imp.name] : undefined;
    (imports[imp.module] ??= {})[imp.name] = fn ?? (() => ENOSYS);
  }
  try {
    const instance = await WebAssembly.instantiate(module, imports);
    const mem = instance.exports.memory;
    if (!(mem instanceof WebAssembly.Memory)) return { code: 1, reason: 'the module exports no memory' };
    memory = mem;
    const start = instance.exports._start;
    if (typeof start !== 'function') return { code: 1, reason: 'the module exports no _start' };
    (start as () => void)();
    return { code: 0, reason: null };
  } catch (err) {
    if (err instanceof ProcExit) return { code: err.code, reason: null };
    if (err instanceof WebAssembly.RuntimeError) return { code: 134, reason: `wasm trap: ${err.message}` };
    if (err instanceof RangeError) return { code: 137, reason: `out of memory: ${err.message}` };
    return { code: 1, reason: `workload failed: ${(err as Error).message}` };
  }
}
