import type { Readable, Writable } from 'node:stream';
import { IoError, WOULD_BLOCK, type InputStream, type OutputStream, type WouldBlock } from '../wasi/io.ts';

// process.getBuiltinModule: the ESM facade of node:fs alone costs 10-50 ms of start-up.
const { fstatSync, readSync, writeSync } = process.getBuiltinModule('node:fs');

/**
 * Capabilities over the enarx process's own stdio, for the nil Keep. Writes go straight to the
 * descriptor (no stream machinery, like node:wasi) and fall back to Node's stream, with its
 * back-pressure, only if the descriptor is non-blocking and full. Reads use Node's stream so
 * that a waiting guest never blocks the event loop, except from a regular file, which never waits.
 */

function ioError(err: unknown): IoError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EPIPE' || code === 'ECONNRESET' || code === 'EBADF' || code === 'EINVAL') return new IoError(code);
  return new IoError('EIO', String((err as Error).message ?? err));
}

export class FdOutput implements OutputStream {
  readonly #fd: number;
  readonly #stream: () => Writable;
  #fallback: Writable | undefined;

  /** `stream` gives Node's Writable for the same descriptor, used only after an EAGAIN. */
  constructor(fd: number, stream: () => Writable) {
    this.#fd = fd;
    this.#stream = stream;
  }

  tryWrite(bytes: Uint8Array): number {
    const s = this.#fallback;
    if (s) {
      if (s.writableNeedDrain) return 0;
      s.write(Buffer.from(bytes));
      return bytes.length;
    }
    try {
      return writeSync(this.#fd, bytes);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw ioError(err);
      this.#fallback = this.#stream();
      return this.tryWrite(bytes);
    }
  }

  writableBytes(): number {
    return this.#fallback?.writableNeedDrain ? 0 : 65536;
  }

  ready(): Promise<void> {
    const s = this.#fallback;
    if (!s?.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        s.off('drain', done).off('error', done).off('close', done);
        resolve();
      };
      s.on('drain', done).on('error', done).on('close', done);
    });
  }

  flush(): Promise<void> {
    const s = this.#fallback;
    if (!s || s.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => s.write('', () => resolve()));
  }

  close(): void {
    // The process's stdio outlives the guest's descriptor.
  }
}

/** An InputStream over a Node Readable (pipe, TTY, socket). */
export class ReadableInput implements InputStream {
  readonly #source: () => Readable;
  #stream: Readable | undefined;
  #leftover: Uint8Array | null = null;
  #ended = false;
  #error: IoError | undefined;

  constructor(source: () => Readable) {
    this.#source = source;
  }

  #open(): Readable {
    if (!this.#stream) {
      const s = this.#source();
      s.on('end', () => (this.#ended = true));
      s.on('error', (err) => {
        this.#error = ioError(err);
        this.#ended = true;
      });
      this.#stream = s;
    }
    return this.#stream;
  }

  get ended(): boolean {
    return this.#ended && !this.#leftover && (this.#stream?.readableLength ?? 0) === 0;
  }

  tryRead(max: number): Uint8Array | null | WouldBlock {
    let chunk = this.#leftover;
    this.#leftover = null;
    if (!chunk) {
      const got = this.#open().read() as Buffer | null;
      if (got === null) {
        if (this.#error) throw this.#error;
        return this.#ended ? null : WOULD_BLOCK;
      }
      chunk = got;
    }
    if (chunk.length > max) {
      this.#leftover = chunk.subarray(max);
      return chunk.subarray(0, max);
    }
    return chunk;
  }

  readableBytes(): number {
    return (this.#leftover?.length ?? 0) + this.#open().readableLength;
  }

  ready(): Promise<void> {
    const s = this.#open();
    if (this.#leftover || s.readableLength > 0 || this.#ended) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        s.off('readable', done).off('end', done).off('error', done).off('close', done);
        resolve();
      };
      s.on('readable', done).on('end', done).on('error', done).on('close', done);
    });
  }

  close(): void {
    this.#stream?.pause();
  }
}

/** An InputStream over a regular file (stdin redirected from a file): reads never wait. */
export class FileInput implements InputStream {
  readonly #fd: number;
  #ended = false;

  constructor(fd: number) {
    this.#fd = fd;
  }

  get ended(): boolean {
    return this.#ended;
  }

  tryRead(max: number): Uint8Array | null {
    const buf = Buffer.allocUnsafe(Math.min(max, 1 << 20));
    let n: number;
    try {
      n = readSync(this.#fd, buf, 0, buf.length, null);
    } catch (err) {
      throw ioError(err);
    }
    if (n === 0) {
      this.#ended = true;
      return null;
    }
    return buf.subarray(0, n);
  }

  readableBytes(): number {
    return this.#ended ? 0 : 1;
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {}
}

/** The process's stdin as a capability: a file is read directly, anything else through Node's stream. */
export function processStdin(): InputStream {
  let regular = false;
  try {
    regular = fstatSync(0).isFile();
  } catch {
    // No stdin at all: the stream reports end of input.
  }
  return regular ? new FileInput(0) : new ReadableInput(() => process.stdin);
}

export function processStdout(): OutputStream {
  return new FdOutput(1, () => process.stdout);
}

export function processStderr(): OutputStream {
  return new FdOutput(2, () => process.stderr);
}
