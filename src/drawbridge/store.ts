/**
 * The registry's storage: content-addressed blobs on disk (named by their SHA-256) and a node:sqlite
 * index of users, repositories, tags and tree nodes.
 *
 * Crash safety comes from the order of writes: a body is streamed to a temporary file, fsynced and
 * renamed into `blobs/` before the index row that references it is committed, and a tag turns
 * complete in the same transaction that stores its last node. A server killed at any point leaves
 * at worst a temporary file or an unreferenced blob, both removed at the next start, and never a
 * visible tag with a missing node.
 */
import { DatabaseSync } from 'node:sqlite';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, type ReadStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type Digests, MultiHasher, sha256Hex } from './digest.ts';
import { compareSemver } from './names.ts';
import type { Directory, TreeEntry } from './types.ts';

export interface StoreOptions {
  /** How long a pending tag may sit idle before it and its blobs are removed. */
  pendingTtlMs?: number;
  now?: () => number;
}

export const DEFAULT_PENDING_TTL_MS = 24 * 60 * 60 * 1000;

export interface StoredDocument {
  bytes: Uint8Array;
  type: string;
}

export interface UserRow extends StoredDocument {
  name: string;
  subject: string;
}

export interface RepoRow extends StoredDocument {
  owner: string;
  name: string;
  public: boolean;
  allowDebugKeeps: boolean;
  allowSoftwareKeeps: boolean;
}

export interface TagRow extends StoredDocument {
  id: number;
  name: string;
  complete: boolean;
  touchedAt: number;
}

export interface NodeRow {
  path: string;
  type: string;
  length: number;
  /** What the parent (or the tag entry) says this node's digests are. */
  expected: Digests;
  /** All four digests, once stored. */
  digests: Digests | undefined;
  blob: string | undefined;
}

export type PutOutcome = 'created' | 'exists' | 'conflict';

/** A body written to a temporary file, hashed on the way. */
export interface StagedBlob {
  path: string;
  length: number;
  digests: Digests;
}

export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

export class Store {
  readonly dir: string;
  readonly #db: DatabaseSync;
  readonly #ttl: number;
  readonly #now: () => number;
  /** Blobs renamed into place whose index row is not yet committed: the sweeper must not take them. */
  readonly #committing = new Set<string>();

  private constructor(dir: string, db: DatabaseSync, options: StoreOptions) {
    this.dir = dir;
    this.#db = db;
    this.#ttl = options.pendingTtlMs ?? DEFAULT_PENDING_TTL_MS;
    this.#now = options.now ?? Date.now;
  }

