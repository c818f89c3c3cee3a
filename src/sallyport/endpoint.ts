/**
 * One end of the sallyport: frames and validates every incoming message, enforces the
 * per-stream credit windows and the message rates, and hands good messages to the role
 * (host or Keep). The first violation stops all processing and is reported once; what
 * happens next is the role's decision (the host kills the Keep, the Keep exits).
 */
import type { Duplex, Readable, Writable } from 'node:stream';
import { FrameDecoder, ProtocolError, encodeFrame, joinPieces } from './frame.ts';
import { decodeMessage, encodeMessage } from './messages.ts';
import { controlFrame, creditFrame, dataFrame, dataFrameHead, decodeHot, decodeHotControl, decodeHotDataPieces } from './hot.ts';
import type { Direction, HostMessage, KeepMessage, Message } from './messages.ts';

// process.getBuiltinModule: both roles load this module at start-up, the Keep without node:fs's ESM facade.
const { writeSync, writevSync } = process.getBuiltinModule('node:fs');

/** Bytes a sender may have in flight on one stream before the receiver grants more. */
export const INITIAL_WINDOW = 1024 * 1024;
/** Largest `data` payload a sender produces (receivers accept up to MAX_CHUNK_BYTES). */
export const DATA_CHUNK_BYTES = 256 * 1024;
/** From this size on, `sendData` writes the caller's bytes after the frame head instead of copying them. */
const ZERO_COPY_BYTES = 16 * 1024;

export interface RateLimit {
  /** Sustained messages per second. */
  perSecond: number;
  /** Messages allowed in a burst above the sustained rate. */
  burst: number;
}
/** Every frame counts against `frames`; messages other than data and credit also against `control`. */
export const DEFAULT_RATES: { frames: RateLimit; control: RateLimit } = {
  frames: { perSecond: 200_000, burst: 200_000 },
  control: { perSecond: 20_000, burst: 20_000 },
};

const noop = (): void => {};

/** Milliseconds on a monotonic clock (the global `performance` loads node:perf_hooks, milliseconds of start-up). */
function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

class TokenBucket {
  readonly #limit: RateLimit;
  #tokens: number;
  #stamp = nowMs();
  constructor(limit: RateLimit) {
    this.#limit = limit;
    this.#tokens = limit.burst;
  }
  take(): boolean {
    if (this.#tokens < 1) {
      const now = nowMs();
      this.#tokens = Math.min(this.#limit.burst, this.#tokens + ((now - this.#stamp) / 1000) * this.#limit.perSecond);
      this.#stamp = now;
      if (this.#tokens < 1) return false;
    }
    this.#tokens -= 1;
    return true;
  }
}

export interface EndpointOptions<In extends Message> {
  /** Which way incoming messages travel: a host endpoint receives 'keep-to-host'. */
  incoming: Direction;
  onMessage(message: In): void;
  /** Called once, on the first malformed or hostile input. */
  onViolation(error: ProtocolError): void;
  /** Called once when the pipe ends or fails. */
  onClose(): void;
  rates?: { frames: RateLimit; control: RateLimit };
}

interface StreamState {
  sendWindow: number;
  recvWindow: number;
  /** Bytes consumed locally and not yet granted back to the peer. */
  ungranted: number;
  waiters: (() => void)[];
}

/**
 * Reads of a pipe into one reused buffer (src/keep/process/pipes.ts): each chunk given to the
 * listener is valid only until it returns.
 */
export interface ReusedReads {
  listen(sink: (chunk: Uint8Array) => void): void;
  /**
   * Makes bytes of the chunk being handled outlive it: the same view (its buffer is then not
   * reused until `release`) or a copy.
   */
  keep(bytes: Uint8Array): { bytes: Uint8Array; release(): void };
}

/**
 * What an endpoint speaks over: one duplex (a socket pair's end), or two pipes, one each way,
 * which end together as a socket does (src/keep/process/pipes.ts). With `reads`, incoming bytes
 * come from it instead of `input`'s 'data' events, and the bytes of a `data` message are valid
 * only during onMessage unless the role keeps them (`Endpoint.keep`).
 */
export type SallyportPipe = Duplex | { input: Readable; output: Writable; outputFd?: number; reads?: ReusedReads };

/** A message's frame, as Endpoint.send writes it. */
export function messageFrame(message: Message): Uint8Array {
  return controlFrame(message) ?? encodeFrame(encodeMessage(message));
}

export class Endpoint<In extends Message, Out extends Message> {
  readonly #in: Readable;
  readonly #out: Writable;
  /** The descriptor under #out, written directly (writevSync) while #out has nothing queued. */
  readonly #outFd: number | undefined;
  readonly #options: EndpointOptions<In>;
  readonly #decoder = new FrameDecoder();
  readonly #frames: TokenBucket;
  readonly #control: TokenBucket;
  readonly #streams = new Map<number, StreamState>();
  readonly #closedStreams = new Set<number>();
  /** A pipe whose read buffers are reused after #receive returns, unless kept. */
  readonly #reads: ReusedReads | undefined;
  #failed = false;
  #closed = false;
  // Frames handed to the pipe whose write has not completed, and who waits for none to be left.
  #unwritten = 0;
  #flushWaiters: (() => void)[] = [];
  #ended = false;
  #endWaiters: (() => void)[] = [];

