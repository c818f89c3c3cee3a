/**
 * A Drawbridge client: every request and response carries Content-Digest, uploads stream from
 * disk, downloads are verified while they stream (against the response's digests and, when known,
 * against the entry in the parent directory or tag), and nothing unverified lands at its final path.
 */
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { type Duplex, type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digests, digestBytes, firstMismatch, formatContentDigest, MultiHasher, parseContentDigest } from './digest.ts';
import { parseEntryName } from './names.ts';
import {
  type Directory,
  essence,
  type FlattenedJws,
  MEDIA_TYPES,
  parseDirectory,
  parseTagEntry,
  type RepositoryConfig,
  serializeDirectory,
  serializeTreeEntry,
  type TagEntry,
  type TreeEntry,
  type UserRecord,
} from './types.ts';

export const CLIENT_API_VERSION = '0.1.0';

export interface ClientOptions {
  /** The server's origin, e.g. `https://registry.example:8443`. */
  url: string;
  token?: string;
  /** Extra roots to trust for the server's certificate (PEM). */
  ca?: string | Buffer | Array<string | Buffer>;
  /** A client certificate and key (PEM), for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  apiVersion?: string;
  /**
   * Opens the client's connections itself, TLS included when the URL is https (a Keep dials
   * through its host and ends TLS inside the Keep); `ca`, `cert` and `key` are then unused. They
   * are kept alive and reused as the client's own are, so that fetching a package costs one
   * dial and one TLS handshake, not one per node.
   */
  connect?: (host: string, port: number) => Promise<Duplex>;
}

const MAX_SOCKETS = 8;

function dialInto(connect: NonNullable<ClientOptions['connect']>, host: string, port: number, done: (err: Error | null, stream?: Duplex) => void): undefined {
  connect(host, port).then((s) => done(null, poolable(s)), (err: Error) => done(err));
  return undefined;
}

type SocketTuning = 'ref' | 'unref' | 'setKeepAlive' | 'setTimeout';

/**
 * Node's agent tunes the connections it pools as sockets (ref, unref, keep-alive probes, idle
 * timeout). A dialled stream that is not one (a Keep's plain stream through its sallyport) has no
 * kernel socket to tune: it gets stand-ins that do nothing, and is pooled all the same.
 */
function poolable(stream: Duplex): Duplex {
  const s = stream as Duplex & Partial<Record<SocketTuning, () => unknown>>;
  for (const method of ['ref', 'unref', 'setKeepAlive', 'setTimeout'] as const) if (typeof s[method] !== 'function') s[method] = () => s;
  return s;
}

/** A keep-alive agent over the connections the caller dials (`connect`); idle ones are destroyed with the client. */
class DialingAgent extends HttpAgent {
  readonly #connect: NonNullable<ClientOptions['connect']>;
  constructor(connect: NonNullable<ClientOptions['connect']>) {
    super({ keepAlive: true, maxSockets: MAX_SOCKETS });
    this.#connect = connect;
  }
  override createConnection(options: { host?: string | null; port?: number | null }, done: (err: Error | null, stream?: Duplex) => void): undefined {
    return dialInto(this.#connect, String(options.host ?? ''), Number(options.port), done);
  }
}

/** The server answered with an error status; `message` is its one-line reason. */
export class DrawbridgeError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'DrawbridgeError';
    this.status = status;
  }
}

/** Bytes that do not match their digest, length or the entry that names them. */
export class IntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IntegrityError';
  }
}

export interface Coordinates {
  user: string;
  repo: string;
  tag: string;
}

export interface NodeMeta {
  type: string;
  length: number;
  digests: Digests;
}

export type Body = Uint8Array | (() => Readable);

export interface Progress {
  path: string;
  bytes: number;
  total: number;
}

export const MAX_DOCUMENT_BYTES = 1024 * 1024;

/**
 * Verifies a stream's length and digests as it passes through; fails at the end (before the last
 * chunk is released downstream) if anything differs, so a consumer that renames on 'finish' never
 * keeps bad bytes.
 */
