/**
 * Sallyport messages, versions 1 and 2 (2 adds provisioned Keeps: `standby` … `provisioned`,
 * `listen`/`listening`, `certified`). Every message is a CBOR array whose first element names it;
 * docs/sallyport.md describes each one. Decoding is strict: definite lengths only, no tags, no
 * floats, no undefined, no duplicate map keys, exact array lengths, bounded strings and
 * integers, and each side accepts only the messages the other side may send.
 */
import { Tokenizer, Type, decode, encode } from 'cborg';
import { ProtocolError } from './frame.ts';
// Type only: the SNP parser's module must stay out of the Keep's start-up file.
import type { AmdProduct } from '../collateral/amd.ts';

/** The longest wall-time limit, in ms (Node's timers; src/keep/limits.ts refuses longer ones). */
const MAX_WALL_TIME_MS = 2 ** 31 - 1;

export const PROTOCOL_VERSION = 1;
/** Version 2: a Keep started without its workload, which a remote client provisions (keepmgr). */
export const PROVISIONING_VERSION = 2;
/** A provisioning JWE arrives in `provision` pieces of at most MAX_CHUNK_BYTES, this much in all. */
export const MAX_PROVISION_BYTES = 160 * 1024 * 1024;
export const NONCE_BYTES = 32;
/** A certificate chain the Keep reports (PEM, leaf first). */
export const MAX_CHAIN_BYTES = 64 * 1024;

/** Streams 0..2 are stdio; 3..15 are reserved. The host numbers its streams odd, the Keep even. */
export const STDIN_STREAM = 0;
export const STDOUT_STREAM = 1;
export const STDERR_STREAM = 2;
export const FIRST_DYNAMIC_STREAM = 16;
export const MAX_STREAM_ID = 0xffff_ffff;

/** Largest byte payload of one `data` or `module` message. */
export const MAX_CHUNK_BYTES = 1024 * 1024;
export const MAX_TEXT_BYTES = 64 * 1024;
/** Largest status an `exit` message carries (a process's exit status). */
export const MAX_EXIT_CODE = 255;
export const MAX_LIST_ITEMS = 4096;
export const REPORT_DATA_BYTES = 64;
export const MAX_EVIDENCE_BYTES = 256 * 1024;
/** Longest host path or symlink target in a `symlink` request (Linux's PATH_MAX). */
export const MAX_PATH_BYTES = 4096;

export type Protocol = 'tcp' | 'tls';
export type FileSpec =
  | { kind: 'null' | 'stdin' | 'stdout' | 'stderr'; name: string }
  /** clientCa: PEM CAs a TLS client must chain to (mutual TLS); absent or empty: no client certificate asked. */
  | { kind: 'listen'; name: string; prot: Protocol; listener: number; addr: string; port: number; clientCa?: string[] }
  | { kind: 'connect'; name: string; prot: Protocol; host: string; port: number; ca: string[] }
  | { kind: 'dir'; name: string; path: string; readonly: boolean };

export interface KeepLimits {
  /** Linear memory cap in bytes. */
  memory: number | null;
  /** Open descriptors the guest may hold. */
  descriptors: number | null;
}

/** What the host tells the Keep before the module bytes follow. */
export interface KeepInit {
  moduleSize: number;
  argv: string[];
  env: [string, string][];
  files: FileSpec[];
  limits: KeepLimits;
  logLevel: LogLevel;
  steward: string | null;
  /** The kind of evidence the host's `attest` returns ('snp', 'sgx', 'tdx'), so the Keep picks its key curve first; absent: none. */
  evidence?: 'snp' | 'sgx' | 'tdx' | null;
  /**
   * Deploy from a registry: the Keep fetches and verifies the package itself (no `module`
   * messages follow, `moduleSize` is 0, `files` is empty: they come from the package's Enarx.toml).
   */
  deploy?: DeploySpec | null;
  /**
   * Hardware Keeps: the Keep collects its evidence itself through this interface (the host has
   * granted it exactly these paths) instead of asking the host with `attest`.
   */
  collect?: EvidenceInterface | null;
}

export interface EvidenceInterface {
  via: 'configfs-tsm' | 'gramine';
  /** The configfs-tsm report directory, or Gramine's attestation directory (absolute). */
  root: string;
}

/** What the Keep is to fetch and whom it trusts, fixed at start: the host cannot change it later. */
export interface DeploySpec {
  /** The registry's origin, e.g. https://registry.example:8443 (http only on loopback). */
  origin: string;
  user: string;
  repo: string;
  tag: string;
  /** Extra trust anchors (PEM) for the registry's server certificate, besides the system roots. */
  ca: string[];
  /** Public JWKs (JSON text) whose signatures the Keep accepts on the tag. */
  trustedKeys: string[];
  allowUnsigned: boolean;
  /** A host directory the Keep may write: the verified package is written there, then preopened read-only. */
  stage: string;
}

