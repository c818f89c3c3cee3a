/**
 * Adapters from Node streams to the WASI layer's capabilities (src/wasi/io.ts). Both Keeps use
 * them: the nil Keep over node:net sockets, the process Keep over sallyport streams; TLS
 * sockets in both. Reads are buffered here so that tryRead never waits; the socket is paused
 * while the buffer is full, which pushes back on the peer.
 */
import type { Duplex } from 'node:stream';
import { IoError, WOULD_BLOCK } from '../wasi/io.ts';
import type { Connection, InputStream, IoErrorCode, Listener, OutputStream, ShutdownHow, WouldBlock } from '../wasi/io.ts';

/** Read-ahead per connection before the socket is paused. */
const READ_BUFFER_BYTES = 256 * 1024;
/** Bytes queued in the socket before tryWrite reports back-pressure. */
const WRITE_BUFFER_BYTES = 1024 * 1024;
/**
 * Size of the reused buffers that carry the guest's writes (see GatheredWrites). 128 KiB beat
 * 512 KiB (TLS echo 1.05x paired over 30 rounds, 10-15 ms less Keep CPU per 64 MiB in each of 4
 * runs): node:tls's own buffers for one write's records are then small too.
 */
const GATHER_BYTES = 128 * 1024;

// process.getBuiltinModule: both Keeps have node:net loaded already (their sockets and pipes).
const { Socket: NetSocket } = process.getBuiltinModule('node:net');

/**
 * The guest's writes to a node:net or node:tls socket, gathered into reused buffers: the socket
 * has one write in flight, and what the guest writes meanwhile fills the next buffer, handed over
 * as one write when the first completes. Each new buffer would be memory outside V8's heap (enough
 * of it makes V8 run full garbage collections), and node:tls joins the writes it finds queued into
 * a fresh allocation of their size, its pages faulted in anew each time; one write of one buffer
 * it encrypts in place. Two buffers of GATHER_BYTES exist per connection at most.
 */
class GatheredWrites {
  readonly #socket: Duplex;
  readonly #free: Buffer[] = [];
  #gathering: Buffer | null = null;
  #gathered = 0;
  /** Writes handed to the socket and not yet done: one, or two once the end is near (handOver). */
  #inFlight = 0;
  readonly #onWritten: () => void;

  constructor(socket: Duplex, onWritten: () => void) {
    this.#socket = socket;
    this.#onWritten = onWritten;
  }

  /** Bytes the guest may still write before it has to wait. */
  room(): number {
    return this.#inFlight > 0 ? GATHER_BYTES - this.#gathered : 2 * GATHER_BYTES - this.#gathered;
  }

  /** True while nothing is gathered or being written. */
  get idle(): boolean {
    return this.#inFlight === 0 && this.#gathered === 0;
  }

