import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** What the cache remembers about one document besides its bytes. */
export interface CacheMeta {
  url: string;
  fetchedAt: string;
  /** When the document stops being valid (CRL nextUpdate, TCB info nextUpdate, certificate notAfter). */
  expiresAt: string;
  /** Response headers worth keeping (Intel's issuer chains), by lower-case name. */
  headers: Record<string, string>;
}

export interface CacheEntry {
  body: Uint8Array;
  meta: CacheMeta;
}

/**
 * Collateral on disk: each document as a file of its own (usable directly with `enarx attest
 * verify`) plus `<file>.meta.json`. Writes go to a temporary file and are renamed into place, body
 * first and metadata last, so a reader never sees a half-written document: an entry exists once its
 * metadata does, and its body was complete before that.
 */
export class DiskCache {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  path(key: string): string {
    if (key.split('/').some((part) => part === '' || part === '.' || part === '..')) throw new Error(`bad cache key '${key}'`);
    return join(this.dir, key);
  }

  async get(key: string): Promise<CacheEntry | null> {
    const path = this.path(key);
    let meta: CacheMeta;
    try {
      meta = JSON.parse(await readFile(`${path}.meta.json`, 'utf8')) as CacheMeta;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      // A damaged metadata file is treated as a miss: the document is fetched again.
      if (err instanceof SyntaxError) return null;
      throw err;
    }
    if (typeof meta?.expiresAt !== 'string' || Number.isNaN(Date.parse(meta.expiresAt))) return null;
    try {
      return { body: new Uint8Array(await readFile(path)), meta };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async put(key: string, body: Uint8Array, meta: CacheMeta): Promise<string> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    await atomicWrite(path, body);
    await atomicWrite(`${path}.meta.json`, new TextEncoder().encode(`${JSON.stringify(meta, null, 2)}\n`));
    return path;
  }
}

let seq = 0;

/** Writes a file so that readers see either the old or the new content, never a mix. */
export async function atomicWrite(path: string, data: Uint8Array | string, mode?: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${seq++}`;
  await writeFile(tmp, data, { mode, flush: true });
  await rename(tmp, path);
}
