/**
 * The Keep's side of the process Keep: runs in its own Node process, under the permission
 * model, with the sallyport on fd 3 as its only link to the host. It receives the workload,
 * turns the configured files into WASI capabilities (sockets are sallyport streams; TLS ends
 * here), runs the module and reports how it ended.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Endpoint, ProtocolError, STDERR_STREAM, STDIN_STREAM, STDOUT_STREAM, FIRST_DYNAMIC_STREAM, PROTOCOL_VERSION, PROVISIONING_VERSION, decodeMessage, encodeMessage } from '../../sallyport/index.ts';
import type { CollateralRequest, EvidenceInterface, HostCollateral, FileSpec, HostMessage, KeepEndpoint, KeepInit, KeepMessage, LogLevel, SallyportPipe, StandbyInit } from '../../sallyport/index.ts';
import { BytesInput, ProvisionedKeep, SealedOutput, planFor } from './provisioned.ts';
import type { ProvisionedPlan } from './provisioned.ts';
import { DuplexConnection, QueueListener } from '../../net/connection.ts';
import type { IdentityProvider, KeepIdentity } from '../identity.ts';
import type { WorkloadIdentity } from '../../pki/index.ts';
import { IoError } from '../../wasi/io.ts';
import type { Connection, DescriptorCapability, DirectoryCapability } from '../../wasi/io.ts';
import { SallyportInput, SallyportOutput, SallyportRecords, SallyportSocket } from './streams.ts';
import { SALLYPORT_READ_BYTES, pipePair, reusedReads } from './pipes.ts';
import type { StreamSink } from './streams.ts';
import type { WorkloadOutcome, WorkloadRequest } from '../../runtime/types.ts';
import type { KeepLimitSettings } from '../limits.ts';

export type RunWorkload = (request: WorkloadRequest) => Promise<WorkloadOutcome>;

interface PendingDial {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Everything code inside the Keep may ask of the host, for the runtime and later for attestation. */
export interface KeepServices {
  /** A raw TCP connection opened by the host (allowed destinations only); TLS, if any, goes on top inside the Keep. */
  dial(host: string, port: number): Promise<SallyportSocket>;
  /** Hardware evidence binding `reportData` (64 bytes), fetched through the host, which cannot forge it. */
  attest(reportData: Uint8Array): Promise<{ kind: string; bytes: Uint8Array }>;
  log(level: LogLevel, text: string): void;
  readonly identity: IdentityProvider;
}

/** Calls `fn` when a sallyport socket has closed. */
function onceClosed(socket: SallyportSocket | SallyportRecords, fn: () => void): void {
  (socket as NodeJS.EventEmitter).once('close', fn);
}

/** How long a finished guest's closed connections may take to send their last bytes. */
const SOCKET_LINGER_MS = 2000;
/** How long a finished Keep waits for the host to close its half of the pipe. */
const HOST_CLOSE_WAIT_MS = 5000;

const LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug', 'trace'];

/**
 * The warm-up's WASI command: one page of memory, and a _start that writes one byte to fd 1 (which
 * it does not have: EBADF) and returns. Built from this text with wabt:
 *   (module
 *     (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 *     (memory (export "memory") 1)
 *     (data (i32.const 0) "\10\00\00\00\01\00\00\00") (data (i32.const 16) "x")
 *     (func (export "_start") (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 20)))))
 */
const WARM_UP_MODULE = Uint8Array.from([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 12, 2, 96, 4, 127, 127, 127, 127, 1, 127, 96, 0, 0, 2, 35, 1, 22, 119, 97, 115, 105, 95, 115, 110, 97, 112, 115,
  104, 111, 116, 95, 112, 114, 101, 118, 105, 101, 119, 49, 8, 102, 100, 95, 119, 114, 105, 116, 101, 0, 0, 3, 2, 1, 1, 5, 3, 1, 0, 1, 7, 19, 2,
  6, 109, 101, 109, 111, 114, 121, 2, 0, 6, 95, 115, 116, 97, 114, 116, 0, 1, 10, 15, 1, 13, 0, 65, 1, 65, 0, 65, 1, 65, 20, 16, 0, 26, 11, 11, 20,
  2, 0, 65, 0, 11, 8, 16, 0, 0, 0, 1, 0, 0, 0, 0, 65, 16, 11, 1, 120,
]);

/** Requests the Keep makes of the host, answered by id: once each, and an answer to none is a violation. */
class HostRequests<T, K extends string = string> {
  readonly #pending = new Map<number, { kind: K; resolve: (value: T) => void; reject: (err: Error) => void }>();
  readonly #send: (m: KeepMessage) => void;
  #next = 1;

  constructor(send: (m: KeepMessage) => void) {
    this.#send = send;
  }

