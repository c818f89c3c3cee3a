/**
 * The host's handle on one keepmgr Keep: a separate Node process under the permission model
 * (it reads only its own code; no writes, network, child processes, workers or addons), started
 * with kernel-enforced CPU-time and descriptor limits, its memory watched by the host, and linked
 * to the host by one pipe (fd 3) that it exits on losing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import { FrameDecoder, encodeFrame, type Message } from './frame.ts';
import type { EvidenceConfig } from './evidence.ts';

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
  signal: string | null;
  /** Set when the host ended it: a limit, a stop, or a protocol violation. */
  cause: { kind: 'limit'; limit: LimitName } | { kind: 'stop' } | { kind: 'fatal'; reason: string } | { kind: 'exited' } | { kind: 'crashed'; reason: string };
}

const here = dirname(fileURLToPath(import.meta.url));
const AGENT = join(here, 'agent.ts');
const KEEPMGR_SRC = resolve(here, '..');

/** Files the Keep may read: its own code and the libraries it imports, nothing else. */
function readablePaths(): string[] {
  // src/attestation: byte helpers, and the SNP report format for software evidence.
  const src = join(KEEPMGR_SRC, '..');
  const paths = [KEEPMGR_SRC, ...['attestation', 'runtime', 'wasi', 'config', 'sallyport/frame.ts', 'keep/capabilities.ts'].map((p) => join(src, p))];
  for (const pkg of ['cborg', 'jose', 'smol-toml']) {
    let dir = dirname(fileURLToPath(import.meta.resolve(pkg)));
    while (!readdirSafe(dir).includes('package.json')) dir = dirname(dir);
    paths.push(dir);
    // Also the name Node looks up first, when node_modules holds symlinks (pnpm, linked installs).
    paths.push(join(KEEPMGR_SRC, '..', '..', 'node_modules', pkg));
  }
  // Node reads the nearest package.json to learn that .ts files are ES modules.
  paths.push(join(KEEPMGR_SRC, '..', '..', 'package.json'));
  return paths;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

let cachedPaths: string[] | undefined;
/** The agent as one bundled file, when prepareAgentBundle made one: then it is all a Keep may read. */
let bundle: string | undefined;

/**
 * Bundles the agent and its libraries into one ES module in `dir` (the daemon's private data
 * directory). A Keep that loads one plain file needs no TypeScript loader: it starts about four
 * times faster and an idle one takes half the memory. Without esbuild (a development
 * dependency), Keeps run the sources directly.
 */
export async function prepareAgentBundle(dir: string): Promise<string | undefined> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    return undefined;
  }
  const out = join(dir, 'keep-agent.mjs');
  await esbuild.build({ entryPoints: [AGENT], bundle: true, platform: 'node', format: 'esm', target: 'node22', outfile: out, logLevel: 'silent', legalComments: 'none' });
  bundle = out;
  return out;
}
const HAVE_SETPRIV = existsSync('/usr/bin/setpriv');
const CLK_TCK = 100;

export class KeepProcess extends EventEmitter {
  readonly child: ChildProcess;
  readonly limits: KeepLimits;
  readonly #pipe: Duplex;
  readonly #decoder = new FrameDecoder();
  #waiters: Array<{ types: string[]; resolve: (m: Message) => void; reject: (e: Error) => void }> = [];
  #ended: KeepEnd | undefined;
  #killCause: KeepEnd['cause'] | undefined;
  #reportedExit: number | undefined;
  #usage: KeepUsage = { rssBytes: 0, cpuMs: 0, descriptors: 0 };
  #diagnostics = '';