  constructor(pipe: SallyportPipe, options: EndpointOptions<In>) {
    const [input, output] = 'input' in pipe ? [pipe.input, pipe.output] : [pipe, pipe];
    this.#in = input;
    this.#out = output;
    this.#outFd = 'input' in pipe ? pipe.outputFd : undefined;
    this.#options = options;
    const rates = options.rates ?? DEFAULT_RATES;
    this.#frames = new TokenBucket(rates.frames);
    this.#control = new TokenBucket(rates.control);
    const reads = 'input' in pipe ? pipe.reads : undefined;
    this.#reads = reads;
    if (reads) reads.listen((chunk) => this.#receive(chunk));
    else input.on('data', (chunk: Uint8Array) => this.#receive(chunk));
    input.on('error', () => this.#end());
    input.on('close', () => this.#end());
    input.on('end', () => this.#end());
    if ((output as unknown) !== input) output.on('error', () => this.#end());
  }

  get failed(): boolean {
    return this.#failed;
  }

  /**
   * Bytes of an incoming `data` message that the role keeps after onMessage returns (a queued
   * write): with a pipe whose read buffers are reused, they stay valid until `release` (call it
   * once the write is done); otherwise they are the bytes themselves.
   */
  keep(bytes: Uint8Array): { bytes: Uint8Array; release(): void } {
    return this.#reads ? this.#reads.keep(bytes) : { bytes, release: noop };
  }

  /**
   * Bytes of an incoming `data` message that the role holds with no point to release them at:
   * a copy when they are a view of a reused read buffer, otherwise the bytes themselves.
   */
  own(bytes: Uint8Array): Uint8Array {
    return this.#reads ? Buffer.from(bytes) : bytes;
  }

  send(message: Out): void {
    this.#write(messageFrame(message));
  }

  /**
   * Writes bytes that are frames already (messageFrame), after everything sent before: the rest
   * of frames whose start the role wrote to the pipe itself before the endpoint existed (the
   * host's hand-over to a Keep bin/enarx started, adopted.ts writeBeforeStreams).
   */
  sendFrames(bytes: Uint8Array): void {
    this.#write(bytes);
  }

  #write(frame: Uint8Array): void {
    if (this.#closed) return;
    // Straight to the descriptor while nothing is queued, as #writeNow: a process's first frames
    // (the host's hello and module, the Keep's last eof and exit) then do not wait for the stream
    // machinery's first, unoptimised writes.
    if (this.#writeNow(frame)) return;
    this.#unwritten++;
    this.#out.write(frame, this.#written);
  }

  /** Registers a stream so that both sides may send data on it with a fresh window. */
  openStream(id: number): void {
    if (this.#streams.has(id) || this.#closedStreams.has(id)) throw new ProtocolError(`stream ${id} is reused`);
    this.#streams.set(id, { sendWindow: INITIAL_WINDOW, recvWindow: INITIAL_WINDOW, ungranted: 0, waiters: [] });
  }

  isOpen(id: number): boolean {
    return this.#streams.has(id);
  }

  /** True for a stream that was open once: late messages for it are dropped, not violations. */
  wasOpen(id: number): boolean {
    return this.#closedStreams.has(id);
  }

  closeStream(id: number): void {
    const s = this.#streams.get(id);
    if (!s) return;
    this.#streams.delete(id);
    this.#closedStreams.add(id);
    for (const wake of s.waiters.splice(0)) wake();
  }

  /**
   * Sends bytes on a stream, in chunks that fit the peer's window; resolves when the last
   * chunk is handed to the pipe, or false if the stream closed first. Large chunks go out
   * from `bytes` itself, not a copy: callers hand over buffers they no longer change (socket
   * reads, TLS records, copies of guest memory).
   */
  async sendData(stream: number, bytes: Uint8Array): Promise<boolean> {
    let offset = 0;
    while (offset < bytes.length) {
      const s = this.#streams.get(stream);
      if (!s || this.#closed) return false;
      if (s.sendWindow === 0) {
        await new Promise<void>((resolve) => s.waiters.push(resolve));
        continue;
      }
      offset += this.sendOwned(stream, bytes.subarray(offset));
    }
    return true;
  }

  /**
   * Sends as much of `bytes` as the window allows, now, as sendData does (large chunks from
   * `bytes` itself); returns how much. Relays call it first and wait only when the window is short.
   */
  sendOwned(stream: number, bytes: Uint8Array): number {
    const s = this.#streams.get(stream);
    if (!s || this.#closed) return 0;
    let offset = 0;
    while (offset < bytes.length && s.sendWindow > 0) {
      const n = Math.min(bytes.length - offset, s.sendWindow, DATA_CHUNK_BYTES);
      s.sendWindow -= n;
      const chunk = bytes.subarray(offset, offset + n);
      if (n < ZERO_COPY_BYTES) this.#write(dataFrame(stream, chunk));
      else {
        // One writev of the frame's head and the caller's bytes.
        this.#out.cork();
        this.#write(dataFrameHead(stream, n));
        this.#write(chunk);
        this.#out.uncork();
      }
      offset += n;
    }
    return offset;
  }

  /**
   * Sends as much of `bytes` as the window allows, now, without waiting; returns how much.
   * The bytes are copied into the frame before this returns.
   */
  trySendData(stream: number, bytes: Uint8Array): number {
    const s = this.#streams.get(stream);
    if (!s || this.#closed) return 0;
    const n = Math.min(bytes.length, s.sendWindow, DATA_CHUNK_BYTES);
    if (n === 0) return 0;
    s.sendWindow -= n;
    const chunk = bytes.subarray(0, n);
    if (n < ZERO_COPY_BYTES || !this.#writeNow(dataFrameHead(stream, n), chunk)) this.#write(dataFrame(stream, chunk));
    return n;
  }

  /**
   * Writes a frame's head and bytes to the descriptor at once, if there is one and nothing is
   * queued before them: the kernel copies the bytes before this returns (guest memory, in the
   * Keep, needs no copy of its own), and a frame costs no buffer, no queued write and no wake-up
   * for the descriptor to become writable. What the pipe does not take now is copied and queued.
   * False if nothing was written (no descriptor, writes queued, the pipe full or failing: the
   * queued path then meets the same state and reports it as before).
   */
  #writeNow(head: Uint8Array, bytes?: Uint8Array): boolean {
    const out = this.#out;
    if (this.#outFd === undefined || this.#closed || out.writableLength > 0 || out.writableCorked > 0 || out.destroyed) return false;
    let written: number;
    try {
      written = bytes ? writevSync(this.#outFd, [head, bytes]) : writeSync(this.#outFd, head);
    } catch {
      return false;
    }
    if (written === 0) return false;
    const total = head.length + (bytes?.length ?? 0);
    if (written < total) {
      // Queued: the stream writes it once the pipe has room (this.#write would try the pipe again now).
      const rest = Buffer.allocUnsafe(total - written);
      if (written < head.length) {
        rest.set(head.subarray(written));
        if (bytes) rest.set(bytes, head.length - written);
      } else {
        rest.set(bytes!.subarray(written - head.length));
      }
      this.#unwritten++;
      this.#out.write(rest, this.#written);
    }
    return true;
  }

  /** Runs `fn`, holding the frames it sends until it returns, so that they leave in one write. */
  batch(fn: () => void): void {
    this.#out.cork();
    try {
      fn();
    } finally {
      this.#out.uncork();
    }
  }

  /** Resolves once the stream has at least `min` bytes of window to send, or is closed. */
  async whenWritable(stream: number, min = 1): Promise<void> {
    for (;;) {
      const s = this.#streams.get(stream);
      if (!s || s.sendWindow >= min || this.#closed) return;
      await new Promise<void>((resolve) => s.waiters.push(resolve));
    }
  }

  /** Resolves once everything written so far has left for the pipe (or the pipe is gone). */
  drained(): Promise<void> {
    // Not 'drain': it comes only after a write found the buffer full, so a few bytes still
    // queued below the high-water mark would be waited for forever.
    if (this.#closed || this.#unwritten === 0 || this.#out.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => this.#flushWaiters.push(resolve));
  }

  readonly #written = (): void => {
    // Called for every write, also with an error when the pipe is destroyed.
    if (--this.#unwritten === 0) for (const resolve of this.#flushWaiters.splice(0)) resolve();
  };

  /** Space the peer has granted on a stream, in bytes. */
  sendWindow(stream: number): number {
    return this.#streams.get(stream)?.sendWindow ?? 0;
  }

  /** Tells the peer that `n` received bytes of `stream` were consumed, so it may send more. */
  consumed(stream: number, n: number): void {
    const s = this.#streams.get(stream);
    if (!s || n <= 0) return;
    s.ungranted += n;
    // Grant in batches of a quarter window: fewer frames, and the sender never stalls.
    if (s.ungranted >= INITIAL_WINDOW / 4 || s.recvWindow + s.ungranted <= INITIAL_WINDOW / 2) {
      s.recvWindow += s.ungranted;
      this.#write(creditFrame(stream, s.ungranted));
      s.ungranted = 0;
    }
  }

  /** Reports a violation found by the role (bad id, unexpected message) and stops processing. */
  violation(message: string): void {
    this.#fail(new ProtocolError(message));
  }

  /** Ends our side of the pipe; resolves once everything sent has left this process. */
  close(): Promise<void> {
    const pipe = this.#out;
    if (!this.#closed) {
      this.#closed = true;
      pipe.end();
    }
    if (pipe.writableFinished || pipe.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      pipe.once('finish', () => resolve());
      pipe.once('close', () => resolve());
    });
  }

  #receive(chunk: Uint8Array): void {
    this.#receiveFrames(chunk);
    // What is held for an incomplete frame must outlive the read buffer.
    if (this.#reads && !this.#failed) this.#decoder.ownLast();
  }

  #receiveFrames(chunk: Uint8Array): void {
    if (this.#failed) return;
    let frames: Uint8Array[][];
    try {
      frames = this.#decoder.pushPieces(chunk);
    } catch (err) {
      this.#fail(err as ProtocolError);
      return;
    }
    for (const pieces of frames) {
      if (this.#failed) return;
      let message: In;
      // A data frame that spans pipe reads goes on as one data message per piece, not copied
      // into one array: the same bytes in the same order, checked against the window as a whole.
      let rest: Uint8Array[] | undefined;
      try {
        if (!this.#frames.take()) throw new ProtocolError('message rate exceeded');
        const split = pieces.length > 1 ? decodeHotDataPieces(pieces) : undefined;
        if (split) {
          message = { t: 'data', stream: split.stream, bytes: split.pieces[0]! } as In;
          rest = split.pieces;
          let length = 0;
          for (const p of split.pieces) length += p.length;
          this.#checkData(split.stream, length);
        } else {
          const payload = joinPieces(pieces);
          const hot = decodeHot(payload);
          // Only `data` bytes may be views of a reused read buffer: anything else is decoded from a copy.
          const own = hot || !this.#reads || pieces.length > 1 ? payload : new Uint8Array(payload);
          message = (hot ?? decodeHotControl(own, this.#options.incoming) ?? decodeMessage(own, this.#options.incoming)) as In;
          if (message.t !== 'data' && message.t !== 'credit' && message.t !== 'module' && message.t !== 'provision' && !this.#control.take()) {
            throw new ProtocolError('control message rate exceeded');
          }
          if (message.t === 'data') this.#checkData(message.stream, message.bytes.length);
          else if (message.t === 'credit') this.#applyCredit(message.stream, message.bytes);
        }
      } catch (err) {
        this.#fail(err instanceof ProtocolError ? err : new ProtocolError(String(err)));
        return;
      }
      if (message.t === 'credit') continue;
      try {
        if (!rest) this.#options.onMessage(message);
        else for (const bytes of rest) if (!this.#failed) this.#options.onMessage({ t: 'data', stream: (message as { stream: number }).stream, bytes } as In);
      } catch (err) {
        this.#fail(err instanceof ProtocolError ? err : new ProtocolError(err instanceof Error ? err.message : String(err)));
        return;
      }
    }
  }

  #checkData(stream: number, length: number): void {
    const s = this.#streams.get(stream);
    if (!s) {
      if (this.#closedStreams.has(stream)) return;
      throw new ProtocolError(`data for unknown stream ${stream}`);
    }
    if (length > s.recvWindow) throw new ProtocolError(`data on stream ${stream} exceeds the granted window (${length} > ${s.recvWindow})`);
    s.recvWindow -= length;
  }

  #applyCredit(stream: number, bytes: number): void {
    const s = this.#streams.get(stream);
    if (!s) {
      if (this.#closedStreams.has(stream)) return;
      throw new ProtocolError(`credit for unknown stream ${stream}`);
    }
    if (s.sendWindow + bytes > INITIAL_WINDOW) throw new ProtocolError(`credit on stream ${stream} grows the window past ${INITIAL_WINDOW} bytes`);
    s.sendWindow += bytes;
    for (const wake of s.waiters.splice(0)) wake();
  }

  #fail(error: ProtocolError): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#in.pause();
    this.#options.onViolation(error);
  }

  /** Resolves once the pipe has ended (the peer closed its half) or failed. */
  ended(): Promise<void> {
    if (this.#ended) return Promise.resolve();
    return new Promise<void>((resolve) => this.#endWaiters.push(resolve));
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const resolve of this.#endWaiters.splice(0)) resolve();
    this.#closed = true;
    for (const s of this.#streams.values()) for (const wake of s.waiters.splice(0)) wake();
    for (const resolve of this.#flushWaiters.splice(0)) resolve();
    this.#options.onClose();
  }
}

export type HostEndpoint = Endpoint<KeepMessage, HostMessage>;
export type KeepEndpoint = Endpoint<HostMessage, KeepMessage>;
