/**
 * Drawbridge's name rules, as Enarx's: user `[A-Za-z0-9]+`, repository `[A-Za-z0-9-]+`, tag a
 * SemVer 2.0.0 version, tree entry `[A-Za-z0-9._:-]+`. Two additions: every name has a length cap,
 * and the tree entries `.` and `..` are refused, so that no tree path can leave its tree.
 */
import { isLoopbackHost } from '../net/loopback.ts';

export class NameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NameError';
  }
}

export const LIMITS = {
  userName: 64,
  repositoryName: 128,
  tagName: 128,
  entryName: 255,
  pathDepth: 32,
} as const;

const USER = /^[A-Za-z0-9]+$/;
const REPOSITORY = /^[A-Za-z0-9-]+$/;
const ENTRY = /^[A-Za-z0-9._:-]+$/;
// semver.org's recommended expression, anchored.
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

function check(kind: string, value: string, max: number, pattern: RegExp, allowed: string): string {
  if (value.length === 0) throw new NameError(`empty ${kind} name`);
  if (value.length > max) throw new NameError(`${kind} name is longer than ${max} characters`);
  if (!pattern.test(value)) throw new NameError(`invalid characters in ${kind} name (allowed: ${allowed})`);
  return value;
}

export function parseUserName(value: string): string {
  return check('user', value, LIMITS.userName, USER, 'A-Z a-z 0-9');
}

export function parseRepositoryName(value: string): string {
  return check('repository', value, LIMITS.repositoryName, REPOSITORY, 'A-Z a-z 0-9 -');
}

export function parseTagName(value: string): string {
  if (value.length === 0) throw new NameError('empty tag name');
  if (value.length > LIMITS.tagName) throw new NameError(`tag name is longer than ${LIMITS.tagName} characters`);
  if (!SEMVER.test(value)) throw new NameError(`tag name '${value.slice(0, 40)}' is not a SemVer 2.0.0 version such as 1.2.3`);
  const [core] = value.split(/[-+]/, 1);
  for (const n of (core ?? '').split('.')) {
    if (!Number.isSafeInteger(Number(n))) throw new NameError('tag version number is too large');
  }
  return value;
}

export function parseEntryName(value: string): string {
  check('entry', value, LIMITS.entryName, ENTRY, 'A-Z a-z 0-9 . _ : -');
  if (value === '.' || value === '..') throw new NameError(`entry name '${value}' would leave its tree`);
  return value;
}

/**
 * A tree path as in a URL: `/a/b`, `a/b/`, `` (the root). Leading and one trailing slash are
 * allowed, as in Enarx; empty segments are not. Returns the segments.
 */
export function parseTreePath(value: string): string[] {
  let s = value;
  while (s.startsWith('/')) s = s.slice(1);
  if (s.endsWith('/')) s = s.slice(0, -1);
  if (s === '') return [];
  const parts = s.split('/');
  if (parts.length > LIMITS.pathDepth) throw new NameError(`tree path is deeper than ${LIMITS.pathDepth} levels`);
  return parts.map(parseEntryName);
}

interface SemVer {
  major: number;
  minor: number;
  patch: number;
  pre: string[];
}

function splitSemver(v: string): SemVer {
  const noBuild = v.split('+', 1)[0] ?? v;
  const dash = noBuild.indexOf('-');
  const core = dash < 0 ? noBuild : noBuild.slice(0, dash);
  const [major = 0, minor = 0, patch = 0] = core.split('.').map(Number);
  return { major, minor, patch, pre: dash < 0 ? [] : noBuild.slice(dash + 1).split('.') };
}

