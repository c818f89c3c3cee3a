/**
 * Caps a module's own linear memory by rewriting the maximum in its memory section, so that
 * the engine itself makes memory.grow fail (return -1) past the limit: no instrumentation,
 * no cost per instruction. Imported memories are not touched (a WASI command defines its own).
 */

export const PAGE_SIZE = 65536;

export class MemoryCapError extends Error {
  /** What to do next, when it is not to raise the limit. */
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'MemoryCapError';
    this.hint = hint;
  }
}

class Reader {
  pos: number;
  readonly bytes: Uint8Array;
  constructor(bytes: Uint8Array, pos: number) {
    this.bytes = bytes;
    this.pos = pos;
  }
  byte(): number {
    if (this.pos >= this.bytes.length) throw new RangeError('truncated');
    return this.bytes[this.pos++]!;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) break;
      shift += 7;
      if (shift > 35) throw new RangeError('LEB128 too long');
    }
    return result;
  }
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/**
 * Returns the module with its memory's maximum lowered to `maxPages` (or the bytes unchanged
 * when no memory section exists, or the module is malformed: compiling it then reports the real
 * problem). Throws MemoryCapError when the memory needs more at start, or when the module
 * defines more than one memory.
 */
export function capMemory(bytes: Uint8Array, maxPages: number): Uint8Array {
  if (bytes.length < 8) return bytes;
  const r = new Reader(bytes, 8);
  try {
    while (r.pos < bytes.length) {
      const headerStart = r.pos;
      const id = r.byte();
      const size = r.u32();
      const start = r.pos;
      const end = start + size;
      if (end > bytes.length) return bytes;
      if (id !== 5) {
        r.pos = end;
        continue;
      }
      const body: number[] = [];
      const count = r.u32();
      // The limit is the module's whole linear memory; the engine caps each memory on its own, so
      // N memories (multi-memory, on by default in V8) would get N times the limit.
      if (count > 1) {
        throw new MemoryCapError(
          `the module defines ${count} linear memories, and a memory limit caps one`,
          'build the module with a single memory, or run it without a memory limit (the process Keep\'s rss limit still bounds it)',
        );
      }
      body.push(...leb(count));
      for (let i = 0; i < count; i++) {
        const flags = r.byte();
        if (flags & 0x04) throw new MemoryCapError('64-bit memories are not supported');
        const min = r.u32();
        const max = flags & 0x01 ? r.u32() : Infinity;
        if (min > maxPages) {
          throw new MemoryCapError(
            `the module needs ${mib(min)} of memory at start, above the limit of ${mib(maxPages)}`,
          );
        }
        body.push(flags | 0x01, ...leb(min), ...leb(Math.min(max, maxPages)));
      }
      if (r.pos !== end) return bytes;
      const section = [5, ...leb(body.length), ...body];
      const out = new Uint8Array(headerStart + section.length + (bytes.length - end));
      out.set(bytes.subarray(0, headerStart), 0);
      out.set(section, headerStart);
      out.set(bytes.subarray(end), headerStart + section.length);
      return out;
    }
  } catch (err) {
    if (err instanceof MemoryCapError) throw err;
    return bytes;
  }
  return bytes;
}

function mib(pages: number): string {
  const bytes = pages * PAGE_SIZE;
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(bytes % (1 << 20) ? 1 : 0)} MiB` : `${bytes / 1024} KiB`;
}
