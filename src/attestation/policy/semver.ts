/**
 * Version requirements with the semantics of Rust's `semver` crate, which Enarx's Steward uses for
 * `[snp] abi`: a bare version means caret ("1.0" is "^1.0"), comparators are joined with commas,
 * and partial versions widen the way that crate widens them. Pre-release tags are not supported:
 * SNP ABI versions have none.
 */

export interface Version {
  major: number;
  minor: number;
  patch: number;
}

type Op = '=' | '>' | '>=' | '<' | '<=' | '~' | '^' | '*';

interface Comparator {
  op: Op;
  major: number;
  minor: number | null;
  patch: number | null;
  /** Written with a wildcard ("1.*"), which displays without the operator. */
  wildcard?: boolean;
}

export class VersionReq {
  readonly comparators: readonly Comparator[];

  private constructor(comparators: Comparator[]) {
    this.comparators = comparators;
  }

  /** Parses a requirement such as ">=1.51", "1.0", "~1.2.3", ">1.0, <2" or "*". Throws on anything else. */
  static parse(text: string): VersionReq {
    const trimmed = text.trim();
    if (trimmed === '') throw new Error('empty version requirement');
    if (trimmed === '*') return new VersionReq([]);
    const parts = trimmed.split(',');
    if (parts.length > 32) throw new Error('too many comparators in version requirement');
    return new VersionReq(parts.map((part) => parseComparator(part.trim(), text)));
  }

  matches(version: Version): boolean {
    return this.comparators.every((c) => matchesComparator(c, version));
  }

  /** Displays the requirement the way Rust's semver crate does ("1.0" becomes "^1.0"). */
  toString(): string {
    if (this.comparators.length === 0) return '*';
    return this.comparators.map(formatComparator).join(', ');
  }
}

const COMPARATOR = /^(>=|<=|=|>|<|~|\^)?\s*(\d+|[*xX])(?:\.(\d+|[*xX]))?(?:\.(\d+|[*xX]))?$/;

function parseComparator(part: string, whole: string): Comparator {
  const m = COMPARATOR.exec(part);
  if (!m) throw new Error(`invalid version requirement '${whole}'`);
  const [, opText, majorText, minorText, patchText] = m;
  const fields = [majorText, minorText, patchText];
  const wildAt = fields.findIndex((f) => f !== undefined && /^[*xX]$/.test(f));
  if (wildAt >= 0) {
    // "1.*", "1.2.x": everything after the wildcard must be absent or a wildcard too.
    if (fields.slice(wildAt).some((f) => f !== undefined && !/^[*xX]$/.test(f))) {
      throw new Error(`invalid version requirement '${whole}'`);
    }
    if (opText && opText !== '=') throw new Error(`invalid version requirement '${whole}'`);
    if (wildAt === 0) return { op: '*', major: 0, minor: null, patch: null };
    const minor = wildAt > 1 ? num(minorText!, whole) : null;
    return { op: '=', major: num(majorText!, whole), minor, patch: null, wildcard: true };
  }
  return {
    op: (opText as Op | undefined) ?? '^',
    major: num(majorText!, whole),
    minor: minorText === undefined ? null : num(minorText, whole),
    patch: patchText === undefined ? null : num(patchText, whole),
  };
}

function num(text: string, whole: string): number {
  if (text.length > 1 && text.startsWith('0')) throw new Error(`invalid leading zero in version requirement '${whole}'`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`version number too large in '${whole}'`);
  return n;
}

function cmp(a: Version, b: Version): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

function matchesComparator(c: Comparator, v: Version): boolean {
  const floor: Version = { major: c.major, minor: c.minor ?? 0, patch: c.patch ?? 0 };
  switch (c.op) {
    case '*':
      return true;
    case '=':
      return matchesExact(c, v);
    case '>':
      if (c.minor === null) return v.major > c.major;
      if (c.patch === null) return v.major > c.major || (v.major === c.major && v.minor > c.minor);
      return cmp(v, floor) > 0;
    case '>=':
      return cmp(v, floor) >= 0;
    case '<':
      return cmp(v, floor) < 0;
    case '<=':
      if (c.minor === null) return v.major <= c.major;
      if (c.patch === null) return v.major < c.major || (v.major === c.major && v.minor <= c.minor);
      return cmp(v, floor) <= 0;
    case '~':
      if (c.minor === null) return v.major === c.major;
      return v.major === c.major && v.minor === c.minor && v.patch >= (c.patch ?? 0);
    case '^':
      return matchesCaret(c, v, floor);
  }
}

function matchesExact(c: Comparator, v: Version): boolean {
  if (v.major !== c.major) return false;
  if (c.minor !== null && v.minor !== c.minor) return false;
  if (c.patch !== null && v.patch !== c.patch) return false;
  return true;
}

function matchesCaret(c: Comparator, v: Version, floor: Version): boolean {
  if (cmp(v, floor) < 0 || v.major !== c.major) return false;
  if (c.major > 0 || c.minor === null) return true;
  if (v.minor !== c.minor) return false;
  if (c.minor > 0 || c.patch === null) return true;
  return v.patch === c.patch;
}

function formatComparator(c: Comparator): string {
  if (c.op === '*') return '*';
  const parts = [c.major, c.minor, c.patch].filter((p) => p !== null);
  if (c.wildcard) return `${parts.join('.')}.*`;
  return `${c.op}${parts.join('.')}`;
}
