/**
 * Drawbridge's documents: user records, repository configurations, tree entries, directories and
 * tag entries (a TreeEntry, or a JWS whose payload is one). JSON layouts are Enarx's.
 */
import { type Digests, DigestError, orderedDigests, parseDigestObject } from './digest.ts';
import { NameError, parseEntryName, parseRepositoryName, parseTagName, parseUserName } from './names.ts';

export const MEDIA_TYPES = {
  entry: 'application/vnd.drawbridge.entry.v1+json',
  directory: 'application/vnd.drawbridge.directory.v1+json',
  jws: 'application/jose+json',
  json: 'application/json',
  wasm: 'application/wasm',
  toml: 'application/toml',
  octetStream: 'application/octet-stream',
} as const;

export class DocumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DocumentError';
  }
}

/** `{"digest": {...}, "length": N, "type": "..."}` plus any custom members, kept as they are. */
export interface TreeEntry {
  digest: Digests;
  length: number;
  type: string;
  [custom: string]: unknown;
}

export type Directory = Record<string, TreeEntry>;

export interface UserRecord {
  subject: string;
}

/**
 * Enarx's `{"public": bool}`, plus two optional switches of ours: whether Keeps whose certificate
 * is marked debug or software may read this private repository.
 */
export interface RepositoryConfig {
  public: boolean;
  allow_debug_keeps?: boolean;
  allow_software_keeps?: boolean;
}

// RFC 6838 type/subtype, optional parameters.
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=("[^"\\\r\n]*"|[A-Za-z0-9!#$&^_.+-]+))*$/;

export function isMediaType(value: string): boolean {
  return value.length <= 255 && MEDIA_TYPE.test(value);
}

