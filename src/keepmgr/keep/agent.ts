/**
 * The provisioning agent: the first code that runs inside a keepmgr Keep. It talks to the host
 * only through the pipe on fd 3 (and exits when that pipe closes, so a dead host leaves no Keep).
 *
 * Lifecycle: init (evidence source, limits; the Keep's key is generated here, while it waits in
 * the pool) → assign (its Keep id) → challenge (nonce → evidence binding key, id and nonce) →
 * provision (a JWE only this Keep can open) → run the workload on the project's WASI host, its
 * stdout/stderr sealed record by record to the client's output key → sealed exit record.
 */
import { Socket } from 'node:net';
import { writeSync } from 'node:fs';
import { FrameDecoder, encodeFrame, type Message } from './frame.ts';
import { evidenceSource, type EvidenceConfig, type EvidenceSource } from './evidence.ts';
import type { KeepKey, OutputPayload, Provision } from '../crypto.ts';

// The cryptography, TOML parser and wasm host load when first needed (with the bundled agent
// they are parsed lazily anyway).
const NONCE_BYTES = 32;
const lib = () => import('../crypto.ts');

const pipe = new Socket({ fd: 3, readable: true, writable: true });
const decoder = new FrameDecoder();
let source: EvidenceSource | undefined;
let keepId: string | undefined;
let key: KeepKey | undefined;
let nonce: Uint8Array | undefined;
let provisioned = false;
let queue: Promise<void> = Promise.resolve();
/** What the host allows the workload: linear memory and WASI descriptors (sent with init). */
const limits = { wasmMemoryBytes: 64 * 1024 * 1024, wasmDescriptors: 32 };

/**
 * Writes a whole frame synchronously. Output is sealed and sent while the workload runs on this
 * thread, so it cannot wait for the event loop; a full pipe is retried after a short sleep.
 */
const nap = new Int32Array(new SharedArrayBuffer(4));
function send(msg: Message): void {
  const frame = encodeFrame(msg);
  let off = 0;
  while (off < frame.length) {
    try {
      off += writeSync(3, frame, off, frame.length - off);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN') process.exit(0); // the host is gone: so is this Keep
      Atomics.wait(nap, 0, 0, 1);
    }
  }
}

function fatal(reason: string): never {
  send({ t: 'fatal', reason });
  pipe.end(() => process.exit(70));
  // Let the pipe drain; the host kills us if it does not.
  throw new Error(reason);
}

pipe.on('data', (chunk: Buffer) => {
  let messages: Message[];
  try {
    messages = decoder.push(chunk);
  } catch (err) {
    fatal(`bad frame from host: ${(err as Error).message}`);
  }
  for (const msg of messages) queue = queue.then(() => handle(msg)).catch((err: unknown) => fatal((err as Error).message));
});
pipe.on('end', () => process.exit(0));
pipe.on('error', () => process.exit(0));

