/**
 * The hot path: `data` and `credit` messages, which carry every stdio and socket byte, encoded
 * and decoded without the general CBOR codec; and the few control messages at either end of every
 * run (`module`, `eof`, `close`, `exit`), so that a short run does not wait for the general
 * codec's first, unoptimised calls. They are written and read in exactly the
 * canonical form that the strict general codec writes and accepts (shortest-form heads, definite
 * lengths, nothing trailing), so the wire format is unchanged. Anything in another shape is left
 * to the general decoder, which accepts or refuses it as before: this path only ever accepts a
 * subset of what the general decoder accepts, with the same result.
 */
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES } from './frame.ts';
import { MAX_CHUNK_BYTES, MAX_EXIT_CODE, MAX_STREAM_ID } from './messages.ts';
import type { Direction, Message } from './messages.ts';

/** How a message of `items` array items starts: the array's head, then its type name as a short text string. */
const typePrefix = (items: number, name: string) => Uint8Array.of(0x80 | items, 0x60 | name.length, ...new TextEncoder().encode(name));
const DATA_PREFIX = typePrefix(3, 'data');
const CREDIT_PREFIX = typePrefix(3, 'credit');
const MAJOR_UINT = 0;
const MAJOR_BYTES = 2;
const MAX_CREDIT = 0x7fff_ffff;

export type HotMessage = { t: 'data'; stream: number; bytes: Uint8Array } | { t: 'credit'; stream: number; bytes: number };

/** Bytes of the shortest CBOR head for a value below 2^32. */
function headBytes(value: number): number {
  return value < 24 ? 1 : value < 0x100 ? 2 : value < 0x1_0000 ? 3 : 5;
}

function writeHead(out: Uint8Array, at: number, major: number, value: number): number {
  const m = major << 5;
  if (value < 24) {
    out[at] = m | value;
    return at + 1;
  }
  if (value < 0x100) {
    out[at] = m | 24;
    out[at + 1] = value;
    return at + 2;
  }
  if (value < 0x1_0000) {
    out[at] = m | 25;
    out[at + 1] = value >>> 8;
    out[at + 2] = value & 0xff;
    return at + 3;
  }
  out[at] = m | 26;
  out[at + 1] = value >>> 24;
  out[at + 2] = (value >>> 16) & 0xff;
  out[at + 3] = (value >>> 8) & 0xff;
  out[at + 4] = value & 0xff;
  return at + 5;
}

function writeLength(out: Uint8Array, payloadLength: number): void {
  if (payloadLength > MAX_FRAME_BYTES) throw new RangeError(`frame of ${payloadLength} bytes is over ${MAX_FRAME_BYTES}`);
  out[0] = payloadLength >>> 24;
  out[1] = (payloadLength >>> 16) & 0xff;
  out[2] = (payloadLength >>> 8) & 0xff;
  out[3] = payloadLength & 0xff;
}

/** Length prefix and CBOR head of a `data` frame whose `length` payload bytes follow it on the pipe. */
export function dataFrameHead(stream: number, length: number): Uint8Array {
  const head = DATA_PREFIX.length + headBytes(stream) + headBytes(length);
  const out = new Uint8Array(FRAME_HEADER_BYTES + head);
  writeLength(out, head + length);
  out.set(DATA_PREFIX, FRAME_HEADER_BYTES);
  writeHead(out, writeHead(out, FRAME_HEADER_BYTES + DATA_PREFIX.length, MAJOR_UINT, stream), MAJOR_BYTES, length);
  return out;
}

/** A whole `data` frame with `bytes` copied in: one allocation, one copy. */
export function dataFrame(stream: number, bytes: Uint8Array): Uint8Array {
  const head = DATA_PREFIX.length + headBytes(stream) + headBytes(bytes.length);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + head + bytes.length);
  writeLength(out, head + bytes.length);
  out.set(DATA_PREFIX, FRAME_HEADER_BYTES);
  const at = writeHead(out, writeHead(out, FRAME_HEADER_BYTES + DATA_PREFIX.length, MAJOR_UINT, stream), MAJOR_BYTES, bytes.length);
  out.set(bytes, at);
  return out;
}

