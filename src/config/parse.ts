import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { DEFAULT_FILES, type EnarxConfig, type FileSpec, type Protocol } from './model.ts';
import { EXTENSION_KEYS } from './schema.ts';

/** Enarx refuses configuration files above 1 MB; so do we. */
export const MAX_CONFIG_BYTES = 1 << 20;

/** A problem in an Enarx.toml, naming the file and the key. */
export class ConfigError extends Error {
  readonly file: string;
  readonly key: string | undefined;
  /** The file could not be read at all (its path is wrong), as opposed to read and refused. */
  readonly unreadable: boolean;
  constructor(file: string, key: string | undefined, problem: string, options: { unreadable?: boolean } = {}) {
    super(key ? `${file}: ${key}: ${problem}` : `${file}: ${problem}`);
    this.name = 'ConfigError';
    this.file = file;
    this.key = key;
    this.unreadable = options.unreadable ?? false;
  }
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (isTable(v)) return 'a table';
  if (v instanceof Date) return 'a date';
  return typeof v === 'string' ? `the string ${JSON.stringify(v)}` : `${typeof v} ${String(v)}`;
}

/** Reads fields of one table, so that any key left unread at the end is reported as unknown. */
class Fields {
  readonly #table: Table;
  readonly #path: string;
  readonly #file: string;
  readonly #seen = new Set<string>();

  constructor(file: string, path: string, table: Table) {
    this.#file = file;
    this.#path = path;
    this.#table = table;
  }

  key(name: string): string {
    return this.#path ? `${this.#path}.${name}` : name;
  }

  error(name: string | undefined, problem: string): ConfigError {
    return new ConfigError(this.#file, name === undefined ? this.#path || undefined : this.key(name), problem);
  }

  raw(name: string): unknown {
    this.#seen.add(name);
    return this.#table[name];
  }

  string(name: string, required: true): string;
  string(name: string, required?: false): string | undefined;
  string(name: string, required = false): string | undefined {
    const v = this.raw(name);
    if (v === undefined) {
      if (required) throw this.error(name, 'is required');
      return undefined;
    }
    if (typeof v !== 'string') throw this.error(name, `expected a string, got ${describe(v)}`);
    return v;
  }

  boolean(name: string): boolean | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw this.error(name, `expected true or false, got ${describe(v)}`);
    return v;
  }