/** What the host tells a Keep it starts without a workload (version 2). */
export interface StandbyInit {
  limits: KeepLimits;
  logLevel: LogLevel;
  /** The host's default Steward; the client's provisioning may name another. */
  steward: string | null;
  evidence?: 'snp' | 'sgx' | 'tdx' | null;
}

/**
 * What a hardware Keep asks its host to fetch for its CSR: public identifiers only (never the report
 * or quote, whose report data binds the Keep's key and workload). SNP: the key that signed the report,
 * its product (null for a version 2 report, which does not say), CHIP_ID, the raw REPORTED_TCB, and
 * whether the Keep needs the VCEK itself (`leaf`: it has none from the host's certificate table).
 * SGX/TDX: the FMSPC and the CA of the PCK certificate in the quote.
 */
export type CollateralRequest =
  | { kind: 'snp'; key: 'vcek' | 'vlek'; product: AmdProduct | null; chipId: Uint8Array; tcb: Uint8Array; leaf: boolean }
  | { kind: 'sgx' | 'tdx'; fmspc: string; ca: 'processor' | 'platform' };

/** A signed PCS document (TCB info, QE identity) and its issuer chain, DER leaf first. */
export interface SignedDocument {
  certs: Uint8Array[];
  report: Uint8Array;
}

/**
 * The collateral the host found (AMD KDS / Intel PCS, through its cache). Public, signed data: the
 * Keep only places it in its CSR, and the Steward verifies every piece against its pinned roots.
 */
export interface HostCollateral {
  /** SNP: the VCEK or VLEK (DER), when the request asked for it. */
  leaf: Uint8Array | null;
  /** CRLs under the URL Enarx's Steward looks them up by (the issuer's CRL distribution point). */
  crls: { url: string; crl: Uint8Array }[];
  /** SGX/TDX: the TCB info for the FMSPC. */
  tcb: SignedDocument | null;
  /** TDX: the TD_QE identity (Enarx's SGX evidence has no place for it). */
  qe: SignedDocument | null;
}

/** Bounds on a collateral answer: real ones hold a handful of items of a few KiB. */
export const COLLATERAL_LIMITS = { crls: 8, certs: 8, itemBytes: 256 * 1024, urlBytes: 512 } as const;

export type FailKind = 'trap' | 'limit' | 'error';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** Messages the host sends to the Keep. */
export type HostMessage =
  | { t: 'hello'; version: number; init: KeepInit }
  | { t: 'module'; bytes: Uint8Array }
  | { t: 'data'; stream: number; bytes: Uint8Array }
  | { t: 'eof'; stream: number }
  | { t: 'credit'; stream: number; bytes: number }
  | { t: 'accept'; listener: number; stream: number; peer: string; port: number }
  | { t: 'dialed'; stream: number; error: string | null }
  | { t: 'reset'; stream: number; reason: string }
  | { t: 'evidence'; id: number; kind: string | null; bytes: Uint8Array | null; error: string | null }
  | { t: 'symlinked'; id: number; error: string | null }
  | { t: 'fsynced'; id: number; error: string | null }
  | { t: 'standby'; version: number; init: StandbyInit }
  | { t: 'assign'; keep: string }
  | { t: 'challenge'; nonce: Uint8Array }
  | { t: 'provision'; bytes: Uint8Array; more: boolean }
  | { t: 'listening'; listener: number; port: number; error: string | null }
  /** The answer to `get-collateral`: what the host found, or why it found nothing. */
  | { t: 'collateral'; id: number; collateral: HostCollateral | null; error: string | null };

/** Messages the Keep sends to the host. */
export type KeepMessage =
  | { t: 'data'; stream: number; bytes: Uint8Array }
  | { t: 'eof'; stream: number }
  | { t: 'credit'; stream: number; bytes: number }
  | { t: 'close'; stream: number }
  | { t: 'dial'; stream: number; host: string; port: number }
  | { t: 'attest'; id: number; reportData: Uint8Array }
  | { t: 'get-collateral'; id: number; request: CollateralRequest }
  | { t: 'symlink'; id: number; target: string; path: string }
  /** dev and ino: decimal text (they may exceed 2^53); dataOnly: 1 for fdatasync. */
  | { t: 'fsync'; id: number; path: string; dev: string; ino: string; dataOnly: 0 | 1 }
  | { t: 'log'; level: LogLevel; text: string }
  /** A deploy's package is verified and certified: what the Keep runs (informational for the host). */
  | {
    t: 'deployed'; slug: string; digest: string; signer: string | null;
    /** The package's own Enarx.toml [limits] that the host enforces (rss bytes, wall-time ms, descriptors), or null. */
    rss: number | null; wallTime: number | null; descriptors: number | null;
  }
  | { t: 'exit'; code: number }
  | { t: 'fail'; kind: FailKind; message: string }
  | { t: 'ready'; publicKey: Uint8Array }
  | { t: 'provisioned' }
  | { t: 'refused'; reason: string }
  /** `at`: the address and port a deploy's Enarx.toml names (a provisioned Keep lets the host choose). */
  | { t: 'listen'; listener: number; name: string; prot: Protocol; at?: { addr: string; port: number } }
  | { t: 'certified'; chain: string };