  /** Copies as much of `bytes` as there is room for; returns how much. */
  write(bytes: Uint8Array): number {
    let n = 0;
    while (n < bytes.length && this.#gathered < GATHER_BYTES) {
      const k = Math.min(GATHER_BYTES - this.#gathered, bytes.length - n);
      const buffer = (this.#gathering ??= this.#free.pop() ?? Buffer.allocUnsafeSlow(GATHER_BYTES));
      buffer.set(n === 0 && k === bytes.length ? bytes : bytes.subarray(n, n + k), this.#gathered);
      this.#gathered += k;
      n += k;
      if (this.#inFlight === 0) this.handOver();
    }
    return n;
  }

  /** Hands what is gathered to the socket now (also behind a write in flight: before it ends). */
  handOver(): void {
    const buffer = this.#gathering;
    if (!buffer || this.#gathered === 0) return;
    const size = this.#gathered;
    this.#gathering = null;
    this.#gathered = 0;
    this.#inFlight++;
    this.#socket.write(size === GATHER_BYTES ? buffer : buffer.subarray(0, size), () => {
      this.#inFlight--;
      if (this.#free.length < 2) this.#free.push(buffer);
      // Whatever was gathered meanwhile leaves as the next write (shutdown hands it over first).
      if (this.#inFlight === 0 && !this.#socket.writableEnded) this.handOver();
      this.#onWritten();
    });
  }
}

const ERRNO_NAMES: readonly IoErrorCode[] = ['EPIPE', 'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ENOTCONN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH'];

export function toIoError(err: unknown): IoError {
  if (err instanceof IoError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const known = ERRNO_NAMES.find((c) => c === code);
  const message = err instanceof Error ? err.message : String(err);
  // A TLS failure (bad certificate, handshake error) reaches the guest as a reset connection.
  return new IoError(known ?? (typeof code === 'string' && code.startsWith('ERR_SSL') ? 'ECONNRESET' : 'EIO'), message);
}

class Waiters {
  #list: (() => void)[] = [];
  wait(): Promise<void> {
    return new Promise((resolve) => this.#list.push(resolve));
  }
  wake(): void {
    for (const w of this.#list.splice(0)) w();
  }
}

export class DuplexConnection implements Connection {
  readonly input: InputStream;
  readonly output: OutputStream;
  readonly #socket: Duplex;
  readonly #transport: Duplex;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: IoError | null = null;
  #readShut = false;
  #writeShut = false;
  #closed = false;
  readonly #readable = new Waiters();
  readonly #writable = new Waiters();
  /** Gathered writes, for a socket that is done with a write's bytes when its callback runs. */
  readonly #gathered: GatheredWrites | undefined;

  /**
   * `transport` is the stream under a TLS socket (when that is a JS stream, such as a
   * sallyport stream): closing waits for it to finish, so no encrypted byte is dropped.
   */
  constructor(socket: Duplex, transport?: Duplex) {
    this.#socket = socket;
    this.#transport = transport ?? socket;
    // node:net and node:tls sockets have copied a write's bytes (to the kernel, or encrypted them)
    // by its callback; a sallyport stream carrying plaintext may still be sending them from the
    // buffer itself (Endpoint.sendOwned), so it gets a fresh copy per write.
    if (socket instanceof NetSocket) this.#gathered = new GatheredWrites(socket, () => this.#writable.wake());
    socket.on('data', (chunk: Uint8Array) => {
      if (this.#readShut) return;
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered >= READ_BUFFER_BYTES) socket.pause();
      this.#readable.wake();
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#readable.wake();
    });
    socket.on('error', (err) => {
      this.#error ??= toIoError(err);
      this.#ended = true;
      this.#readable.wake();
      this.#writable.wake();
    });
    socket.on('close', () => {
      this.#ended = true;
      this.#readable.wake();
      this.#writable.wake();
    });
    socket.on('drain', () => this.#writable.wake());
    const self = this;
    this.input = {
      tryRead: (max) => self.#tryRead(max),
      readableBytes: () => self.#buffered,
      get ended() {
        return self.#ended || self.#readShut || self.#closed;
      },
      ready: () => (self.#buffered > 0 || self.#ended || self.#readShut || self.#closed ? Promise.resolve() : self.#readable.wait()),
      close: () => self.shutdown('read'),
    };
    this.output = {
      tryWrite: (bytes) => self.#tryWrite(bytes),
      writableBytes: () => (self.#gathered ? self.#gathered.room() : Math.max(0, WRITE_BUFFER_BYTES - socket.writableLength)),
      ready: () => (self.#writeBlocked() ? self.#writable.wait() : Promise.resolve()),
      flush: () => self.#flush(),
      close: () => self.shutdown('write'),
    };
  }

  #tryRead(max: number): Uint8Array | null | WouldBlock {
    if (this.#closed) throw new IoError('EBADF');
    if (this.#chunks.length > 0) {
      const head = this.#chunks[0]!;
      let out: Uint8Array;
      if (head.length <= max) {
        this.#chunks.shift();
        out = head;
      } else {
        out = head.subarray(0, max);
        this.#chunks[0] = head.subarray(max);
      }
      this.#buffered -= out.length;
      if (this.#buffered < READ_BUFFER_BYTES / 2 && this.#socket.isPaused()) this.#socket.resume();
      return out;
    }
    if (this.#readShut) return null;
    if (this.#error && this.#error.code !== 'EPIPE') throw this.#error;
    if (this.#ended) return null;
    return WOULD_BLOCK;
  }

  #writeBlocked(): boolean {
    if (this.#writeShut || this.#error || this.#closed || this.#socket.destroyed) return false;
    return this.#gathered ? this.#gathered.room() === 0 : this.#socket.writableLength >= WRITE_BUFFER_BYTES;
  }

  #tryWrite(bytes: Uint8Array): number {
    if (this.#closed) throw new IoError('EBADF');
    if (this.#error) throw this.#error.code === 'EIO' ? new IoError('EPIPE', this.#error.message) : this.#error;
    if (this.#writeShut || this.#socket.destroyed || this.#socket.writableEnded) throw new IoError('EPIPE');
    if (bytes.length === 0) return 0;
    // Guest memory changes after the call, so the socket gets its own copy.
    if (this.#gathered) return this.#gathered.write(bytes);
    const room = WRITE_BUFFER_BYTES - this.#socket.writableLength;
    if (room <= 0) return 0;
    const n = Math.min(room, bytes.length);
    this.#socket.write(Buffer.from(bytes.subarray(0, n)));
    return n;
  }

  async #flush(): Promise<void> {
    const gathered = this.#gathered;
    if (gathered) {
      // Woken by each completed write, and by close and error.
      while (!gathered.idle && !this.#socket.destroyed && !this.#error && !this.#closed) await this.#writable.wait();
      return;
    }
    while (this.#socket.writableLength > 0 && !this.#socket.destroyed && !this.#error) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.#socket.off('drain', done);
          this.#socket.off('close', done);
          resolve();
        };
        this.#socket.once('drain', done);
        this.#socket.once('close', done);
      });
    }
  }

  shutdown(how: ShutdownHow): void {
    if (this.#closed) throw new IoError('EBADF');
    if ((how === 'read' || how === 'both') && !this.#readShut) {
      this.#readShut = true;
      this.#chunks = [];
      this.#buffered = 0;
      this.#readable.wake();
    }
    if ((how === 'write' || how === 'both') && !this.#writeShut) {
      this.#writeShut = true;
      this.#gathered?.handOver();
      this.#socket.end();
      this.#writable.wake();
    }
    if (this.#readShut && this.#writeShut && this.#socket.writableFinished) this.#socket.destroy();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
    this.#buffered = 0;
    // Let queued bytes (and a TLS close_notify) go out, then release the socket.
    const release = () => {
      this.#socket.destroy();
      this.#transport.destroy();
    };
    if (!this.#socket.writableEnded) {
      this.#gathered?.handOver();
      this.#socket.end();
    }
    const timer = setTimeout(release, 5000);
    timer.unref();
    this.#socket.once('close', () => clearTimeout(timer));
    if (this.#transport.writableFinished || this.#transport.destroyed) release();
    else this.#transport.once('finish', release);
    this.#readable.wake();
    this.#writable.wake();
  }
}

/**
 * A listener fed by whoever accepts the raw connections (node:net in the nil Keep, the host's
 * `accept` messages in the process Keep). `wrap` adds TLS, if any, to each new connection.
 */
export class QueueListener implements Listener {
  readonly #pending: Connection[] = [];
  readonly #waiters = new Waiters();
  readonly #maxPending: number;
  readonly #onClose: () => void;
  #closed = false;

  constructor(options: { maxPending?: number; onClose?: () => void } = {}) {
    this.#maxPending = options.maxPending ?? 128;
    this.#onClose = options.onClose ?? (() => {});
  }

  /** Queues an accepted connection; returns false (caller drops it) when closed or the backlog is full. */
  offer(connection: Connection): boolean {
    if (this.#closed || this.#pending.length >= this.#maxPending) return false;
    this.#pending.push(connection);
    this.#waiters.wake();
    return true;
  }

  tryAccept(): Connection | WouldBlock {
    if (this.#closed) throw new IoError('EBADF');
    return this.#pending.shift() ?? WOULD_BLOCK;
  }

  pendingConnections(): number {
    return this.#pending.length;
  }

  ready(): Promise<void> {
    return this.#pending.length > 0 || this.#closed ? Promise.resolve() : this.#waiters.wait();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#pending.splice(0)) c.close();
    this.#waiters.wake();
    this.#onClose();
  }
}
