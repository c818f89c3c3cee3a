/**
 * The workload's stdio inside a keepmgr Keep: stdin is the provisioned bytes, stdout and stderr
 * are sealed record by record into the output channel. Neither ever reaches the host in clear.
 */
import { IoError, WOULD_BLOCK, type InputStream, type OutputStream, type WouldBlock } from '../../wasi/io.ts';

/** Stdin from bytes the client provisioned: always ready, then end of stream. */
export class BytesInput implements InputStream {
  #bytes: Uint8Array | null;
  #at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  get ended(): boolean {
    return this.#bytes === null || this.#at >= this.#bytes.length;
  }

  tryRead(max: number): Uint8Array | null | WouldBlock {
    if (this.#bytes === null) throw new IoError('EBADF');
    if (this.#at >= this.#bytes.length) return null;
    const out = this.#bytes.slice(this.#at, this.#at + max);
    this.#at += out.length;
    return out.length > 0 ? out : WOULD_BLOCK;
  }

  readableBytes(): number {
    return this.#bytes ? this.#bytes.length - this.#at : 0;
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.#bytes = null;
  }
}

/** Stdout or stderr: each write is sealed and sent at once (the pipe write is synchronous). */
export class SealedOutput implements OutputStream {
  readonly #emit: (bytes: Uint8Array) => void;
  #closed = false;

  constructor(emit: (bytes: Uint8Array) => void) {
    this.#emit = emit;
  }

  tryWrite(bytes: Uint8Array): number {
    if (this.#closed) throw new IoError('EPIPE');
    if (bytes.length > 0) this.#emit(bytes.slice());
    return bytes.length;
  }

  writableBytes(): number {
    return 1 << 16;
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.#closed = true;
  }
}