export type Message = HostMessage | KeepMessage;
export type Direction = 'host-to-keep' | 'keep-to-host';

const DECODE_OPTIONS = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true,
  tags: [],
} as const;

/** The protocol has no floating-point fields; refusing float tokens also rules out 1.0 standing in for 1. */
class IntegerOnlyTokenizer extends Tokenizer {
  override next() {
    const token = super.next();
    if (token.type === Type.float) throw new Error('floating-point values are not allowed');
    return token;
  }
}

// ---- encoding ----

export function encodeMessage(m: Message): Uint8Array {
  return encode(toWire(m));
}

function toWire(m: Message): unknown[] {
  switch (m.t) {
    case 'hello':
      return ['hello', m.version, initToWire(m.init)];
    case 'module':
      return ['module', m.bytes];
    case 'data':
      return ['data', m.stream, m.bytes];
    case 'eof':
    case 'close':
      return [m.t, m.stream];
    case 'credit':
      return ['credit', m.stream, m.bytes];
    case 'accept':
      return ['accept', m.listener, m.stream, m.peer, m.port];
    case 'dialed':
      return ['dialed', m.stream, m.error];
    case 'reset':
      return ['reset', m.stream, m.reason];
    case 'evidence':
      return ['evidence', m.id, m.kind, m.bytes, m.error];
    case 'dial':
      return ['dial', m.stream, m.host, m.port];
    case 'attest':
      return ['attest', m.id, m.reportData];
    case 'get-collateral':
      return ['get-collateral', m.id, { ...m.request }];
    case 'collateral':
      return ['collateral', m.id, m.collateral ? collateralToWire(m.collateral) : null, m.error];
    case 'symlink':
      return ['symlink', m.id, m.target, m.path];
    case 'symlinked':
      return ['symlinked', m.id, m.error];
    case 'fsync':
      return ['fsync', m.id, m.path, m.dev, m.ino, m.dataOnly];
    case 'fsynced':
      return ['fsynced', m.id, m.error];
    case 'log':
      return ['log', m.level, m.text];
    case 'deployed':
      return ['deployed', m.slug, m.digest, m.signer, m.rss, m.wallTime, m.descriptors];
    case 'exit':
      return ['exit', m.code];
    case 'fail':
      return ['fail', m.kind, m.message];
    case 'standby':
      return ['standby', m.version, standbyToWire(m.init)];
    case 'assign':
      return ['assign', m.keep];
    case 'challenge':
      return ['challenge', m.nonce];
    case 'provision':
      return ['provision', m.bytes, m.more];
    case 'listening':
      return ['listening', m.listener, m.port, m.error];
    case 'ready':
      return ['ready', m.publicKey];
    case 'provisioned':
      return ['provisioned'];
    case 'refused':
      return ['refused', m.reason];
    case 'listen':
      return m.at ? ['listen', m.listener, m.name, m.prot, m.at.addr, m.at.port] : ['listen', m.listener, m.name, m.prot];
    case 'certified':
      return ['certified', m.chain];
  }
}

function collateralToWire(c: HostCollateral): Record<string, unknown> {
  const doc = (d: SignedDocument | null) => (d ? { certs: [...d.certs], report: d.report } : null);
  return { leaf: c.leaf, crls: c.crls.map((e) => [e.url, e.crl]), tcb: doc(c.tcb), qe: doc(c.qe) };
}

function standbyToWire(init: StandbyInit): Record<string, unknown> {
  return {
    limits: { memory: init.limits.memory, descriptors: init.limits.descriptors },
    logLevel: init.logLevel,
    steward: init.steward,
    ...(init.evidence ? { evidence: init.evidence } : {}),
  };
}

function initToWire(init: KeepInit): Record<string, unknown> {
  return {
    moduleSize: init.moduleSize,
    argv: init.argv,
    env: init.env,
    files: init.files.map((f) => (f.kind === 'connect' ? { ...f, ca: [...f.ca] } : f.kind === 'listen' && f.clientCa ? { ...f, clientCa: [...f.clientCa] } : { ...f })),
    limits: { memory: init.limits.memory, descriptors: init.limits.descriptors },
    logLevel: init.logLevel,
    steward: init.steward,
    ...(init.evidence ? { evidence: init.evidence } : {}),
    ...(init.deploy ? { deploy: { ...init.deploy, ca: [...init.deploy.ca], trustedKeys: [...init.deploy.trustedKeys] } } : {}),
    ...(init.collect ? { collect: { via: init.collect.via, root: init.collect.root } } : {}),
  };
}

