/**
 * Framing of the pipe between the host and a keepmgr Keep: the sallyport's (a 4-byte big-endian
 * length, then CBOR), each payload one CBOR map with a string `t`. Frames may be larger than the
 * sallyport's 1 MiB, since provisioning carries a whole module in one JWE; both sides still cap
 * them, so a hostile peer cannot make the other buffer without bound.
 */
import { encode, decode } from 'cborg';
import { FrameDecoder as ByteFrames } from '../../sallyport/frame.ts';

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

/** Length-prefix splitting is the sallyport's; this layer decodes each payload as a CBOR map. */
export class FrameDecoder {
  readonly #frames: ByteFrames;

  constructor(maxFrameBytes = MAX_FRAME_BYTES) {
    this.#frames = new ByteFrames(maxFrameBytes);
  }

  /** Feeds bytes; returns the complete messages they finish. Throws FrameError on malformed input. */
  push(chunk: Uint8Array): Message[] {
    let payloads: Uint8Array[];
    try {
      payloads = this.#frames.push(chunk);
    } catch (err) {
      throw new FrameError((err as Error).message);
    }
    return payloads.map((body) => {
      let msg: unknown;
      try {
        msg = decode(body);
      } catch (err) {
        throw new FrameError(`frame is not valid CBOR: ${(err as Error).message}`);
      }
      if (typeof msg !== 'object' || msg === null || Array.isArray(msg) || typeof (msg as Message).t !== 'string') {
        throw new FrameError('frame is not a CBOR map with a string "t"');
      }
      return msg as Message;
    });
  }

  get pending(): number {
    return this.#frames.pending;
  }
}
