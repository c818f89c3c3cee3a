/**
 * The keep manager's engine, below the HTTP layer: admission, the warm pool, the Keeps' life
 * cycle, limits and the record store. The daemon never holds a Keep's key or plaintext: it
 * relays the challenge, the evidence, the provisioning JWE and the sealed output records.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { KeepProcess, KeepRefusal, describeEnd, type KeepEnd, type KeepEnvironment, type KeepEvidence, type KeepLimits } from './keep/host.ts';
import { LIVE_STATES, type KeepRecord, type KeepState, type KeepStore, type Verdict } from './store.ts';
import { KeepUsers, type Isolation } from './users.ts';

export interface ManagerOptions {
  store: KeepStore;
  /** What every Keep shares: evidence source, Steward, listen address, bundle. */
  environment: KeepEnvironment;
  /** How the contracts name the evidence Keeps give. */
  evidenceLabel: string;
  /** Keeps kept started and idle, ready to be handed out. */
  poolSize: number;
  /** Live Keeps at most (the pool not counted). */
  maxKeeps: number;
  /** Sum of live Keeps' memory limits at most, in MiB. */
  memoryBudgetMiB: number;
  defaults: KeepLimits;
  maxLimits: KeepLimits;
  /** How often the host samples each Keep's memory, CPU and descriptors. */
  sampleMs?: number;
  /** Whether each Keep runs as its own user (see users.ts). */
  isolation?: Isolation;
}

export interface Contract {
  backend: string;
  evidence: string;
  available: boolean;
  limits: { defaults: KeepLimits; max: KeepLimits };
  capacity: { maxKeeps: number; live: number; free: number; memoryBudgetMiB: number; memoryCommittedMiB: number; pool: { size: number; warm: number } };
  /** `per-keep`: each Keep has its own uid and gid, so Keeps cannot signal or trace each other; `shared`: they share one, and `reason` says why. */
  isolation: { users: 'per-keep' | 'shared'; reason?: string };
}

/** A refusal the API maps to a status code: 400 bad input, 404 unknown, 409 wrong state, 503 full. */
export class ManagerError extends Error {
  readonly status: number;
  readonly slug: string;
  readonly retryAfter: number | undefined;
  constructor(status: number, slug: string, message: string, retryAfter?: number) {
    super(message);
    this.name = 'ManagerError';
    this.status = status;
    this.slug = slug;
    this.retryAfter = retryAfter;
  }
}

interface LiveKeep {
  proc: KeepProcess | undefined;
  /** Committed at admission, before a cold Keep's process exists. */
  limits: KeepLimits;
  /** Why it is being stopped, when the host stops it. */
  stopReason?: string;
  events: EventEmitter;
  assigned: Promise<void>;
}

export const BACKEND = 'process';

export class KeepManager {
  readonly store: KeepStore;
  readonly options: ManagerOptions;
  readonly #live = new Map<string, LiveKeep>();
  readonly #pool: KeepProcess[] = [];
  #warming = 0;
  #sampler: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #users: KeepUsers | undefined;

  constructor(options: ManagerOptions) {
    this.options = options;
    this.store = options.store;
    if (options.isolation?.users === 'per-keep') this.#users = new KeepUsers(options.isolation.range);
  }

