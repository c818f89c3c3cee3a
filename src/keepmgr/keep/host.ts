/**
 * The keep manager's handle on one Keep: a process Keep (src/keep/process) started without its
 * workload, speaking the sallyport's provisioning messages (version 2). The process Keep's host
 * side starts it (permission model, kernel CPU and descriptor limits, its own user, death with
 * its host), enforces its memory limits and relays its sockets; this class adds what a keep
 * manager needs: evidence for challenges, the sealed output records carried on its stdout
 * stream, resource-use samples for the API, and a KeepEnd in keepmgr's terms.
 */
import { EventEmitter } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import { startProcessKeep, ProvisionRefusedError, type ProcessKeepOutcome, type ProvisionedKeep } from '../../keep/process/host.ts';
import type { EvidenceSource, Collected } from './evidence.ts';

export interface KeepLimits {
  /** Resident memory of the Keep process, in MiB. */
  memoryMiB: number;
  /** CPU time (user + system), in seconds. */
  cpuSeconds: number;
  /** Open file descriptors of the Keep process (Node itself needs about 25). */
  descriptors: number;
}

export type LimitName = 'memory' | 'cpu' | 'descriptors';

export interface KeepUsage {
  rssBytes: number;
  cpuMs: number;
  descriptors: number;
}

export interface KeepEvidence {
  kind: string;
  publicKey: Uint8Array;
  reportData: Uint8Array;
  evidence: Uint8Array;
  certs: Uint8Array[];
}

export interface KeepEnd {
  /** Workload exit code when the Keep reported one, else the process's. */
  code: number | null;
  /** Set when the host ended it: a limit, a stop, or a protocol violation. */
  cause: { kind: 'limit'; limit: LimitName } | { kind: 'stop' } | { kind: 'fatal'; reason: string } | { kind: 'exited' } | { kind: 'crashed'; reason: string };
}

/** A listen file of the Keep, bound by the host. */
export interface KeepListener {
  name: string;
  address: string;
  port: number;
}

/** What every Keep of one daemon shares. */
export interface KeepEnvironment {
  evidence: EvidenceSource;
  /** The Steward Keeps get certificates from, unless their client names another. */
  steward: string | null;
  /** Where listen files are bound. */
  listenAddress: string;
  /** The Keep bundle to run (a copy other users may read, when Keeps have their own users). */
  bundle?: string;
}

/** Linear memory gets what the limit leaves after Node's own ~96 MiB, never below 32 MiB. */
export function wasmPagesFor(memoryMiB: number): number {
  return Math.max(512, (memoryMiB - 96) * 16);
}

const CLK_TCK = 100;
/** A record on the output stream is at most this large (64 KiB of output, sealed). */
const MAX_RECORD_BYTES = 128 * 1024;
const SAMPLE_MS = 200;

export class KeepProcess extends EventEmitter {
  readonly limits: KeepLimits;
  readonly #keep: ProvisionedKeep;
  readonly #env: KeepEnvironment;
  #publicKey: Uint8Array | undefined;
  #ended: KeepEnd | undefined;
  #killCause: KeepEnd['cause'] | undefined;
  #provisioned = false;
  #usage: KeepUsage = { rssBytes: 0, cpuMs: 0, descriptors: 0 };
  /** The evidence of the latest `attest`, as the challenger gets it. */
  #lastEvidence: Collected | undefined;
  readonly ports: KeepListener[] = [];