// ---- decoding and validation ----

/** Decodes one frame payload sent in `direction`; throws ProtocolError naming what is wrong. */
export function decodeMessage(payload: Uint8Array, direction: Direction): Message {
  let value: unknown;
  try {
    value = decode(payload, { ...DECODE_OPTIONS, tokenizer: new IntegerOnlyTokenizer(payload, DECODE_OPTIONS) });
  } catch (err) {
    throw new ProtocolError(`undecodable CBOR: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!Array.isArray(value) || value.length === 0 || typeof value[0] !== 'string') {
    throw new ProtocolError('a message must be a CBOR array that starts with its type name');
  }
  const type = value[0];
  const allowed = direction === 'host-to-keep' ? HOST_TYPES : KEEP_TYPES;
  if (!allowed.has(type)) {
    const from = direction === 'host-to-keep' ? 'host' : 'Keep';
    throw new ProtocolError(`the ${from} may not send '${type.slice(0, 32)}' messages`);
  }
  const v = new Reader(type, value);
  switch (type) {
    case 'hello':
      v.arity(3);
      return { t: 'hello', version: v.uint(1, 0xffff), init: readInit(v.at(2)) };
    case 'module':
      v.arity(2);
      return { t: 'module', bytes: v.bytes(1, 1, MAX_CHUNK_BYTES) };
    case 'data':
      v.arity(3);
      return { t: 'data', stream: v.stream(1), bytes: v.bytes(2, 1, MAX_CHUNK_BYTES) };
    case 'eof':
    case 'close':
      v.arity(2);
      return { t: type, stream: v.stream(1) };
    case 'credit':
      v.arity(3);
      return { t: 'credit', stream: v.stream(1), bytes: v.uint(2, 0x7fff_ffff, 1) };
    case 'accept':
      v.arity(5);
      return { t: 'accept', listener: v.stream(1), stream: v.stream(2), peer: v.text(3, 64), port: v.uint(4, 65535) };
    case 'dialed':
      v.arity(3);
      return { t: 'dialed', stream: v.stream(1), error: v.optText(2, 512) };
    case 'reset':
      v.arity(3);
      return { t: 'reset', stream: v.stream(1), reason: v.text(2, 512) };
    case 'evidence': {
      v.arity(5);
      const m = {
        t: 'evidence' as const,
        id: v.uint(1, MAX_STREAM_ID),
        kind: v.optText(2, 32),
        bytes: v.optBytes(3, MAX_EVIDENCE_BYTES),
        error: v.optText(4, 1024),
      };
      if ((m.bytes === null) === (m.error === null) || (m.bytes === null) !== (m.kind === null)) {
        throw new ProtocolError("'evidence' carries either kind and bytes, or an error");
      }
      return m;
    }
    case 'dial':
      v.arity(4);
      return { t: 'dial', stream: v.stream(1), host: v.text(2, 253, 1), port: v.uint(3, 65535, 1) };
    case 'attest':
      v.arity(3);
      return { t: 'attest', id: v.uint(1, MAX_STREAM_ID), reportData: v.bytes(2, REPORT_DATA_BYTES, REPORT_DATA_BYTES) };
    case 'get-collateral':
      v.arity(3);
      return { t: 'get-collateral', id: v.uint(1, MAX_STREAM_ID), request: readCollateralRequest(v.at(2)) };
    case 'collateral': {
      v.arity(4);
      const m = { t: 'collateral' as const, id: v.uint(1, MAX_STREAM_ID), collateral: v.at(2) === null ? null : readHostCollateral(v.at(2)), error: v.optText(3, 1024) };
      if ((m.collateral === null) === (m.error === null)) throw new ProtocolError("'collateral' carries either the collateral or an error");
      return m;
    }
    case 'symlink':
      v.arity(4);
      return { t: 'symlink', id: v.uint(1, MAX_STREAM_ID), target: v.text(2, MAX_PATH_BYTES, 1), path: v.text(3, MAX_PATH_BYTES, 1) };
    case 'symlinked':
    case 'fsynced':
      v.arity(3);
      return { t: type, id: v.uint(1, MAX_STREAM_ID), error: v.optText(2, 32) };
    case 'fsync': {
      v.arity(6);
      const m = {
        t: 'fsync' as const, id: v.uint(1, MAX_STREAM_ID), path: v.text(2, MAX_PATH_BYTES, 1),
        dev: v.text(3, 20, 1), ino: v.text(4, 20, 1), dataOnly: v.uint(5, 1) as 0 | 1,
      };
      if (!/^\d+$/.test(m.dev) || !/^\d+$/.test(m.ino)) throw new ProtocolError("'fsync' dev and ino must be decimal digits");
      return m;
    }
    case 'log':
      v.arity(3);
      return { t: 'log', level: v.oneOf(1, LOG_LEVELS), text: v.text(2, MAX_TEXT_BYTES) };
    case 'deployed':
      v.arity(7);
      return {
        t: 'deployed', slug: v.text(1, 512, 1), digest: v.text(2, 256, 1), signer: v.optText(3, 128),
        rss: v.optUint(4, Number.MAX_SAFE_INTEGER, 1), wallTime: v.optUint(5, MAX_WALL_TIME_MS, 1), descriptors: v.optUint(6, 2 ** 31 - 1, 3),
      };
    case 'exit':
      v.arity(2);
      return { t: 'exit', code: v.uint(1, MAX_EXIT_CODE) };
    case 'fail':
      v.arity(3);
      return { t: 'fail', kind: v.oneOf(1, FAIL_KINDS), message: v.text(2, 4096) };
    case 'standby':
      v.arity(3);
      return { t: 'standby', version: v.uint(1, 0xffff), init: readStandby(v.at(2)) };
    case 'assign': {
      v.arity(2);
      const keep = v.text(1, 36, 36);
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(keep)) v.fail(1, 'a Keep id (a lower-case UUID)');
      return { t: 'assign', keep };
    }
    case 'challenge':
      v.arity(2);
      return { t: 'challenge', nonce: v.bytes(1, NONCE_BYTES, NONCE_BYTES) };
    case 'provision':
      v.arity(3);
      return { t: 'provision', bytes: v.bytes(1, 1, MAX_CHUNK_BYTES), more: v.bool(2) };
    case 'listening': {
      v.arity(4);
      const m = { t: 'listening' as const, listener: v.stream(1), port: v.uint(2, 65535), error: v.optText(3, 512) };
      if ((m.port === 0) !== (m.error !== null)) throw new ProtocolError("'listening' carries either a port or an error");
      return m;
    }
    case 'ready':
      v.arity(2);
      return { t: 'ready', publicKey: v.bytes(1, 1, 1024) };
    case 'provisioned':
      v.arity(1);
      return { t: 'provisioned' };
    case 'refused':
      v.arity(2);
      return { t: 'refused', reason: v.text(1, 512, 1) };
    case 'listen': {
      if (value.length !== 4) v.arity(6);
      const m = { t: 'listen' as const, listener: v.stream(1), name: v.text(2, 4096, 1), prot: v.oneOf(3, PROTOCOLS) };
      return value.length === 6 ? { ...m, at: { addr: v.text(4, 64, 1), port: v.uint(5, 65535) } } : m;
    }
    case 'certified': {
      v.arity(2);
      const chain = v.text(1, MAX_CHAIN_BYTES, 1);
      if (!chain.startsWith('-----BEGIN CERTIFICATE-----')) v.fail(1, 'a PEM certificate chain');
      return { t: 'certified', chain };
    }
  }
  throw new ProtocolError(`unknown message type '${type}'`);
}

const HOST_TYPES = new Set(['hello', 'module', 'data', 'eof', 'credit', 'accept', 'dialed', 'reset', 'evidence', 'symlinked', 'fsynced', 'standby', 'assign', 'challenge', 'provision', 'listening', 'collateral']);
const KEEP_TYPES = new Set(['data', 'eof', 'credit', 'close', 'dial', 'attest', 'get-collateral', 'symlink', 'fsync', 'log', 'deployed', 'exit', 'fail', 'ready', 'provisioned', 'refused', 'listen', 'certified']);
const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
const FAIL_KINDS = ['trap', 'limit', 'error'] as const;
const STDIO_KINDS = ['null', 'stdin', 'stdout', 'stderr'] as const;
const PROTOCOLS = ['tcp', 'tls'] as const;

class Reader {
  readonly #what: string;
  readonly #items: unknown[];
  constructor(what: string, items: unknown[]) {
    this.#what = what;
    this.#items = items;
  }
  fail(index: number, expected: string): never {
    throw new ProtocolError(`'${this.#what}' field ${index} must be ${expected}`);
  }
  arity(n: number): void {
    if (this.#items.length !== n) {
      throw new ProtocolError(`'${this.#what}' must have ${n - 1} field(s), not ${this.#items.length - 1}`);
    }
  }
  at(i: number): unknown {
    return this.#items[i];
  }
  uint(i: number, max: number, min = 0): number {
    const x = this.#items[i];
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min || x > max) this.fail(i, `an integer in ${min}..${max}`);
    return x;
  }
  stream(i: number): number {
    return this.uint(i, MAX_STREAM_ID);
  }
  text(i: number, maxBytes: number, minLength = 0): string {
    const x = this.#items[i];
    if (typeof x !== 'string' || x.length < minLength || Buffer.byteLength(x) > maxBytes) {
      this.fail(i, `a text string of ${minLength}..${maxBytes} bytes`);
    }
    return x;
  }
  optText(i: number, maxBytes: number): string | null {
    return this.#items[i] === null ? null : this.text(i, maxBytes);
  }
  optUint(i: number, max: number, min = 0): number | null {
    return this.#items[i] === null ? null : this.uint(i, max, min);
  }
  bytes(i: number, minLength: number, maxLength: number): Uint8Array {
    const x = this.#items[i];
    if (!(x instanceof Uint8Array) || x.length < minLength || x.length > maxLength) {
      this.fail(i, `a byte string of ${minLength}..${maxLength} bytes`);
    }
    return x;
  }
  bool(i: number): boolean {
    const x = this.#items[i];
    if (typeof x !== 'boolean') this.fail(i, 'a boolean');
    return x;
  }
  optBytes(i: number, maxLength: number): Uint8Array | null {
    return this.#items[i] === null ? null : this.bytes(i, 1, maxLength);
  }
  oneOf<T extends string>(i: number, options: readonly T[]): T {
    const x = this.#items[i];
    if (typeof x !== 'string' || !(options as readonly string[]).includes(x)) this.fail(i, `one of ${options.join(', ')}`);
    return x as T;
  }
}

