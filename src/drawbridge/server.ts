/**
 * The Drawbridge HTTPS API, compatible with Enarx's Drawbridge (paths, media types, Content-Digest,
 * name rules and status codes), over node:https with bodies streamed both ways.
 *
 *   GET|*        /health
 *   HEAD|GET|PUT /api/v{semver}/{user}
 *   HEAD|GET|PUT /api/v{semver}/{user}/{repo}
 *   GET          /api/v{semver}/{user}/{repo}/_tag
 *   HEAD|GET|PUT /api/v{semver}/{user}/{repo}/_tag/{tag}           (+ DELETE of a pending tag)
 *   HEAD|GET|PUT /api/v{semver}/{user}/{repo}/_tag/{tag}/tree[/{path}]
 */
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { type Digests, DigestError, digestBytes, firstMismatch, formatContentDigest, parseContentDigest } from './digest.ts';
import { NameError, parseRepositoryName, parseTagName, parseTreePath, parseUserName } from './names.ts';
import {
  checkSignedNames,
  DocumentError,
  essence,
  MEDIA_TYPES,
  parseDirectory,
  parseRepositoryConfig,
  parseTagEntry,
  parseUserRecord,
  type Directory,
} from './types.ts';
import { AuthError, type Authenticator, hasScope, type Principal, type ScopeContext, type ScopeLevel } from './auth.ts';
import { certificateOrigin, originRefusal } from './origin.ts';
import { type RepoRow, type StagedBlob, type Store, StoreError, type TagRow } from './store.ts';

/** The Drawbridge release whose API this one serves; clients ask for v0.1.0. */
export const API_VERSION = '0.4.3';

export interface Limits {
  /** User records, repository configs and tag entries. */
  maxDocumentBytes: number;
  maxDirectoryBytes: number;
  maxDirectoryEntries: number;
  /** Any one file in a tree. */
  maxNodeBytes: number;
  /** Nodes in one tag's tree. */
  maxTreeNodes: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxDocumentBytes: 64 * 1024,
  maxDirectoryBytes: 1024 * 1024,
  maxDirectoryEntries: 4096,
  maxNodeBytes: 1024 * 1024 * 1024,
  maxTreeNodes: 10_000,
};

export interface DrawbridgeOptions {
  store: Store;
  authenticator: Authenticator;
  tls: { cert: string | Buffer; key: string | Buffer; clientCa?: string | Buffer };
  limits?: Partial<Limits>;
  log?: (level: 'info' | 'warn' | 'debug', message: string) => void;
}

export class HttpError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

interface Route {
  user: string;
  repo?: string;
  tagList?: boolean;
  tag?: string;
  tree?: string[];
}

/** Parses an API path as Enarx's router does (crates/server/src/handle.rs). */
export function parseRoute(pathname: string): Route {
  const path = pathname.replace(/^\/+/, '');
  const notFound = () => new HttpError(404, `Route \`/${path}\` not found`);
  if (!path.startsWith('api')) throw notFound();
  const afterApi = path.slice(3).replace(/^\/+/, '');
  if (!afterApi.startsWith('v')) throw notFound();
  const slash = afterApi.indexOf('/');
  if (slash < 0) throw notFound();
  const version = afterApi.slice(1, slash);
  const rest = afterApi.slice(slash + 1);
  checkApiVersion(version);
  const trimmed = rest.replace(/^\/+/, '');
  const split = trimmed.indexOf('/_');
  const head = split < 0 ? trimmed : trimmed.slice(0, split);
  const tail = split < 0 ? '' : trimmed.slice(split + 1);
  if (head === '') throw notFound();
  const userEnd = head.indexOf('/');
  const user = wrapName('user', () => parseUserName(userEnd < 0 ? head : head.slice(0, userEnd)));
  const repoPart = userEnd < 0 ? '' : head.slice(userEnd + 1);
  if (repoPart === '') {
    if (tail !== '') throw notFound();
    return { user };
  }
  const repo = wrapName('repository', () => parseRepositoryName(repoPart));
  if (tail === '') return { user, repo };
  const parts = tail.split('/');
  const [kind, tag, prop] = parts;
  if (kind !== '_tag') throw new HttpError(404, 'Route not found on repository');
  if (tag === undefined || (tag === '' && parts.length === 2)) {
    if (parts.length > 2) throw new HttpError(404, 'Route not found on repository');
    return { user, repo, tagList: true };
  }
  const tagName = wrapName('tag', () => parseTagName(tag));
  if (prop === undefined) return { user, repo, tag: tagName };
  if (prop !== 'tree') throw new HttpError(404, 'Route not found on repository');
  const treePath = parts.slice(3).join('/');
  const tree = wrapName('tree path', () => parseTreePath(treePath));
  return { user, repo, tag: tagName, tree };
}