/** SemVer precedence (build metadata ignored, then compared as text so the order is total). */
export function compareSemver(a: string, b: string): number {
  const x = splitSemver(a);
  const y = splitSemver(b);
  for (const k of ['major', 'minor', 'patch'] as const) if (x[k] !== y[k]) return x[k] < y[k] ? -1 : 1;
  if (x.pre.length === 0 || y.pre.length === 0) {
    if (x.pre.length !== y.pre.length) return x.pre.length === 0 ? 1 : -1;
  } else {
    for (let i = 0; i < Math.min(x.pre.length, y.pre.length); i++) {
      const p = x.pre[i] as string;
      const q = y.pre[i] as string;
      if (p === q) continue;
      const pn = /^\d+$/.test(p);
      const qn = /^\d+$/.test(q);
      if (pn && qn) return Number(p) < Number(q) ? -1 : 1;
      if (pn !== qn) return pn ? -1 : 1;
      return p < q ? -1 : 1;
    }
    if (x.pre.length !== y.pre.length) return x.pre.length < y.pre.length ? -1 : 1;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `[host/]user/repo[:tag]` as Enarx's CLI reads it (tag after the last ':', repo and user before). */
export interface Slug {
  host: string | undefined;
  user: string;
  repo: string;
  tag: string | undefined;
}

export function parseSlug(spec: string, options: { tag?: 'required' | 'forbidden' | 'optional' } = {}): Slug {
  const want = options.tag ?? 'optional';
  let rest = spec;
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  const slash = rest.lastIndexOf('/');
  if (colon > slash) {
    tag = parseTagName(rest.slice(colon + 1));
    rest = rest.slice(0, colon);
  }
  if (want === 'required' && tag === undefined) throw new NameError(`'${spec}' names no tag (expected [host/]user/repo:tag)`);
  if (want === 'forbidden' && tag !== undefined) throw new NameError(`'${spec}' has a tag; expected [host/]user/repo`);
  const r = rest.lastIndexOf('/');
  if (r < 0) throw new NameError(`'${spec}' is not [host/]user/repo`);
  const repo = parseRepositoryName(rest.slice(r + 1));
  rest = rest.slice(0, r);
  const u = rest.lastIndexOf('/');
  const user = parseUserName(rest.slice(u + 1));
  const host = u < 0 ? undefined : rest.slice(0, u);
  if (host === '') throw new NameError(`'${spec}' has an empty host`);
  return { host, user, repo, tag };
}

/** Where a package lives: the registry's origin and the tag's coordinates. */
export interface PackageReference {
  /** e.g. `https://registry.example:8443`. */
  origin: string;
  user: string;
  repo: string;
  tag: string;
}

/**
 * Reads `host[:port]/user/repo:tag` (HTTPS) or a tag URL
 * `https://host[:port]/api/v0.1.0/user/repo/_tag/tag`. There is no default host, and plain http
 * is refused except to localhost, so that a package is never fetched over a channel anyone on the
 * path can rewrite.
 */
export function parsePackageReference(ref: string): PackageReference {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref)) {
    let url: URL;
    try {
      url = new URL(ref);
    } catch {
      throw new NameError(`'${ref}' is not a valid URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new NameError(`'${ref}': only https:// registry URLs are supported`);
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) throw new NameError(`'${ref}': plain http is refused except to localhost; use https://`);
    if (url.username || url.password || url.search || url.hash) throw new NameError(`'${ref}': a tag URL has no credentials, query or fragment`);
    const m = /^\/api\/v[^/]+\/([^/]+)\/([^/]+)\/_tag\/([^/]+)\/?$/.exec(url.pathname);
    if (!m) throw new NameError(`'${ref}' is not a tag URL (https://host/api/v0.1.0/user/repo/_tag/1.0.0)`);
    return { origin: url.origin, user: parseUserName(m[1] as string), repo: parseRepositoryName(m[2] as string), tag: parseTagName(m[3] as string) };
  }
  const slug = parseSlug(ref, { tag: 'required' });
  if (!slug.host) throw new NameError(`'${ref}' names no registry host (expected host[:port]/user/repo:tag; there is no default host)`);
  let url: URL;
  try {
    url = new URL(`https://${slug.host}`);
  } catch {
    throw new NameError(`'${slug.host}' is not a host[:port]`);
  }
  if (url.pathname !== '/' || url.username || url.search) throw new NameError(`'${slug.host}' is not a host[:port]`);
  return { origin: url.origin, user: slug.user, repo: slug.repo, tag: slug.tag as string };
}
