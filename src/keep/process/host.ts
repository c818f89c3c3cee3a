/**
 * The host's side of the process Keep: starts the Keep as a separate Node process under the
 * permission model, hands it the workload over the sallyport, relays stdio and TCP bytes,
 * enforces the limits, and reports how the Keep ended. Nothing the Keep sends can crash the
 * host: a protocol violation, a crash or a limit ends the Keep, never this process.
 */
import type { ChildProcess } from 'node:child_process';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { Endpoint, messageFrame, FIRST_DYNAMIC_STREAM, MAX_CHUNK_BYTES, PROTOCOL_VERSION, PROVISIONING_VERSION, STDERR_STREAM, STDIN_STREAM, STDOUT_STREAM } from '../../sallyport/index.ts';
import type { CollateralRequest, DeploySpec, HostCollateral, FileSpec, HostEndpoint, HostMessage, KeepMessage, LogLevel, Protocol, SallyportPipe } from '../../sallyport/index.ts';
import { grantedDir, keepCommand, spawnKeep, type KeepLaunchOptions } from './launch.ts';
import { takePrestarted } from './prestart.ts';
import { pipeClosed as closed } from './pipes.ts';
import { writeBeforeStreams } from './adopted.ts';
import { createSymlinkForKeep, realRoots, syncFileForKeep } from './host-fs.ts';
import { DEFAULT_DESCRIPTORS, formatDuration } from '../limits.ts';
// Text from the Keep reaches the host's terminal and logs as one line, its control characters escaped.
import { oneLine } from '../../attestation/text.ts';

export type ProcessKeepFile =
  | { kind: 'null' | 'stdin' | 'stdout' | 'stderr'; name: string }
  | { kind: 'listen'; name: string; prot: Protocol; addr: string; port: number; clientCa?: readonly string[] }
  | { kind: 'connect'; name: string; prot: Protocol; host: string; port: number; ca?: readonly string[] }
  | { kind: 'dir'; name: string; path: string; readonly: boolean };

export type LimitName = 'memory' | 'rss' | 'wall-time' | 'descriptors' | 'cpu';

export interface ProcessKeepLimits {
  /** Linear memory, bytes: memory.grow fails past it (enforced inside the Keep by the engine). */
  memory?: number;
  /** Resident set size of the Keep process, bytes: the host kills the Keep past it. */
  rss?: number;
  /** Wall time from start, milliseconds: the host kills the Keep past it. */
  wallTimeMs?: number;
  /** Open descriptors: the guest's fd table size, and the sockets the host relays for it. */
  descriptors?: number;
  /** How often the rss limit is checked, milliseconds (20 by default). */
  rssPollMs?: number;
}

export interface ProcessKeepRequest {
  /** The workload. Absent: a provisioned Keep (sallyport version 2), driven through the handle startProcessKeep returns. */
  module?: Uint8Array;
  args: readonly string[];
  env: readonly (readonly [string, string])[];
  files: readonly ProcessKeepFile[];
  limits?: ProcessKeepLimits;
  logLevel?: LogLevel;
  steward?: string | null;
  /**
   * What the guest reads on stdin: a stream, or a function that gives it (or undefined: an empty
   * stdin), called only once the workload is handed over (process.stdin costs milliseconds to set
   * up, which the Keep's start then does not wait for).
   */
  stdin?: Readable | (() => Readable | undefined);
  /** Where the guest's output goes: a stream, or a function that gives it, called once the workload is handed over (as stdin). */
  stdout?: Writable | (() => Writable);
  stderr?: Writable | (() => Writable);
  signal?: AbortSignal;
  /** Told where each listen file is bound (useful with port 0). */
  onListening?: (name: string, address: string, port: number) => void;
  /** Log lines from the Keep and about it (stderr by default). */
  log?: (level: LogLevel, text: string) => void;
  /** Where `attest` requests go; without it the Keep is told this backend has no attestation. */
  evidence?: (reportData: Uint8Array) => Promise<{ kind: string; bytes: Uint8Array }>;
  /** The kind `evidence` returns, told to the Keep up front so it makes its key on the right curve. */
  evidenceKind?: 'snp' | 'sgx' | 'tdx';
  /**
   * A hardware Keep collects its evidence itself through this interface (configfs-tsm report
   * directory, or Gramine's attestation files): the Keep is granted exactly these paths.
   */
  collect?: { kind: 'snp' | 'sgx' | 'tdx'; via: 'configfs-tsm' | 'gramine'; root: string };
  /**
   * Where a hardware Keep's `get-collateral` requests go (the collateral cache): public, signed data
   * the Keep puts in its CSR for Steward that fetch none. Without it the Keep is told there is none.
   */
  collateral?: (request: CollateralRequest) => Promise<{ collateral: HostCollateral; missing: string[] }>;
  /** Extra destinations the Keep may dial (e.g. its Steward), besides its connect files. */
  allowDial?: readonly { host: string; port: number }[];
  /** Told the Keep's process id once it is started. */
  onSpawn?: (pid: number) => void;
  /** Replaces the Keep's command line (tests use it to stand in a hostile Keep). */
  launch?: () => Promise<{ command: string; args: string[] }>;
  /** Sees every socket byte the host relays ('in': from the network to the Keep), for audits and tests. */
  tap?: (direction: 'in' | 'out', stream: number, bytes: Uint8Array) => void;
  /**
   * Deploy from a registry: the Keep fetches, verifies and runs the package itself (`module` and
   * `files` stay empty). `deploy.stage` is granted to the Keep for writing the verified package.
   */
  deploy?: DeploySpec;
  /** Told what a deploy's Keep verified and runs. */
  onDeployed?: (d: { slug: string; digest: string; signer: string | null }) => void;
  /** How the Keep process is started: kernel limits, user, extra Node flags. */
  launchOptions?: KeepLaunchOptions;
  /**
   * Resolve as soon as the Keep reports its outcome (its last message), without waiting for its
   * process to end: for a caller that exits right after (`enarx run`). The Keep exits by itself once
   * the host has closed its half of the pipe, and setpriv's death signal ends it with the host.
   */
  returnOnOutcome?: boolean;
  /** Where a provisioned Keep's listen files are bound (127.0.0.1 by default); ports are ephemeral. */
  listenAddress?: string;
  /** Told the certificate chain (PEM) a Steward issued to a provisioned Keep. */
  onCertified?: (chain: string) => void;
}

