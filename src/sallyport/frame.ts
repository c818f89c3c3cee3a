/**
 * Framing: each message is a 4-byte big-endian length followed by that many bytes of CBOR.
 * The decoder is incremental (pipes deliver arbitrary slices) and refuses a frame before
 * buffering it when its declared length is zero or above the limit, so a hostile peer cannot
 * make the other side allocate more than one maximal frame.
 */
import { concatAll } from '../attestation/bytes.ts';

export const FRAME_HEADER_BYTES = 4;
/** Largest payload either side accepts: a 1 MiB module chunk or configuration, plus headroom. */
export const MAX_FRAME_BYTES = 1024 * 1024 + 4096;

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export function encodeFrame(payload: Uint8Array): Uint8Array {
  if (payload.length === 0 || payload.length > MAX_FRAME_BYTES) {
    throw new ProtocolError(`frame of ${payload.length} bytes is outside 1..${MAX_FRAME_BYTES}`);
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** Splits a byte stream into frame payloads. Throws ProtocolError on a bad length prefix. */
export class FrameDecoder {
  readonly #maxFrame: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #need = -1; // payload length of the frame being assembled, -1 while reading the header

  constructor(maxFrame = MAX_FRAME_BYTES) {
    this.#maxFrame = maxFrame;
  }

  /** Bytes held for an incomplete frame; zero at a frame boundary. */
  get pending(): number {
    return this.#buffered;
  }

  /** Feeds bytes; returns every payload completed by them, in order, each in one piece. */
  push(chunk: Uint8Array): Uint8Array[] {
    return this.pushPieces(chunk).map(joinPieces);
  }

  /**
   * Feeds bytes; returns every payload completed by them, in order, each as the pieces of the
   * pushed chunks it spans: views, never copies (a frame within one chunk is one piece).
   */
  pushPieces(chunk: Uint8Array): Uint8Array[][] {
    const frames: Uint8Array[][] = [];
    if (chunk.length === 0) return frames;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < FRAME_HEADER_BYTES) break;
        const header = joinPieces(this.#take(FRAME_HEADER_BYTES));
        const length = new DataView(header.buffer, header.byteOffset, 4).getUint32(0);
        if (length === 0) throw new ProtocolError('empty frame');
        if (length > this.#maxFrame) {
          throw new ProtocolError(`frame of ${length} bytes exceeds the ${this.#maxFrame}-byte limit`);
        }
        this.#need = length;
      }
      if (this.#buffered < this.#need) break;
      frames.push(this.#take(this.#need));
      this.#need = -1;
    }
    return frames;
  }

  /**
   * Copies the bytes of the last pushed chunk that are held for an incomplete frame into an array
   * of their own, so that the caller may reuse that chunk's memory. Bytes of earlier chunks are
   * held only when the whole last chunk is (they precede it), so calling this after each push
   * keeps every held byte in arrays of the decoder's own and copies each byte at most once.
   */
  ownLast(): void {
    const last = this.#chunks.length - 1;
    // new Uint8Array(view) copies (a Buffer's slice would not).
    if (last >= 0) this.#chunks[last] = new Uint8Array(this.#chunks[last]!);
  }

  /** The next n buffered bytes, as views of the chunks that hold them. */
  #take(n: number): Uint8Array[] {
    const pieces: Uint8Array[] = [];
    this.#buffered -= n;
    while (n > 0) {
      const head = this.#chunks[0]!;
      if (head.length <= n) {
        this.#chunks.shift();
        pieces.push(head);
        n -= head.length;
      } else {
        pieces.push(head.subarray(0, n));
        this.#chunks[0] = head.subarray(n);
        n = 0;
      }
    }
    return pieces;
  }
}

/** The pieces' bytes in one array: the piece itself when there is one, else a copy. */
export function joinPieces(pieces: readonly Uint8Array[]): Uint8Array {
  return pieces.length === 1 ? pieces[0]! : concatAll(pieces);
}