async function handle(msg: Message): Promise<void> {
  switch (msg.t) {
    case 'init': {
      if (source) throw new Error('init sent twice');
      source = await evidenceSource(msg.evidence as EvidenceConfig);
      const l = msg.limits as { wasmMemoryBytes?: unknown; wasmDescriptors?: unknown } | undefined;
      if (typeof l?.wasmMemoryBytes === 'number') limits.wasmMemoryBytes = l.wasmMemoryBytes;
      if (typeof l?.wasmDescriptors === 'number') limits.wasmDescriptors = l.wasmDescriptors;
      // The key is made now, while the Keep waits in the pool, so handing it out costs nothing.
      key = await (await lib()).generateKeepKey();
      send({ t: 'ready', pid: process.pid });
      return;
    }
    case 'assign': {
      if (!source || keepId !== undefined) throw new Error('assign out of order');
      if (typeof msg.keepId !== 'string' || !/^[0-9a-f-]{36}$/.test(msg.keepId)) throw new Error('assign without a valid Keep id');
      keepId = msg.keepId;
      send({ t: 'assigned', publicKey: key!.spki });
      return;
    }
    case 'challenge': {
      if (!source || !key || keepId === undefined) throw new Error('challenge before assign');
      if (provisioned) {
        send({ t: 'refused', reason: 'this Keep is already provisioned; challenge a fresh Keep' });
        return;
      }
      if (!(msg.nonce instanceof Uint8Array) || msg.nonce.length !== NONCE_BYTES) {
        send({ t: 'refused', reason: `challenge nonce must be ${NONCE_BYTES} bytes` });
        return;
      }
      nonce = msg.nonce;
      const reportData = await (await lib()).bindingReportData(key.spki, keepId, nonce);
      let got;
      try {
        got = await source.collect(reportData);
      } catch (err) {
        send({ t: 'refused', reason: `no evidence: ${(err as Error).message}` });
        return;
      }
      send({ t: 'evidence', kind: got.kind, publicKey: key.spki, reportData, evidence: got.evidence, certs: got.certs });
      return;
    }
    case 'provision': {
      if (!key || keepId === undefined || !nonce) {
        send({ t: 'refused', reason: 'provisioning before a challenge' });
        return;
      }
      if (provisioned) {
        send({ t: 'refused', reason: 'this Keep was already provisioned (replayed provisioning)' });
        return;
      }
      if (typeof msg.jwe !== 'string') throw new Error('provision without a JWE');
      let p: Provision;
      try {
        p = await (await lib()).decryptProvision(msg.jwe, key.privateKey, keepId, nonce);
      } catch (err) {
        send({ t: 'refused', reason: (err as Error).message });
        return;
      }
      provisioned = true;
      send({ t: 'provisioned' });
      void run(p, keepId, key);
      return;
    }
    default:
      throw new Error(`unknown message '${msg.t}' from host`);
  }
}

async function run(p: Provision, id: string, k: KeepKey): Promise<void> {
  const { deriveOutputKeyBytes, importOutputPeer, sealRecord } = await lib();
  const outKey = await deriveOutputKeyBytes(k.privateKey, await importOutputPeer(p.outputKey), id, p.nonce);
  let seq = 0;
  const emit = (payload: OutputPayload) => {
    const r = sealRecord(outKey, id, seq++, payload);
    send({ t: 'record', seq: r.seq, ct: r.ct });
  };
  let exit: { code: number; reason: string | null };
  try {
    exit = await runProvisioned(p, emit);
  } catch (err) {
    exit = { code: 1, reason: (err as Error).message };
  }
  if (exit.reason) emit({ stream: 'log', data: new TextEncoder().encode(`${exit.reason}\n`) });
  emit({ stream: 'exit', code: exit.code, reason: exit.reason });
  send({ t: 'exited', code: exit.code });
  pipe.end(() => process.exit(0));
}

/** Runs the workload on the project's WASI host, its files opened from Enarx.toml (stdio only: no networking here). */
async function runProvisioned(p: Provision, emit: (payload: OutputPayload) => void): Promise<{ code: number; reason: string | null }> {
  const [{ runWorkload }, { parseConfig, DEFAULT_FILES, fdEnvironment }, { openDescriptors }, { BytesInput, SealedOutput }] = await Promise.all([
    import('../../runtime/index.ts'),
    import('../../config/index.ts'),
    import('../../keep/capabilities.ts'),
    import('./io.ts'),
  ]);
  const config = p.config === null ? null : parseConfig(p.config, 'Enarx.toml', '/');
  const files = config?.files ?? DEFAULT_FILES;
  const descriptors = await openDescriptors(files, {
    stdin: () => new BytesInput(p.stdin),
    stdout: () => new SealedOutput((data) => emit({ stream: 'stdout', data })),
    stderr: () => new SealedOutput((data) => emit({ stream: 'stderr', data })),
  });
  const outcome = await runWorkload({
    module: p.wasm,
    args: ['main.wasm', ...(config?.args ?? [])],
    env: [...fdEnvironment(files), ...(config?.env ?? [])],
    descriptors,
    limits: { maxMemoryBytes: limits.wasmMemoryBytes, maxDescriptors: limits.wasmDescriptors },
  });
  switch (outcome.kind) {
    case 'exit':
      return { code: outcome.code, reason: null };
    case 'trap':
      return { code: 134, reason: outcome.message };
    case 'aborted':
      return { code: 137, reason: outcome.reason };
  }
}