  private constructor(child: ChildProcess, limits: KeepLimits) {
    super();
    this.child = child;
    this.limits = limits;
    this.#pipe = child.stdio[3] as Duplex;
    this.#pipe.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#pipe.on('error', () => {});
    // Node's own diagnostics (the workload's stderr is sealed, never here): the tail is kept to
    // explain a Keep that dies before its agent runs.
    child.stderr?.on('data', (c: Buffer) => {
      this.#diagnostics = (this.#diagnostics + c.toString('utf8')).slice(-2000);
    });
    child.on('exit', (code, signal) => this.#onExit(code, signal));
  }

  /** Starts a Keep process and waits for its agent to say it is ready. */
  static async start(evidence: EvidenceConfig, limits: KeepLimits): Promise<KeepProcess> {
    cachedPaths ??= readablePaths();
    const code = bundle ? [bundle] : cachedPaths;
    // The trailing wildcard also covers paths that do not exist when the Keep starts.
    const hardware =
      evidence.kind === 'hardware'
        ? [...(bundle ? [] : [`--allow-fs-read=${join(KEEPMGR_SRC, '..', 'keep', 'hardware')}`]), '--allow-fs-read=/sys/kernel/config/tsm/*', '--allow-fs-write=/sys/kernel/config/tsm/*', '--allow-fs-read=/dev/attestation/*', '--allow-fs-write=/dev/attestation/*']
        : [];
    const heapMiB = Math.max(16, Math.floor(limits.memoryMiB / 2));
    // Linear memory gets what the limit leaves after Node's own ~96 MiB, so a workload that
    // asks for more sees memory.grow fail (malloc returns NULL) before the host has to kill it.
    // Never below 32 MiB: Node's TypeScript loader is itself a wasm instance.
    const wasmPages = Math.max(512, (limits.memoryMiB - 96) * 16);
    // --no-liftoff: optimised wasm from the start, as enarx run does (docs/wasi.md, "Performance").
    const node = [
      process.execPath,
      '--permission',
      ...code.map((p) => `--allow-fs-read=${p}`),
      ...hardware,
      `--max-old-space-size=${heapMiB}`,
      '--max-semi-space-size=1',
      '--v8-pool-size=0',
      `--wasm-max-mem-pages=${wasmPages}`,
      '--no-liftoff',
      '--disable-warning=ExperimentalWarning',
      '--stack-size=2048',
      bundle ?? AGENT,
    ];
    // The shell sets kernel limits, then execs Node: the pid we hold is the Keep's own. setpriv
    // asks the kernel to kill the Keep when the host dies, even while its workload holds the
    // thread and cannot notice its pipe closing.
    const deathSignal = HAVE_SETPRIV ? 'exec setpriv --pdeathsig KILL -- "$@"' : 'exec "$@"';
    // At the soft CPU limit the kernel sends SIGXCPU (which ends Node); SIGKILL follows a second later.
    const script = `ulimit -t ${limits.cpuSeconds + 1} && ulimit -S -t ${limits.cpuSeconds} && ulimit -n ${limits.descriptors} && ${deathSignal}`;
    const child = spawn('/bin/sh', ['-c', script, 'keep', ...node], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      env: { PATH: '/usr/bin:/bin', NODE_OPTIONS: '' },
    });
    const keep = new KeepProcess(child, limits);
    keep.send({ t: 'init', evidence, limits: { wasmMemoryBytes: wasmPages * 65536, wasmDescriptors: Math.max(8, limits.descriptors - 32) } });
    await keep.expect(['ready'], 30_000);
    return keep;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get ended(): KeepEnd | undefined {
    return this.#ended;
  }

  get usage(): KeepUsage {
    return this.#usage;
  }

  send(msg: Message): void {
    if (this.#ended) return;
    this.#pipe.write(encodeFrame(msg));
  }

  /** Waits for the next message of one of these types; rejects on a refusal, a fatal error or exit. */
  expect(types: string[], timeoutMs = 30_000): Promise<Message> {
    if (this.#ended) return Promise.reject(new Error('the Keep has ended'));
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
        rej(new Error(`the Keep did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (m: Message) => {
        clearTimeout(timer);
        res(m);
      };
      this.#waiters.push({ types, resolve: done, reject: (e) => { clearTimeout(timer); rej(e); } });
    });
  }

  async assign(keepId: string): Promise<Uint8Array> {
    this.send({ t: 'assign', keepId });
    const m = await this.expect(['assigned']);
    return m.publicKey as Uint8Array;
  }

  async challenge(nonce: Uint8Array): Promise<KeepEvidence> {
    this.send({ t: 'challenge', nonce });
    const m = await this.expect(['evidence']);
    const certs = m.certs;
    const certsOk = Array.isArray(certs) && certs.length <= 8 && certs.every((c) => c instanceof Uint8Array && c.length < 16384);
    if (typeof m.kind !== 'string' || !(m.publicKey instanceof Uint8Array) || !(m.reportData instanceof Uint8Array) || !(m.evidence instanceof Uint8Array) || !certsOk) {
      this.kill({ kind: 'fatal', reason: 'malformed evidence message' });
      throw new Error('the Keep sent a malformed evidence message');
    }
    return { kind: m.kind, publicKey: m.publicKey, reportData: m.reportData, evidence: m.evidence, certs: certs as Uint8Array[] };
  }

  async provision(jwe: string): Promise<void> {
    this.send({ t: 'provision', jwe });
    await this.expect(['provisioned']);
  }

  /** Samples /proc and kills the Keep when it is over a limit. Returns false once it has ended. */
  sample(): boolean {
    const pid = this.child.pid;
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
    if (this.#usage.rssBytes > this.limits.memoryMiB * 1024 * 1024) this.kill({ kind: 'limit', limit: 'memory' });
    else if (this.#usage.descriptors >= this.limits.descriptors) this.kill({ kind: 'limit', limit: 'descriptors' });
    return true;
  }

  kill(cause: KeepEnd['cause']): void {
    if (this.#ended) return;
    this.#killCause ??= cause;
    this.child.kill('SIGKILL');
  }

  #onData(chunk: Buffer): void {
    let messages: Message[];
    try {
      messages = this.#decoder.push(chunk);
    } catch (err) {
      this.kill({ kind: 'fatal', reason: `bad frame from the Keep: ${(err as Error).message}` });
      return;
    }
    for (const m of messages) {
      if (m.t === 'record') {
        if (typeof m.seq !== 'number' || !(m.ct instanceof Uint8Array)) {
          this.kill({ kind: 'fatal', reason: 'malformed output record from the Keep' });
          return;
        }
        this.emit('record', { seq: m.seq, ct: m.ct });
        continue;
      }
      if (m.t === 'exited') {
        this.#reportedExit = typeof m.code === 'number' ? m.code : undefined;
        continue;
      }
      const waiter = this.#waiters[0];
      if (m.t === 'fatal' || m.t === 'refused') {
        const reason = typeof m.reason === 'string' ? m.reason.slice(0, 500) : 'no reason given';
        if (m.t === 'fatal') this.kill({ kind: 'fatal', reason });
        if (waiter) {
          this.#waiters.shift();
          waiter.reject(new KeepRefusal(reason));
        }
        continue;
      }
      if (waiter && waiter.types.includes(m.t)) {
        this.#waiters.shift();
        waiter.resolve(m);
      } else {
        this.kill({ kind: 'fatal', reason: `unexpected '${m.t}' message from the Keep` });
      }
    }
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    let cause = this.#killCause;
    if (!cause) {
      if (signal === 'SIGXCPU' || (signal === 'SIGKILL' && this.#usage.cpuMs >= this.limits.cpuSeconds * 1000 - 500)) cause = { kind: 'limit', limit: 'cpu' };
      else if (this.#reportedExit !== undefined) cause = { kind: 'exited' };
      else {
        const last = this.#diagnostics.trim().split('\n').filter((l) => /Error|error:/.test(l)).pop();
        const why = signal ? `Keep process killed by ${signal}` : `Keep process exited with ${code} before its workload finished`;
        cause = { kind: 'crashed', reason: last ? `${why}: ${last.trim().slice(0, 300)}` : why };
      }
    }
    const end: KeepEnd = { code: this.#reportedExit ?? (cause.kind === 'limit' ? 137 : code), signal, cause };
    this.#ended = end;
    for (const w of this.#waiters.splice(0)) w.reject(new Error(describeEnd(end)));
    this.emit('end', end);
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