/** Validates a CBOR map: exactly the listed keys, each checked by its reader. */
class MapReader {
  readonly #what: string;
  readonly #map: Record<string, unknown>;
  constructor(what: string, value: unknown, required: readonly string[], optional: readonly string[] = []) {
    this.#what = what;
    if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
      throw new ProtocolError(`${what} must be a map`);
    }
    const map = value as Record<string, unknown>;
    for (const key of Object.keys(map)) {
      if (!required.includes(key) && !optional.includes(key)) throw new ProtocolError(`${what} has unknown key '${key.slice(0, 32)}'`);
    }
    for (const key of required) {
      if (!Object.hasOwn(map, key)) throw new ProtocolError(`${what} lacks key '${key}'`);
    }
    this.#map = map;
  }
  fail(key: string, expected: string): never {
    throw new ProtocolError(`${this.#what}.${key} must be ${expected}`);
  }
  get(key: string): unknown {
    return this.#map[key];
  }
  uint(key: string, max: number, min = 0): number {
    const x = this.#map[key];
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min || x > max) this.fail(key, `an integer in ${min}..${max}`);
    return x;
  }
  optUint(key: string, max: number, min = 0): number | null {
    return this.#map[key] === null ? null : this.uint(key, max, min);
  }
  text(key: string, maxBytes = MAX_TEXT_BYTES, minLength = 0): string {
    const x = this.#map[key];
    if (typeof x !== 'string' || x.length < minLength || Buffer.byteLength(x) > maxBytes) {
      this.fail(key, `a text string of ${minLength}..${maxBytes} bytes`);
    }
    return x;
  }
  optText(key: string, maxBytes = MAX_TEXT_BYTES): string | null {
    return this.#map[key] === null ? null : this.text(key, maxBytes);
  }
  bool(key: string): boolean {
    const x = this.#map[key];
    if (typeof x !== 'boolean') this.fail(key, 'a boolean');
    return x;
  }
  bytes(key: string, minLength: number, maxLength: number): Uint8Array {
    const x = this.#map[key];
    if (!(x instanceof Uint8Array) || x.length < minLength || x.length > maxLength) this.fail(key, `a byte string of ${minLength}..${maxLength} bytes`);
    // A plain view (cborg may hand out Buffers inside maps), so that values compare as they were sent.
    return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  }
  oneOf<T extends string>(key: string, options: readonly T[]): T {
    const x = this.#map[key];
    if (typeof x !== 'string' || !(options as readonly string[]).includes(x)) this.fail(key, `one of ${options.join(', ')}`);
    return x as T;
  }
  list(key: string): unknown[] {
    const x = this.#map[key];
    if (!Array.isArray(x) || x.length > MAX_LIST_ITEMS) this.fail(key, `an array of at most ${MAX_LIST_ITEMS} items`);
    return x;
  }
}