/** What a provisioned Keep answered to a challenge: the report data it attested, and the host's evidence. */
export interface ChallengeAnswer {
  reportData: Uint8Array;
  evidence: { kind: string; bytes: Uint8Array } | { error: string };
}

/**
 * A provisioned Keep (sallyport version 2): started without a workload, it makes its key,
 * then is assigned an id, challenged and provisioned by a remote client through the host.
 */
export interface ProvisionedKeep {
  readonly pid: number | undefined;
  /** How the Keep ended, as for runProcessKeep. */
  readonly outcome: Promise<ProcessKeepOutcome>;
  /** The Keep's public key (SPKI), once it has made it. */
  readonly ready: Promise<Uint8Array>;
  assign(keepId: string): void;
  challenge(nonce: Uint8Array): Promise<ChallengeAnswer>;
  /** Resolves when the Keep accepted the JWE; rejects with a ProvisionRefusedError naming why it did not. */
  provision(jwe: string): Promise<void>;
  /** Ends the Keep (SIGKILL) with this outcome, unless it has already ended. */
  kill(outcome: ProcessKeepOutcome): void;
}

/** The Keep refused a challenge or a provisioning; it stays up for a genuine one. */
export class ProvisionRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProvisionRefusedError';
  }
}

export type ProcessKeepOutcome =
  | { kind: 'exit'; code: number }
  | { kind: 'trap'; message: string }
  | { kind: 'limit'; limit: LimitName; message: string }
  | { kind: 'error'; message: string }
  | { kind: 'crash'; message: string }
  | { kind: 'aborted'; reason: string };

/** The exit status `enarx run` uses for each outcome. */
export function exitStatus(outcome: ProcessKeepOutcome): number {
  switch (outcome.kind) {
    case 'exit':
      return outcome.code;
    case 'trap':
      return 134;
    case 'limit':
      return 137;
    case 'aborted':
      return 130;
    default:
      return 1;
  }
}

// process.getBuiltinModule: their ESM facades cost start-up time on every `enarx run`.
const { readFileSync, writeSync } = process.getBuiltinModule('node:fs');

/**
 * Writes the guest's output straight to the descriptor under `out` (process.stdout and stderr
 * carry theirs in `fd`) when `out` has nothing queued: one write(2), without a queued write, its
 * callback and the wait for the descriptor to become writable. Returns how many bytes it took
 * (0: no descriptor, writes queued, or the descriptor full or failing: the stream then writes
 * the rest, and meets and reports the same state, EPIPE included, as before).
 */
function writeNow(out: Writable, bytes: Uint8Array): number {
  const fd = (out as { fd?: unknown }).fd;
  if (typeof fd !== 'number' || out.writableLength > 0 || out.writableCorked > 0 || out.destroyed || out.writableEnded) return 0;
  try {
    return writeSync(fd, bytes);
  } catch {
    return 0;
  }
}
/**
 * The frames writeBeforeStreams offers at once: enough to fill any pipe (1 MiB at most, unprivileged;
 * it takes what fits), within writev's 1024 buffers.
 */
function firstFrames(frames: readonly Uint8Array[]): Uint8Array[] {
  const first: Uint8Array[] = [];
  let bytes = 0;
  for (const frame of frames) {
    if (first.length === 1024 || bytes >= 2 * 1024 * 1024) break;
    first.push(frame);
    bytes += frame.length;
  }
  return first;
}

// node:net where it is used: a run whose Keep bin/enarx started loads it only after the hand-over.
const net = () => process.getBuiltinModule('node:net');

const RSS_POLL_MS = 20;
/** Listen files a provisioned Keep without a descriptors limit may have bound. */
const DEFAULT_MAX_LISTENERS = 64;
const EXIT_GRACE_MS = 2000;
// 'exit' can come before the pipe's last bytes are read: on a loaded host a short timer won that
// race and the Keep's final message (its outcome) was lost. The pipe closes as soon as the Keep's
// end is gone, so this only bounds a pathological wait.
const PIPE_DRAIN_MS = 10_000;
const STDERR_KEEP_BYTES = 4096;
/** Collateral answers per Keep: one CSR asks once; a Keep that keeps asking costs vendor downloads. */
const MAX_COLLATERAL_REQUESTS = 4;

export function runProcessKeep(request: ProcessKeepRequest): Promise<ProcessKeepOutcome> {
  return new HostSide(request).run();
}

/** Starts a provisioned Keep (no `module` in the request). */
export function startProcessKeep(request: ProcessKeepRequest): ProvisionedKeep {
  if (request.module) throw new TypeError('a provisioned Keep is started without a module');
  const host = new HostSide(request);
  const outcome = host.run();
  return {
    get pid() {
      return host.pid;
    },
    outcome,
    ready: host.ready,
    assign: (keepId) => host.assign(keepId),
    challenge: (nonce) => host.challenge(nonce),
    provision: (jwe) => host.provision(jwe),
    kill: (o) => host.kill(o),
  };
}