export class VerifyingStream extends Transform {
  readonly #hasher = new MultiHasher();
  readonly #length: number;
  readonly #expected: Digests[];
  readonly #what: string;
  readonly #onBytes: ((n: number) => void) | undefined;
  #held: Buffer | undefined;

  constructor(length: number, expected: Digests[], what: string, onBytes?: (n: number) => void) {
    super({ highWaterMark: 1 << 20 });
    this.#length = length;
    this.#expected = expected;
    this.#what = what;
    this.#onBytes = onBytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#hasher.update(chunk);
    if (this.#hasher.length > this.#length) {
      done(new IntegrityError(`${this.#what}: more than the announced ${this.#length} bytes`));
      return;
    }
    this.#onBytes?.(this.#hasher.length);
    // Hold back the latest chunk so that the end of the data is only released once verified.
    const previous = this.#held;
    this.#held = chunk;
    done(null, previous);
  }

  override _flush(done: TransformCallback): void {
    if (this.#hasher.length !== this.#length) {
      done(new IntegrityError(`${this.#what}: got ${this.#hasher.length} bytes, expected ${this.#length}`));
      return;
    }
    const actual = this.#hasher.digest();
    for (const expected of this.#expected) {
      const bad = firstMismatch(expected, actual);
      if (bad) {
        done(new IntegrityError(`${this.#what}: ${bad} digest mismatch`));
        return;
      }
    }
    done(null, this.#held);
  }
}

function matchesEntry(meta: NodeMeta, entry: TreeEntry | undefined, what: string): void {
  if (!entry) return;
  if (meta.length !== entry.length) throw new IntegrityError(`${what}: the server says ${meta.length} bytes, its entry says ${entry.length}`);
  if (essence(meta.type) !== essence(entry.type)) throw new IntegrityError(`${what}: the server says type ${meta.type}, its entry says ${entry.type}`);
  const bad = firstMismatch(entry.digest, meta.digests);
  if (bad) throw new IntegrityError(`${what}: the server's ${bad} digest differs from its entry`);
}

export class DrawbridgeClient {
  readonly url: URL;
  readonly apiVersion: string;
  readonly #options: ClientOptions;
  readonly #agent: HttpsAgent | HttpAgent;