function readInit(value: unknown): KeepInit {
  const m = new MapReader('hello.init', value, ['moduleSize', 'argv', 'env', 'files', 'limits', 'logLevel', 'steward'], ['evidence', 'deploy', 'collect']);
  const deploy = m.get('deploy') === undefined || m.get('deploy') === null ? null : readDeploy(m.get('deploy'));
  const argv = m.list('argv').map((a, i) => {
    if (typeof a !== 'string' || Buffer.byteLength(a) > MAX_TEXT_BYTES) throw new ProtocolError(`hello.init.argv[${i}] must be a text string`);
    return a;
  });
  const env = m.list('env').map((pair, i): [string, string] => {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string' ||
      pair[0].length === 0 || pair[0].includes('=') || Buffer.byteLength(pair[0]) + Buffer.byteLength(pair[1]) > MAX_TEXT_BYTES) {
      throw new ProtocolError(`hello.init.env[${i}] must be a [name, value] pair of text strings, name non-empty without '='`);
    }
    return [pair[0], pair[1]];
  });
  const files = m.list('files').map((f, i) => readFile(f, `hello.init.files[${i}]`));
  const limits = new MapReader('hello.init.limits', m.get('limits'), ['memory', 'descriptors']);
  if (deploy && files.length > 0) m.fail('files', 'empty for a deploy (the package names its files)');
  return {
    moduleSize: deploy ? m.uint('moduleSize', 0) : m.uint('moduleSize', 100 * 1024 * 1024, 8),
    argv,
    env,
    files,
    limits: {
      memory: limits.optUint('memory', 2 ** 48, 65536),
      descriptors: limits.optUint('descriptors', 1 << 20, 3),
    },
    logLevel: m.oneOf('logLevel', LOG_LEVELS),
    steward: m.optText('steward', 2048),
    ...(m.get('evidence') === undefined || m.get('evidence') === null ? {} : { evidence: m.oneOf('evidence', EVIDENCE_KINDS) }),
    ...(deploy ? { deploy } : {}),
    ...(m.get('collect') === undefined || m.get('collect') === null ? {} : { collect: readEvidenceInterface(m.get('collect')) }),
  };
}

