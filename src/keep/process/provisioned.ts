/**
 * The Keep's side of a provisioned Keep (sallyport version 2, used by the keep manager): its
 * key, made while it waits; the report data that binds that key to its id and a client's
 * challenge; the provisioning JWE, which only this Keep can open; and the sealed output
 * channel, carried on the stdout stream. The host sees ciphertext only.
 */
import { ProtocolError, STDOUT_STREAM, MAX_PROVISION_BYTES } from '../../sallyport/index.ts';
import type { FileSpec, KeepEndpoint } from '../../sallyport/index.ts';
import type { KeepKey, OutputPayload, Provision } from '../../keepmgr/crypto.ts';
import { IoError, WOULD_BLOCK } from '../../wasi/io.ts';
import type { InputStream, OutputStream, WouldBlock } from '../../wasi/io.ts';

// Loaded when a Keep is started in standby: a plain `enarx run` never parses it.
const crypto = () => import('../../keepmgr/crypto.ts');

/** What decides, inside the Keep, how the provisioned workload runs. */
export interface ProvisionedPlan {
  provision: Provision;
  argv: string[];
  env: [string, string][];
  /** Listen files still lack their listener id and port: the host binds them on request. */
  files: (FileSpec | { kind: 'listen-request'; name: string; prot: 'tcp' | 'tls'; clientCa?: string[] })[];
  steward: string | null;
}

export class ProvisionedKeep {
  readonly #endpoint: KeepEndpoint;
  #key: KeepKey | undefined;
  #keepId: string | undefined;
  #nonce: Uint8Array | undefined;
  #provisioned = false;
  #pieces: Uint8Array[] = [];
  #received = 0;
  #channel: SealedChannel | undefined;

  constructor(endpoint: KeepEndpoint) {
    this.#endpoint = endpoint;
  }

  /** Makes the key now, while the Keep waits in the pool, so handing it out costs nothing. */
  async makeKey(): Promise<Uint8Array> {
    this.#key = await (await crypto()).generateKeepKey();
    return this.#key.spki;
  }