  constructor(options: ClientOptions) {
    this.#options = options;
    this.url = new URL(options.url);
    if (this.url.protocol !== 'https:' && this.url.protocol !== 'http:') throw new Error(`unsupported registry URL ${options.url}: use https://`);
    this.apiVersion = options.apiVersion ?? CLIENT_API_VERSION;
    this.#agent = options.connect
      ? new DialingAgent(options.connect)
      : this.url.protocol === 'https:'
        ? new HttpsAgent({ keepAlive: true, ca: options.ca, cert: options.cert, key: options.key, maxSockets: MAX_SOCKETS })
        : new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS });
  }

  close(): void {
    this.#agent.destroy();
  }

  /** The API path of an entity; `parts` are already-valid names. */
  path(...parts: string[]): string {
    return `/api/v${this.apiVersion}/${parts.join('/')}`;
  }

  /**
   * One request. A request on a kept-alive socket that the server closed meanwhile fails with
   * ECONNRESET before any response; it is sent once more on a fresh socket (Node's documented
   * pattern). Every Drawbridge request is idempotent, and bodies are bytes or re-openable streams.
   */
  async #send(method: string, path: string, options: { headers?: Record<string, string | number>; body?: Body; auth?: boolean } = {}): Promise<IncomingMessage> {
    try {
      return await this.#sendOnce(method, path, options);
    } catch (err) {
      if ((err as { reusedSocket?: boolean }).reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET') {
        return this.#sendOnce(method, path, options, true);
      }
      throw err;
    }
  }

  #sendOnce(method: string, path: string, options: { headers?: Record<string, string | number>; body?: Body; auth?: boolean }, fresh = false): Promise<IncomingMessage> {
    const headers: Record<string, string | number> = { ...options.headers };
    if (this.#options.token && options.auth !== false) headers.authorization = `Bearer ${this.#options.token}`;
    const connect = this.#options.connect;
    const hostname = this.url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(this.url.port || (this.url.protocol === 'https:' ? 443 : 80));
    // With `connect`, the stream it returns already speaks TLS when needed: plain HTTP on top.
    const request = !connect && this.url.protocol === 'https:' ? httpsRequest : httpRequest;
    // A resend goes on a socket of its own: any other pooled socket may be just as stale.
    const transport = !fresh
      ? { agent: this.#agent }
      : connect
        ? { createConnection: (_: unknown, done: (err: Error | null, stream?: Duplex) => void) => dialInto(connect, hostname, port, done) }
        : { agent: false, ca: this.#options.ca, cert: this.#options.cert, key: this.#options.key };
    return new Promise((resolve, reject) => {
      const req = request(
        {
          ...(connect ? {} : { protocol: this.url.protocol }),
          hostname,
          port,
          method,
          path,
          headers: connect ? { host: this.url.host, ...headers } : headers,
          ...(transport as object),
        },
        (res) => {
          // Readers forward errors where they consume; this one only keeps a dropped socket from crashing.
          res.on('error', () => {});
          resolve(res);
        },
      );
      req.on('error', (err) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })));
      const body = options.body;
      if (body === undefined) req.end();
      else if (body instanceof Uint8Array) req.end(body);
      else {
        const source = body();
        source.on('error', (err) => req.destroy(err));
        req.on('close', () => source.destroy());
        source.pipe(req);
      }
    });
  }

  async #expect(res: IncomingMessage, ok: number[]): Promise<void> {
    if (ok.includes(res.statusCode ?? 0)) return;
    const text = await readLimited(res, 4096).then((b) => b.toString('utf8').trim(), () => '');
    throw new DrawbridgeError(res.statusCode ?? 0, text || `request failed with status code ${res.statusCode}`);
  }

  /** Answers whether the server is up (GET /health). */
  async health(): Promise<void> {
    const res = await this.#send('GET', '/health', { auth: false });
    await this.#expect(res, [200]);
    res.resume();
  }

  async #putDocument(path: string, type: string, bytes: Uint8Array, extra: Record<string, string> = {}): Promise<'created' | 'exists'> {
    const res = await this.#send('PUT', path, {
      headers: { 'content-type': type, 'content-length': bytes.byteLength, 'content-digest': formatContentDigest(digestBytes(bytes)), ...extra },
      body: bytes,
    });
    await this.#expect(res, [200, 201]);
    res.resume();
    return res.statusCode === 201 ? 'created' : 'exists';
  }

  /** GETs a small document, verifying its digests. Returns undefined on 404. */
  async #getDocument(path: string, max = MAX_DOCUMENT_BYTES): Promise<{ meta: NodeMeta; bytes: Buffer; headers: IncomingMessage['headers'] } | undefined> {
    const res = await this.#send('GET', path);
    if (res.statusCode === 404) {
      res.resume();
      return undefined;
    }
    await this.#expect(res, [200]);
    const meta = responseMeta(res, path);
    if (meta.length > max) {
      res.destroy();
      throw new IntegrityError(`${path}: ${meta.length} bytes is more than the ${max} allowed for a document`);
    }
    const verifier = new VerifyingStream(meta.length, [meta.digests], path);
    res.on('error', (err) => verifier.destroy(err));
    const bytes = await readLimited(res.pipe(verifier), max);
    return { meta, bytes, headers: res.headers };
  }

  // ---- users and repositories -------------------------------------------------------------

  putUser(user: string, record: UserRecord): Promise<'created' | 'exists'> {
    return this.#putDocument(this.path(user), MEDIA_TYPES.json, Buffer.from(JSON.stringify(record)));
  }

  async getUser(user: string): Promise<UserRecord | undefined> {
    const doc = await this.#getDocument(this.path(user));
    return doc ? (JSON.parse(doc.bytes.toString('utf8')) as UserRecord) : undefined;
  }

  putRepository(user: string, repo: string, config: RepositoryConfig): Promise<'created' | 'exists'> {
    return this.#putDocument(this.path(user, repo), MEDIA_TYPES.json, Buffer.from(JSON.stringify(config)));
  }

  async getRepository(user: string, repo: string): Promise<RepositoryConfig | undefined> {
    const doc = await this.#getDocument(this.path(user, repo));
    return doc ? (JSON.parse(doc.bytes.toString('utf8')) as RepositoryConfig) : undefined;
  }

  async listTags(user: string, repo: string): Promise<string[]> {
    const doc = await this.#getDocument(this.path(user, repo, '_tag'));
    if (!doc) throw new DrawbridgeError(404, `repository ${user}/${repo} not found`);
    const tags: unknown = JSON.parse(doc.bytes.toString('utf8'));
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw new IntegrityError('tag list is not an array of strings');
    return tags;
  }

  // ---- tags and nodes --------------------------------------------------------------------

  /** PUTs a tag entry: a TreeEntry (unsigned) or a flattened JWS whose payload is one (signed). */
  putTag(at: Coordinates, entry: TreeEntry | FlattenedJws): Promise<'created' | 'exists'> {
    const signed = 'signature' in entry && 'payload' in entry;
    const bytes = Buffer.from(signed ? JSON.stringify(entry) : serializeTreeEntry(entry as TreeEntry));
    return this.#putDocument(this.path(at.user, at.repo, '_tag', at.tag), signed ? MEDIA_TYPES.jws : MEDIA_TYPES.entry, bytes);
  }

  /** The tag's entry as served (bytes verified against Content-Digest), or undefined if absent. */
  async getTag(at: Coordinates): Promise<{ entry: TagEntry; bytes: Buffer; mediaType: string; pending: boolean } | undefined> {
    const doc = await this.#getDocument(this.path(at.user, at.repo, '_tag', at.tag));
    if (!doc) return undefined;
    return {
      entry: parseTagEntry(doc.meta.type, doc.bytes),
      bytes: doc.bytes,
      mediaType: doc.meta.type,
      pending: doc.headers['drawbridge-tag-state'] === 'pending',
    };
  }

  /** Abandons a pending publish. */
  async deletePendingTag(at: Coordinates): Promise<void> {
    const res = await this.#send('DELETE', this.path(at.user, at.repo, '_tag', at.tag));
    await this.#expect(res, [204]);
    res.resume();
  }

  #nodePath(at: Coordinates, path: string[]): string {
    for (const p of path) parseEntryName(p);
    return this.path(at.user, at.repo, '_tag', at.tag, 'tree', ...path);
  }

  /** HEAD of a node: its meta, or undefined when it is not stored (yet). */
  async headNode(at: Coordinates, path: string[]): Promise<NodeMeta | undefined> {
    const res = await this.#send('HEAD', this.#nodePath(at, path));
    res.resume();
    if (res.statusCode === 404) return undefined;
    await this.#expect(res, [200]);
    return responseMeta(res, path.join('/'));
  }

  /** PUTs one node whose entry is `entry`; the body is bytes or a function that opens a stream. */
  async putNode(at: Coordinates, path: string[], entry: TreeEntry, body: Body): Promise<'created' | 'exists'> {
    const res = await this.#send('PUT', this.#nodePath(at, path), {
      headers: { 'content-type': entry.type, 'content-length': entry.length, 'content-digest': formatContentDigest(entry.digest) },
      body,
    });
    await this.#expect(res, [200, 201]);
    res.resume();
    return res.statusCode === 201 ? 'created' : 'exists';
  }

  /**
   * GETs a node as a stream that is verified while it flows: it errors, instead of ending, if the
   * bytes do not match the response's Content-Digest or the `expected` entry.
   */
  async getNode(at: Coordinates, path: string[], options: { expected?: TreeEntry; maxLength?: number; onBytes?: (n: number) => void } = {}): Promise<{ meta: NodeMeta; body: Readable }> {
    const what = `/${path.join('/')}`;
    const res = await this.#send('GET', this.#nodePath(at, path));
    await this.#expect(res, [200]);
    const meta = responseMeta(res, what);
    try {
      matchesEntry(meta, options.expected, what);
      if (options.maxLength !== undefined && meta.length > options.maxLength) throw new IntegrityError(`${what}: ${meta.length} bytes is more than the limit of ${options.maxLength}`);
    } catch (err) {
      res.destroy();
      throw err;
    }
    const expected = options.expected ? [meta.digests, options.expected.digest] : [meta.digests];
    const body = res.pipe(new VerifyingStream(meta.length, expected, what, options.onBytes));
    res.on('error', (err) => body.destroy(err));
    return { meta, body };
  }

  /** Downloads a node to `dest` through a temporary file, renamed only once verified. */
  async downloadNode(at: Coordinates, path: string[], dest: string, options: { expected?: TreeEntry; onBytes?: (n: number) => void } = {}): Promise<NodeMeta> {
    const { meta, body } = await this.getNode(at, path, options);
    const tmp = `${dest}.${randomBytes(6).toString('hex')}.partial`;
    try {
      await pipeline(body, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
      await rename(tmp, dest);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return meta;
  }

  // ---- whole packages --------------------------------------------------------------------

  /**
   * Publishes a tree as Enarx's client does: the tag entry first (signed when `sign` is given),
   * then the root and every node, parents before children. Publishing again resumes: nodes the
   * server already holds are skipped.
   */
  async publish(at: Coordinates, tree: LocalTree, options: { sign?: (root: TreeEntry) => Promise<FlattenedJws>; onProgress?: (p: Progress) => void } = {}): Promise<PublishResult> {
    const entry = options.sign ? await options.sign(tree.root) : tree.root;
    const tag = await this.putTag(at, entry);
    let uploaded = 0;
    let skipped = 0;
    for (const node of tree.nodes) {
      const name = `/${node.path.join('/')}`;
      if (tag === 'exists') {
        const have = await this.headNode(at, node.path);
        if (have && !firstMismatch(node.entry.digest, have.digests)) {
          skipped++;
          continue;
        }
      }
      const total = node.entry.length;
      let body: Body;
      if (node.bytes) body = node.bytes;
      else {
        const file = node.file as string;
        body = () => {
          const s = createReadStream(file, { highWaterMark: 1 << 20 });
          if (options.onProgress) {
            let sent = 0;
            s.on('data', (c: string | Buffer) => {
              sent += c.length;
              options.onProgress?.({ path: name, bytes: sent, total });
            });
          }
          return s;
        };
      }
      await this.putNode(at, node.path, node.entry, body);
      if (node.bytes) options.onProgress?.({ path: name, bytes: total, total });
      uploaded++;
    }
    return { tag, uploaded, skipped };
  }

  /**
   * Fetches a tag's whole tree into `dest` (which must not exist): each node is checked against
   * the entry its parent gives it, starting from the tag entry, and the tree appears at `dest`
   * only when every byte is verified. `verifyTag` decides whether the tag entry is acceptable
   * (signature checks live there) and returns the root entry to trust.
   */
  async fetchTree(at: Coordinates, dest: string, options: FetchOptions = {}): Promise<{ root: TreeEntry; files: number; bytes: number }> {
    const staging = `${dest}.${randomBytes(6).toString('hex')}.partial`;
    let files = 0;
    let bytes = 0;
    try {
      const root = await this.#walkTree(at, options, {
        directory: (path) => mkdir(join(staging, ...path), { mode: 0o755 }),
        file: async (path, entry, verified, as) => {
          await this.downloadNode(at, path, join(staging, ...(as ?? path)), { expected: entry, onBytes: verified });
          files++;
          bytes += entry.length;
        },
      });
      await rename(staging, dest);
      return { root, files, bytes };
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * Fetches a tag's whole tree into memory, verified as fetchTree verifies it: for code that may
   * not write files (a Keep), bounded by `maxBytes` in total. Keys are paths below the root
   * ('main.wasm', 'data/a.txt'); a tag whose root is a single file yields it as 'main.wasm'.
   */
  async fetchTreeToMemory(at: Coordinates, options: FetchOptions & { maxBytes?: number } = {}): Promise<{ root: TreeEntry; files: Map<string, Uint8Array>; directories: string[]; bytes: number }> {
    const files = new Map<string, Uint8Array>();
    const directories: string[] = [];
    let bytes = 0;
    const max = options.maxBytes ?? 256 * 1024 * 1024;
    const root = await this.#walkTree(at, options, {
      directory: (path) => {
        if (path.length > 0) directories.push(path.join('/'));
      },
      file: async (path, entry, verified, as) => {
        if (bytes + entry.length > max) throw new IntegrityError(`the package is larger than the ${max} bytes allowed`);
        const { body } = await this.getNode(at, path, { expected: entry, onBytes: verified });
        files.set((as ?? path).join('/'), await readLimited(body, entry.length));
        bytes += entry.length;
      },
    });
    return { root, files, directories, bytes };
  }

  /** Walks a tag's tree from its (verified) entry: directories are fetched and parsed here, files go to `sink`. */
  async #walkTree(at: Coordinates, options: FetchOptions, sink: TreeSink): Promise<TreeEntry> {
    const tag = await this.getTag(at);
    if (!tag) throw new DrawbridgeError(404, `tag ${at.user}/${at.repo}:${at.tag} not found`);
    if (tag.pending) throw new DrawbridgeError(409, `tag ${at.user}/${at.repo}:${at.tag} is still being published`);
    const root = options.verifyTag ? await options.verifyTag(tag.entry, tag.bytes) : tag.entry.root;
    const budget = { nodes: options.maxNodes ?? 10_000 };
    const walk = async (path: string[], entry: TreeEntry): Promise<void> => {
      if (--budget.nodes < 0) throw new IntegrityError('the tree has more nodes than allowed');
      if (essence(entry.type) === MEDIA_TYPES.directory) {
        const { body } = await this.getNode(at, path, { expected: entry, maxLength: MAX_DOCUMENT_BYTES });
        const dir = parseDirectory(await readLimited(body, MAX_DOCUMENT_BYTES), 4096);
        await sink.directory(path);
        for (const [name, child] of Object.entries(dir)) await walk([...path, name], child);
        return;
      }
      const name = `/${path.join('/')}`;
      await sink.file(path, entry, (n) => options.onProgress?.({ path: name, bytes: n, total: entry.length }));
    };
    if (essence(root.type) === MEDIA_TYPES.directory) await walk([], root);
    else {
      // A single-file tag is served at the tree root; it is stored as main.wasm.
      await sink.directory([]);
      const name = '/main.wasm';
      const progress = (n: number) => options.onProgress?.({ path: name, bytes: n, total: root.length });
      await sink.file([], root, progress, ['main.wasm']);
    }
    return root;
  }
}