function readDeploy(value: unknown): DeploySpec {
  const m = new MapReader('hello.init.deploy', value, ['origin', 'user', 'repo', 'tag', 'ca', 'trustedKeys', 'allowUnsigned', 'stage']);
  const trustedKeys = m.list('trustedKeys').map((k, i) => {
    if (typeof k !== 'string' || i >= 64 || Buffer.byteLength(k) > 4096) throw new ProtocolError(`hello.init.deploy.trustedKeys[${i}] must be a JWK as JSON text (at most 64)`);
    return k;
  });
  return {
    origin: m.text('origin', 2048, 1),
    user: m.text('user', 255, 1),
    repo: m.text('repo', 255, 1),
    tag: m.text('tag', 255, 1),
    ca: pemList(m, 'ca', 'hello.init.deploy'),
    trustedKeys,
    allowUnsigned: m.bool('allowUnsigned'),
    stage: m.text('stage', 4096, 1),
  };
}

function readEvidenceInterface(value: unknown): EvidenceInterface {
  const m = new MapReader('hello.init.collect', value, ['via', 'root']);
  const root = m.text('root', 4096, 1);
  if (!root.startsWith('/') || root.includes('\0')) m.fail('root', 'an absolute path');
  return { via: m.oneOf('via', ['configfs-tsm', 'gramine'] as const), root };
}

const EVIDENCE_KINDS = ['snp', 'sgx', 'tdx'] as const;

function readCollateralRequest(value: unknown): CollateralRequest {
  const kind = new MapReader('get-collateral.request', value, ['kind'], ['key', 'product', 'chipId', 'tcb', 'leaf', 'fmspc', 'ca']).oneOf('kind', EVIDENCE_KINDS);
  if (kind === 'snp') {
    const m = new MapReader('get-collateral.request', value, ['kind', 'key', 'product', 'chipId', 'tcb', 'leaf']);
    return {
      kind,
      key: m.oneOf('key', ['vcek', 'vlek'] as const),
      product: m.get('product') === null ? null : m.oneOf<AmdProduct>('product', ['Milan', 'Genoa', 'Turin']),
      chipId: m.bytes('chipId', 64, 64),
      tcb: m.bytes('tcb', 8, 8),
      leaf: m.bool('leaf'),
    };
  }
  const m = new MapReader('get-collateral.request', value, ['kind', 'fmspc', 'ca']);
  const fmspc = m.text('fmspc', 12, 12);
  if (!/^[0-9A-F]{12}$/.test(fmspc)) m.fail('fmspc', '12 upper-case hex digits');
  return { kind, fmspc, ca: m.oneOf('ca', ['processor', 'platform'] as const) };
}

/** A DER item the Keep will place in its CSR as is: one SEQUENCE with a definite length that spans it all. */
function derSequence(x: unknown, what: string): Uint8Array {
  if (!(x instanceof Uint8Array) || x.length < 2 || x.length > COLLATERAL_LIMITS.itemBytes || x[0] !== 0x30 || derLength(x) !== x.length) {
    throw new ProtocolError(`${what} must be one DER SEQUENCE of at most ${COLLATERAL_LIMITS.itemBytes} bytes`);
  }
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}

/** The whole length (header + content) a DER header announces, or -1 when it is not a minimal definite length. */
function derLength(b: Uint8Array): number {
  const first = b[1]!;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n === 0 || n > 3 || b.length < 2 + n || b[2] === 0) return -1;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]!;
  return len < 0x80 ? -1 : 2 + n + len;
}

