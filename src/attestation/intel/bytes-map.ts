// A small bounded map keyed by exact byte content, for the verifier's warm path: lookups hash and
// compare the bytes in place (no key string, no copy), and entries keep their own copy of the key,
// so a caller reusing a buffer can never get a stale value back.
import { bytesEqual } from '../bytes.ts';

function fnv1a(parts: readonly Uint8Array[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) h = Math.imul(h ^ p[i]!, 0x01000193);
    h = Math.imul(h ^ 0xff, 0x01000193); // part boundary
  }
  return h >>> 0;
}

interface Entry<T> {
  key: Uint8Array[];
  value: T;
}

export class BytesMap<T> {
  readonly #buckets = new Map<number, Entry<T>[]>();
  readonly #limit: number;
  #size = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  get(...key: Uint8Array[]): T | undefined {
    const bucket = this.#buckets.get(fnv1a(key));
    const entry = bucket?.find((e) => e.key.length === key.length && e.key.every((part, i) => bytesEqual(part, key[i]!)));
    return entry?.value;
  }

  set(key: readonly Uint8Array[], value: T): void {
    if (this.#size >= this.#limit) {
      this.#buckets.clear();
      this.#size = 0;
    }
    const h = fnv1a(key);
    let bucket = this.#buckets.get(h);
    if (!bucket) this.#buckets.set(h, (bucket = []));
    bucket.push({ key: key.map((part) => part.slice()), value });
    this.#size++;
  }
}
