import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { ReusedReads, SallyportPipe } from '../../sallyport/index.ts';

/**
 * The sallyport over two pipes (bin/enarx cannot make a socket pair): `input` reads fd `from`,
 * `output` writes fd `to`. They end like the socket they stand for (not half-open): once the peer
 * has closed its end, ours is ended too.
 *
 * With `readBytes`, `input` reads into buffers of that size from a small pool and hands each read
 * to `reads` (its 'data' event never fires): a read takes all the pipe holds, up to the buffer,
 * in one system call, without a fresh allocation (and its page faults) per read.
 */
export function pipePair(from: number, to: number, readBytes?: number): { input: Socket; output: Socket; reads?: ReusedReads } {
  // node:net only now: it costs an adopted Keep's host milliseconds, which it spends once the
  // workload is on its way (adopted.ts writeBeforeStreams).
  const { Socket: NetSocket } = process.getBuiltinModule('node:net');
  const reads = readBytes === undefined ? undefined : reusedReads(readBytes);
  const input = new NetSocket(reads ? { fd: from, readable: true, writable: false, onread: reads.onread } : { fd: from, readable: true, writable: false });
  const output = new NetSocket({ fd: to, readable: false, writable: true });
  input.once('end', () => output.end());
  return reads ? { input, output, reads } : { input, output };
}

/**
 * Both ends read the sallyport into buffers this large, reused (ReadBuffers): one read takes what
 * the 1 MiB pipe (bin/enarx) holds, instead of 64 KiB in a fresh allocation each. (In the Keep,
 * 256 KiB buffers were slower: TLS echo 0.87x.)
 */
export const SALLYPORT_READ_BYTES = 1024 * 1024;

/** Reads into reused buffers of `size` bytes: pass `onread` to a net.Socket, and `reads` to its endpoint. */
export function reusedReads(size: number): ReusedReads & { onread: ReadBuffers['onread'] } {
  return new ReadBuffers(size);
}

/** Read buffers that may be held (pinned) at once by kept views, besides the one being read into. */
const MAX_PINNED = 8;

/**
 * The read buffers of a pipe. A chunk handed to the sink is valid only until the sink returns,
 * unless the sink keeps (part of) it: a kept view pins its buffer, which is read into again only
 * once every view kept of it is released, and the next read goes to another buffer. At most
 * MAX_PINNED buffers are pinned at once; past that, `keep` copies. So the host holds at most
 * (MAX_PINNED + 1) buffers besides what it copied, and copies nothing while the writes it queues
 * drain (a stdout pipe that is full for a moment). Reads that come before a sink listens are
 * copied and handed to it first.
 */
class ReadBuffers implements ReusedReads {
  readonly #size: number;
  #current: Buffer;
  readonly #free: Buffer[] = [];
  /** Kept views per pinned buffer. */
  readonly #pins = new Map<ArrayBufferLike, { buffer: Buffer; views: number }>();
  #sink: ((chunk: Uint8Array) => void) | undefined;
  readonly #early: Uint8Array[] = [];
  readonly onread: { buffer: () => Buffer; callback: (n: number, buf: Uint8Array) => boolean };

  constructor(size: number) {
    this.#size = size;
    this.#current = Buffer.allocUnsafeSlow(size);
    this.onread = {
      buffer: () => this.#next(),
      callback: (n, buf) => {
        const chunk = buf.subarray(0, n);
        if (this.#sink) this.#sink(chunk);
        else this.#early.push(Buffer.from(chunk));
        return true;
      },
    };
  }

  listen(sink: (chunk: Uint8Array) => void): void {
    this.#sink = sink;
    for (const chunk of this.#early.splice(0)) sink(chunk);
  }

  keep(bytes: Uint8Array): { bytes: Uint8Array; release(): void } {
    const current = this.#current;
    let pin = this.#pins.get(current.buffer);
    if (bytes.buffer !== current.buffer || (!pin && this.#pins.size >= MAX_PINNED)) return { bytes: Buffer.from(bytes), release: () => {} };
    if (!pin) this.#pins.set(current.buffer, (pin = { buffer: current, views: 0 }));
    pin.views++;
    let released = false;
    return {
      bytes,
      release: () => {
        if (released) return;
        released = true;
        if (--pin.views > 0) return;
        this.#pins.delete(pin.buffer.buffer);
        if (pin.buffer !== this.#current) this.#free.push(pin.buffer);
      },
    };
  }

  /** The buffer for the next read: the same one unless a view of it was kept. */
  #next(): Buffer {
    if (this.#pins.has(this.#current.buffer)) this.#current = this.#free.pop() ?? Buffer.allocUnsafeSlow(this.#size);
    return this.#current;
  }
}

/** The streams a sallyport pipe is made of: a socket, or both pipes of a pair. */
export function pipeSides(pipe: SallyportPipe): (Readable | Writable)[] {
  return 'input' in pipe ? [pipe.input, pipe.output] : [pipe];
}

/** Resolves once the sallyport pipe is closed: a socket, or both pipes of a pair. */
export function pipeClosed(pipe: SallyportPipe): Promise<void> {
  return Promise.all(pipeSides(pipe).map((s) => (s.closed ? Promise.resolve() : new Promise<void>((resolve) => s.once('close', () => resolve()))))).then(() => {});
}