  request(kind: K, message: (id: number) => KeepMessage): Promise<T> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { kind, resolve, reject });
      this.#send(message(id));
    });
  }

  /** The request of this kind that `answer` (a message type) answers. */
  answered(id: number, kind: K, answer: string): { resolve: (value: T) => void; reject: (err: Error) => void } {
    const pending = this.#pending.get(id);
    if (pending?.kind !== kind) throw new ProtocolError(`'${answer}' for request ${id}, which was not made`);
    this.#pending.delete(id);
    return pending;
  }
}

export class KeepSide {
  readonly #endpoint: KeepEndpoint;
  readonly #runWorkload: RunWorkload;
  readonly #exit: (code: number) => void;
  #init: KeepInit | undefined;
  #module: Uint8Array | undefined;
  #received = 0;
  #state: 'hello' | 'standby' | 'module' | 'running' | 'done' = 'hello';
  // A provisioned Keep (version 2): its session, the host's standby settings, what it provisioned.
  #provisioned: ProvisionedKeep | undefined;
  #standby: StandbyInit | undefined;
  #plan: ProvisionedPlan | undefined;
  /** Standby requests run one after another, in the order the host sent them. */
  #steps: Promise<void> = Promise.resolve();
  readonly #listens = new Map<number, { resolve: (port: number) => void; reject: (err: Error) => void }>();
  readonly #sinks = new Map<number, StreamSink>();
  readonly #listeners = new Map<number, { spec: Extract<FileSpec, { kind: 'listen' }>; queue: QueueListener }>();
  #lastHostStream = FIRST_DYNAMIC_STREAM;
  #nextKeepStream = FIRST_DYNAMIC_STREAM;
  readonly #dials = new Map<number, PendingDial>();
  readonly #attests = new HostRequests<{ kind: string; bytes: Uint8Array }>((m) => this.#endpoint.send(m));
  readonly #collaterals = new HostRequests<HostCollateral>((m) => this.#endpoint.send(m));
  /** File-system calls the host makes for the Keep (symlink, fsync). */
  readonly #hostFs = new HostRequests<void, 'symlink' | 'fsync'>((m) => this.#endpoint.send(m));
  #finishing = false;
  readonly #abort = new AbortController();
  readonly services: KeepServices;
  #identity: Promise<KeepIdentity> | undefined;
  /** Per listen file with client CAs: the Keep's identity asking for client certificates from them. */
  readonly #listenIdentities = new Map<number, Promise<KeepIdentity>>();

  constructor(pipe: SallyportPipe, runWorkload: RunWorkload, exit: (code: number) => void = (code) => process.exit(code)) {
    this.#runWorkload = runWorkload;
    this.#exit = exit;
    this.#endpoint = new Endpoint<HostMessage, KeepMessage>(pipe, {
      incoming: 'host-to-keep',
      onMessage: (m) => this.#onMessage(m),
      onViolation: (err) => this.#die(`sallyport: the host broke the protocol: ${err.message}`),
      // The host is gone: nobody is left to report to, and a Keep must not outlive its host.
      onClose: () => {
        if (this.#state !== 'done') this.#exit(1);
      },
    });
    // TLS and X.509 code loads only when a TLS file needs it: most of a Keep's start-up is parsing code.
    // With a Steward, #start sets the identity before any descriptor opens.
    const provider: IdentityProvider = {
      identity: () => (this.#identity ??= import('../identity.ts').then((m) => m.createSelfSignedIdentity())),
    };
    this.services = {
      dial: (host, port) => this.#dial(host, port),
      attest: (reportData) => this.#attest(reportData),
      log: (level, text) => this.#log(level, text),
      identity: provider,
    };
  }