  /** Starts a Keep process under a user of its own (when the daemon can), freed once the process is gone. */
  async #startKeep(limits: KeepLimits): Promise<KeepProcess> {
    const user = this.#users?.take();
    if (this.#users && !user) throw new Error('every Keep user id of the configured range is in use');
    let proc: KeepProcess;
    try {
      proc = await KeepProcess.start(this.options.environment, limits, user);
    } catch (err) {
      if (user) this.#users!.release(user.uid);
      throw err;
    }
    if (user) proc.once('end', () => this.#users!.release(user.uid));
    return proc;
  }

  start(): void {
    this.#refill();
    this.#sampler = setInterval(() => this.#sample(), this.options.sampleMs ?? 200);
    this.#sampler.unref();
  }

  get poolWarm(): number {
    return this.#pool.length;
  }

  /** Resolves once the warm pool is full (or cannot fill). */
  async poolReady(timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (this.#pool.length < this.options.poolSize && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  }

  contracts(): Contract[] {
    const live = this.#live.size;
    const committed = this.#committedMiB();
    return [
      {
        backend: BACKEND,
        evidence: this.options.evidenceLabel,
        available: true,
        limits: { defaults: this.options.defaults, max: this.options.maxLimits },
        capacity: {
          maxKeeps: this.options.maxKeeps,
          live,
          free: Math.max(0, this.options.maxKeeps - live),
          memoryBudgetMiB: this.options.memoryBudgetMiB,
          memoryCommittedMiB: committed,
          pool: { size: this.options.poolSize, warm: this.#pool.length },
        },
        isolation: this.options.isolation?.users === 'shared' ? { users: 'shared', reason: this.options.isolation.reason } : { users: this.options.isolation ? 'per-keep' : 'shared' },
      },
    ];
  }

  #committedMiB(): number {
    let n = 0;
    for (const k of this.#live.values()) n += k.limits.memoryMiB;
    return n;
  }

  async create(owner: string, request: { backend?: string; limits?: Partial<KeepLimits> }): Promise<KeepRecord> {
    if (this.#closed) throw new ManagerError(503, 'shutting-down', 'the keep manager is shutting down', 5);
    const backend = request.backend ?? BACKEND;
    if (backend !== BACKEND) throw new ManagerError(400, 'unknown-backend', `backend '${backend}' is not offered here (GET /api/v1/contracts lists what is)`);
    const limits = this.#limits(request.limits ?? {});
    if (this.#live.size >= this.options.maxKeeps) {
      throw new ManagerError(503, 'host-full', `host full: ${this.#live.size} of ${this.options.maxKeeps} Keeps are live; stop one or retry later`, 10);
    }
    const committed = this.#committedMiB();
    if (committed + limits.memoryMiB > this.options.memoryBudgetMiB) {
      throw new ManagerError(503, 'memory-exhausted', `host full: ${committed} of ${this.options.memoryBudgetMiB} MiB of Keep memory are committed and this Keep asks ${limits.memoryMiB} MiB`, 10);
    }
    const id = randomUUID();
    const now = new Date().toISOString();
    const fromPool = sameLimits(limits, this.options.defaults) ? this.#pool.shift() : undefined;
    const record: KeepRecord = {
      id, owner, backend, state: fromPool ? 'ready' : 'starting', createdAt: now, updatedAt: now, endedAt: null, pid: fromPool?.pid ?? null,
      exitCode: null, reason: null, limits, usage: null, origin: fromPool ? 'pool' : 'cold', evidenceKind: null,
      publicKey: null, reportData: null, evidence: null, certs: [], nonce: null, certificate: null, ports: [], verdict: null, outputRecords: 0,
    };
    this.store.insert(record);
    const live: LiveKeep = { proc: fromPool, limits, events: new EventEmitter(), assigned: Promise.resolve() };
    live.events.setMaxListeners(0);
    this.#live.set(id, live);
    if (fromPool) {
      this.#attach(id, live, fromPool);
      live.assigned = this.#assign(id, fromPool);
      this.#refill();
    } else {
      live.assigned = this.#startKeep(limits).then(
        (proc) => {
          if (!this.#live.has(id)) {
            proc.kill({ kind: 'stop' });
            return;
          }
          live.proc = proc;
          this.store.update(id, { pid: proc.pid ?? null, state: 'ready' });
          this.#attach(id, live, proc);
          return this.#assign(id, proc);
        },
        (err: Error) => this.#finish(id, 'crashed', null, `the Keep did not start: ${err.message}`),
      );
    }
    live.assigned.catch(() => {});
    return this.store.get(id)!;
  }

  async #assign(id: string, proc: KeepProcess): Promise<void> {
    const publicKey = proc.assign(id);
    this.store.update(id, { publicKey });
  }

  #limits(req: Partial<KeepLimits>): KeepLimits {
    const out = { ...this.options.defaults };
    for (const name of ['memoryMiB', 'cpuSeconds', 'descriptors'] as const) {
      const v = req[name];
      if (v === undefined) continue;
      const max = this.options.maxLimits[name];
      // Node itself needs about 96 MiB and 25 descriptors; less would be a Keep that cannot start.
      const min = name === 'descriptors' ? 32 : name === 'memoryMiB' ? 128 : 1;
      if (!Number.isInteger(v) || v < min || v > max) {
        throw new ManagerError(400, 'bad-limits', `limits.${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(v)}`);
      }
      out[name] = v;
    }
    return out;
  }

  #attach(id: string, live: LiveKeep, proc: KeepProcess): void {
    proc.on('record', (r: { seq: number; ct: Uint8Array }) => {
      this.store.addRecord(id, r.seq, r.ct);
      live.events.emit('record', r);
    });
    proc.on('listening', () => this.store.update(id, { ports: [...proc.ports] }));
    proc.on('certified', (chain: string) => this.store.update(id, { certificate: chain }));
    proc.on('end', (end: KeepEnd) => {
      const state: KeepState =
        end.cause.kind === 'exited' ? 'exited' : end.cause.kind === 'limit' ? 'killed' : end.cause.kind === 'stop' ? 'stopped' : 'crashed';
      this.store.update(id, { usage: proc.usage });
      const reason = end.cause.kind === 'exited' ? null : end.cause.kind === 'stop' && live.stopReason ? live.stopReason : describeEnd(end);
      this.#finish(id, state, end.code, reason);
    });
  }

  #finish(id: string, state: KeepState, exitCode: number | null, reason: string | null): void {
    const live = this.#live.get(id);
    if (!live) return;
    this.#live.delete(id);
    const current = this.store.get(id);
    this.store.update(id, { state: current?.state === 'refused' ? 'refused' : state, exitCode, reason: current?.state === 'refused' ? current.reason : reason, endedAt: new Date().toISOString() });
    live.events.emit('end', this.store.get(id));
    this.#refill();
  }

