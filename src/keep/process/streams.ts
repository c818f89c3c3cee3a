/**
 * The Keep's side of sallyport streams: stdio as WASI streams, and sockets as Node Duplexes
 * (so that node:tls can run over them inside the Keep). Incoming bytes are credited back to
 * the host only as the Keep consumes them, which bounds what the host can make the Keep hold.
 */
import { ProtocolError } from '../../sallyport/index.ts';
import type { KeepEndpoint } from '../../sallyport/index.ts';
import { IoError, WOULD_BLOCK } from '../../wasi/io.ts';
import type { InputStream, OutputStream, WouldBlock } from '../../wasi/io.ts';

// process.getBuiltinModule: node:stream's ESM facade costs start-up time, and every Keep loads this module.
const { Duplex } = process.getBuiltinModule('node:stream');
const { EventEmitter } = process.getBuiltinModule('node:events');

/** What the Keep's router delivers to a stream. */
export interface StreamSink {
  data(bytes: Uint8Array): void;
  eof(): void;
  reset(reason: string): void;
}

export class SallyportInput implements InputStream, StreamSink {
  readonly #endpoint: KeepEndpoint;
  readonly #stream: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #eof = false;
  #error: IoError | null = null;
  #waiters: (() => void)[] = [];

  constructor(endpoint: KeepEndpoint, stream: number) {
    this.#endpoint = endpoint;
    this.#stream = stream;
  }