  assign(keepId: string): void {
    if (!this.#key || this.#keepId !== undefined) throw new ProtocolError("'assign' out of order (before the key, or twice)");
    this.#keepId = keepId;
  }

  /** The report data to attest for this challenge; only the latest challenge is valid. */
  async challenge(nonce: Uint8Array): Promise<Uint8Array> {
    if (!this.#key || this.#keepId === undefined) throw new ProtocolError("'challenge' before 'assign'");
    if (this.#provisioned) throw new ProtocolError("'challenge' after provisioning");
    this.#nonce = nonce;
    return (await crypto()).bindingReportData(this.#key.spki, this.#keepId, nonce);
  }

  /** Collects one piece; returns the whole JWE after the last one. */
  piece(bytes: Uint8Array, more: boolean): string | undefined {
    if (this.#provisioned) throw new ProtocolError("'provision' after the Keep was provisioned");
    this.#received += bytes.length;
    if (this.#received > MAX_PROVISION_BYTES) throw new ProtocolError(`provisioning larger than ${MAX_PROVISION_BYTES} bytes`);
    this.#pieces.push(bytes);
    if (more) return undefined;
    const jwe = Buffer.concat(this.#pieces).toString('latin1');
    this.#pieces = [];
    this.#received = 0;
    return jwe;
  }

  /**
   * Opens the JWE and checks it was made for this Keep and its latest challenge; throws a
   * ChannelError naming what is wrong (the Keep then refuses it and waits for a genuine one).
   */
  async open(jwe: string): Promise<Provision> {
    const lib = await crypto();
    if (!this.#key || this.#keepId === undefined || !this.#nonce) throw new lib.ChannelError('provisioning before a challenge');
    const p = await lib.decryptProvision(jwe, this.#key.privateKey, this.#keepId, this.#nonce);
    this.#provisioned = true;
    const peer = await lib.importOutputPeer(p.outputKey);
    const key = await lib.deriveOutputKeyBytes(this.#key.privateKey, peer, this.#keepId, p.nonce);
    this.#channel = new SealedChannel(this.#endpoint, key, this.#keepId, lib.sealRecord);
    return p;
  }

  get channel(): SealedChannel | undefined {
    return this.#channel;
  }
}

/**
 * Argv, environment and files from the provisioned Enarx.toml, as `enarx run` builds them.
 * Its errors are the client's business only: they are sealed to it, never told the host.
 */
export async function planFor(p: Provision, defaultSteward: string | null): Promise<ProvisionedPlan> {
  const { parseConfig, DEFAULT_FILES, fdEnvironment } = await import('../../config/index.ts');
  const config = p.config === null ? null : parseConfig(p.config, 'Enarx.toml', '/');
  const files = config?.files ?? DEFAULT_FILES;
  const out: ProvisionedPlan['files'] = files.map((f) => {
    switch (f.kind) {
      case 'dir':
        throw new Error(`file '${f.name}': a provisioned Keep has no host directories`);
      case 'listen':
        return { kind: 'listen-request', name: f.name, prot: f.prot, ...(f.clientCaFile ? { clientCa: sentCas(p, f.name, 'client_ca') } : {}) };
      case 'connect':
        return { kind: 'connect', name: f.name, prot: f.prot, host: f.host, port: f.port, ca: f.caFile ? sentCas(p, f.name, 'ca') : [] };
      default:
        return { kind: f.kind, name: f.name };
    }
  });
  return {
    provision: p,
    argv: ['main.wasm', ...(config?.args ?? [])],
    env: [...fdEnvironment(files), ...(config?.env ?? []).map(([k, v]) => [k, v] as [string, string])],
    files: out,
    steward: p.steward ?? config?.steward ?? defaultSteward,
  };
}

/** The certificates the client sealed for a file's CA file: the client reads the file, the Keep never sees the client's disk. */
function sentCas(p: Provision, name: string, key: 'ca' | 'client_ca'): string[] {
  const certs = p.cas?.[name];
  if (!certs?.length) throw new Error(`file '${name}': its ${key} file was not provisioned with it (deploy from the package directory, which holds the file)`);
  return certs;
}

/** Bytes a record adds to the data it seals: length prefix, CBOR map and tag. */
const RECORD_OVERHEAD = 64;
/** Largest piece of output one record seals. */
const RECORD_DATA_BYTES = 64 * 1024;

/**
 * The output channel on the stdout stream: records `u32be length ‖ AES-256-GCM ciphertext`,
 * numbered implicitly from 0. Stdout, stderr, log lines and the exit record share the counter.
 * Each record is sent whole (it fits the window before it is sealed), so credit still bounds
 * what the Keep can make the host hold.
 */
export class SealedChannel {
  readonly #endpoint: KeepEndpoint;
  readonly #key: Uint8Array;
  readonly #keepId: string;
  readonly #seal: typeof import('../../keepmgr/crypto.ts').sealRecord;
  #seq = 0;

  constructor(endpoint: KeepEndpoint, key: Uint8Array, keepId: string, seal: typeof import('../../keepmgr/crypto.ts').sealRecord) {
    this.#endpoint = endpoint;
    this.#key = key;
    this.#keepId = keepId;
    this.#seal = seal;
  }

  /** How many bytes of output one record could seal now. */
  writable(): number {
    return Math.max(0, Math.min(RECORD_DATA_BYTES, this.#endpoint.sendWindow(STDOUT_STREAM) - RECORD_OVERHEAD));
  }

  ready(): Promise<void> {
    return this.#endpoint.whenWritable(STDOUT_STREAM, RECORD_OVERHEAD + 1);
  }

  flush(): Promise<void> {
    return this.#endpoint.drained();
  }

  /** Seals as much of `bytes` as fits now; returns how much. */
  tryWrite(stream: 'stdout' | 'stderr' | 'log', bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.writable());
    if (n === 0) return 0;
    this.#send({ stream, data: bytes.slice(0, n) });
    return n;
  }

  /** Seals a whole message, waiting for window as needed (log lines and the exit record). */
  async write(payload: OutputPayload): Promise<void> {
    if (payload.stream !== 'exit') {
      for (let at = 0; at < payload.data.length; ) {
        await this.ready();
        at += this.tryWrite(payload.stream, payload.data.subarray(at));
      }
      return;
    }
    await this.#endpoint.whenWritable(STDOUT_STREAM, RECORD_OVERHEAD + 4096);
    this.#send(payload);
  }

  #send(payload: OutputPayload): void {
    const { ct } = this.#seal(this.#key, this.#keepId, this.#seq++, payload);
    const frame = new Uint8Array(4 + ct.length);
    new DataView(frame.buffer).setUint32(0, ct.length);
    frame.set(ct, 4);
    if (this.#endpoint.trySendData(STDOUT_STREAM, frame) !== frame.length) throw new Error('the output record did not fit the window');
  }
}

/** The workload's stdout or stderr in a provisioned Keep: each write becomes a sealed record. */
export class SealedOutput implements OutputStream {
  readonly #channel: SealedChannel;
  readonly #stream: 'stdout' | 'stderr';
  #closed = false;

  constructor(channel: SealedChannel, stream: 'stdout' | 'stderr') {
    this.#channel = channel;
    this.#stream = stream;
  }

  tryWrite(bytes: Uint8Array): number {
    if (this.#closed) throw new IoError('EPIPE');
    return this.#channel.tryWrite(this.#stream, bytes);
  }
  writableBytes(): number {
    return this.#channel.writable();
  }
  ready(): Promise<void> {
    return this.#channel.ready();
  }
  flush(): Promise<void> {
    return this.#channel.flush();
  }
  close(): void {
    this.#closed = true;
  }
}

/** Stdin from bytes the client provisioned: always ready, then end of stream. */
export class BytesInput implements InputStream {
  #bytes: Uint8Array | null;
  #at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  get ended(): boolean {
    return this.#bytes === null || this.#at >= this.#bytes.length;
  }

  tryRead(max: number): Uint8Array | null | WouldBlock {
    if (this.#bytes === null) throw new IoError('EBADF');
    if (this.#at >= this.#bytes.length) return null;
    const out = this.#bytes.slice(this.#at, this.#at + max);
    this.#at += out.length;
    return out.length > 0 ? out : WOULD_BLOCK;
  }

  readableBytes(): number {
    return this.#bytes ? this.#bytes.length - this.#at : 0;
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.#bytes = null;
  }
}
