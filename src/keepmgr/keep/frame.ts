/**
 * Framing of the pipe between the host and a keepmgr Keep: a 4-byte big-endian length, then one
 * CBOR map with a string `t`. Both sides cap frame sizes, so a hostile peer cannot make the other
 * buffer without bound.
 */
import { encode, decode } from 'cborg';

/** The largest provisioning message (100 MB wasm + Enarx.toml + stdin, base64url inside a JWE) fits. */
export const MAX_FRAME_BYTES = 160 * 1024 * 1024;

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export type Message = { t: string } & Record<string, unknown>;

export function encodeFrame(msg: Message): Uint8Array {
  const body = encode(msg);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

export class FrameDecoder {
  #buf: Buffer = Buffer.alloc(0);
  readonly #max: number;

  constructor(maxFrameBytes = MAX_FRAME_BYTES) {
    this.#max = maxFrameBytes;
  }

  /** Feeds bytes; returns the complete messages they finish. Throws FrameError on malformed input. */
  push(chunk: Uint8Array): Message[] {
    this.#buf = this.#buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buf, chunk]);
    const out: Message[] = [];
    while (this.#buf.length >= 4) {
      const len = this.#buf.readUInt32BE(0);
      if (len > this.#max) throw new FrameError(`frame of ${len} bytes exceeds the ${this.#max}-byte limit`);
      if (len === 0) throw new FrameError('empty frame');
      if (this.#buf.length < 4 + len) break;
      const body = this.#buf.subarray(4, 4 + len);
      this.#buf = this.#buf.subarray(4 + len);
      let msg: unknown;
      try {
        msg = decode(body);
      } catch (err) {
        throw new FrameError(`frame is not valid CBOR: ${(err as Error).message}`);
      }
      if (typeof msg !== 'object' || msg === null || Array.isArray(msg) || typeof (msg as Message).t !== 'string') {
        throw new FrameError('frame is not a CBOR map with a string "t"');
      }
      out.push(msg as Message);
    }
    return out;
  }

  get pending(): number {
    return this.#buf.length;
  }
}