/** The media type without parameters, lowercased: what comparisons use. */
export function essence(value: string): string {
  return (value.split(';', 1)[0] ?? '').trim().toLowerCase();
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new DocumentError(`${what} is not valid UTF-8 JSON: ${(err as Error).message}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(v: Record<string, unknown>, allowed: string[], what: string): void {
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw new DocumentError(`${what} has unknown field '${k.slice(0, 40)}'`);
}

export function parseUserRecord(bytes: Uint8Array): UserRecord {
  const v = parseJson(bytes, 'user record');
  if (!isObject(v)) throw new DocumentError('user record must be a JSON object');
  onlyKeys(v, ['subject'], 'user record');
  if (typeof v.subject !== 'string' || v.subject === '' || v.subject.length > 255) {
    throw new DocumentError('user record needs a non-empty string "subject" (at most 255 characters)');
  }
  return { subject: v.subject };
}

export function parseRepositoryConfig(bytes: Uint8Array): RepositoryConfig {
  const v = parseJson(bytes, 'repository config');
  if (!isObject(v)) throw new DocumentError('repository config must be a JSON object');
  onlyKeys(v, ['public', 'allow_debug_keeps', 'allow_software_keeps'], 'repository config');
  if (typeof v.public !== 'boolean') throw new DocumentError('repository config needs a boolean "public"');
  const out: RepositoryConfig = { public: v.public };
  for (const k of ['allow_debug_keeps', 'allow_software_keeps'] as const) {
    if (v[k] === undefined) continue;
    if (typeof v[k] !== 'boolean') throw new DocumentError(`repository config "${k}" must be a boolean`);
    out[k] = v[k];
  }
  return out;
}

export function validateTreeEntry(v: unknown, what = 'tree entry'): TreeEntry {
  if (!isObject(v)) throw new DocumentError(`${what} must be a JSON object`);
  let digest: Digests;
  try {
    digest = parseDigestObject(v.digest, `${what} digest`);
  } catch (err) {
    if (err instanceof DigestError) throw new DocumentError(err.message);
    throw err;
  }
  const length = v.length;
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) {
    throw new DocumentError(`${what} needs a non-negative integer "length"`);
  }
  if (typeof v.type !== 'string' || !isMediaType(v.type)) throw new DocumentError(`${what} needs a media type in "type"`);
  return { ...v, digest, length, type: v.type };
}

export function parseDirectory(bytes: Uint8Array, maxEntries: number): Directory {
  const v = parseJson(bytes, 'directory');
  if (!isObject(v)) throw new DocumentError('directory must be a JSON object of name to entry');
  const names = Object.keys(v);
  if (names.length > maxEntries) throw new DocumentError(`directory has ${names.length} entries, more than the limit of ${maxEntries}`);
  const out: Directory = {};
  for (const name of names) {
    try {
      parseEntryName(name);
    } catch (err) {
      if (err instanceof NameError) throw new DocumentError(`directory entry '${name.slice(0, 40)}': ${err.message}`);
      throw err;
    }
    out[name] = validateTreeEntry(v[name], `directory entry '${name}'`);
  }
  return out;
}

/** Compact JSON with the entry's fields in Enarx's order: digest, length, type, then custom ones. */
export function serializeTreeEntry(entry: TreeEntry): string {
  const { digest, length, type, ...custom } = entry;
  return JSON.stringify({ digest: orderedDigests(digest), length, type, ...custom });
}

/** A directory's bytes as Enarx's client writes them: names sorted, compact. */
export function serializeDirectory(dir: Directory): string {
  const names = Object.keys(dir).sort();
  return `{${names.map((n) => `${JSON.stringify(n)}:${serializeTreeEntry(dir[n] as TreeEntry)}`).join(',')}}`;
}

/** A tag entry: unsigned (the root TreeEntry) or signed (a JWS whose payload is the TreeEntry). */
export type TagEntry =
  | { kind: 'unsigned'; root: TreeEntry }
  | { kind: 'signed'; root: TreeEntry; jws: FlattenedJws; names: SignedNames };

export interface FlattenedJws {
  protected: string;
  payload: string;
  signature: string;
  header?: Record<string, unknown>;
}

/** The names a signed payload may carry, so a signature cannot be replayed under another name. */
export interface SignedNames {
  user?: string;
  repo?: string;
  tag?: string;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

function b64urlJson(value: string, what: string): unknown {
  if (!B64URL.test(value)) throw new DocumentError(`${what} is not base64url`);
  return parseJson(Buffer.from(value, 'base64url'), what);
}

/**
 * Parses a tag entry by its media type. A JWS may be flattened or general JSON serialisation
 * (Enarx accepts both); a general one is reduced to its first signature for the root entry. The
 * server does not judge signatures (it does not know whom readers trust); it checks their shape and
 * that the payload, which the Keep will verify, describes a root entry.
 */
export function parseTagEntry(mediaType: string, bytes: Uint8Array): TagEntry {
  const type = essence(mediaType);
  if (type === MEDIA_TYPES.entry) {
    return { kind: 'unsigned', root: validateTreeEntry(parseJson(bytes, 'tag entry'), 'tag entry') };
  }
  if (type !== MEDIA_TYPES.jws) throw new DocumentError('Invalid content type');
  const v = parseJson(bytes, 'signed tag entry');
  if (!isObject(v)) throw new DocumentError('signed tag entry must be a JWS JSON object');
  let sig: Record<string, unknown>;
  if (Array.isArray(v.signatures)) {
    const first: unknown = v.signatures[0];
    if (!isObject(first)) throw new DocumentError('signed tag entry has no signatures');
    sig = first;
  } else {
    sig = v;
  }
  if (typeof v.payload !== 'string') throw new DocumentError('signed tag entry needs a "payload"');
  if (typeof sig.protected !== 'string' || typeof sig.signature !== 'string' || !B64URL.test(sig.signature)) {
    throw new DocumentError('signed tag entry needs "protected" and "signature"');
  }
  const header = b64urlJson(sig.protected, 'JWS protected header');
  if (!isObject(header) || typeof header.alg !== 'string' || header.alg === 'none') {
    throw new DocumentError('JWS protected header needs an "alg" other than "none"');
  }
  const payload = b64urlJson(v.payload, 'JWS payload');
  const root = validateTreeEntry(payload, 'JWS payload');
  const names: SignedNames = {};
  for (const k of ['user', 'repo', 'tag'] as const) {
    const value = (payload as Record<string, unknown>)[k];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new DocumentError(`JWS payload "${k}" must be a string`);
    names[k] = value;
  }
  const jws: FlattenedJws = { protected: sig.protected, payload: v.payload, signature: sig.signature };
  if (isObject(sig.header)) jws.header = sig.header;
  return { kind: 'signed', root, jws, names };
}

/** Names carried in a signed payload must be the names it is published under. */
export function checkSignedNames(names: SignedNames, at: { user: string; repo: string; tag: string }): void {
  if (names.user !== undefined && names.user !== at.user) throw new DocumentError(`signed entry names user '${names.user}', not '${at.user}'`);
  if (names.repo !== undefined && names.repo !== at.repo) throw new DocumentError(`signed entry names repository '${names.repo}', not '${at.repo}'`);
  if (names.tag !== undefined && names.tag !== at.tag) throw new DocumentError(`signed entry names tag '${names.tag}', not '${at.tag}'`);
}

export { parseUserName, parseRepositoryName, parseTagName, parseEntryName };