function readHostCollateral(value: unknown): HostCollateral {
  const m = new MapReader('collateral', value, ['leaf', 'crls', 'tcb', 'qe']);
  const crls = m.list('crls');
  if (crls.length > COLLATERAL_LIMITS.crls) m.fail('crls', `at most ${COLLATERAL_LIMITS.crls} entries`);
  const doc = (key: 'tcb' | 'qe'): SignedDocument | null => {
    if (m.get(key) === null) return null;
    const d = new MapReader(`collateral.${key}`, m.get(key), ['certs', 'report']);
    const certs = d.list('certs');
    if (certs.length > COLLATERAL_LIMITS.certs) d.fail('certs', `at most ${COLLATERAL_LIMITS.certs} certificates`);
    const report = d.bytes('report', 1, COLLATERAL_LIMITS.itemBytes);
    return { certs: certs.map((c, i) => derSequence(c, `collateral.${key}.certs[${i}]`)), report };
  };
  return {
    leaf: m.get('leaf') === null ? null : derSequence(m.get('leaf'), 'collateral.leaf'),
    crls: crls.map((entry, i) => {
      if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || !/^https:\/\/[\x21-\x7e]+$/.test(entry[0]) || entry[0].length > COLLATERAL_LIMITS.urlBytes) {
        throw new ProtocolError(`collateral.crls[${i}] must be [an https URL of at most ${COLLATERAL_LIMITS.urlBytes} bytes, a DER CRL]`);
      }
      return { url: entry[0], crl: derSequence(entry[1], `collateral.crls[${i}].crl`) };
    }),
    tcb: doc('tcb'),
    qe: doc('qe'),
  };
}

function readStandby(value: unknown): StandbyInit {
  const m = new MapReader('standby.init', value, ['limits', 'logLevel', 'steward'], ['evidence']);
  const limits = new MapReader('standby.init.limits', m.get('limits'), ['memory', 'descriptors']);
  return {
    limits: { memory: limits.optUint('memory', 2 ** 48, 65536), descriptors: limits.optUint('descriptors', 1 << 20, 3) },
    logLevel: m.oneOf('logLevel', LOG_LEVELS),
    steward: m.optText('steward', 2048),
    ...(m.get('evidence') === undefined || m.get('evidence') === null ? {} : { evidence: m.oneOf('evidence', EVIDENCE_KINDS) }),
  };
}

function pemList(m: MapReader, key: string, what: string): string[] {
  return m.list(key).map((pem, i) => {
    if (typeof pem !== 'string' || i >= 16 || !pem.includes('-----BEGIN CERTIFICATE-----') || Buffer.byteLength(pem) > MAX_TEXT_BYTES) {
      throw new ProtocolError(`${what}.${key}[${i}] must be a PEM certificate (at most 16)`);
    }
    return pem;
  });
}

function readFile(value: unknown, what: string): FileSpec {
  const kind = new MapReader(what, value, ['kind'], ['name', 'prot', 'listener', 'addr', 'port', 'host', 'path', 'readonly', 'ca', 'clientCa']).get('kind');
  switch (kind) {
    case 'null':
    case 'stdin':
    case 'stdout':
    case 'stderr': {
      const m = new MapReader(what, value, ['kind', 'name']);
      return { kind: m.oneOf('kind', STDIO_KINDS), name: fileName(m) };
    }
    case 'listen': {
      const m = new MapReader(what, value, ['kind', 'name', 'prot', 'listener', 'addr', 'port'], ['clientCa']);
      const listener = m.uint('listener', MAX_STREAM_ID, FIRST_DYNAMIC_STREAM);
      const clientCa = m.get('clientCa') === undefined ? undefined : pemList(m, 'clientCa', what);
      return { kind, name: fileName(m), prot: m.oneOf('prot', PROTOCOLS), listener, addr: m.text('addr', 64, 1), port: m.uint('port', 65535), ...(clientCa ? { clientCa } : {}) };
    }
    case 'connect': {
      const m = new MapReader(what, value, ['kind', 'name', 'prot', 'host', 'port', 'ca']);
      const ca = pemList(m, 'ca', what);
      return { kind, name: fileName(m), prot: m.oneOf('prot', PROTOCOLS), host: m.text('host', 253, 1), port: m.uint('port', 65535, 1), ca };
    }
    case 'dir': {
      const m = new MapReader(what, value, ['kind', 'name', 'path', 'readonly']);
      return { kind, name: fileName(m), path: m.text('path', 4096, 1), readonly: m.bool('readonly') };
    }
    default:
      throw new ProtocolError(`${what}.kind must be one of null, stdin, stdout, stderr, listen, connect, dir`);
  }
}

function fileName(m: MapReader): string {
  const name = m.text('name', 4096, 1);
  if (name.includes(':')) m.fail('name', "a name without ':'");
  return name;
}
