import { WasiHost, type WasiOptions } from '../../src/wasi/index.ts';

/**
 * Drives a WasiHost as a guest would, without a module: a real WebAssembly.Memory, a bump
 * allocator, and typed accessors, so tests can call every import with real pointers.
 */
export class Guest {
  readonly memory = new WebAssembly.Memory({ initial: 4 });
  readonly host: WasiHost;
  readonly fns: Record<string, (...args: never[]) => number | Promise<number>>;
  #top = 1024;

  constructor(options: Partial<WasiOptions> = {}) {
    this.host = new WasiHost({ args: [], env: [], descriptors: [], ...options });
    this.host.setMemory(this.memory);
    this.fns = this.host.imports();
  }

  get view(): DataView {
    return new DataView(this.memory.buffer);
  }

  alloc(size: number, align = 8): number {
    this.#top = Math.ceil(this.#top / align) * align;
    const p = this.#top;
    this.#top += Math.max(size, 1);
    new Uint8Array(this.memory.buffer, p, size).fill(0);
    return p;
  }

  /** Places a string (UTF-8); returns [ptr, byteLength]. */
  str(s: string | Uint8Array): [number, number] {
    const b = typeof s === 'string' ? new TextEncoder().encode(s) : s;
    const p = this.alloc(b.length, 1);
    new Uint8Array(this.memory.buffer, p, b.length).set(b);
    return [p, b.length];
  }

  bytes(ptr: number, len: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, len).slice();
  }

  text(ptr: number, len: number): string {
    return new TextDecoder().decode(this.bytes(ptr, len));
  }

  u32(ptr: number): number {
    return this.view.getUint32(ptr, true);
  }

  u64(ptr: number): bigint {
    return this.view.getBigUint64(ptr, true);
  }

  /** Builds an iovec array over fresh buffers (numbers: lengths) or given contents; returns [iovs, count, bufPtrs]. */
  iovs(parts: (number | string)[]): [number, number, number[]] {
    const ptrs = parts.map((p) => (typeof p === 'number' ? this.alloc(p, 1) : this.str(p)[0]));
    const arr = this.alloc(parts.length * 8, 4);
    parts.forEach((p, i) => {
      this.view.setUint32(arr + i * 8, ptrs[i]!, true);
      this.view.setUint32(arr + i * 8 + 4, typeof p === 'number' ? p : new TextEncoder().encode(p).length, true);
    });
    return [arr, parts.length, ptrs];
  }

  /** Calls an import synchronously; fails the test if it wanted to wait. */
  call(name: string, ...args: (number | bigint)[]): number {
    const r = this.fns[name]!(...(args as never[]));
    if (typeof r !== 'number') throw new Error(`${name} returned a Promise: it would have suspended`);
    return r;
  }

  /** Calls an import that may wait. */
  async callAsync(name: string, ...args: (number | bigint)[]): Promise<number> {
    return this.fns[name]!(...(args as never[]));
  }

  /** Opens PATH under directory fd; returns [errno, fd]. */
  open(dirfd: number, path: string, opts: { oflags?: number; rights?: bigint; fdflags?: number; follow?: boolean } = {}): [number, number] {
    const [p, l] = this.str(path);
    const out = this.alloc(4, 4);
    const rights = opts.rights ?? (1n << 30n) - 1n;
    const e = this.call('path_open', dirfd, opts.follow === false ? 0 : 1, p, l, opts.oflags ?? 0, rights, rights, opts.fdflags ?? 0, out);
    return [e, e === 0 ? this.u32(out) : -1];
  }

  /** Writes a string to fd; returns [errno, nwritten]. */
  write(fd: number, data: string): [number, number] {
    const [iovs, n] = this.iovs([data]);
    const out = this.alloc(4, 4);
    const e = this.call('fd_write', fd, iovs, n, out);
    return [e, this.u32(out)];
  }

  /** Reads up to len bytes from fd; returns [errno, text]. */
  read(fd: number, len = 4096): [number, string] {
    const [iovs, n, [buf]] = this.iovs([len]);
    const out = this.alloc(4, 4);
    const e = this.call('fd_read', fd, iovs, n, out);
    return [e, e === 0 ? this.text(buf!, this.u32(out)) : ''];
  }

  /** Calls a path_* function that takes (fd, path, len). */
  pathCall(name: string, fd: number, path: string): number {
    const [p, l] = this.str(path);
    return this.call(name, fd, p, l);
  }
}