  static open(dir: string, options: StoreOptions = {}): Store {
    for (const sub of ['', 'blobs', 'tmp']) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
    lock(join(dir, 'server.pid'));
    const db = new DatabaseSync(join(dir, 'index.sqlite'));
    db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = FULL;
      PRAGMA foreign_keys = ON;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS users (
        name TEXT PRIMARY KEY, subject TEXT NOT NULL, record BLOB NOT NULL, type TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS repos (
        owner TEXT NOT NULL REFERENCES users(name), name TEXT NOT NULL,
        config BLOB NOT NULL, type TEXT NOT NULL, public INTEGER NOT NULL,
        allow_debug INTEGER NOT NULL, allow_software INTEGER NOT NULL,
        PRIMARY KEY (owner, name));
      CREATE TABLE IF NOT EXISTS tags (
        id INTEGER PRIMARY KEY, owner TEXT NOT NULL, repo TEXT NOT NULL, name TEXT NOT NULL,
        entry BLOB NOT NULL, type TEXT NOT NULL, complete INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL, touched_at INTEGER NOT NULL,
        UNIQUE (owner, repo, name), FOREIGN KEY (owner, repo) REFERENCES repos(owner, name));
      CREATE TABLE IF NOT EXISTS nodes (
        tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE, path TEXT NOT NULL,
        type TEXT NOT NULL, length INTEGER NOT NULL, expected TEXT NOT NULL,
        digests TEXT, blob TEXT, PRIMARY KEY (tag_id, path));
      CREATE INDEX IF NOT EXISTS nodes_blob ON nodes(blob);
      CREATE INDEX IF NOT EXISTS nodes_missing ON nodes(tag_id) WHERE blob IS NULL;
    `);
    const store = new Store(dir, db, options);
    store.#recover();
    return store;
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
    rmSync(join(this.dir, 'server.pid'), { force: true });
  }

  /** After a crash: drop temporary files, then blobs no row references. */
  #recover(): void {
    rmSync(join(this.dir, 'tmp'), { recursive: true, force: true });
    mkdirSync(join(this.dir, 'tmp'), { mode: 0o700 });
    this.sweep();
  }

  #tx<T>(fn: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const out = fn();
      this.#db.exec('COMMIT');
      return out;
    } catch (err) {
      this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  // ---- users and repositories -------------------------------------------------------------

  getUser(name: string): UserRow | undefined {
    const r = this.#db.prepare('SELECT name, subject, record, type FROM users WHERE name = ?').get(name);
    return r ? { name: r.name as string, subject: r.subject as string, bytes: r.record as Uint8Array, type: r.type as string } : undefined;
  }

  createUser(name: string, subject: string, doc: StoredDocument): PutOutcome {
    return this.#tx(() => {
      const existing = this.getUser(name);
      if (existing) return sameBytes(existing.bytes, doc.bytes) ? 'exists' : 'conflict';
      this.#db.prepare('INSERT INTO users (name, subject, record, type) VALUES (?, ?, ?, ?)').run(name, subject, doc.bytes, doc.type);
      return 'created';
    });
  }

  getRepo(owner: string, name: string): RepoRow | undefined {
    const r = this.#db.prepare('SELECT * FROM repos WHERE owner = ? AND name = ?').get(owner, name);
    if (!r) return undefined;
    return {
      owner,
      name,
      bytes: r.config as Uint8Array,
      type: r.type as string,
      public: r.public === 1,
      allowDebugKeeps: r.allow_debug === 1,
      allowSoftwareKeeps: r.allow_software === 1,
    };
  }

  createRepo(owner: string, name: string, config: { public: boolean; allowDebugKeeps: boolean; allowSoftwareKeeps: boolean }, doc: StoredDocument): PutOutcome {
    return this.#tx(() => {
      const existing = this.getRepo(owner, name);
      if (existing) return sameBytes(existing.bytes, doc.bytes) ? 'exists' : 'conflict';
      this.#db
        .prepare('INSERT INTO repos (owner, name, config, type, public, allow_debug, allow_software) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(owner, name, doc.bytes, doc.type, config.public ? 1 : 0, config.allowDebugKeeps ? 1 : 0, config.allowSoftwareKeeps ? 1 : 0);
      return 'created';
    });
  }

  // ---- tags --------------------------------------------------------------------------------

  /** Complete tags only, in SemVer order. */
  listTags(owner: string, repo: string): string[] {
    const rows = this.#db.prepare('SELECT name FROM tags WHERE owner = ? AND repo = ? AND complete = 1').all(owner, repo);
    return rows.map((r) => r.name as string).sort(compareSemver);
  }

  getTag(owner: string, repo: string, name: string): TagRow | undefined {
    const r = this.#db.prepare('SELECT id, name, entry, type, complete, touched_at FROM tags WHERE owner = ? AND repo = ? AND name = ?').get(owner, repo, name);
    if (!r) return undefined;
    return { id: r.id as number, name: r.name as string, bytes: r.entry as Uint8Array, type: r.type as string, complete: r.complete === 1, touchedAt: r.touched_at as number };
  }

  /**
   * Records a tag entry. A new tag is pending until every node is stored. The same bytes again
   * (a resumed publish) answer 'exists' and keep the pending tag alive; other bytes are a conflict.
   */
  putTag(owner: string, repo: string, name: string, doc: StoredDocument, root: TreeEntry): PutOutcome {
    return this.#tx(() => {
      const now = this.#now();
      const existing = this.getTag(owner, repo, name);
      if (existing) {
        if (!sameBytes(existing.bytes, doc.bytes)) return 'conflict';
        if (!existing.complete) this.#db.prepare('UPDATE tags SET touched_at = ? WHERE id = ?').run(now, existing.id);
        return 'exists';
      }
      const r = this.#db
        .prepare('INSERT INTO tags (owner, repo, name, entry, type, created_at, touched_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id')
        .get(owner, repo, name, doc.bytes, doc.type, now, now);
      this.#insertNode(r?.id as number, '', root);
      return 'created';
    });
  }

  /** Abandons a pending tag; complete tags are immutable. */
  deletePendingTag(owner: string, repo: string, name: string): 'deleted' | 'missing' | 'complete' {
    const blobs = this.#tx(() => {
      const tag = this.getTag(owner, repo, name);
      if (!tag) return 'missing' as const;
      if (tag.complete) return 'complete' as const;
      return this.#deleteTag(tag.id);
    });
    if (typeof blobs === 'string') return blobs;
    this.#removeUnreferenced(blobs);
    return 'deleted';
  }

  #deleteTag(id: number): string[] {
    const blobs = this.#db.prepare('SELECT DISTINCT blob FROM nodes WHERE tag_id = ? AND blob IS NOT NULL').all(id).map((r) => r.blob as string);
    this.#db.prepare('DELETE FROM nodes WHERE tag_id = ?').run(id);
    this.#db.prepare('DELETE FROM tags WHERE id = ?').run(id);
    return blobs;
  }

  // ---- nodes -------------------------------------------------------------------------------

  #insertNode(tagId: number, path: string, entry: TreeEntry): void {
    this.#db
      .prepare('INSERT INTO nodes (tag_id, path, type, length, expected) VALUES (?, ?, ?, ?, ?)')
      .run(tagId, path, entry.type, entry.length, JSON.stringify(entry.digest));
  }

  getNode(tagId: number, path: string): NodeRow | undefined {
    const r = this.#db.prepare('SELECT path, type, length, expected, digests, blob FROM nodes WHERE tag_id = ? AND path = ?').get(tagId, path);
    if (!r) return undefined;
    return {
      path: r.path as string,
      type: r.type as string,
      length: r.length as number,
      expected: JSON.parse(r.expected as string) as Digests,
      digests: r.digests ? (JSON.parse(r.digests as string) as Digests) : undefined,
      blob: (r.blob as string | null) ?? undefined,
    };
  }

  countNodes(tagId: number): number {
    return this.#db.prepare('SELECT COUNT(*) AS n FROM nodes WHERE tag_id = ?').get(tagId)?.n as number;
  }

  /** Nodes of a pending tag still to be uploaded. */
  missingNodes(tagId: number): string[] {
    return this.#db.prepare('SELECT path FROM nodes WHERE tag_id = ? AND blob IS NULL ORDER BY path').all(tagId).map((r) => r.path as string);
  }

  /**
   * Streams `body` into a temporary file, hashing it, and stops with an error as soon as it grows
   * past `maxLength`. The caller verifies the digests, then commits or discards.
   */
  async stage(body: Readable | Uint8Array, maxLength: number): Promise<StagedBlob> {
    const path = join(this.dir, 'tmp', `${randomBytes(12).toString('hex')}.part`);
    const hasher = new MultiHasher();
    // flush: fsync before close, so that a blob renamed into place is on disk.
    const out = createWriteStream(path, { flags: 'wx', mode: 0o600, flush: true, highWaterMark: 1 << 20 });
    try {
      const source = body instanceof Uint8Array ? [body] : body;
      await pipeline(
        source,
        async function* (chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            hasher.update(chunk);
            if (hasher.length > maxLength) throw new StoreError(`body is longer than ${maxLength} bytes`);
            yield chunk;
          }
        },
        out,
      );
      if (!out.closed) await once(out, 'close');
    } catch (err) {
      // The file may still be opening: wait for the stream to close, or rm could run before it exists.
      if (!out.closed) {
        const closed = once(out, 'close').catch(() => {});
        out.destroy();
        await closed;
      }
      await rm(path, { force: true });
      if ((err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE' || (err as NodeJS.ErrnoException).code === 'ECONNRESET') {
        throw new StoreError('the client closed the connection mid-body');
      }
      throw err;
    }
    return { path, length: hasher.length, digests: hasher.digest() };
  }

  async discard(staged: StagedBlob): Promise<void> {
    await rm(staged.path, { force: true });
  }

  blobPath(hex: string): string {
    return join(this.dir, 'blobs', hex.slice(0, 2), hex);
  }

  /**
   * Moves a verified staged body into the blob store and records it as the content of node `path`.
   * For a directory, its entries become the nodes still expected. Returns whether the node was new
   * and whether this completed the tag.
   */
  async commitNode(tagId: number, path: string, staged: StagedBlob, directory?: Directory): Promise<{ outcome: PutOutcome; completed: boolean }> {
    const hex = sha256Hex(staged.digests);
    const target = this.blobPath(hex);
    this.#committing.add(hex);
    try {
      await mkdir(join(this.dir, 'blobs', hex.slice(0, 2)), { recursive: true, mode: 0o700 });
      const present = await stat(target).then(
        (s) => s.size === staged.length,
        () => false,
      );
      if (present) await rm(staged.path, { force: true });
      else await rename(staged.path, target);
      return this.#tx(() => {
        const node = this.getNode(tagId, path);
        if (!node) throw new StoreError('the tag was removed while this node was uploaded');
        if (node.blob !== undefined) return { outcome: 'exists' as const, completed: false };
        this.#db.prepare('UPDATE nodes SET digests = ?, blob = ? WHERE tag_id = ? AND path = ?').run(JSON.stringify(staged.digests), hex, tagId, path);
        if (directory) {
          for (const [name, entry] of Object.entries(directory)) this.#insertNode(tagId, path === '' ? name : `${path}/${name}`, entry);
        }
        this.#db.prepare('UPDATE tags SET touched_at = ? WHERE id = ?').run(this.#now(), tagId);
        const missing = this.#db.prepare('SELECT COUNT(*) AS n FROM nodes WHERE tag_id = ? AND blob IS NULL').get(tagId)?.n as number;
        if (missing === 0) this.#db.prepare('UPDATE tags SET complete = 1 WHERE id = ?').run(tagId);
        return { outcome: 'created' as const, completed: missing === 0 };
      });
    } finally {
      this.#committing.delete(hex);
    }
  }

  openBlob(hex: string, options: { highWaterMark?: number } = {}): ReadStream {
    return createReadStream(this.blobPath(hex), { highWaterMark: options.highWaterMark ?? 1 << 20 });
  }

  // ---- maintenance -------------------------------------------------------------------------

  /** Removes pending tags idle for longer than the TTL, then blobs that nothing references. */
  sweep(): { expiredTags: number; removedBlobs: number } {
    const cutoff = this.#now() - this.#ttl;
    const expired = this.#db.prepare('SELECT id FROM tags WHERE complete = 0 AND touched_at < ?').all(cutoff).map((r) => r.id as number);
    for (const id of expired) this.#tx(() => this.#deleteTag(id));
    return { expiredTags: expired.length, removedBlobs: this.#collectGarbage() };
  }

  #removeUnreferenced(blobs: string[]): void {
    const used = this.#db.prepare('SELECT 1 FROM nodes WHERE blob = ? LIMIT 1');
    for (const hex of blobs) {
      if (this.#committing.has(hex) || used.get(hex)) continue;
      rmSync(this.blobPath(hex), { force: true });
    }
  }

  #collectGarbage(): number {
    const root = join(this.dir, 'blobs');
    const used = this.#db.prepare('SELECT 1 FROM nodes WHERE blob = ? LIMIT 1');
    let removed = 0;
    for (const prefix of readdirSync(root)) {
      const sub = join(root, prefix);
      if (!statSync(sub).isDirectory()) continue;
      for (const hex of readdirSync(sub)) {
        if (this.#committing.has(hex) || used.get(hex)) continue;
        rmSync(join(sub, hex), { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Counts for tests and `--json` status: blobs on disk and temporary files. */
  diskUsage(): { blobs: number; tmp: number } {
    const root = join(this.dir, 'blobs');
    let blobs = 0;
    for (const prefix of readdirSync(root)) blobs += readdirSync(join(root, prefix)).length;
    return { blobs, tmp: readdirSync(join(this.dir, 'tmp')).length };
  }
}

/** One server per store: the sweeper would otherwise take another server's blobs mid-commit. */
function lock(path: string): void {
  try {
    writeFileSync(path, String(process.pid), { flag: 'wx', mode: 0o600 });
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const pid = Number(readFileSync(path, 'utf8').trim());
  if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
    throw new StoreError(`the store is in use by process ${pid}`);
  }
  writeFileSync(path, String(process.pid), { mode: 0o600 }); // left behind by a server that died
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}