  port(name: string, min: number): number | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 65535) {
      throw this.error(name, `expected a port number from ${min} to 65535, got ${describe(v)}`);
    }
    return v;
  }

  /** Fails on the first key nobody asked for. */
  finish(): void {
    for (const name of Object.keys(this.#table)) {
      if (!this.#seen.has(name)) throw this.error(name, 'unknown key');
    }
  }
}

const STDIO_KINDS = new Set(['null', 'stdin', 'stdout', 'stderr']);
const KINDS = ['null', 'stdin', 'stdout', 'stderr', 'listen', 'connect', 'dir'];

function protocol(f: Fields): Protocol {
  const prot = f.string('prot') ?? 'tls';
  if (prot !== 'tls' && prot !== 'tcp') throw f.error('prot', `expected "tls" or "tcp", got ${JSON.stringify(prot)}`);
  return prot;
}

function checkName(f: Fields, name: string): string {
  if (name.includes(':')) throw f.error('name', `must not contain ':' (FD_NAMES uses it as separator), got ${JSON.stringify(name)}`);
  return name;
}

/** `client_ca` / `ca`: a PEM file, relative to Enarx.toml; only meaningful with prot = "tls". */
function tlsCaPath(f: Fields, key: string, prot: Protocol, baseDir: string): string | undefined {
  const path = f.string(key);
  if (path === undefined) return undefined;
  if (prot !== 'tls') throw f.error(key, 'applies only to prot = "tls"');
  if (path === '') throw f.error(key, 'must not be empty (give a PEM file of CA certificates)');
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

function parseFile(f: Fields, baseDir: string): FileSpec {
  const kind = f.string('kind', true);
  if (!KINDS.includes(kind)) throw f.error('kind', `expected one of ${KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  let spec: FileSpec;
  if (STDIO_KINDS.has(kind)) {
    spec = { kind: kind as 'null', name: checkName(f, f.string('name') ?? kind) };
  } else if (kind === 'listen') {
    const prot = protocol(f);
    const name = checkName(f, f.string('name', true));
    const addr = f.string('addr') ?? '::';
    if (isIP(addr) === 0) throw f.error('addr', `expected an IP address, got ${JSON.stringify(addr)}`);
    const clientCaFile = tlsCaPath(f, 'client_ca', prot, baseDir);
    spec = { kind, name, prot, addr, port: f.port('port', 0) ?? (prot === 'tls' ? 443 : 80), ...(clientCaFile ? { clientCaFile } : {}) };
  } else if (kind === 'connect') {
    const prot = protocol(f);
    const host = f.string('host', true);
    if (host === '') throw f.error('host', 'must not be empty');
    const name = checkName(f, f.string('name') ?? host);
    const caFile = tlsCaPath(f, 'ca', prot, baseDir);
    spec = { kind, name, prot, host, port: f.port('port', 1) ?? (prot === 'tls' ? 443 : 80), ...(caFile ? { caFile } : {}) };
  } else {
    const name = checkName(f, f.string('name', true));
    if (name === '') throw f.error('name', 'must not be empty (it is the path the guest sees, e.g. "/data")');
    const path = f.string('path', true);
    if (path === '') throw f.error('path', 'must not be empty');
    spec = { kind: 'dir', name, path: isAbsolute(path) ? path : resolve(baseDir, path), readonly: f.boolean('readonly') ?? false };
  }
  f.finish();
  return spec;
}

/**
 * Parses Enarx.toml text. `file` names the file in errors; relative `dir` paths resolve
 * against `baseDir` (the file's directory).
 */
export function parseConfig(text: string, file: string, baseDir: string): EnarxConfig {
  if (text.length > MAX_CONFIG_BYTES) throw new ConfigError(file, undefined, `is larger than ${MAX_CONFIG_BYTES} bytes`);
  let doc: Table;
  try {
    doc = parseToml(text) as Table;
  } catch (err) {
    if (err instanceof TomlError) {
      const first = err.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      throw new ConfigError(file, undefined, `invalid TOML at line ${err.line}, column ${err.column}: ${first}`);
    }
    throw err;
  }
  const top = new Fields(file, '', doc);
  const steward = top.string('steward');
  if (steward !== undefined && !URL.canParse(steward)) throw top.error('steward', `expected a URL, got ${JSON.stringify(steward)}`);

  const rawArgs = top.raw('args');
  let args: string[] = [];
  if (rawArgs !== undefined) {
    if (!Array.isArray(rawArgs)) throw top.error('args', `expected an array of strings, got ${describe(rawArgs)}`);
    args = rawArgs.map((a, i) => {
      if (typeof a !== 'string') throw new ConfigError(file, `args[${i}]`, `expected a string, got ${describe(a)}`);
      return a;
    });
  }

  const rawEnv = top.raw('env');
  const env: [string, string][] = [];
  if (rawEnv !== undefined) {
    if (!isTable(rawEnv)) throw top.error('env', `expected a table of strings, got ${describe(rawEnv)}`);
    for (const [k, v] of Object.entries(rawEnv)) {
      if (typeof v !== 'string') throw new ConfigError(file, `env.${k}`, `expected a string, got ${describe(v)}`);
      if (k === '' || k.includes('=')) throw new ConfigError(file, `env.${k}`, "a variable name must be non-empty and hold no '='");
      if (k === 'FD_COUNT' || k === 'FD_NAMES') throw new ConfigError(file, `env.${k}`, 'is set by the Keep from [[files]]');
      env.push([k, v]);
    }
  }

  const rawFiles = top.raw('files');
  let files: FileSpec[] | undefined;
  if (rawFiles !== undefined) {
    if (!Array.isArray(rawFiles)) throw top.error('files', `expected an array of tables ([[files]]), got ${describe(rawFiles)}`);
    files = rawFiles.map((entry, i) => {
      if (!isTable(entry)) throw new ConfigError(file, `files[${i}]`, `expected a table, got ${describe(entry)}`);
      return parseFile(new Fields(file, `files[${i}]`, entry), baseDir);
    });
  }

  const extensions: Record<string, unknown> = {};
  for (const [name, handler] of Object.entries(EXTENSION_KEYS)) {
    const v = top.raw(name);
    if (v !== undefined) {
      try {
        extensions[name] = handler(v);
      } catch (err) {
        throw new ConfigError(file, name, err instanceof Error ? err.message : String(err));
      }
    }
  }
  top.finish();
  // Without [[files]], a Keep gets what Enarx gives when there is no Enarx.toml: stdio.
  return { ...(steward === undefined ? {} : { steward }), args, env, files: files ?? [...DEFAULT_FILES], extensions };
}