  /**
   * Runs once, while the Keep waits for `hello`, the code a workload's start runs first: the
   * general decoder on a hello like the host's, and a tiny WASI command (WARM_UP_MODULE) through
   * the runtime, with no descriptor. A process's first call of each function is slow (V8 compiles
   * it then, and the code cache holds only what runs at load), and the Keep is otherwise idle
   * while the host still starts: the workload's start then does not pay for it. Nothing is sent,
   * opened or kept; a Keep whose `hello` has come already skips it.
   */
  async warmUp(): Promise<void> {
    if (this.#state !== 'hello') return;
    const init: KeepInit = {
      moduleSize: WARM_UP_MODULE.length,
      argv: ['warm-up'],
      env: [['WARM', 'up']],
      files: [{ kind: 'stdin', name: 'stdin' }, { kind: 'stdout', name: 'stdout' }, { kind: 'stderr', name: 'stderr' }],
      limits: { memory: null, descriptors: 1024 },
      logLevel: 'warn',
      steward: null,
    };
    try {
      decodeMessage(encodeMessage({ t: 'hello', version: PROTOCOL_VERSION, init }), 'host-to-keep');
      if ((this.#state as string) !== 'hello') return;
      await this.#runWorkload({ module: WARM_UP_MODULE, args: ['warm-up'], env: [], descriptors: [] });
    } catch {
      // A warm-up only: the workload's own run reports whatever is wrong.
    }
  }

  #log(level: LogLevel, text: string): void {
    const wanted = this.#init ? LEVELS.indexOf(this.#init.logLevel) : 1;
    if (LEVELS.indexOf(level) <= wanted) this.#endpoint.send({ t: 'log', level, text: text.slice(0, 16384) });
  }

  #die(message: string): void {
    if (this.#state === 'done') return;
    this.#state = 'done';
    this.#abort.abort(message);
    process.stderr.write(`${message}\n`);
    this.#exit(1);
  }

  #onMessage(m: HostMessage): void {
    switch (m.t) {
      case 'hello':
        if (this.#state !== 'hello') throw new ProtocolError("'hello' after the start");
        if (m.version !== PROTOCOL_VERSION) throw new ProtocolError(`protocol version ${m.version} is not supported (this Keep speaks ${PROTOCOL_VERSION})`);
        this.#accept(m.init);
        return;
      case 'module': {
        if (this.#state !== 'module' || !this.#module) throw new ProtocolError("'module' outside the module transfer");
        if (this.#received + m.bytes.length > this.#module.length) throw new ProtocolError('more module bytes than announced');
        this.#module.set(m.bytes, this.#received);
        this.#received += m.bytes.length;
        if (this.#received === this.#module.length) this.#start();
        return;
      }
      case 'data':
      case 'eof':
      case 'reset': {
        if (m.t === 'reset' && (m.stream === STDOUT_STREAM || m.stream === STDERR_STREAM)) {
          // The host's reader of this output went away: the guest's writes fail with EPIPE from now on.
          if (!this.#endpoint.isOpen(m.stream) && !this.#endpoint.wasOpen(m.stream)) throw new ProtocolError(`'reset' for stream ${m.stream}, which is not open`);
          this.#endpoint.closeStream(m.stream);
          return;
        }
        this.#requireRunning(m.t);
        const sink = this.#sinks.get(m.stream);
        if (!sink) {
          if (this.#endpoint.wasOpen(m.stream)) return;
          throw new ProtocolError(`'${m.t}' for stream ${m.stream}, which is not open`);
        }
        if (m.t === 'data') sink.data(m.bytes);
        else if (m.t === 'eof') sink.eof();
        else {
          this.#sinks.delete(m.stream);
          this.#endpoint.closeStream(m.stream);
          sink.reset(m.reason);
        }
        return;
      }
      case 'accept':
        this.#requireRunning('accept');
        this.#onAccept(m.listener, m.stream);
        return;
      case 'dialed': {
        const pending = this.#dials.get(m.stream);
        if (!pending) throw new ProtocolError(`'dialed' for stream ${m.stream}, which was not dialed`);
        this.#dials.delete(m.stream);
        if (m.error === null) pending.resolve();
        else {
          this.#sinks.delete(m.stream);
          this.#endpoint.closeStream(m.stream);
          pending.reject(new IoError(/refused/i.test(m.error) ? 'ECONNREFUSED' : 'EHOSTUNREACH', m.error));
        }
        return;
      }
      case 'evidence': {
        const pending = this.#attests.answered(m.id, 'attest', m.t);
        if (m.bytes && m.kind) pending.resolve({ kind: m.kind, bytes: m.bytes });
        else pending.reject(new Error(m.error ?? 'no evidence'));
        return;
      }
      case 'collateral': {
        const pending = this.#collaterals.answered(m.id, 'get-collateral', m.t);
        if (m.collateral) pending.resolve(m.collateral);
        else pending.reject(new Error(m.error ?? 'no collateral'));
        return;
      }
      case 'symlinked':
      case 'fsynced': {
        const kind = m.t === 'symlinked' ? 'symlink' : 'fsync';
        const pending = this.#hostFs.answered(m.id, kind, m.t);
        if (m.error === null) pending.resolve();
        else pending.reject(Object.assign(new Error(`the host's ${kind} failed: ${m.error}`), { code: m.error }));
        return;
      }
      case 'credit':
        return; // applied by the endpoint
      case 'standby':
        if (this.#state !== 'hello') throw new ProtocolError("'standby' after the start");
        if (m.version !== PROVISIONING_VERSION) throw new ProtocolError(`provisioning version ${m.version} is not supported (this Keep speaks ${PROVISIONING_VERSION})`);
        this.#state = 'standby';
        this.#standby = m.init;
        for (const id of [STDIN_STREAM, STDOUT_STREAM, STDERR_STREAM]) this.#endpoint.openStream(id);
        this.#step(async () => {
          this.#provisioned = new ProvisionedKeep(this.#endpoint);
          this.#endpoint.send({ t: 'ready', publicKey: await this.#provisioned.makeKey() });
        });
        return;
      case 'assign':
        this.#requireStandby(m.t);
        this.#step(async () => this.#provisioned!.assign(m.keep));
        return;
      case 'challenge':
        this.#requireStandby(m.t);
        // The answer is the `attest` itself: the host hands its evidence to the challenger.
        this.#step(async () => {
          const reportData = await this.#provisioned!.challenge(m.nonce);
          await this.#attest(reportData).catch(() => {});
        });
        return;
      case 'provision': {
        this.#requireStandby(m.t);
        const { bytes, more } = m;
        this.#step(async () => {
          const jwe = this.#provisioned!.piece(bytes, more);
          if (jwe === undefined) return;
          let provision;
          try {
            provision = await this.#provisioned!.open(jwe);
          } catch (err) {
            if (err instanceof ProtocolError) throw err;
            this.#endpoint.send({ t: 'refused', reason: (err as Error).message.slice(0, 500) || 'refused' });
            return;
          }
          this.#endpoint.send({ t: 'provisioned' });
          try {
            this.#plan = await planFor(provision, this.#standby!.steward);
          } catch (err) {
            void this.#finish({ t: 'fail', kind: 'error', message: (err as Error).message });
            return;
          }
          void this.#startProvisioned(this.#plan);
        });
        return;
      }
      case 'listening': {
        const pending = this.#listens.get(m.listener);
        if (!pending) throw new ProtocolError(`'listening' for ${m.listener}, which the Keep did not ask to listen`);
        this.#listens.delete(m.listener);
        if (m.error === null) pending.resolve(m.port);
        else pending.reject(new Error(m.error));
        return;
      }
    }
  }

  #requireStandby(what: string): void {
    if (this.#state !== 'standby') throw new ProtocolError(`'${what}' outside standby`);
  }

  #step(work: () => Promise<void>): void {
    this.#steps = this.#steps.then(work).catch((err: unknown) => this.#die(`sallyport: the host broke the protocol: ${(err as Error).message}`));
  }

  /** Asks the host to bind a listen file (at `at`, or where the host chooses); connections arrive as `accept`. */
  async #listenThroughHost(name: string, prot: 'tcp' | 'tls', at?: { addr: string; port: number }, clientCa?: string[]): Promise<Extract<FileSpec, { kind: 'listen' }>> {
    const listener = this.#nextKeepStream;
    this.#nextKeepStream += 2;
    const port = await new Promise<number>((resolve, reject) => {
      this.#listens.set(listener, { resolve, reject });
      this.#endpoint.send({ t: 'listen', listener, name, prot, ...(at ? { at } : {}) });
    });
    const spec = { kind: 'listen' as const, name, prot, listener, addr: at?.addr ?? '', port, ...(clientCa?.length ? { clientCa } : {}) };
    this.#listeners.set(listener, { spec, queue: new QueueListener() });
    return spec;
  }