/** A whole `credit` frame. */
export function creditFrame(stream: number, n: number): Uint8Array {
  const head = CREDIT_PREFIX.length + headBytes(stream) + headBytes(n);
  const out = new Uint8Array(FRAME_HEADER_BYTES + head);
  writeLength(out, head);
  out.set(CREDIT_PREFIX, FRAME_HEADER_BYTES);
  writeHead(out, writeHead(out, FRAME_HEADER_BYTES + CREDIT_PREFIX.length, MAJOR_UINT, stream), MAJOR_UINT, n);
  return out;
}

function startsWith(payload: Uint8Array, prefix: Uint8Array): boolean {
  if (payload.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (payload[i] !== prefix[i]) return false;
  return true;
}

/**
 * Reads a shortest-form head of `major` at `at`: [value, next offset], or undefined for any
 * other major type, a longer-than-needed form, or a value of 2^32 or more.
 */
function readHead(p: Uint8Array, at: number, major: number): [number, number] | undefined {
  if (at >= p.length) return undefined;
  const ib = p[at]!;
  if (ib >> 5 !== major) return undefined;
  const info = ib & 31;
  if (info < 24) return [info, at + 1];
  if (info === 24) {
    if (at + 2 > p.length || p[at + 1]! < 24) return undefined;
    return [p[at + 1]!, at + 2];
  }
  if (info === 25) {
    if (at + 3 > p.length) return undefined;
    const v = (p[at + 1]! << 8) | p[at + 2]!;
    return v < 0x100 ? undefined : [v, at + 3];
  }
  if (info === 26) {
    if (at + 5 > p.length) return undefined;
    const v = p[at + 1]! * 0x100_0000 + ((p[at + 2]! << 16) | (p[at + 3]! << 8) | p[at + 4]!);
    return v < 0x1_0000 ? undefined : [v, at + 5];
  }
  return undefined;
}

/**
 * Decodes a canonical `data` or `credit` message whose fields are all in range; undefined for
 * anything else (the general decoder then decides). `bytes` of a `data` message is a view
 * into `payload`, not a copy.
 */
export function decodeHot(payload: Uint8Array): HotMessage | undefined {
  if (startsWith(payload, DATA_PREFIX)) {
    const stream = readHead(payload, DATA_PREFIX.length, MAJOR_UINT);
    if (!stream || stream[0] > MAX_STREAM_ID) return undefined;
    const length = readHead(payload, stream[1], MAJOR_BYTES);
    if (!length || length[0] < 1 || length[0] > MAX_CHUNK_BYTES || length[1] + length[0] !== payload.length) return undefined;
    return { t: 'data', stream: stream[0], bytes: payload.subarray(length[1]) };
  }
  if (startsWith(payload, CREDIT_PREFIX)) {
    const stream = readHead(payload, CREDIT_PREFIX.length, MAJOR_UINT);
    if (!stream || stream[0] > MAX_STREAM_ID) return undefined;
    const n = readHead(payload, stream[1], MAJOR_UINT);
    if (!n || n[0] < 1 || n[0] > MAX_CREDIT || n[1] !== payload.length) return undefined;
    return { t: 'credit', stream: stream[0], bytes: n[0] };
  }
  return undefined;
}

/** Longest head of a canonical `data` message: its prefix, then a stream id and a length of up to 5 bytes each. */
const MAX_DATA_HEAD = DATA_PREFIX.length + 5 + 5;

/**
 * decodeHot's `data` case for a payload that arrived in pieces (a frame across pipe reads):
 * the stream and the data bytes as views of the pieces, never a copy of them; undefined for
 * anything decodeHot would not accept as `data` (the caller joins the pieces and decodes them
 * as before). Only the head, at most 16 bytes, is copied when the first piece is shorter.
 */
export function decodeHotDataPieces(pieces: readonly Uint8Array[]): { stream: number; pieces: Uint8Array[] } | undefined {
  let total = 0;
  for (const p of pieces) total += p.length;
  let head = pieces[0]!;
  if (head.length < MAX_DATA_HEAD && head.length < total) {
    head = new Uint8Array(Math.min(MAX_DATA_HEAD, total));
    let at = 0;
    for (const p of pieces) {
      if (at === head.length) break;
      const n = Math.min(p.length, head.length - at);
      head.set(p.subarray(0, n), at);
      at += n;
    }
  }
  if (!startsWith(head, DATA_PREFIX)) return undefined;
  const stream = readHead(head, DATA_PREFIX.length, MAJOR_UINT);
  if (!stream || stream[0] > MAX_STREAM_ID) return undefined;
  const length = readHead(head, stream[1], MAJOR_BYTES);
  if (!length || length[0] < 1 || length[0] > MAX_CHUNK_BYTES || length[1] + length[0] !== total) return undefined;
  const out: Uint8Array[] = [];
  let skip = length[1];
  for (const p of pieces) {
    if (skip >= p.length) {
      skip -= p.length;
      continue;
    }
    out.push(skip === 0 ? p : p.subarray(skip));
    skip = 0;
  }
  return { stream: stream[0], pieces: out };
}

const MODULE_PREFIX = typePrefix(2, 'module');
const EOF_PREFIX = typePrefix(2, 'eof');
const CLOSE_PREFIX = typePrefix(2, 'close');
const EXIT_PREFIX = typePrefix(2, 'exit');

/** A frame of `prefix` then one shortest-form head (and `bytes`, for a byte string). */
function prefixedFrame(prefix: Uint8Array, major: number, value: number, bytes?: Uint8Array): Uint8Array {
  const head = prefix.length + headBytes(value);
  const out = new Uint8Array(FRAME_HEADER_BYTES + head + (bytes?.length ?? 0));
  writeLength(out, head + (bytes?.length ?? 0));
  out.set(prefix, FRAME_HEADER_BYTES);
  const at = writeHead(out, FRAME_HEADER_BYTES + prefix.length, major, value);
  if (bytes) out.set(bytes, at);
  return out;
}

const isUint32 = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffff_ffff;

/**
 * The whole frame of a `module`, `eof`, `close` or `exit` message, byte for byte the general
 * encoder's; undefined for any other message, or a field outside what the hot path writes (the
 * general encoder then writes it, as before).
 */
export function controlFrame(m: Message): Uint8Array | undefined {
  switch (m.t) {
    case 'module':
      return m.bytes.length <= MAX_CHUNK_BYTES ? prefixedFrame(MODULE_PREFIX, MAJOR_BYTES, m.bytes.length, m.bytes) : undefined;
    case 'eof':
      return isUint32(m.stream) ? prefixedFrame(EOF_PREFIX, MAJOR_UINT, m.stream) : undefined;
    case 'close':
      return isUint32(m.stream) ? prefixedFrame(CLOSE_PREFIX, MAJOR_UINT, m.stream) : undefined;
    case 'exit':
      return isUint32(m.code) ? prefixedFrame(EXIT_PREFIX, MAJOR_UINT, m.code) : undefined;
    default:
      return undefined;
  }
}

/** The one shortest-form head of `major` that follows `prefix` and ends `payload`, or undefined. */
function soleHead(payload: Uint8Array, prefix: Uint8Array, major: number): [number, number] | undefined {
  if (!startsWith(payload, prefix)) return undefined;
  const head = readHead(payload, prefix.length, major);
  if (!head) return undefined;
  const end = major === MAJOR_BYTES ? head[1] + head[0] : head[1];
  return end === payload.length ? head : undefined;
}

/**
 * Decodes a canonical `module` (from the host), `eof` (either way) or `exit` (from the Keep) whose
 * fields are in range, as the general decoder would for `incoming`; undefined for anything else
 * (the general decoder then decides). A module's bytes are a view into `payload`.
 */
export function decodeHotControl(payload: Uint8Array, incoming: Direction): Message | undefined {
  if (payload[0] !== 0x82) return undefined;
  if (incoming === 'host-to-keep') {
    const module = soleHead(payload, MODULE_PREFIX, MAJOR_BYTES);
    if (module && module[0] >= 1 && module[0] <= MAX_CHUNK_BYTES) return { t: 'module', bytes: payload.subarray(module[1]) };
  } else {
    const exit = soleHead(payload, EXIT_PREFIX, MAJOR_UINT);
    if (exit && exit[0] <= MAX_EXIT_CODE) return { t: 'exit', code: exit[0] };
  }
  const eof = soleHead(payload, EOF_PREFIX, MAJOR_UINT);
  if (eof && eof[0] <= MAX_STREAM_ID) return { t: 'eof', stream: eof[0] };
  return undefined;
}