  private constructor(env: KeepEnvironment, limits: KeepLimits, user: { uid: number; gid: number } | undefined) {
    super();
    this.limits = limits;
    this.#env = env;
    const pages = wasmPagesFor(limits.memoryMiB);
    this.#keep = startProcessKeep({
      args: [],
      env: [],
      files: [],
      limits: {
        memory: pages * 65536,
        // The guest's descriptor table gets what Node's own ~32 leave.
        descriptors: Math.max(8, limits.descriptors - 32),
        rss: limits.memoryMiB * 1024 * 1024,
        rssPollMs: SAMPLE_MS,
      },
      logLevel: 'warn',
      steward: env.steward,
      evidence: async (reportData) => {
        const got = await env.evidence.collect(reportData);
        this.#lastEvidence = got;
        return { kind: got.kind, bytes: got.forKeep };
      },
      ...(env.evidence.keepKind ? { evidenceKind: env.evidence.keepKind } : {}),
      stdout: new RecordSplitter((seq, ct) => this.emit('record', { seq, ct }), (why) => this.kill({ kind: 'fatal', reason: why })),
      log: (level, text) => {
        if (level === 'error' || level === 'warn') this.emit('log', text);
      },
      launchOptions: {
        cpuSeconds: limits.cpuSeconds,
        descriptors: limits.descriptors,
        ...(user ? { user } : {}),
        ...(env.bundle ? { bundle: env.bundle } : {}),
        nodeFlags: [`--max-old-space-size=${Math.max(16, Math.floor(limits.memoryMiB / 2))}`, '--max-semi-space-size=1', '--v8-pool-size=0', `--wasm-max-mem-pages=${pages}`],
      },
      listenAddress: env.listenAddress,
      onListening: (name, address, port) => {
        const l = { name, address, port };
        this.ports.push(l);
        this.emit('listening', l);
      },
      onCertified: (chain) => this.emit('certified', chain),
    });
    void this.#keep.outcome.then((o) => this.#onEnd(o));
  }

  /** Starts a Keep and waits until it has made its key. */
  static async start(env: KeepEnvironment, limits: KeepLimits, user?: { uid: number; gid: number }): Promise<KeepProcess> {
    const keep = new KeepProcess(env, limits, user);
    const ready = keep.#keep.ready.then((k) => (keep.#publicKey = k));
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the Keep did not start within 60 s')), 60_000).unref());
    try {
      await Promise.race([ready, timeout]);
    } catch (err) {
      keep.kill({ kind: 'crashed', reason: (err as Error).message });
      throw err;
    }
    return keep;
  }

  get pid(): number | undefined {
    return this.#keep.pid;
  }

  get ended(): KeepEnd | undefined {
    return this.#ended;
  }

  get usage(): KeepUsage {
    return this.#usage;
  }

  /** Gives the Keep its id; returns its public key. */
  assign(keepId: string): Uint8Array {
    this.#keep.assign(keepId);
    return this.#publicKey!;
  }

  async challenge(nonce: Uint8Array): Promise<KeepEvidence> {
    this.#lastEvidence = undefined;
    let answer;
    try {
      answer = await this.#keep.challenge(nonce);
    } catch (err) {
      throw err instanceof ProvisionRefusedError ? new KeepRefusal(err.message) : err;
    }
    const publicKey = this.#publicKey!;
    if ('error' in answer.evidence) {
      if (this.#env.evidence.kind === 'none') return { kind: 'none', publicKey, reportData: answer.reportData, evidence: new Uint8Array(0), certs: [] };
      throw new KeepRefusal(`no evidence: ${answer.evidence.error}`);
    }
    const got = this.#lastEvidence!;
    return { kind: got.kind, publicKey, reportData: answer.reportData, evidence: got.evidence, certs: got.certs };
  }

  async provision(jwe: string): Promise<void> {
    try {
      await this.#keep.provision(jwe);
    } catch (err) {
      throw err instanceof ProvisionRefusedError ? new KeepRefusal(err.message) : err;
    }
    this.#provisioned = true;
  }

  /** Samples /proc for the API's resource figures. Returns false once the Keep has ended. */
  sample(): boolean {
    const pid = this.pid;
    if (this.#ended || pid === undefined) return false;
    try {
      const statm = readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ');
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      if (Number(statm[1]) === 0) return true; // an exiting process: keep its last real figures
      this.#usage = {
        rssBytes: Number(statm[1]) * 4096,
        cpuMs: Math.round((ticks * 1000) / CLK_TCK),
        descriptors: readdirSync(`/proc/${pid}/fd`).length,
      };
    } catch {
      return !this.#ended;
    }
    return true;
  }

  kill(cause: KeepEnd['cause']): void {
    if (this.#ended) return;
    this.#killCause ??= cause;
    this.#keep.kill({ kind: 'aborted', reason: cause.kind });
  }

  #onEnd(o: ProcessKeepOutcome): void {
    let end: KeepEnd;
    if (this.#killCause) end = { code: this.#killCause.kind === 'limit' ? 137 : null, cause: this.#killCause };
    else {
      switch (o.kind) {
        case 'exit':
          end = { code: o.code, cause: { kind: 'exited' } };
          break;
        case 'trap':
          end = { code: 134, cause: { kind: 'exited' } };
          break;
        case 'limit':
          end = { code: 137, cause: { kind: 'limit', limit: o.limit === 'cpu' ? 'cpu' : o.limit === 'descriptors' ? 'descriptors' : 'memory' } };
          break;
        case 'error':
          // The workload could not start: the Keep said so in its sealed records too.
          end = this.#provisioned ? { code: 1, cause: { kind: 'exited' } } : { code: null, cause: { kind: 'crashed', reason: o.message } };
          break;
        case 'crash':
          end = /broke the sallyport protocol/.test(o.message) ? { code: null, cause: { kind: 'fatal', reason: o.message } } : { code: null, cause: { kind: 'crashed', reason: o.message } };
          break;
        case 'aborted':
          end = { code: null, cause: { kind: 'stop' } };
          break;
      }
    }
    this.#ended = end;
    this.emit('end', end);
  }
}

/**
 * Splits the Keep's stdout stream into sealed output records (`u32be length ‖ ciphertext`,
 * numbered from 0). A length of 0 or over the bound is a broken Keep.
 */
class RecordSplitter extends Writable {
  readonly #onRecord: (seq: number, ct: Uint8Array) => void;
  readonly #onBroken: (why: string) => void;
  #buffer: Buffer = Buffer.alloc(0);
  #seq = 0;
  #broken = false;

  constructor(onRecord: (seq: number, ct: Uint8Array) => void, onBroken: (why: string) => void) {
    super();
    this.#onRecord = onRecord;
    this.#onBroken = onBroken;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.#broken) return done();
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= 4) {
      const length = this.#buffer.readUInt32BE(0);
      if (length === 0 || length > MAX_RECORD_BYTES) {
        this.#broken = true;
        this.#onBroken(`the Keep sent an output record of ${length} bytes (1..${MAX_RECORD_BYTES})`);
        return done();
      }
      if (this.#buffer.length < 4 + length) break;
      this.#onRecord(this.#seq++, new Uint8Array(this.#buffer.subarray(4, 4 + length)));
      this.#buffer = this.#buffer.subarray(4 + length);
    }
    done();
  }
}

export class KeepRefusal extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'KeepRefusal';
  }
}

export function describeEnd(end: KeepEnd): string {
  switch (end.cause.kind) {
    case 'limit':
      return `stopped at its ${end.cause.limit} limit (exit 137)`;
    case 'stop':
      return 'stopped';
    case 'fatal':
      return `ended: ${end.cause.reason}`;
    case 'crashed':
      return `crashed: ${end.cause.reason}`;
    case 'exited':
      return `exited with code ${end.code}`;
  }
}