  data(bytes: Uint8Array): void {
    if (this.#eof) throw new ProtocolError(`data on stream ${this.#stream} after its eof`);
    if (this.#ended) return; // closed by the guest: dropped
    this.#chunks.push(this.#endpoint.own(bytes));
    this.#buffered += bytes.length;
    this.#wake();
  }
  eof(): void {
    if (this.#eof) throw new ProtocolError(`second eof on stream ${this.#stream}`);
    this.#eof = true;
    this.#ended = true;
    this.#wake();
  }
  reset(reason: string): void {
    this.#error = new IoError('ECONNRESET', reason);
    this.#ended = true;
    this.#wake();
  }
  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  tryRead(max: number): Uint8Array | null | WouldBlock {
    const head = this.#chunks[0];
    if (head) {
      let out: Uint8Array;
      if (head.length <= max) {
        this.#chunks.shift();
        out = head;
      } else {
        out = head.slice(0, max);
        this.#chunks[0] = head.subarray(max);
      }
      this.#buffered -= out.length;
      this.#endpoint.consumed(this.#stream, out.length);
      return out;
    }
    if (this.#error) throw this.#error;
    return this.#ended ? null : WOULD_BLOCK;
  }
  readableBytes(): number {
    return this.#buffered;
  }
  get ended(): boolean {
    return this.#ended;
  }
  ready(): Promise<void> {
    if (this.#buffered > 0 || this.#ended) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  close(): void {
    this.#ended = true;
    this.#chunks = [];
    this.#buffered = 0;
    this.#wake();
  }
}

export class SallyportOutput implements OutputStream {
  readonly #endpoint: KeepEndpoint;
  readonly #stream: number;
  #closed = false;

  constructor(endpoint: KeepEndpoint, stream: number) {
    this.#endpoint = endpoint;
    this.#stream = stream;
  }

  /** True once the host said the reader of this output went away (a `reset` of its stream). */
  get #broken(): boolean {
    return this.#endpoint.wasOpen(this.#stream);
  }
  tryWrite(bytes: Uint8Array): number {
    if (this.#closed || this.#broken) throw new IoError('EPIPE');
    return this.#endpoint.trySendData(this.#stream, bytes);
  }
  writableBytes(): number {
    // A broken output is "writable" as a broken pipe is: the write fails at once with EPIPE.
    return this.#broken ? 65536 : this.#endpoint.sendWindow(this.#stream);
  }
  ready(): Promise<void> {
    return this.#endpoint.whenWritable(this.#stream);
  }
  flush(): Promise<void> {
    return this.#endpoint.drained();
  }
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#broken) this.#endpoint.send({ t: 'eof', stream: this.#stream });
  }
}

/**
 * A socket carried by the sallyport, as a Duplex: plaintext for TCP files, TLS records for TLS
 * files (node:tls runs on top of it, inside the Keep).
 */
export class SallyportSocket extends Duplex implements StreamSink {
  readonly #endpoint: KeepEndpoint;
  readonly stream: number;
  #unread = 0;
  #wantMore = true;
  #eof = false;

  constructor(endpoint: KeepEndpoint, stream: number) {
    super({ allowHalfOpen: true, highWaterMark: 256 * 1024 });
    this.#endpoint = endpoint;
    this.stream = stream;
  }

  data(bytes: Uint8Array): void {
    if (this.#eof) throw new ProtocolError(`data on stream ${this.stream} after its eof`);
    if (this.destroyed) return;
    this.#unread += bytes.length;
    this.#wantMore = this.push(this.#endpoint.own(bytes));
    if (this.#wantMore) this.#credit();
  }
  eof(): void {
    if (this.#eof) throw new ProtocolError(`second eof on stream ${this.stream}`);
    this.#eof = true;
    if (!this.destroyed) this.push(null);
  }
  reset(reason: string): void {
    this.destroy(Object.assign(new Error(reason), { code: 'ECONNRESET' }));
  }
  #credit(): void {
    if (this.#unread > 0) {
      this.#endpoint.consumed(this.stream, this.#unread);
      this.#unread = 0;
    }
  }

  override _read(): void {
    this.#wantMore = true;
    this.#credit();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // Within the window (the usual case), the chunk leaves at once and the write completes now.
    const sent = this.#endpoint.sendOwned(this.stream, chunk);
    if (sent === chunk.length) return callback();
    this.#endpoint.sendData(this.stream, chunk.subarray(sent)).then(
      (ok) => callback(ok ? null : Object.assign(new Error('connection closed'), { code: 'EPIPE' })),
      (err: Error) => callback(err),
    );
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    // node:tls hands over a write's records together (corked): their frames leave in one writev.
    let i = 0;
    this.#endpoint.batch(() => {
      for (; i < chunks.length; i++) {
        const { chunk } = chunks[i]!;
        const sent = this.#endpoint.sendOwned(this.stream, chunk);
        if (sent < chunk.length) {
          chunks[i] = { chunk: chunk.subarray(sent) };
          break;
        }
      }
    });
    if (i === chunks.length) return callback();
    const rest = chunks.slice(i);
    void (async () => {
      for (const { chunk } of rest) if (!(await this.#endpoint.sendData(this.stream, chunk))) return callback(Object.assign(new Error('connection closed'), { code: 'EPIPE' }));
      callback();
    })().catch((err: Error) => callback(err));
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#endpoint.isOpen(this.stream)) this.#endpoint.send({ t: 'eof', stream: this.stream });
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#endpoint.isOpen(this.stream)) {
      this.#endpoint.send({ t: 'close', stream: this.stream });
      this.#endpoint.closeStream(this.stream);
    }
    callback(error);
  }
}

/**
 * The TLS records of a sallyport socket, as node:tls reads and writes them: the least a stream
 * under a TLSSocket needs (node:tls wraps it in its JSStreamSocket, which uses pause, resume,
 * write, cork, end, destroy and the data, end, error and close events), without a Duplex's
 * Readable and Writable machinery. Incoming records go to node:tls as their frame is handled
 * (node:tls copies them into OpenSSL at once) and are credited then; while node:tls has stopped
 * reading they are held, uncredited, so the window still bounds what the host can make the Keep
 * hold. Written records leave as frames before write returns, from node:tls's own fresh buffers
 * (no copy), or wait for the window in order.
 */
export class SallyportRecords extends EventEmitter implements StreamSink {
  readonly #endpoint: KeepEndpoint;
  readonly stream: number;
  /** Records received while node:tls does not read (it starts paused), kept from the reused read buffer. */
  #held: { bytes: Uint8Array; release(): void }[] = [];
  #paused = true;
  #flushing = false;
  #eof = false;
  #endEmitted = false;
  #corked = 0;
  #corkedWrites: { chunk: Uint8Array; done: (error?: Error | null) => void }[] = [];
  /** Writes waiting for window, in order; the first is being sent. */
  #waiting: { chunk: Uint8Array; done: (error?: Error | null) => void }[] = [];
  #ended = false;
  destroyed = false;
  writableFinished = false;
  // What node:tls reads of the stream it wraps.
  readonly readable = true;
  readonly writable = true;
  readonly allowHalfOpen = true;

  constructor(endpoint: KeepEndpoint, stream: number) {
    super();
    this.#endpoint = endpoint;
    this.stream = stream;
  }

  data(bytes: Uint8Array): void {
    if (this.#eof) throw new ProtocolError(`data on stream ${this.stream} after its eof`);
    if (this.destroyed) return;
    if (this.#paused || this.#held.length > 0) {
      this.#held.push(this.#endpoint.keep(bytes));
      return;
    }
    // node:tls copies the record into OpenSSL at once: the read buffer's view is enough.
    this.#deliver(bytes);
  }
  eof(): void {
    if (this.#eof) throw new ProtocolError(`second eof on stream ${this.stream}`);
    this.#eof = true;
    if (!this.#paused && this.#held.length === 0) this.#emitEnd();
  }
  reset(reason: string): void {
    this.destroy(Object.assign(new Error(reason), { code: 'ECONNRESET' }));
  }

  #deliver(bytes: Uint8Array): void {
    this.emit('data', bytes);
    this.#endpoint.consumed(this.stream, bytes.length);
  }
  #emitEnd(): void {
    if (this.#endEmitted || this.destroyed) return;
    this.#endEmitted = true;
    this.emit('end');
  }

  pause(): this {
    this.#paused = true;
    return this;
  }
  resume(): this {
    this.#paused = false;
    // Not within the call: node:tls resumes from inside its own handle.
    if (!this.#flushing && (this.#held.length > 0 || this.#eof)) {
      this.#flushing = true;
      process.nextTick(() => this.#flush());
    }
    return this;
  }
  #flush(): void {
    this.#flushing = false;
    while (!this.#paused && !this.destroyed && this.#held.length > 0) {
      const held = this.#held.shift()!;
      this.#deliver(held.bytes);
      held.release();
    }
    if (!this.#paused && this.#held.length === 0 && this.#eof) this.#emitEnd();
  }

  cork(): void {
    this.#corked++;
  }
  uncork(): void {
    if (this.#corked === 0 || --this.#corked > 0) return;
    const writes = this.#corkedWrites;
    this.#corkedWrites = [];
    // A write's records leave together: their frames in one writev.
    this.#endpoint.batch(() => {
      for (const w of writes) this.#send(w.chunk, w.done);
    });
  }

  write(chunk: Uint8Array, done: (error?: Error | null) => void): boolean {
    if (this.#ended || this.destroyed) {
      process.nextTick(done, Object.assign(new Error('write after end'), { code: 'EPIPE' }));
      return false;
    }
    if (this.#corked > 0) this.#corkedWrites.push({ chunk, done });
    else this.#send(chunk, done);
    return true;
  }

  #send(chunk: Uint8Array, done: (error?: Error | null) => void): void {
    if (this.#waiting.length === 0) {
      const sent = this.#endpoint.sendOwned(this.stream, chunk);
      if (sent === chunk.length) return done();
      chunk = chunk.subarray(sent);
    }
    this.#waiting.push({ chunk, done });
    if (this.#waiting.length === 1) void this.#sendWaiting();
  }
  async #sendWaiting(): Promise<void> {
    while (this.#waiting.length > 0) {
      const { chunk, done } = this.#waiting[0]!;
      let ok = false;
      try {
        ok = await this.#endpoint.sendData(this.stream, chunk);
      } catch {
        ok = false;
      }
      this.#waiting.shift();
      done(ok ? null : Object.assign(new Error('connection closed'), { code: 'EPIPE' }));
    }
    this.#finishIfEnded();
  }

  /** Ends the write side once queued records are sent: an `eof` for the host. */
  end(done?: () => void): void {
    if (!this.#ended) {
      this.#ended = true;
      this.#finishIfEnded();
    }
    if (done) {
      if (this.writableFinished || this.destroyed) process.nextTick(done);
      else this.once('finish', done);
    }
  }
  #finishIfEnded(): void {
    if (!this.#ended || this.writableFinished || this.#waiting.length > 0 || this.#corkedWrites.length > 0) return;
    if (this.destroyed) return;
    if (this.#endpoint.isOpen(this.stream)) this.#endpoint.send({ t: 'eof', stream: this.stream });
    this.writableFinished = true;
    process.nextTick(() => this.emit('finish'));
  }

  destroy(error?: Error | null): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    for (const held of this.#held.splice(0)) held.release();
    if (this.#endpoint.isOpen(this.stream)) {
      this.#endpoint.send({ t: 'close', stream: this.stream });
      this.#endpoint.closeStream(this.stream);
    }
    // Writes waiting for window fail as sendData finds the stream closed.
    const writes = this.#corkedWrites;
    this.#corkedWrites = [];
    process.nextTick(() => {
      for (const w of writes) w.done(Object.assign(new Error('connection closed'), { code: 'EPIPE' }));
      // Before node:tls wraps it (an accepted socket waits for the Keep's identity), nobody listens.
      if (error && this.listenerCount('error') > 0) this.emit('error', error);
      this.emit('close');
    });
    return this;
  }
}