export interface FetchOptions {
  verifyTag?: (entry: TagEntry, bytes: Buffer) => Promise<TreeEntry> | TreeEntry;
  onProgress?: (p: Progress) => void;
  maxNodes?: number;
}

interface TreeSink {
  directory(path: string[]): Promise<unknown> | void;
  /** `path` is the node's path on the server; `as`, when given, where it goes locally. */
  file(path: string[], entry: TreeEntry, onBytes: (n: number) => void, as?: string[]): Promise<void>;
}

export interface PublishResult {
  tag: 'created' | 'exists';
  uploaded: number;
  skipped: number;
}

function responseMeta(res: IncomingMessage, what: string): NodeMeta {
  const type = res.headers['content-type'];
  const lengthHeader = res.headers['content-length'];
  const digestHeader = res.headers['content-digest'];
  if (!type) throw new IntegrityError(`${what}: response has no Content-Type`);
  if (lengthHeader === undefined || !/^\d+$/.test(lengthHeader)) throw new IntegrityError(`${what}: response has no valid Content-Length`);
  if (digestHeader === undefined) throw new IntegrityError(`${what}: response has no Content-Digest`);
  return { type, length: Number(lengthHeader), digests: parseContentDigest(Array.isArray(digestHeader) ? digestHeader.join(',') : digestHeader) };
}