  get(id: string): KeepRecord | undefined {
    const r = this.store.get(id);
    const proc = this.#live.get(id)?.proc;
    if (r && proc && !proc.ended) r.usage = proc.usage;
    return r;
  }

  list(owner?: string): KeepRecord[] {
    return this.store.list(owner).map((r) => {
      const proc = this.#live.get(r.id)?.proc;
      if (proc && !proc.ended) r.usage = proc.usage;
      return r;
    });
  }

  #liveKeep(id: string): LiveKeep {
    const live = this.#live.get(id);
    if (!live) {
      const r = this.store.get(id);
      throw new ManagerError(409, 'keep-ended', `Keep ${id} has ended (${r?.state ?? 'unknown'}${r?.reason ? `: ${r.reason}` : ''})`);
    }
    return live;
  }

  async challenge(id: string, nonce: Uint8Array): Promise<KeepEvidence> {
    const live = this.#liveKeep(id);
    await live.assigned;
    if (!live.proc) throw new ManagerError(409, 'keep-ended', `Keep ${id} did not start`);
    try {
      const ev = await live.proc.challenge(nonce);
      this.store.update(id, { state: 'challenged', nonce, evidenceKind: ev.kind, publicKey: ev.publicKey, reportData: ev.reportData, evidence: ev.evidence, certs: ev.certs });
      return ev;
    } catch (err) {
      throw keepError(err);
    }
  }

  async provision(id: string, jwe: string): Promise<KeepRecord> {
    const live = this.#liveKeep(id);
    await live.assigned;
    if (!live.proc) throw new ManagerError(409, 'keep-ended', `Keep ${id} did not start`);
    try {
      await live.proc.provision(jwe);
    } catch (err) {
      throw keepError(err);
    }
    this.store.update(id, { state: 'running' });
    return this.get(id)!;
  }

  /** Records the client's attestation verdict; a refusal also stops the Keep. */
  async verdict(id: string, verdict: Verdict): Promise<KeepRecord> {
    this.store.update(id, { verdict });
    if (!verdict.accepted && this.#live.has(id)) {
      this.store.update(id, { state: 'refused', reason: `refused by its client: ${verdict.reasons.join('; ')}` });
      await this.stop(id, 'refused by its client');
    }
    return this.get(id)!;
  }

  async stop(id: string, reason = 'stopped through the API'): Promise<KeepRecord> {
    const live = this.#live.get(id);
    if (live) {
      live.stopReason ??= reason;
      const ended = new Promise<void>((r) => live.events.once('end', () => r()));
      if (live.proc) live.proc.kill({ kind: 'stop' });
      else {
        await live.assigned.catch(() => {});
        if (live.proc) (live.proc as KeepProcess).kill({ kind: 'stop' });
        else this.#finish(id, 'stopped', null, reason);
      }
      await ended;
    }
    return this.get(id)!;
  }

  events(id: string): EventEmitter | undefined {
    return this.#live.get(id)?.events;
  }

  isLive(id: string): boolean {
    return this.#live.has(id);
  }

  #refill(): void {
    if (this.#closed) return;
    while (this.#pool.length + this.#warming < this.options.poolSize) {
      this.#warming++;
      this.#startKeep(this.options.defaults).then(
        (proc) => {
          this.#warming--;
          if (this.#closed) {
            proc.kill({ kind: 'stop' });
            return;
          }
          this.#pool.push(proc);
          proc.once('end', () => {
            const i = this.#pool.indexOf(proc);
            if (i >= 0) {
              this.#pool.splice(i, 1);
              this.#refill();
            }
          });
        },
        () => {
          this.#warming--;
        },
      );
    }
  }

  #sample(): void {
    for (const live of this.#live.values()) live.proc?.sample();
  }

  /** Stops every Keep and the pool, and marks a clean shutdown in the store. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sampler);
    const ids = [...this.#live.keys()];
    await Promise.all(ids.map((id) => this.stop(id, 'stopped: the keep manager shut down').catch(() => {})));
    for (const p of this.#pool.splice(0)) p.kill({ kind: 'stop' });
    while (this.#warming > 0) await new Promise((r) => setTimeout(r, 10));
    this.store.close();
  }
}

function sameLimits(a: KeepLimits, b: KeepLimits): boolean {
  return a.memoryMiB === b.memoryMiB && a.cpuSeconds === b.cpuSeconds && a.descriptors === b.descriptors;
}

function keepError(err: unknown): ManagerError {
  if (err instanceof KeepRefusal) return new ManagerError(422, 'keep-refused', `the Keep refused: ${err.message}`);
  if (err instanceof ManagerError) return err;
  return new ManagerError(409, 'keep-ended', (err as Error).message);
}

export { LIVE_STATES };