  /** Binds the provisioned listen files through the host, then runs the workload as `hello` would. */
  async #startProvisioned(plan: ProvisionedPlan): Promise<void> {
    const standby = this.#standby!;
    const files: FileSpec[] = [];
    try {
      for (const f of plan.files) {
        if (f.kind !== 'listen-request') {
          files.push(f);
          continue;
        }
        files.push(await this.#listenThroughHost(f.name, f.prot, undefined, f.clientCa));
      }
    } catch (err) {
      void this.#finish({ t: 'fail', kind: 'error', message: `cannot listen: ${(err as Error).message}` });
      return;
    }
    this.#init = {
      moduleSize: plan.provision.wasm.length,
      argv: plan.argv,
      env: plan.env,
      files,
      limits: standby.limits,
      logLevel: standby.logLevel,
      steward: plan.steward,
      ...(standby.evidence ? { evidence: standby.evidence } : {}),
    };
    this.#module = plan.provision.wasm;
    await this.#start();
  }

  #requireRunning(what: string): void {
    if (this.#state !== 'running') throw new ProtocolError(`'${what}' before the workload started`);
  }

  #accept(init: KeepInit): void {
    const listenerIds = new Set<number>();
    for (const f of init.files) {
      if (f.kind !== 'listen') continue;
      if (f.listener % 2 !== 1 || listenerIds.has(f.listener)) throw new ProtocolError(`listener id ${f.listener} must be odd and unique`);
      listenerIds.add(f.listener);
      this.#lastHostStream = Math.max(this.#lastHostStream, f.listener);
      // Ready before the first 'accept', which may follow the module at once.
      this.#listeners.set(f.listener, { spec: f, queue: new QueueListener() });
    }
    this.#init = init;
    this.#module = new Uint8Array(init.moduleSize);
    this.#state = 'module';
    for (const id of [STDIN_STREAM, STDOUT_STREAM, STDERR_STREAM]) this.#endpoint.openStream(id);
    // Stdin may follow the module in the same read, before the descriptors are opened: its
    // sink must exist from now on, or those bytes would be lost.
    if (init.deploy || init.files.some((f) => f.kind === 'stdin')) this.#sinks.set(STDIN_STREAM, new SallyportInput(this.#endpoint, STDIN_STREAM));
    // A deploy sends no module: the Keep fetches its package itself.
    if (init.deploy) void this.#start();
  }

  #onAccept(listenerId: number, stream: number): void {
    const listener = this.#listeners.get(listenerId);
    if (!listener) throw new ProtocolError(`'accept' on ${listenerId}, which is not a listener`);
    if (stream % 2 !== 1 || stream <= this.#lastHostStream) throw new ProtocolError(`'accept' with stream id ${stream}: host ids are odd and increasing`);
    this.#lastHostStream = stream;
    this.#endpoint.openStream(stream);
    // node:tls reads and writes a TLS file's records itself: it needs no Duplex under it.
    const socket = listener.spec.prot === 'tls' ? new SallyportRecords(this.#endpoint, stream) : new SallyportSocket(this.#endpoint, stream);
    this.#sinks.set(stream, socket);
    onceClosed(socket, () => this.#sinks.delete(stream));
    // Without an identity (the Steward refused, and the Keep is ending) the client is dropped.
    this.#wrapAccepted(listener.spec, socket).then(
      (connection) => {
        if (!listener.queue.offer(connection)) connection.close();
      },
      () => socket.destroy(),
    );
  }

  async #wrapAccepted(spec: Extract<FileSpec, { kind: 'listen' }>, socket: SallyportSocket | SallyportRecords): Promise<Connection> {
    if (socket instanceof SallyportSocket) return new DuplexConnection(socket);
    const [{ tlsServer }, identity] = await Promise.all([import('../../net/tls.ts'), this.#listenIdentity(spec)]);
    return new DuplexConnection(tlsServer(socket as unknown as Duplex, identity), socket as unknown as Duplex);
  }

  #listenIdentity(spec: Extract<FileSpec, { kind: 'listen' }>): Promise<KeepIdentity> {
    if (!spec.clientCa?.length) return this.services.identity.identity();
    let identity = this.#listenIdentities.get(spec.listener);
    if (!identity) {
      const clientCAs = [...spec.clientCa];
      identity = this.services.identity.identity().then((base) => ({ ...base, clientCAs }));
      this.#listenIdentities.set(spec.listener, identity);
    }
    return identity;
  }

  /** Key, evidence binding it and the workload's digest, CSR, Steward: the chain every TLS file then uses. */
  async #attestedIdentity(steward: string, kind: 'snp' | 'sgx' | 'tdx' | null, collect: EvidenceInterface | null, module: Uint8Array): Promise<KeepIdentity> {
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-384', module as Uint8Array<ArrayBuffer>));
    const identity = await this.#certify(steward, kind, { digest: { algorithm: 'sha-384', value: digest } }, collect);
    this.#log('info', `the Steward at ${new URL(steward).origin} certified this Keep`);
    return identity;
  }

  /** One Steward exchange: a fresh key, evidence binding it (and `workload`, if any), the CSR. */
  async #certify(steward: string, kind: 'snp' | 'sgx' | 'tdx' | null, workload?: WorkloadIdentity, collect: EvidenceInterface | null = null): Promise<KeepIdentity> {
    if (!kind) {
      throw new Error(
        `this host cannot attest, so the Steward at ${steward} cannot certify this Keep ` +
          '(run inside an SEV-SNP or TDX VM with configfs-tsm, or a Gramine SGX enclave; for development, `enarx platform test-root create` then `enarx run --software-evidence DIR`)',
      );
    }
    const [{ requestStewardIdentity, postOverDial }, { attestationStatementType, OID_EVIDENCE_SNP_REPORT }] = await Promise.all([import('../steward.ts'), import('../../pki/index.ts')]);
    // A hardware Keep asks the hardware itself, through the paths its host granted; otherwise the
    // host's `attest` answers (software evidence), which it cannot forge either.
    const hardware = collect
      ? (await import('../hardware/source.ts')).hardwareEvidenceSource(kind, collect, {
          collateral: (request) => this.#collateral(request),
          warn: (message) => this.#log('warn', message),
        })
      : undefined;
    return requestStewardIdentity({
      steward,
      ...(workload ? { workload } : {}),
      evidence: hardware ?? {
        kind,
        description: `${kind} evidence from the host`,
        collect: async (reportData) => {
          const e = await this.services.attest(reportData);
          if (e.kind !== kind) throw new Error(`the host returned ${e.kind} evidence, not the announced ${kind}`);
          if (e.kind === 'tdx') return { attestation: { attestations: [{ type: attestationStatementType('tdx'), stmt: e.bytes }], certs: [] } };
          // A hardware host with no VCEK for its report sends our bare-report statement (an OCTET
          // STRING, 0x04), never Enarx's Evidence (a SEQUENCE, 0x30).
          if (e.kind === 'snp' && e.bytes[0] === 0x04) return { attestation: { attestations: [{ type: OID_EVIDENCE_SNP_REPORT, stmt: e.bytes }], certs: [] } };
          return { enarxEvidence: { kind, der: e.bytes } as { kind: 'snp' | 'sgx'; der: Uint8Array } };
        },
      },
      post: postOverDial((host, port) => this.#dial(host, port)),
      onPhase: (phase) => this.#log('debug', `identity: ${phase}`),
    });
  }

  /** A registry deploy: fetch certificate, verified fetch, workload certificate; then the run's files and module. */
  async #deploy(init: KeepInit): Promise<{ module: Uint8Array; files: FileSpec[]; argv: string[]; env: [string, string][]; limits: KeepInit['limits'] }> {
    const spec = init.deploy!;
    const [{ deployPackage, PACKAGE_GUEST_PATH }, { buildPlanParts }] = await Promise.all([import('../deploy.ts'), import('../plan.ts')]);
    const steward = init.steward;
    const deployed = await deployPackage(spec, {
      dial: (host, port) => this.#dial(host, port),
      log: (level, text) => this.#log(level, text),
      ...(steward ? { certify: (workload?: WorkloadIdentity) => this.#certify(steward, init.evidence ?? null, workload, init.collect ?? null) } : {}),
    });
    if (deployed.identity) this.#identity = Promise.resolve(deployed.identity);
    // The package's rss, wall-time and descriptors limits are the host's to enforce (where the deployer set none).
    const own = (deployed.config?.extensions.limits ?? {}) as KeepLimitSettings;
    this.#endpoint.send({
      t: 'deployed', slug: deployed.slug, digest: deployed.digest, signer: deployed.signer,
      rss: own.rss ?? null, wallTime: own.wallTime ?? null, descriptors: own.descriptors ?? null,
    });
    const parts = buildPlanParts({ module: 'main.wasm', args: init.argv, dirs: [`${spec.stage}::${PACKAGE_GUEST_PATH}`], env: init.env.map(([k, v]) => `${k}=${v}`) }, deployed.config, {});
    const files: FileSpec[] = [];
    for (const f of parts.files) {
      if (f.kind === 'dir') files.push({ kind: 'dir', name: f.name, path: f.path, readonly: true });
      else if (f.kind === 'listen') {
        files.push(await this.#listenThroughHost(f.name, f.prot, { addr: f.addr, port: f.port }, deployed.cas.get(f.name)));
      } else if (f.kind === 'connect') files.push({ kind: 'connect', name: f.name, prot: f.prot, host: f.host, port: f.port, ca: deployed.cas.get(f.name) ?? [] });
      else files.push({ kind: f.kind, name: f.name });
    }
    // The package's [limits] memory and descriptors apply inside the Keep unless the deployer set them.
    const limits = { memory: init.limits.memory ?? own.memory ?? null, descriptors: init.limits.descriptors ?? own.descriptors ?? null };
    return { module: deployed.module, files, argv: parts.args, env: parts.env, limits };
  }

  #dial(host: string, port: number): Promise<SallyportSocket> {
    return this.#dialAs(host, port, (stream) => new SallyportSocket(this.#endpoint, stream));
  }

  /** A dial whose stream `make` wraps: a Duplex, or the records under node:tls for a TLS file. */
  #dialAs<T extends SallyportSocket | SallyportRecords>(host: string, port: number, make: (stream: number) => T): Promise<T> {
    const stream = this.#nextKeepStream;
    this.#nextKeepStream += 2;
    this.#endpoint.openStream(stream);
    const socket = make(stream);
    this.#sinks.set(stream, socket);
    onceClosed(socket, () => this.#sinks.delete(stream));
    return new Promise((resolve, reject) => {
      this.#dials.set(stream, { resolve: () => resolve(socket), reject });
      this.#endpoint.send({ t: 'dial', stream, host, port });
    });
  }

  #attest(reportData: Uint8Array): Promise<{ kind: string; bytes: Uint8Array }> {
    if (reportData.length !== 64) return Promise.reject(new RangeError('report data must be 64 bytes'));
    return this.#attests.request('attest', (id) => ({ t: 'attest', id, reportData }));
  }

  /** The host's collateral for this Keep's evidence (public signed data, which the Steward verifies). */
  #collateral(request: CollateralRequest): Promise<HostCollateral> {
    return this.#collaterals.request('get-collateral', (id) => ({ t: 'get-collateral', id, request }));
  }

  /**
   * Node's permission model lets no sandboxed process create symlinks, and disables fsync: the
   * host does these, after its own checks (src/keep/process/host-fs.ts).
   */
  #hostFsCall(
    kind: 'symlink' | 'fsync',
    message: (id: number) => Extract<KeepMessage, { t: 'symlink' | 'fsync' }>,
  ): Promise<void> {
    return this.#hostFs.request(kind, message);
  }

  async #descriptor(f: FileSpec): Promise<DescriptorCapability> {
    switch (f.kind) {
      case 'null':
        return { kind: 'null', name: f.name };
      case 'stdin':
        if (this.#plan) return { kind: 'input', name: f.name, stream: new BytesInput(this.#plan.provision.stdin) };
        return { kind: 'input', name: f.name, stream: this.#sinks.get(STDIN_STREAM) as SallyportInput };
      case 'stdout':
      case 'stderr': {
        const channel = this.#provisioned?.channel;
        if (channel) return { kind: 'output', name: f.name, stream: new SealedOutput(channel, f.kind) };
        return { kind: 'output', name: f.name, stream: new SallyportOutput(this.#endpoint, f.kind === 'stdout' ? STDOUT_STREAM : STDERR_STREAM) };
      }
      case 'listen':
        return { kind: 'listener', name: f.name, listener: this.#listeners.get(f.listener)!.queue };
      case 'connect': {
        // Worded as the nil Keep words them: both Keeps give the same results.
        const where = `cannot connect on ${f.host} port ${f.port} for '${f.name}'`;
        const failed = (err: Error) => {
          throw new Error(`${where}: ${err.message}`);
        };
        if (f.prot === 'tcp') {
          const socket = await this.#dial(f.host, f.port).catch(failed);
          return { kind: 'connection', name: f.name, connection: new DuplexConnection(socket) };
        }
        const records = await this.#dialAs(f.host, f.port, (stream) => new SallyportRecords(this.#endpoint, stream)).catch(failed);
        // node:tls needs only what SallyportRecords has of a Duplex.
        const socket = records as unknown as Duplex;
        const [{ tlsClient }, identity] = await Promise.all([import('../../net/tls.ts'), this.services.identity.identity()]);
        const tls = await tlsClient(socket, { host: f.host, identity, ca: f.ca }).catch((err: Error) => {
          records.destroy();
          throw new Error(`${where}: TLS to ${f.host}:${f.port} failed: ${err.message}`);
        });
        return { kind: 'connection', name: f.name, connection: new DuplexConnection(tls, socket) };
      }
      case 'dir': {
        const createSymlink = f.readonly
          ? {}
          : { createSymlink: (target: string, path: string) => this.#hostFsCall('symlink', (id) => ({ t: 'symlink', id, target, path })) };
        const syncFile: DirectoryCapability['syncFile'] = (file, dataOnly) =>
          this.#hostFsCall('fsync', (id) => ({ t: 'fsync', id, path: file.hostPath, dev: String(file.dev), ino: String(file.ino), dataOnly: dataOnly ? 1 : 0 }));
        return { kind: 'dir', name: f.name, dir: { hostPath: f.path, guestPath: f.name, readonly: f.readonly, ...createSymlink, syncFile } };
      }
    }
  }

  async #start(): Promise<void> {
    const init = this.#init!;
    let module = this.#module!;
    this.#module = undefined;
    this.#state = 'running';
    this.#log('debug', `started: ${module.length} module bytes received`);
    let outcome: WorkloadOutcome;
    try {
      let { files, argv, env, limits } = init;
      // A refusal (Steward, registry, signature, digest) ends the Keep here, before any descriptor opens or the workload runs.
      if (init.deploy) ({ module, files, argv, env, limits } = await this.#deploy(init));
      else if (init.steward) {
        // The identity is set before the first await: a client accepted meanwhile waits for the
        // Steward's certificate, and is never served a self-signed one.
        this.#identity = this.#attestedIdentity(init.steward, init.evidence ?? null, init.collect ?? null, module);
        const identity = await this.#identity;
        if (this.#plan) this.#endpoint.send({ t: 'certified', chain: identity.certificateChain.join('') });
      }
      const descriptors: DescriptorCapability[] = [];
      for (const f of files) descriptors.push(await this.#descriptor(f));
      outcome = await this.#runWorkload({
        module,
        args: argv,
        env,
        descriptors,
        limits: {
          ...(limits.memory !== null ? { maxMemoryBytes: limits.memory } : {}),
          ...(limits.descriptors !== null ? { maxDescriptors: limits.descriptors } : {}),
        },
        signal: this.#abort.signal,
      });
    } catch (err) {
      const hint = (err as { hint?: unknown }).hint;
      const message = err instanceof Error ? err.message : String(err);
      void this.#finish({ t: 'fail', kind: 'error', message: typeof hint === 'string' ? `${message} (${hint})` : message });
      return;
    }
    switch (outcome.kind) {
      case 'exit':
        // As in the nil Keep: a status that a process cannot exit with is an error, not its low byte (256 is not success).
        void this.#finish(outcome.code > 255
          ? { t: 'fail', kind: 'error', message: `the workload exited with status ${outcome.code}, which does not fit in 0-255` }
          : { t: 'exit', code: outcome.code });
        return;
      case 'trap':
        void this.#finish({ t: 'fail', kind: 'trap', message: outcome.message });
        return;
      case 'aborted':
        void this.#finish({ t: 'fail', kind: 'error', message: outcome.reason });
        return;
    }
  }

  async #finish(last: KeepMessage): Promise<void> {
    if (this.#state === 'done' || this.#finishing) return;
    this.#finishing = true;
    // Connections the guest closed may still hold bytes (and a TLS close_notify) on their way out.
    const open = [...this.#sinks.values()].filter((s): s is SallyportSocket | SallyportRecords => (s instanceof SallyportSocket || s instanceof SallyportRecords) && !s.destroyed);
    if (open.length > 0) {
      const closed = Promise.all(open.map((s) => new Promise<void>((resolve) => onceClosed(s, resolve))));
      await Promise.race([closed, new Promise<void>((resolve) => setTimeout(resolve, SOCKET_LINGER_MS))]);
    }
    if ((this.#state as string) === 'done') return; // #die ran meanwhile
    // A provisioned Keep's client learns how it ended from the Keep itself, sealed.
    const channel = this.#provisioned?.channel;
    if (channel) {
      await sealEnd(channel, last).catch(() => {});
      // The reason is sealed for the client; the host learns only what kind of end it was.
      if (last.t === 'fail' && last.kind !== 'limit') last = { ...last, message: `the workload ${last.kind === 'trap' ? 'trapped' : 'could not run'} (the reason is sealed to its client)` };
    }
    if ((this.#state as string) === 'done') return;
    this.#state = 'done';
    this.#endpoint.send(last);
    await this.#endpoint.close();
    // Exit once the host has closed its half too: bytes it sent meanwhile (a credit, stdin's eof)
    // are then read, not left unread, which would make the kernel reset the pipe and the host
    // lose this Keep's last messages. A host that never closes is not waited for long.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#endpoint.ended(), new Promise<void>((resolve) => (timer = setTimeout(resolve, HOST_CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
    this.#exit(0);
  }
}

/** The last records of a provisioned Keep's output channel: why it ended (if not a plain exit), then the exit record. */
async function sealEnd(channel: NonNullable<ProvisionedKeep['channel']>, last: KeepMessage): Promise<void> {
  const [code, reason] =
    last.t === 'exit' ? [last.code, null] : last.t === 'fail' ? [last.kind === 'trap' ? 134 : last.kind === 'limit' ? 137 : 1, last.message] : [1, 'the Keep ended'];
  if (reason) await channel.write({ stream: 'log', data: new TextEncoder().encode(`${reason}\n`) });
  await channel.write({ stream: 'exit', code, reason });
  await channel.flush();
}

/** Entry point: fd 3 is the sallyport. */
export function startKeep(runWorkload: RunWorkload): KeepSide {
  // process.getBuiltinModule: node:net's ESM facade costs start-up time, and this runs on every Keep's start.
  const { Socket } = process.getBuiltinModule('node:net');
  // Spawned by the host: fd 3 is a socket both ways. Started by the shell launcher (bin/enarx),
  // which has no socket pairs: the host's pipe on fd 3, one to the host on fd 4.
  // Either way the endpoint writes frames straight to the descriptor while nothing is queued.
  // Either way it reads into reused buffers: a data message's bytes are valid only while it is
  // handled, and what a stream holds longer it copies or keeps (streams.ts).
  if (!process.getBuiltinModule('node:fs').fstatSync(3).isFIFO()) {
    const reads = reusedReads(SALLYPORT_READ_BYTES);
    const socket = new Socket({ fd: 3, readable: true, writable: true, onread: reads.onread });
    return new KeepSide({ input: socket, output: socket, outputFd: 3, reads }, runWorkload);
  }
  return new KeepSide({ ...pipePair(3, 4, SALLYPORT_READ_BYTES), outputFd: 4 }, runWorkload);
}