async function readLimited(stream: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) {
      stream.destroy();
      throw new IntegrityError(`response is larger than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

// ---- local trees ---------------------------------------------------------------------------

export interface LocalNode {
  path: string[];
  entry: TreeEntry;
  /** A directory's bytes, or undefined for a file (read from `file`). */
  bytes?: Buffer;
  file?: string;
}

export interface LocalTree {
  root: TreeEntry;
  /** Root first, parents before children: the order a server accepts them in. */
  nodes: LocalNode[];
}

/** Enarx's media types by extension: `.wasm`, `.toml`, anything else is octet-stream. */
export function mediaTypeFor(name: string): string {
  if (name.endsWith('.wasm')) return MEDIA_TYPES.wasm;
  if (name.endsWith('.toml')) return MEDIA_TYPES.toml;
  return MEDIA_TYPES.octetStream;
}

async function hashFile(path: string): Promise<{ length: number; digests: Digests }> {
  const h = new MultiHasher();
  const handle = await open(path, 'r');
  try {
    for await (const chunk of handle.createReadStream({ highWaterMark: 1 << 20, autoClose: false }) as AsyncIterable<Buffer>) h.update(chunk);
  } finally {
    await handle.close();
  }
  return { length: h.length, digests: h.digest() };
}

/**
 * Builds the tree of `path`: a single file becomes a one-entry directory holding it as `main.wasm`
 * (as Enarx's publish does), a directory is taken recursively. Files are hashed as they are read,
 * never held in memory; symbolic links and special files are refused.
 */
export async function buildTree(path: string): Promise<LocalTree> {
  const info = await lstat(path);
  if (info.isFile()) {
    const { length, digests } = await hashFile(path);
    const child: TreeEntry = { digest: digests, length, type: MEDIA_TYPES.wasm };
    const bytes = Buffer.from(serializeDirectory({ 'main.wasm': child }));
    const root: TreeEntry = { digest: digestBytes(bytes), length: bytes.length, type: MEDIA_TYPES.directory };
    return { root, nodes: [{ path: [], entry: root, bytes }, { path: ['main.wasm'], entry: child, file: path }] };
  }
  if (!info.isDirectory()) throw new Error(`${path} is neither a file nor a directory`);
  const nodes: LocalNode[] = [];
  const describe = async (dir: string, at: string[]): Promise<{ entry: TreeEntry; subtree: LocalNode[] }> => {
    const names = (await readdir(dir)).sort();
    const listing: Directory = {};
    const below: LocalNode[] = [];
    for (const name of names) {
      try {
        parseEntryName(name);
      } catch (err) {
        throw new Error(`${join(dir, name)}: ${(err as Error).message}`);
      }
      const full = join(dir, name);
      const st = await lstat(full);
      if (st.isDirectory()) {
        const sub = await describe(full, [...at, name]);
        listing[name] = sub.entry;
        below.push(...sub.subtree);
      } else if (st.isFile()) {
        const { length, digests } = await hashFile(full);
        listing[name] = { digest: digests, length, type: mediaTypeFor(name) };
        below.push({ path: [...at, name], entry: listing[name], file: full });
      } else {
        throw new Error(`${full} is not a regular file or directory (symbolic links are not published)`);
      }
    }
    const bytes = Buffer.from(serializeDirectory(listing));
    const entry: TreeEntry = { digest: digestBytes(bytes), length: bytes.length, type: MEDIA_TYPES.directory };
    return { entry, subtree: [{ path: at, entry, bytes }, ...below] };
  };
  const { entry, subtree } = await describe(path, []);
  nodes.push(...subtree);
  return { root: entry, nodes };
}

