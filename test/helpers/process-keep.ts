import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { runProcessKeep } from '../../src/keep/process/host.ts';
import type { ProcessKeepFile, ProcessKeepOutcome, ProcessKeepRequest } from '../../src/keep/process/host.ts';
import { REPO_ROOT } from './paths.ts';

export const STDIO: ProcessKeepFile[] = [
  { kind: 'stdin', name: 'stdin' },
  { kind: 'stdout', name: 'stdout' },
  { kind: 'stderr', name: 'stderr' },
];

export function example(name: string): Uint8Array {
  return readFileSync(join(REPO_ROOT, 'examples', `${name}.wasm`));
}

/** An Enarx-style environment for `files`: FD_COUNT and FD_NAMES. */
export function fdEnv(files: readonly ProcessKeepFile[]): [string, string][] {
  return [['FD_COUNT', String(files.length)], ['FD_NAMES', files.map((f) => f.name).join(':')]];
}

export interface KeepRun {
  outcome: Promise<ProcessKeepOutcome>;
  stdout: () => string;
  stderr: () => string;
  stdin: PassThrough;
  logs: string[];
}

class Collect extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk);
    cb();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

/** Starts a process Keep running examples/NAME.wasm with ARGS; stdio is captured. */
export function startKeep(name: string, args: string[], request: Partial<ProcessKeepRequest> = {}): KeepRun {
  const files = request.files ?? STDIO;
  const stdout = new Collect();
  const stderr = new Collect();
  const stdin = new PassThrough();
  const logs: string[] = [];
  const outcome = runProcessKeep({
    module: example(name),
    args: [`${name}.wasm`, ...args],
    env: fdEnv(files),
    stdin,
    stdout,
    stderr,
    log: (level, text) => logs.push(`${level}: ${text}`),
    ...request,
    files,
  });
  return { outcome, stdout: () => stdout.text(), stderr: () => stderr.text(), stdin, logs };
}

/**
 * Asserts that process `pid` (a running Keep) holds no privilege the kernel could honour:
 * no_new_privs set, and no capability in any set (the bounding set too, when the host is root:
 * exec as uid 0 would refill the others from it). Read from /proc/PID/status.
 */
export function assertUnprivileged(pid: number, what = `process ${pid}`): void {
  // A Keep's pid is setpriv's until it execs Node, and setpriv drops the capabilities just before:
  // read the Keep's status once it is Node (a loaded machine may take a while).
  for (let waited = 0; !readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0')[0]!.endsWith('/node') && waited < 20_000; waited += 20) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  assert.equal(statusField(pid, 'NoNewPrivs'), '1', `${what} runs with no_new_privs`);
  const sets = ['CapInh', 'CapPrm', 'CapEff', 'CapAmb', ...(process.geteuid?.() === 0 ? ['CapBnd'] : [])];
  for (const set of sets) assert.equal(statusField(pid, set), '0000000000000000', `${what}: ${set} is empty`);
}

/** One field of /proc/PID/status (`CapEff`, `NoNewPrivs`...). */
export function statusField(pid: number, name: string): string | undefined {
  return new RegExp(`^${name}:\\s+(\\S+)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1];
}