function wrapName<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof NameError) throw new HttpError(400, `Failed to parse ${what}: ${err.message}`);
    throw err;
  }
}

function checkApiVersion(version: string): void {
  const m = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:[-+][0-9A-Za-z.+-]*)?$/.exec(version);
  if (!m) throw new HttpError(400, `Failed to parse SemVer version from \`${version.slice(0, 40)}\``);
  const [major, minor] = [Number(m[1]), Number(m[2])];
  const [smajor, sminor] = API_VERSION.split('.').map(Number) as [number, number];
  if (major > smajor || (smajor === 0 && major === 0 && minor > sminor)) throw new HttpError(501, `Unsupported API version \`${version}\``);
}

interface Context {
  req: IncomingMessage;
  res: ServerResponse;
  route: Route;
  /** The verified client certificate, if the client presented one that chains to the CA. */
  certificate: Uint8Array | undefined;
  principal(): Promise<Principal>;
}

export class Drawbridge {
  readonly store: Store;
  readonly limits: Limits;
  readonly #auth: Authenticator;
  readonly #log: NonNullable<DrawbridgeOptions['log']>;

  constructor(options: Pick<DrawbridgeOptions, 'store' | 'authenticator' | 'limits' | 'log'>) {
    this.store = options.store;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#auth = options.authenticator;
    this.#log = options.log ?? (() => {});
  }

  /** The node:http request listener. */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    this.#dispatch(req, res)
      .catch((err: unknown) => this.#fail(res, err))
      .finally(() => {
        this.#log('info', `${req.method} ${req.url} ${res.statusCode} ${(performance.now() - started).toFixed(1)}ms`);
      });
  };

  #fail(res: ServerResponse, err: unknown): void {
    let status = 500;
    let message = 'Storage backend failure';
    let headers: Record<string, string> = {};
    if (err instanceof HttpError) ({ status, message, headers } = err);
    else if (err instanceof AuthError) {
      status = err.status;
      message = err.message;
      headers = { 'www-authenticate': `Bearer realm="drawbridge", error="invalid_token"` };
    } else if (err instanceof DocumentError || err instanceof DigestError || err instanceof NameError) {
      status = 400;
      message = err.message;
    } else {
      this.#log('warn', `internal error: ${(err as Error)?.stack ?? String(err)}`);
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = `${message}\n`;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
  }

  async #dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The raw path, not a URL-normalised one: `..` must reach the name rules, not be resolved away.
    const pathname = (req.url ?? '/').split('?', 1)[0] as string;
    if (pathname === '/health') {
      res.writeHead(200, { 'content-length': 0 });
      res.end();
      return;
    }
    const socket = req.socket as TLSSocket;
    let certificate: Uint8Array | undefined;
    if (typeof socket.getPeerX509Certificate === 'function') {
      const peer = socket.getPeerX509Certificate();
      if (peer) {
        if (!socket.authorized) {
          throw new HttpError(401, `client certificate is not trusted: ${String(socket.authorizationError ?? 'unknown issuer')} (use a certificate issued by this server's --ca)`);
        }
        certificate = peer.raw;
      }
    }
    const route = parseRoute(pathname);
    let principal: Promise<Principal> | undefined;
    const ctx: Context = {
      req,
      res,
      route,
      certificate,
      principal: () => (principal ??= this.#auth.authenticate(req.headers.authorization)),
    };
    const method = req.method ?? 'GET';
    if (route.tree) return this.#tree(ctx, method);
    if (route.tag) return this.#tag(ctx, method);
    if (route.tagList) {
      if (method !== 'GET') throw new HttpError(405, 'Method not allowed for repository tag query endpoint');
      return this.#tagList(ctx);
    }
    if (route.repo) return this.#repo(ctx, method);
    return this.#user(ctx, method);
  }

