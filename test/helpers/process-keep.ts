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