/** A provisioned Keep's pending request and who waits for its answer. */
type Pending =
  | { t: 'challenge'; resolve: (a: ChallengeAnswer) => void; reject: (e: Error) => void }
  | { t: 'provision'; resolve: () => void; reject: (e: Error) => void };

class HostSide {
  readonly #req: ProcessKeepRequest;
  #child!: ChildProcess;
  #endpoint!: HostEndpoint;
  #outcome: ProcessKeepOutcome | undefined;
  readonly #servers: Server[] = [];
  readonly #sockets = new Map<number, Socket>();
  /** Keep dials not connected yet: they hold a descriptor of this host already. */
  readonly #dialing = new Set<number>();
  #nextHostStream = FIRST_DYNAMIC_STREAM + 1;
  #lastKeepStream = FIRST_DYNAMIC_STREAM - 2;
  readonly #allowed = new Set<string>();
  #stderrTail = '';
  readonly #timers: NodeJS.Timeout[] = [];
  #started = false;
  readonly #early: [number, Socket][] = [];
  readonly #log: (level: LogLevel, text: string) => void;
  #grantRoots: { writable: string[]; all: string[] } | undefined;
  // Provisioned Keeps only.
  #publicKey: { resolve: (k: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  readonly ready: Promise<Uint8Array>;
  #pending: Pending | undefined;
  #listenRequests = 0;
  /** A deployed package's descriptors limit, from its 'deployed' message. */
  #packageDescriptors: number | undefined;
  #deployed = false;
  #spawned: { resolve: () => void; promise: Promise<void> };
  /** Resolves (with null) once the Keep has reported its outcome in its last message (#settle). */
  readonly #reported = Promise.withResolvers<null>();
  /** The request's stdout and stderr, once the workload is handed over. */
  #stdout: Writable | undefined;
  #stderr: Writable | undefined;

