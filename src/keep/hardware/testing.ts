import type { AttestationFs } from './fs.ts';

/**
 * An in-memory stand-in for the kernel's configfs-tsm and Gramine's /dev/attestation, for tests of
 * the Keep's hardware paths on machines without the hardware. It serves recorded evidence, and
 * behaves like the real interfaces where the collector depends on it: `mkdir` creates a report
 * entry with its attributes, every write to `inblob` or `privlevel` advances `generation`,
 * `outblob` needs exactly 64 bytes of inblob, read-only attributes refuse writes, and another
 * writer can be simulated. It cannot sign, so `outblob` is always the recorded evidence.
 */
export interface FakeTsm {
  provider: string;
  outblob: Uint8Array;
  auxblob?: Uint8Array;
  /** Requests in which another process also writes to inblob (each adds one generation). */
  concurrentWrites?: number;
  /** errno for mkdir (e.g. 'EACCES' when not root). */
  mkdirError?: string;
  /** errno for reading outblob (e.g. 'EIO' when the firmware fails). */
  outblobError?: string;
}

export interface FakeGramine {
  attestationType: string;
  quote: Uint8Array;
}

interface Entry {
  generation: number;
  inblob: Uint8Array | null;
}

function errno(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${path}`), { code });
}

export class FakeAttestationFs implements AttestationFs {
  private readonly files = new Map<string, Uint8Array>();
  private readonly dirs = new Set<string>();
  private readonly tsmRoots = new Map<string, FakeTsm>();
  private readonly entries = new Map<string, Entry>();
  private readonly gramineRoots = new Map<string, FakeGramine & { userReportData: Uint8Array | null }>();
  /** Every report entry ever created, for assertions. */
  readonly created: string[] = [];

  /** Report entries that still exist (a collector must remove what it creates). */
  get liveEntries(): string[] {
    return [...this.entries.keys()];
  }

  addFile(path: string, content: Uint8Array | string): this {
    this.files.set(path, typeof content === 'string' ? new TextEncoder().encode(content) : content);
    return this;
  }

  addTsm(root: string, tsm: FakeTsm): this {
    this.tsmRoots.set(root, { ...tsm });
    this.dirs.add(root);
    return this;
  }

  addGramine(root: string, gramine: FakeGramine): this {
    this.gramineRoots.set(root, { ...gramine, userReportData: null });
    this.dirs.add(root);
    return this;
  }

  /** The report data last written to a Gramine root. */
  userReportData(root: string): Uint8Array | null {
    return this.gramineRoots.get(root)?.userReportData ?? null;
  }

  private split(path: string): [string, string] {
    const i = path.lastIndexOf('/');
    return [path.slice(0, i), path.slice(i + 1)];
  }

  async kind(path: string): Promise<'dir' | 'file' | null> {
    if (this.dirs.has(path) || this.entries.has(path)) return 'dir';
    if (this.files.has(path)) return 'file';
    const [dir, name] = this.split(path);
    if (this.entries.has(dir) && ['provider', 'generation', 'inblob', 'outblob', 'auxblob', 'privlevel', 'privlevel_floor'].includes(name)) return 'file';
    if (this.gramineRoots.has(dir) && ['attestation_type', 'user_report_data', 'quote'].includes(name)) return 'file';
    return null;
  }

  async mkdir(path: string): Promise<void> {
    const [dir] = this.split(path);
    const tsm = this.tsmRoots.get(dir);
    if (!tsm) throw errno(this.dirs.has(dir) ? 'EPERM' : 'ENOENT', path);
    if (tsm.mkdirError) throw errno(tsm.mkdirError, path);
    if (this.entries.has(path)) throw errno('EEXIST', path);
    this.entries.set(path, { generation: 0, inblob: null });
    this.created.push(path);
  }

  async rmdir(path: string): Promise<void> {
    if (!this.entries.delete(path)) throw errno('ENOENT', path);
  }

  async readFile(path: string): Promise<Uint8Array> {
    if (this.files.has(path)) return this.files.get(path)!.slice();
    const [dir, name] = this.split(path);
    const entry = this.entries.get(dir);
    if (entry) {
      const tsm = this.tsmRoots.get(this.split(dir)[0])!;
      switch (name) {
        case 'provider':
          return new TextEncoder().encode(`${tsm.provider}\n`);
        case 'generation':
          return new TextEncoder().encode(`${entry.generation}\n`);
        case 'outblob':
          if (tsm.outblobError) throw errno(tsm.outblobError, path);
          if (entry.inblob?.length !== 64) throw errno('EINVAL', path);
          return tsm.outblob.slice();
        case 'auxblob':
          return (tsm.auxblob ?? new Uint8Array(0)).slice();
        case 'privlevel_floor':
          return new TextEncoder().encode('0\n');
        default:
          throw errno(name === 'inblob' || name === 'privlevel' ? 'EACCES' : 'ENOENT', path);
      }
    }
    const gramine = this.gramineRoots.get(dir);
    if (gramine) {
      if (name === 'attestation_type') return new TextEncoder().encode(`${gramine.attestationType}\n`);
      if (name === 'quote') {
        if (gramine.attestationType !== 'dcap') throw errno('EPERM', path);
        return gramine.quote.slice();
      }
      if (name === 'user_report_data') return (gramine.userReportData ?? new Uint8Array(64)).slice();
    }
    throw errno('ENOENT', path);
  }

  async writeFile(path: string, data: Uint8Array): Promise<void> {
    const [dir, name] = this.split(path);
    const entry = this.entries.get(dir);
    if (entry) {
      const tsm = this.tsmRoots.get(this.split(dir)[0])!;
      if (name === 'inblob') {
        if (data.length > 64) throw errno('EINVAL', path);
        entry.inblob = data.slice();
        entry.generation++;
        if ((tsm.concurrentWrites ?? 0) > 0) {
          tsm.concurrentWrites!--;
          entry.generation++;
        }
        return;
      }
      if (name === 'privlevel') {
        entry.generation++;
        return;
      }
      throw errno(['provider', 'generation', 'outblob', 'auxblob', 'privlevel_floor'].includes(name) ? 'EACCES' : 'ENOENT', path);
    }
    const gramine = this.gramineRoots.get(dir);
    if (gramine && name === 'user_report_data') {
      if (data.length !== 64) throw errno('EINVAL', path);
      gramine.userReportData = data.slice();
      return;
    }
    throw errno(gramine ? 'EACCES' : 'ENOENT', path);
  }
}
