import {
  IoError, WOULD_BLOCK, type Connection, type InputStream, type Listener, type OutputStream, type ShutdownHow, type WouldBlock,
} from '../../src/wasi/io.ts';

/** A settable signal: `wait()` resolves at the next `wake()`. */
class Waiters {
  #list: (() => void)[] = [];
  wait(): Promise<void> {
    return new Promise((resolve) => this.#list.push(resolve));
  }
  wake(): void {
    const list = this.#list;
    this.#list = [];
    for (const w of list) w();
  }
}

/** An in-memory InputStream: the test pushes bytes and ends it. */
export class FakeInput implements InputStream {
  #chunks: Uint8Array[] = [];
  #ended = false;
  #error: IoError | undefined;
  #waiters = new Waiters();
  closed = false;

  push(data: string | Uint8Array): void {
    this.#chunks.push(typeof data === 'string' ? new TextEncoder().encode(data) : data);
    this.#waiters.wake();
  }
  end(): void {
    this.#ended = true;
    this.#waiters.wake();
  }
  fail(code: IoError['code']): void {
    this.#error = new IoError(code);
    this.#waiters.wake();
  }
  get ended(): boolean {
    return (this.#ended && this.#chunks.length === 0) || this.#error !== undefined;
  }
  tryRead(max: number): Uint8Array | null | WouldBlock {
    if (this.#error) throw this.#error;
    const first = this.#chunks[0];
    if (!first) return this.#ended ? null : WOULD_BLOCK;
    if (first.length <= max) {
      this.#chunks.shift();
      return first;
    }
    this.#chunks[0] = first.subarray(max);
    return first.subarray(0, max);
  }
  readableBytes(): number {
    return this.#chunks.reduce((n, c) => n + c.length, 0);
  }
  ready(): Promise<void> {
    if (this.#chunks.length > 0 || this.#ended || this.#error) return Promise.resolve();
    return this.#waiters.wait();
  }
  close(): void {
    this.closed = true;
  }
}

/** An in-memory OutputStream with an optional window: past `capacity` unread bytes it pushes back. */
export class FakeOutput implements OutputStream {
  readonly written: Uint8Array[] = [];
  #pending = 0;
  #waiters = new Waiters();
  capacity: number;
  broken = false;
  closed = false;

  constructor(capacity = Infinity) {
    this.capacity = capacity;
  }
  text(): string {
    return Buffer.concat(this.written).toString();
  }
  /** The reader consumes everything, opening the window again. */
  drain(): void {
    this.#pending = 0;
    this.#waiters.wake();
  }
  tryWrite(bytes: Uint8Array): number {
    if (this.broken) throw new IoError('EPIPE');
    const n = Math.min(bytes.length, this.capacity - this.#pending);
    if (n <= 0) return 0;
    this.written.push(bytes.slice(0, n));
    this.#pending += n;
    return n;
  }
  writableBytes(): number {
    return Math.max(0, Math.min(this.capacity - this.#pending, 65536));
  }
  ready(): Promise<void> {
    return this.writableBytes() > 0 || this.broken ? Promise.resolve() : this.#waiters.wait();
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {
    this.closed = true;
  }
}

export class FakeConnection implements Connection {
  readonly input = new FakeInput();
  readonly output = new FakeOutput();
  readonly shutdowns: ShutdownHow[] = [];
  closed = false;
  shutdown(how: ShutdownHow): void {
    this.shutdowns.push(how);
    if (how !== 'read') this.output.broken = true;
  }
  close(): void {
    this.closed = true;
  }
}

export class FakeListener implements Listener {
  #pending: Connection[] = [];
  #waiters = new Waiters();
  closed = false;
  connect(): FakeConnection {
    const c = new FakeConnection();
    this.#pending.push(c);
    this.#waiters.wake();
    return c;
  }
  tryAccept(): Connection | WouldBlock {
    return this.#pending.shift() ?? WOULD_BLOCK;
  }
  pendingConnections(): number {
    return this.#pending.length;
  }
  ready(): Promise<void> {
    return this.#pending.length > 0 ? Promise.resolve() : this.#waiters.wait();
  }
  close(): void {
    this.closed = true;
  }
}