  // ---- authorisation ---------------------------------------------------------------------

  /** Enarx's assert_user: the token's subject is this user's, and it carries the scope. */
  async #assertUser(ctx: Context, user: string, context: ScopeContext, level: ScopeLevel): Promise<Principal> {
    const p = await ctx.principal();
    const row = this.store.getUser(user);
    if (!row) throw new HttpError(401, `User \`${user}\` not found`);
    if (row.subject !== p.subject) throw new HttpError(401, `You are logged in as \`${p.subject}\`, and not authorized for user \`${user}\``);
    if (!hasScope(p, context, level)) {
      throw new HttpError(401, `Token is missing a scope for level ${level}, context ${context}`, {
        'www-authenticate': `Bearer realm="drawbridge", error="insufficient_scope", scope="${level}:${context}"`,
      });
    }
    return p;
  }

  #repoOr404(user: string, repo: string): RepoRow {
    const row = this.store.getRepo(user, repo);
    if (!row) throw new HttpError(404, 'Not found');
    return row;
  }

  /**
   * Reading a repository's tags and trees: anyone if public; otherwise its owner (read scope) or a
   * client whose certificate chains to the CA and whose origin the repository accepts.
   */
  async #assertRepositoryRead(ctx: Context, repo: RepoRow): Promise<'public' | 'owner' | 'certificate'> {
    if (repo.public) return 'public';
    if (ctx.certificate && !ctx.req.headers.authorization) {
      const refusal = originRefusal(certificateOrigin(ctx.certificate), repo);
      if (refusal) throw new HttpError(403, refusal);
      return 'certificate';
    }
    await this.#assertUser(ctx, repo.owner, 'drawbridge_repositories', 'read');
    return 'owner';
  }

  /** Whether the request comes from the owner with a valid token (used to show pending tags). */
  async #isOwner(ctx: Context, owner: string): Promise<boolean> {
    if (!ctx.req.headers.authorization) return false;
    try {
      await this.#assertUser(ctx, owner, 'drawbridge_tags', 'read');
      return true;
    } catch {
      return false;
    }
  }

  // ---- request bodies --------------------------------------------------------------------

  #declaredLength(ctx: Context, max: number): number {
    const raw = ctx.req.headers['content-length'];
    if (ctx.req.headers['transfer-encoding'] !== undefined && raw === undefined) {
      throw new HttpError(400, 'Content-Length header missing (chunked bodies are not accepted)');
    }
    if (raw === undefined) throw new HttpError(400, 'Content-Length header missing');
    if (!/^\d{1,16}$/.test(raw)) throw new HttpError(400, 'Content-Length header is invalid');
    const n = Number(raw);
    if (n > max) throw new HttpError(413, `body of ${n} bytes exceeds the limit of ${max} bytes`, { connection: 'close' });
    return n;
  }

  #declaredDigest(ctx: Context): Digests {
    const header = ctx.req.headers['content-digest'];
    const raw = Array.isArray(header) ? header.join(',') : header;
    if (raw === undefined || raw.trim() === '') throw new HttpError(400, 'At least one content digest value must be specified');
    try {
      return parseContentDigest(raw);
    } catch (err) {
      throw new HttpError(400, `Invalid Content-Digest header: ${(err as Error).message}`);
    }
  }

  #contentType(ctx: Context): string {
    const t = ctx.req.headers['content-type'];
    if (!t) throw new HttpError(400, 'Content-Type header missing');
    return t;
  }

  /** A small body (a document), bounded, verified against Content-Length and Content-Digest. */
  async #readDocument(ctx: Context, max: number): Promise<{ bytes: Buffer; digests: Digests }> {
    const claimed = this.#declaredDigest(ctx);
    const length = this.#declaredLength(ctx, max);
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > max) throw new HttpError(413, `body exceeds the limit of ${max} bytes`, { connection: 'close' });
      chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    if (bytes.length !== length) throw new HttpError(400, `Content length mismatch, expected: ${length}, got ${bytes.length}`);
    const digests = digestBytes(bytes);
    if (firstMismatch(claimed, digests)) throw new HttpError(400, 'Content digest mismatch');
    return { bytes, digests };
  }

  // ---- responses -------------------------------------------------------------------------

  #sendDocument(ctx: Context, type: string, bytes: Uint8Array, extra: Record<string, string> = {}): void {
    ctx.res.writeHead(200, {
      'content-type': type,
      'content-length': bytes.byteLength,
      'content-digest': formatContentDigest(digestBytes(bytes)),
      ...extra,
    });
    ctx.res.end(ctx.req.method === 'HEAD' ? undefined : bytes);
  }

  #created(ctx: Context, outcome: 'created' | 'exists' | 'conflict'): void {
    if (outcome === 'conflict') throw new HttpError(409, 'Already exists');
    ctx.res.writeHead(outcome === 'created' ? 201 : 200, { 'content-length': 0 });
    ctx.res.end();
  }

  // ---- users -----------------------------------------------------------------------------

  async #user(ctx: Context, method: string): Promise<void> {
    const { user } = ctx.route;
    if (method === 'HEAD' || method === 'GET') {
      await this.#assertUser(ctx, user, 'drawbridge_users', 'read');
      const row = this.store.getUser(user);
      if (!row) throw new HttpError(404, 'Not found');
      return this.#sendDocument(ctx, row.type, row.bytes);
    }
    if (method !== 'PUT') throw new HttpError(405, 'Method not allowed for user endpoint');
    const p = await ctx.principal();
    if (!hasScope(p, 'drawbridge_users', 'write')) throw new HttpError(401, 'Token is missing a scope for level write, context drawbridge_users');
    const type = this.#jsonType(ctx);
    const { bytes } = await this.#readDocument(ctx, this.limits.maxDocumentBytes);
    const record = parseUserRecord(bytes);
    if (record.subject !== p.subject) throw new HttpError(401, 'OpenID Connect subject mismatch');
    this.#created(ctx, this.store.createUser(user, record.subject, { bytes, type }));
  }

  #jsonType(ctx: Context): string {
    const type = this.#contentType(ctx);
    if (essence(type) !== MEDIA_TYPES.json) throw new HttpError(415, 'Expected request with `Content-Type: application/json`');
    return type;
  }

  // ---- repositories ----------------------------------------------------------------------

  async #repo(ctx: Context, method: string): Promise<void> {
    const { user, repo } = ctx.route as Required<Pick<Route, 'user' | 'repo'>>;
    if (method === 'HEAD' || method === 'GET') {
      await this.#assertUser(ctx, user, 'drawbridge_repositories', 'read');
      const row = this.#repoOr404(user, repo);
      return this.#sendDocument(ctx, row.type, row.bytes);
    }
    if (method !== 'PUT') throw new HttpError(405, 'Method not allowed for repository endpoint');
    await this.#assertUser(ctx, user, 'drawbridge_repositories', 'write');
    const type = this.#jsonType(ctx);
    const { bytes } = await this.#readDocument(ctx, this.limits.maxDocumentBytes);
    const config = parseRepositoryConfig(bytes);
    const outcome = this.store.createRepo(
      user,
      repo,
      { public: config.public, allowDebugKeeps: config.allow_debug_keeps ?? false, allowSoftwareKeeps: config.allow_software_keeps ?? false },
      { bytes, type },
    );
    this.#created(ctx, outcome);
  }

  async #tagList(ctx: Context): Promise<void> {
    const { user, repo } = ctx.route as Required<Pick<Route, 'user' | 'repo'>>;
    const row = this.#repoOr404(user, repo);
    await this.#assertRepositoryRead(ctx, row);
    this.#sendDocument(ctx, MEDIA_TYPES.json, Buffer.from(JSON.stringify(this.store.listTags(user, repo))));
  }

  // ---- tags ------------------------------------------------------------------------------

  async #visibleTag(ctx: Context, repo: RepoRow, tagName: string): Promise<{ tag: TagRow; pending: boolean }> {
    const tag = this.store.getTag(repo.owner, repo.name, tagName);
    if (!tag) throw new HttpError(404, 'Not found');
    if (!tag.complete && !(await this.#isOwner(ctx, repo.owner))) throw new HttpError(404, 'Not found');
    return { tag, pending: !tag.complete };
  }

  async #tag(ctx: Context, method: string): Promise<void> {
    const { user, repo: repoName, tag: tagName } = ctx.route as Required<Pick<Route, 'user' | 'repo' | 'tag'>>;
    if (method === 'HEAD' || method === 'GET') {
      const repo = this.#repoOr404(user, repoName);
      await this.#assertRepositoryRead(ctx, repo);
      const { tag, pending } = await this.#visibleTag(ctx, repo, tagName);
      return this.#sendDocument(ctx, tag.type, tag.bytes, pending ? { 'drawbridge-tag-state': 'pending' } : {});
    }
    if (method === 'DELETE') {
      await this.#assertUser(ctx, user, 'drawbridge_tags', 'write');
      this.#repoOr404(user, repoName);
      const r = this.store.deletePendingTag(user, repoName, tagName);
      if (r === 'missing') throw new HttpError(404, 'Not found');
      if (r === 'complete') throw new HttpError(409, 'Published tags are immutable; only a pending tag can be deleted');
      ctx.res.writeHead(204);
      ctx.res.end();
      return;
    }
    if (method !== 'PUT') throw new HttpError(405, 'Method not allowed for tag endpoint');
    this.#declaredDigest(ctx);
    await this.#assertUser(ctx, user, 'drawbridge_tags', 'write');
    const type = this.#contentType(ctx);
    if (essence(type) !== MEDIA_TYPES.entry && essence(type) !== MEDIA_TYPES.jws) throw new HttpError(400, 'Invalid content type');
    this.#repoOr404(user, repoName);
    const { bytes } = await this.#readDocument(ctx, this.limits.maxDocumentBytes);
    const entry = parseTagEntry(type, bytes);
    if (entry.kind === 'signed') checkSignedNames(entry.names, { user, repo: repoName, tag: tagName });
    this.#checkNodeSize(entry.root.type, entry.root.length);
    this.#created(ctx, this.store.putTag(user, repoName, tagName, { bytes, type }, entry.root));
  }

  #checkNodeSize(type: string, length: number): void {
    const max = essence(type) === MEDIA_TYPES.directory ? this.limits.maxDirectoryBytes : this.limits.maxNodeBytes;
    if (length > max) throw new HttpError(413, `an entry of ${length} bytes exceeds the limit of ${max} bytes`);
  }

  // ---- trees -----------------------------------------------------------------------------

  async #tree(ctx: Context, method: string): Promise<void> {
    const { user, repo: repoName, tag: tagName, tree } = ctx.route as Required<Route>;
    const path = tree.join('/');
    if (method === 'HEAD' || method === 'GET') {
      const repo = this.#repoOr404(user, repoName);
      await this.#assertRepositoryRead(ctx, repo);
      const { tag } = await this.#visibleTag(ctx, repo, tagName);
      const node = this.store.getNode(tag.id, path);
      if (!node?.blob || !node.digests) throw new HttpError(404, 'Not found');
      ctx.res.writeHead(200, { 'content-type': node.type, 'content-length': node.length, 'content-digest': formatContentDigest(node.digests) });
      if (method === 'HEAD') {
        ctx.res.end();
        return;
      }
      await pipeline(this.store.openBlob(node.blob), ctx.res);
      return;
    }
    if (method !== 'PUT') throw new HttpError(405, 'Method not allowed for tag tree endpoint');
    const claimed = this.#declaredDigest(ctx);
    await this.#assertUser(ctx, user, 'drawbridge_tags', 'write');
    this.#repoOr404(user, repoName);
    const tag = this.store.getTag(user, repoName, tagName);
    if (!tag) throw new HttpError(404, `Tag \`${tagName}\` not found: PUT the tag entry before its tree`);
    const node = this.store.getNode(tag.id, path);
    if (!node) throw new HttpError(409, `\`/${path}\` is not in the tree of tag \`${tagName}\` (PUT its parent directory first)`);
    const type = this.#contentType(ctx);
    if (essence(type) !== essence(node.type)) throw new HttpError(400, `Content type mismatch, expected: ${node.type}, got ${type}`);
    if (node.blob !== undefined && node.digests) {
      if (firstMismatch(claimed, node.digests)) throw new HttpError(409, 'Already exists');
      return this.#created(ctx, 'exists');
    }
    const isDirectory = essence(node.type) === MEDIA_TYPES.directory;
    const length = this.#declaredLength(ctx, isDirectory ? this.limits.maxDirectoryBytes : this.limits.maxNodeBytes);
    if (length !== node.length) throw new HttpError(400, `Content length mismatch, expected: ${node.length}, got ${length}`);
    if (firstMismatch(claimed, node.expected)) throw new HttpError(400, 'Content digest mismatch');
    let staged: StagedBlob;
    try {
      staged = await this.store.stage(ctx.req, length);
    } catch (err) {
      if (err instanceof StoreError) throw new HttpError(400, err.message);
      throw err;
    }
    try {
      if (staged.length !== length) throw new HttpError(400, `Content length mismatch, expected: ${length}, got ${staged.length}`);
      if (firstMismatch(claimed, staged.digests) || firstMismatch(node.expected, staged.digests)) throw new HttpError(400, 'Content digest mismatch');
      let directory: Directory | undefined;
      if (isDirectory) {
        directory = parseDirectory(await readFile(staged.path), this.limits.maxDirectoryEntries);
        for (const entry of Object.values(directory)) this.#checkNodeSize(entry.type, entry.length);
        if (this.store.countNodes(tag.id) + Object.keys(directory).length > this.limits.maxTreeNodes) {
          throw new HttpError(413, `the tree would have more than ${this.limits.maxTreeNodes} nodes`);
        }
      }
      const { outcome } = await this.store.commitNode(tag.id, path, staged, directory);
      this.#created(ctx, outcome);
    } catch (err) {
      await this.store.discard(staged);
      if (err instanceof StoreError) throw new HttpError(409, err.message);
      throw err;
    }
  }
}

export interface RunningDrawbridge {
  server: Server;
  url: string;
  port: number;
  drawbridge: Drawbridge;
  close(): Promise<void>;
}

/** Starts the HTTPS server. Client certificates are requested only when a client CA is given. */
export async function startDrawbridge(options: DrawbridgeOptions & { host?: string; port?: number }): Promise<RunningDrawbridge> {
  const drawbridge = new Drawbridge(options);
  const server = createHttpsServer(
    {
      cert: options.tls.cert,
      key: options.tls.key,
      ...(options.tls.clientCa ? { ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
      requestTimeout: 0, // large uploads take as long as they take; idle sockets time out below
      keepAliveTimeout: 30_000,
    },
    drawbridge.handle,
  );
  server.setTimeout(120_000);
  const sweeper = setInterval(() => {
    try {
      options.store.sweep();
    } catch (err) {
      options.log?.('warn', `sweep failed: ${(err as Error).message}`);
    }
  }, 60_000);
  sweeper.unref();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    drawbridge,
    port: address.port,
    url: `https://${host === '0.0.0.0' || host === '[::]' ? 'localhost' : host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(sweeper);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