  constructor(request: ProcessKeepRequest) {
    this.ready = new Promise((resolve, reject) => (this.#publicKey = { resolve, reject }));
    this.ready.catch(() => {});
    let resolveSpawned!: () => void;
    this.#spawned = { resolve: () => resolveSpawned(), promise: new Promise<void>((r) => (resolveSpawned = r)) };
    this.#req = request;
    this.#log = request.log ?? ((level, text) => process.stderr.write(`[${level}] ${text}\n`));
    for (const f of request.files) if (f.kind === 'connect') this.#allowed.add(destination(f.host, f.port));
    for (const d of request.allowDial ?? []) this.#allowed.add(destination(d.host, d.port));
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async run(): Promise<ProcessKeepOutcome> {
    const outcome = await this.#run();
    // Whoever waits on a provisioned Keep learns that it has ended.
    const ended = new Error(describeOutcome(outcome));
    this.#publicKey?.reject(ended);
    this.#pending?.reject(ended);
    this.#pending = undefined;
    this.#spawned.resolve();
    return outcome;
  }

  async #run(): Promise<ProcessKeepOutcome> {
    const req = this.#req;
    if (req.signal?.aborted) return { kind: 'aborted', reason: String(req.signal.reason ?? 'aborted') };
    // Bind first: a port in use is reported before a Keep is started (or handed anything, if one was started early).
    const files: FileSpec[] = [];
    try {
      for (const f of req.files) files.push(await this.#prepare(f));
    } catch (err) {
      this.#cleanup();
      return { kind: 'error', message: (err as Error).message };
    }
    const stage = req.deploy ? [req.deploy.stage] : [];
    const grants = {
      readDirs: [...req.files.flatMap((f) => (f.kind === 'dir' ? [f.path] : [])), ...stage],
      writeDirs: [...req.files.flatMap((f) => (f.kind === 'dir' && !f.readonly ? [f.path] : [])), ...stage],
      ...(req.collect ? { attestation: attestationGrants(req.collect) } : {}),
    };
    // Only a plain run takes an early Keep: launch options (keepmgr's limits and users) start their own.
    const early = !req.launch && !req.launchOptions ? takePrestarted(grants) : undefined;
    let command: Awaited<ReturnType<typeof keepCommand>> | undefined;
    if (!early) {
      try {
        command = await (req.launch ? req.launch() : keepCommand(grants, req.launchOptions));
      } catch (err) {
        this.#cleanup();
        return { kind: 'error', message: (err as Error).message };
      }
    }
    const child = early ?? spawnKeep(command!);
    this.#child = child;
    if (child.pid !== undefined) req.onSpawn?.(child.pid);
    // Everything at once, no round trip before the Keep can start compiling; and first of all to a
    // Keep bin/enarx started, which takes it before this host loads node:net and sets up its
    // streams, and works on it meanwhile (what its pipe does not take now, the endpoint sends).
    const handover = this.#handover(files).map(messageFrame);
    let written = writeBeforeStreams(child, firstFrames(handover));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (err) => {
        this.#settle({ kind: 'error', message: `cannot start the Keep process: ${err.message}` });
        resolve({ code: null, signal: null });
      });
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      this.#stderrTail = (this.#stderrTail + chunk.toString()).slice(-STDERR_KEEP_BYTES);
    });
    // A socket, or a pair of pipes for a Keep the shell launcher started (adopted.ts).
    const pipe = child.stdio[3] as unknown as SallyportPipe;
    const pipeClosed = closed(pipe);
    this.#endpoint = new Endpoint<KeepMessage, HostMessage>(pipe, {
      incoming: 'keep-to-host',
      onMessage: (m) => this.#onMessage(m),
      onViolation: (err) => this.#kill({ kind: 'crash', message: `the Keep broke the sallyport protocol: ${oneLine(err.message)}; it was stopped` }),
      onClose: () => {},
    });
    for (const id of [STDIN_STREAM, STDOUT_STREAM, STDERR_STREAM]) this.#endpoint.openStream(id);
    this.#stdout = typeof req.stdout === 'function' ? req.stdout() : req.stdout;
    this.#stderr = typeof req.stderr === 'function' ? req.stderr() : req.stderr;
    // The reader of an output went away (`enarx run ... | head`): the Keep is told, and the guest's
    // next write to it fails with EPIPE, as in the nil Keep; what the guest then does is its own
    // business (most programs stop). Any other failure to write ends the Keep.
    for (const [stream, out] of [[STDOUT_STREAM, this.#stdout], [STDERR_STREAM, this.#stderr]] as const) {
      out?.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE') return this.#kill({ kind: 'crash', message: `cannot write the Keep's output: ${err.message}` });
        if (!this.#endpoint.isOpen(stream)) return;
        this.#endpoint.closeStream(stream);
        this.#endpoint.send({ t: 'reset', stream, reason: 'the reader went away (EPIPE)' });
      });
    }
    this.#startLimits();
    const onAbort = () => this.#kill({ kind: 'aborted', reason: String(req.signal?.reason ?? 'aborted') });
    req.signal?.addEventListener('abort', onAbort, { once: true });

    this.#spawned.resolve();
    for (const frame of handover) {
      if (written >= frame.length) written -= frame.length;
      else {
        this.#endpoint.sendFrames(written > 0 ? frame.subarray(written) : frame);
        written = 0;
      }
    }
    // A deploy's files come from its package, which only the Keep reads: stdin is always offered.
    if (req.module && (req.deploy || files.some((f) => f.kind === 'stdin'))) this.#relayStdin();
    this.#started = true;
    for (const [listener, socket] of this.#early.splice(0)) this.#onConnection(listener, socket);

    // A Keep that has reported its outcome and closed its end of the pipe is done; its process
    // only has to tear down, which the host does not wait for (the grace timer of #settle, left
    // running, stops a Keep that lingers).
    const ended = await Promise.race([exited, pipeClosed.then(() => (this.#outcome ? null : exited)), ...(req.returnOnOutcome ? [this.#reported.promise] : [])]);
    if (ended === null) {
      req.signal?.removeEventListener('abort', onAbort);
      this.#cleanup();
      return this.#outcome!;
    }
    const { code, signal } = ended;
    await Promise.race([pipeClosed, delay(PIPE_DRAIN_MS)]);
    req.signal?.removeEventListener('abort', onAbort);
    this.#cleanup();
    if (this.#outcome) return this.#outcome;
    const tail = oneLine(this.#stderrTail.trim().split('\n').slice(-3).join(' / '));
    // RLIMIT_CPU (launchOptions.cpuSeconds): the kernel's SIGXCPU at the soft limit, SIGKILL at the hard one.
    if (signal === 'SIGXCPU') {
      return { kind: 'limit', limit: 'cpu', message: `the Keep went over its cpu limit (${req.launchOptions?.cpuSeconds ?? '?'} s of CPU time)` };
    }
    const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
    return { kind: 'crash', message: `the Keep ${how} before reporting an outcome${tail ? `: ${tail}` : ''}` };
  }

  /** What the Keep is handed first: its workload (`hello`, then the module in chunks), or `standby` for a provisioned Keep. */
  #handover(files: FileSpec[]): HostMessage[] {
    const req = this.#req;
    if (!req.module) {
      // A provisioned Keep: its workload comes later, encrypted, from a remote client.
      return [{
        t: 'standby',
        version: PROVISIONING_VERSION,
        init: {
          limits: { memory: req.limits?.memory ?? null, descriptors: req.limits?.descriptors ?? null },
          logLevel: req.logLevel ?? 'warn',
          steward: req.steward ?? null,
          ...(req.evidence && req.evidenceKind ? { evidence: req.evidenceKind } : {}),
        },
      }];
    }
    const module = req.module;
    const messages: HostMessage[] = [{
      t: 'hello',
      version: PROTOCOL_VERSION,
      init: {
        moduleSize: module.length,
        argv: [...req.args],
        env: req.env.map(([k, v]) => [k, v] as [string, string]),
        files,
        limits: { memory: req.limits?.memory ?? null, descriptors: req.limits?.descriptors ?? null },
        logLevel: req.logLevel ?? 'warn',
        steward: req.steward ?? null,
        ...(req.collect
          ? { evidence: req.collect.kind, collect: { via: req.collect.via, root: req.collect.root } }
          : req.evidence && req.evidenceKind
            ? { evidence: req.evidenceKind }
            : {}),
        ...(req.deploy ? { deploy: req.deploy } : {}),
      },
    }];
    for (let at = 0; at < module.length; at += MAX_CHUNK_BYTES) messages.push({ t: 'module', bytes: module.subarray(at, at + MAX_CHUNK_BYTES) });
    return messages;
  }

  assign(keepId: string): void {
    void this.#spawned.promise.then(() => {
      if (!this.#outcome) this.#endpoint.send({ t: 'assign', keep: keepId });
    });
  }

  challenge(nonce: Uint8Array): Promise<ChallengeAnswer> {
    return this.#request('challenge', () => this.#endpoint.send({ t: 'challenge', nonce }));
  }

  async provision(jwe: string): Promise<void> {
    const bytes = new TextEncoder().encode(jwe);
    await this.#request('provision', () => {
      for (let at = 0; at < bytes.length; at += MAX_CHUNK_BYTES) {
        this.#endpoint.send({ t: 'provision', bytes: bytes.subarray(at, at + MAX_CHUNK_BYTES), more: at + MAX_CHUNK_BYTES < bytes.length });
      }
    });
  }

  kill(outcome: ProcessKeepOutcome): void {
    if (this.#child) this.#kill(outcome);
    else void this.#spawned.promise.then(() => this.#kill(outcome));
  }

  /** One provisioning request at a time: the Keep answers them in order. */
  #request<T extends ChallengeAnswer | void>(t: Pending['t'], send: () => void): Promise<T> {
    return this.#spawned.promise.then(
      () =>
        new Promise<T>((resolve, reject) => {
          if (this.#outcome) return reject(new Error(describeOutcome(this.#outcome)));
          if (this.#pending) return reject(new Error(`a ${this.#pending.t} is already in progress on this Keep`));
          this.#pending = { t, resolve, reject } as Pending;
          send();
        }),
    );
  }

  #answer<K extends Pending['t']>(t: K): Extract<Pending, { t: K }> {
    const p = this.#pending;
    if (!p || p.t !== t) throw new Error(`the Keep answered a ${t} it was not sent`);
    this.#pending = undefined;
    return p as Extract<Pending, { t: K }>;
  }

  /** A provisioned Keep's listen file: bound here, on an ephemeral port (many Keeps share this host). */
  async #listen(listener: number, name: string, prot: Protocol, at?: { addr: string; port: number }): Promise<void> {
    if (listener % 2 !== 0 || listener <= this.#lastKeepStream) throw new Error(`listen with id ${listener}: Keep ids are even and increasing`);
    this.#lastKeepStream = listener;
    const addr = at?.addr ?? this.#req.listenAddress ?? '127.0.0.1';
    // Each listener is a host socket: a Keep may not hold more than its descriptors allow.
    const max = this.#givenDescriptors() ?? DEFAULT_MAX_LISTENERS;
    // Counted before binding: requests that arrive together must not all pass the check.
    if (this.#listenRequests >= max) {
      this.#endpoint.send({ t: 'listening', listener, port: 0, error: `no more than ${max} listen files` });
      return;
    }
    this.#listenRequests++;
    try {
      const spec = await this.#prepare({ kind: 'listen', name, prot, addr, port: at?.port ?? 0 }, listener);
      if (spec.kind === 'listen' && !this.#outcome) this.#endpoint.send({ t: 'listening', listener, port: spec.port, error: null });
    } catch (err) {
      if (!this.#outcome) this.#endpoint.send({ t: 'listening', listener, port: 0, error: (err as Error).message.slice(0, 500) });
    }
  }

  async #prepare(f: ProcessKeepFile, keepListener?: number): Promise<FileSpec> {
    switch (f.kind) {
      case 'listen': {
        const id = keepListener ?? this.#allocate();
        const server = net().createServer({ noDelay: true, pauseOnConnect: true, allowHalfOpen: true }, (socket) => this.#onConnection(id, socket));
        await new Promise<void>((resolve, reject) => {
          server.once('error', (err) => reject(new Error(`cannot listen on ${f.addr} port ${f.port} for '${f.name}': ${err.message}`)));
          server.listen({ host: f.addr, port: f.port }, () => resolve());
        });
        this.#servers.push(server);
        const bound = server.address() as AddressInfo;
        this.#req.onListening?.(f.name, bound.address, bound.port);
        return { kind: 'listen', name: f.name, prot: f.prot, listener: id, addr: f.addr, port: bound.port, ...(f.clientCa?.length ? { clientCa: [...f.clientCa] } : {}) };
      }
      case 'connect':
        return { kind: 'connect', name: f.name, prot: f.prot, host: f.host, port: f.port, ca: [...(f.ca ?? [])] };
      case 'dir':
        // The directory the Keep was granted (launch.ts grantedDir), not a symlink's name for it.
        return { ...f, path: grantedDir(f.path) };
      default:
        return { ...f };
    }
  }

  #allocate(): number {
    const id = this.#nextHostStream;
    this.#nextHostStream += 2;
    return id;
  }

  /** Descriptors the guest holds: its non-socket files plus every relayed socket. */
  #descriptorsInUse(): number {
    const sockets = this.#sockets.size + this.#early.length + this.#dialing.size;
    return this.#req.files.filter((f) => f.kind !== 'connect').length + sockets;
  }

  #onConnection(listener: number, socket: Socket): void {
    if (!this.#started) {
      // Bound before the Keep exists: the client waits (paused) until the workload is handed over.
      this.#early.push([listener, socket]);
      return;
    }
    const max = this.#maxDescriptors();
    if (this.#outcome || this.#descriptorsInUse() >= max) {
      // Like accept(2) failing with EMFILE: the client is turned away, the Keep goes on.
      socket.destroy();
      return;
    }
    const id = this.#allocate();
    this.#endpoint.openStream(id);
    this.#endpoint.send({ t: 'accept', listener, stream: id, peer: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 });
    this.#wire(id, socket);
    socket.resume();
  }

  #wire(id: number, socket: Socket): void {
    this.#sockets.set(id, socket);
    let ended = false;
    const forward = this.#forwarder(id, socket, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      this.#req.tap?.('in', id, chunk);
      forward.data(chunk);
    });
    socket.on('end', () => {
      ended = true;
      void forward.sent().then((ok) => {
        if (ok && this.#endpoint.isOpen(id)) this.#endpoint.send({ t: 'eof', stream: id });
      });
    });
    socket.on('error', () => {});
    socket.on('close', (hadError) => {
      this.#sockets.delete(id);
      if (this.#endpoint.isOpen(id) && (hadError || !ended)) {
        this.#endpoint.send({ t: 'reset', stream: id, reason: hadError ? 'connection reset' : 'connection closed' });
        this.#endpoint.closeStream(id);
      }
    });
  }

  #relayStdin(): void {
    const given = this.#req.stdin;
    const stdin = typeof given === 'function' ? given() : given;
    if (!stdin) {
      this.#endpoint.send({ t: 'eof', stream: STDIN_STREAM });
      return;
    }
    const forward = this.#forwarder(STDIN_STREAM, stdin, () => {});
    const onData = (chunk: Buffer) => forward.data(chunk);
    const onEnd = () => {
      void forward.sent().then((ok) => {
        if (ok) this.#endpoint.send({ t: 'eof', stream: STDIN_STREAM });
      });
    };
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.once('error', onEnd);
    this.#stopStdin = () => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.pause();
      if (stdin === process.stdin) stdin.destroy();
    };
  }

  #stopStdin: () => void = () => {};

  /**
   * Relays chunks read from `source` to `stream` in order: at once while the Keep's window has
   * room, and otherwise with `source` paused until the credit comes (or `onClosed` if the stream
   * closes first). `sent()` resolves once every chunk so far has gone: true, or false if closed.
   */
  #forwarder(stream: number, source: Readable, onClosed: () => void): { data(chunk: Uint8Array): void; sent(): Promise<boolean> } {
    let sending: Promise<boolean> = Promise.resolve(true);
    let queued = 0;
    return {
      data: (chunk) => {
        if (queued === 0) {
          const n = this.#endpoint.sendOwned(stream, chunk);
          if (n === chunk.length) return;
          chunk = chunk.subarray(n);
        }
        queued++;
        source.pause();
        sending = sending.then((ok) => ok && this.#endpoint.sendData(stream, chunk));
        void sending.then((ok) => {
          if (!ok) return onClosed();
          if (--queued === 0 && !this.#outcome) source.resume();
        });
      },
      sent: () => sending,
    };
  }

  readonly #corked = new Set<Writable>();

  /** Holds `out`'s writes until this tick ends: the frames of one pipe read leave in one writev. */
  #batch(out: Writable): void {
    if (this.#corked.has(out)) return;
    this.#corked.add(out);
    out.cork();
    process.nextTick(() => {
      this.#corked.delete(out);
      out.uncork();
    });
  }

  #onMessage(m: KeepMessage): void {
    switch (m.t) {
      case 'data': {
        if (m.stream === STDIN_STREAM) throw new Error('data on stdin, which only the host writes');
        const n = m.bytes.length;
        if (m.stream === STDOUT_STREAM || m.stream === STDERR_STREAM) {
          const out = m.stream === STDOUT_STREAM ? this.#stdout : this.#stderr;
          if (!out) return this.#endpoint.consumed(m.stream, n);
          if (!this.#endpoint.isOpen(m.stream)) return; // its reader went away: dropped
          const now = writeNow(out, m.bytes);
          if (now === n) return this.#endpoint.consumed(m.stream, n);
          this.#batch(out);
          const kept = this.#endpoint.keep(now === 0 ? m.bytes : m.bytes.subarray(now));
          out.write(kept.bytes, () => {
            kept.release();
            this.#endpoint.consumed(m.stream, n);
          });
          return;
        }
        const socket = this.#sockets.get(m.stream);
        if (!socket) return; // closed on this side; the Keep learns from 'reset'
        const kept = this.#endpoint.keep(m.bytes);
        this.#req.tap?.('out', m.stream, Buffer.from(kept.bytes)); // a copy: the view's buffer is reused after release
        this.#batch(socket);
        socket.write(kept.bytes, () => {
          kept.release();
          this.#endpoint.consumed(m.stream, n);
        });
        return;
      }
      case 'eof':
        if (m.stream === STDIN_STREAM) throw new Error('eof on stdin, which only the host writes');
        if (m.stream <= STDERR_STREAM) return;
        this.#sockets.get(m.stream)?.end();
        return;
      case 'close':
        if (m.stream < FIRST_DYNAMIC_STREAM) throw new Error(`close of stream ${m.stream}, which is not a socket`);
        {
          // Bytes already relayed still go out (then FIN); the socket is released once they have.
          const socket = this.#sockets.get(m.stream);
          this.#sockets.delete(m.stream);
          this.#endpoint.closeStream(m.stream);
          if (socket) {
            socket.end();
            socket.once('finish', () => socket.destroy());
            setTimeout(() => socket.destroy(), 5000).unref();
          }
        }
        return;
      case 'dial':
        this.#onDial(m.stream, m.host, m.port);
        return;
      case 'attest':
        this.#onAttest(m.id, m.reportData);
        return;
      case 'get-collateral':
        this.#onCollateral(m.id, m.request);
        return;
      case 'symlink':
      case 'fsync': {
        const dirs = this.#req.files.flatMap((f) => (f.kind === 'dir' ? [f] : []));
        const roots = (this.#grantRoots ??= { writable: realRoots(dirs.filter((d) => !d.readonly).map((d) => d.path)), all: realRoots(dirs.map((d) => d.path)) });
        // A path outside the grants throws: a violation that ends the Keep.
        if (m.t === 'symlink') {
          const error = createSymlinkForKeep(roots.writable, m.target, m.path);
          if (!this.#outcome) this.#endpoint.send({ t: 'symlinked', id: m.id, error });
        } else {
          const error = syncFileForKeep(roots.all, m.path, m.dev, m.ino, m.dataOnly === 1);
          if (!this.#outcome) this.#endpoint.send({ t: 'fsynced', id: m.id, error });
        }
        return;
      }
      case 'log':
        this.#log(m.level, `keep: ${oneLine(m.text)}`);
        return;
      case 'deployed':
        if (!this.#req.deploy) throw new Error("'deployed' from a Keep that was not deploying");
        if (this.#deployed) throw new Error("a second 'deployed' from the Keep");
        this.#deployed = true;
        if (!this.#outcome) this.#packageLimits(m);
        this.#req.onDeployed?.({ slug: oneLine(m.slug), digest: oneLine(m.digest), signer: m.signer === null ? null : oneLine(m.signer) });
        return;
      case 'exit':
        this.#settle({ kind: 'exit', code: m.code });
        return;
      case 'fail':
        if (m.kind === 'trap') this.#settle({ kind: 'trap', message: oneLine(m.message) });
        else if (m.kind === 'limit') this.#settle({ kind: 'limit', limit: asLimit(m.message), message: `the Keep reached its ${oneLine(m.message)} limit` });
        else this.#settle({ kind: 'error', message: oneLine(m.message) });
        return;
      case 'credit':
        return;
      case 'ready':
        if (this.#req.module || !this.#publicKey) throw new Error("'ready' from a Keep that was not started in standby");
        this.#publicKey.resolve(m.publicKey);
        this.#publicKey = undefined;
        return;
      case 'provisioned':
        this.#answer('provision').resolve();
        return;
      case 'refused': {
        const p = this.#pending;
        if (!p) throw new Error("'refused' with nothing asked");
        this.#pending = undefined;
        p.reject(new ProvisionRefusedError(m.reason));
        return;
      }
      case 'listen':
        // A deploy's files come from its package, which only the Keep has read.
        if (this.#req.module && !this.#req.deploy) throw new Error("'listen' from a Keep whose files the host binds");
        if (m.at && !this.#req.deploy) throw new Error("'listen' with an address from a provisioned Keep, whose address the host chooses");
        void this.#listen(m.listener, m.name, m.prot, m.at);
        return;
      case 'certified':
        this.#req.onCertified?.(m.chain);
        return;
    }
  }

  #onDial(stream: number, host: string, port: number): void {
    if (stream % 2 !== 0 || stream <= this.#lastKeepStream) throw new Error(`dial with stream id ${stream}: Keep ids are even and increasing`);
    this.#lastKeepStream = stream;
    // A provisioned Keep's connect files are sealed from the host, and a deploy's are in its
    // package, which only the Keep has read: the host dials what they ask.
    if (this.#req.module && !this.#req.deploy && !this.#allowed.has(destination(host, port))) throw new Error(`dial to ${host}:${port}, which no connect file names`);
    const max = this.#maxDescriptors();
    if (this.#descriptorsInUse() >= max) {
      this.#kill({ kind: 'limit', limit: 'descriptors', message: `the Keep went over its descriptors limit (${max})` });
      return;
    }
    this.#endpoint.openStream(stream);
    // Counted from now: dials sent together must not all pass the check before one connects.
    this.#dialing.add(stream);
    const socket = net().connect({ host: host === 'localhost' ? '127.0.0.1' : host, port, noDelay: true, allowHalfOpen: true });
    socket.once('close', () => this.#dialing.delete(stream));
    socket.once('connect', () => {
      this.#dialing.delete(stream);
      if (!this.#endpoint.isOpen(stream)) return socket.destroy();
      this.#endpoint.send({ t: 'dialed', stream, error: null });
      this.#wire(stream, socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (this.#sockets.has(stream)) return;
      if (this.#endpoint.isOpen(stream)) {
        this.#endpoint.send({ t: 'dialed', stream, error: err.message.slice(0, 500) });
        this.#endpoint.closeStream(stream);
      }
    });
  }

  #onAttest(id: number, reportData: Uint8Array): void {
    const source = this.#req.evidence;
    // A provisioned Keep answers a challenge by attesting; the evidence goes to the challenger too.
    const challenge = this.#pending?.t === 'challenge' ? this.#answer('challenge') : undefined;
    const answer = (m: HostMessage) => {
      if (m.t === 'evidence') challenge?.resolve({ reportData, evidence: m.bytes && m.kind ? { kind: m.kind, bytes: m.bytes } : { error: m.error ?? 'no evidence' } });
      if (!this.#outcome) this.#endpoint.send(m);
    };
    if (!source) {
      answer({ t: 'evidence', id, kind: null, bytes: null, error: 'this backend has no attestation (process Keep without an evidence source)' });
      return;
    }
    source(reportData).then(
      (e) => answer({ t: 'evidence', id, kind: e.kind, bytes: e.bytes, error: null }),
      (err: Error) => answer({ t: 'evidence', id, kind: null, bytes: null, error: String(err.message).slice(0, 1000) }),
    );
  }

  #collateralRequests = 0;

  /** A hardware Keep asks for its CSR's collateral: a few requests at most (each may cost vendor downloads). */
  #onCollateral(id: number, request: CollateralRequest): void {
    const answer = (m: HostMessage) => {
      if (!this.#outcome) this.#endpoint.send(m);
    };
    const source = this.#req.collateral;
    if (!this.#req.collect || !source) {
      answer({ t: 'collateral', id, collateral: null, error: 'this host relays no collateral (only hardware Keeps get it)' });
      return;
    }
    if (++this.#collateralRequests > MAX_COLLATERAL_REQUESTS) {
      answer({ t: 'collateral', id, collateral: null, error: `a Keep gets at most ${MAX_COLLATERAL_REQUESTS} collateral answers` });
      return;
    }
    source(request).then(
      ({ collateral, missing }) => {
        for (const m of missing) this.#log('warn', `collateral for the Keep's CSR: ${m}`);
        answer({ t: 'collateral', id, collateral, error: null });
      },
      (err: Error) => answer({ t: 'collateral', id, collateral: null, error: String(err.message).slice(0, 1000) }),
    );
  }

  #startLimits(): void {
    const limits = this.#req.limits ?? {};
    if (limits.wallTimeMs !== undefined) this.#armWallTime(limits.wallTimeMs, '');
    if (limits.rss !== undefined) this.#armRss(limits.rss, '');
  }

  /**
   * A deployed package's own [limits] (sent by the Keep once the package is verified): each one the
   * deployer did not set applies from now on. The deployer's flags win, as for `enarx run`.
   */
  #packageLimits(m: { rss: number | null; wallTime: number | null; descriptors: number | null }): void {
    const given = this.#req.limits ?? {};
    const from = ", from the package's Enarx.toml";
    if (m.wallTime !== null && given.wallTimeMs === undefined) this.#armWallTime(m.wallTime, from);
    if (m.rss !== null && given.rss === undefined) this.#armRss(m.rss, from);
    if (m.descriptors !== null && given.descriptors === undefined) this.#packageDescriptors = m.descriptors;
  }

  /** The most descriptors the Keep may hold: the deployer's limit, else a deployed package's, else the default. */
  #maxDescriptors(): number {
    return this.#givenDescriptors() ?? DEFAULT_DESCRIPTORS;
  }

  #givenDescriptors(): number | undefined {
    return this.#req.limits?.descriptors ?? this.#packageDescriptors;
  }

  #armWallTime(ms: number, from: string): void {
    this.#timers.push(setTimeout(() => this.#kill({ kind: 'limit', limit: 'wall-time', message: `the Keep went over its wall-time limit (${formatDuration(ms)}${from})` }), ms));
  }

  #armRss(max: number, from: string): void {
    const pid = this.#child.pid;
    const poll = setInterval(() => {
      const rss = residentBytes(pid);
      if (rss !== null && rss > max) {
        this.#kill({ kind: 'limit', limit: 'rss', message: `the Keep went over its rss limit (${formatBytes(rss)} > ${formatBytes(max)}${from})` });
      }
    }, this.#req.limits?.rssPollMs ?? RSS_POLL_MS);
    this.#timers.push(poll);
  }

  #settle(outcome: ProcessKeepOutcome): void {
    if (this.#outcome) return;
    this.#outcome = outcome;
    this.#stopStdin();
    this.#reported.resolve(null);
    // Nothing more to send: closing our half tells the Keep it may exit. A Keep that exits with
    // bytes unread on its end (a late credit or stdin eof) makes the kernel reset the pipe, and the
    // host would lose the Keep's last messages, its outcome among them.
    void this.#endpoint.close();
    // The Keep exits by itself after its last message; a Keep that lingers is stopped.
    setTimeout(() => this.#child.kill('SIGKILL'), EXIT_GRACE_MS).unref();
  }

  #kill(outcome: ProcessKeepOutcome): void {
    if (this.#outcome) return;
    this.#outcome = outcome;
    this.#stopStdin();
    this.#child.kill('SIGKILL');
  }

  #cleanup(): void {
    for (const t of this.#timers) clearTimeout(t);
    for (const s of this.#servers) s.close();
    for (const s of this.#sockets.values()) s.destroy();
    for (const [, s] of this.#early.splice(0)) s.destroy();
    this.#sockets.clear();
    this.#stopStdin();
  }
}

/**
 * What a hardware Keep may touch to get its evidence, and nothing more: configfs-tsm's report
 * directory (it creates, uses and removes one entry there); Gramine's three attestation files.
 */
export function attestationGrants(collect: { via: 'configfs-tsm' | 'gramine'; root: string }): { read: string[]; write: string[] } {
  if (collect.via === 'configfs-tsm') return { read: [collect.root], write: [collect.root] };
  const file = (name: string) => `${collect.root}/${name}`;
  return { read: [file('attestation_type'), file('user_report_data'), file('quote')], write: [file('user_report_data')] };
}

function describeOutcome(o: ProcessKeepOutcome): string {
  switch (o.kind) {
    case 'exit':
      return `the Keep exited with code ${o.code}`;
    case 'trap':
      return `the Keep's workload trapped: ${o.message}`;
    case 'aborted':
      return `the Keep was stopped: ${o.reason}`;
    default:
      return o.message;
  }
}

function destination(host: string, port: number): string {
  return `${host.toLowerCase()}:${port}`;
}

function asLimit(name: string): LimitName {
  return name === 'rss' || name === 'wall-time' || name === 'descriptors' ? name : 'memory';
}

function residentBytes(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const statm = readFileSync(`/proc/${pid}/statm`, 'latin1');
    return Number(statm.split(' ')[1]) * 4096;
  } catch {
    return null;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} KiB`;
  return `${n} B`;
}

