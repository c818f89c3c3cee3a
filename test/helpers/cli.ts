import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ENARX_BIN, ENARX_SHELL_BIN, REPO_ROOT } from './paths.ts';

const { dirname } = process.getBuiltinModule('node:path');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The Node flags of the launcher's shebang (`#!/usr/bin/env -S node FLAGS`), read from
 * bin/enarx.js itself so that tests run exactly what `npx enarx` runs (--no-concurrent-recompilation
 * and --no-concurrent-sparkplug change how Node exits; the launcher sets the wasm tier flags itself, src/runtime/tier.ts).
 */
export const LAUNCHER_FLAGS: readonly string[] = launcherFlags(readFileSync(ENARX_BIN, 'utf8'));

export function launcherFlags(source: string): string[] {
  const shebang = /^#!\S*env -S node((?: --[\w-]+(?:=\S+)?)*)\s*\n/.exec(source);
  if (!shebang) throw new Error(`bin/enarx.js does not start with '#!/usr/bin/env -S node [--flag]...': update test/helpers/cli.ts`);
  return shebang[1]!.split(' ').filter((f) => f !== '');
}

/**
 * Starts `enarx ARGS` as the launcher's shebang does, with this test's Node (Node 26); with
 * `shell`, through the shell launcher (bin/enarx), with this Node first in PATH.
 */
export function spawnEnarx(args: readonly string[], options: SpawnOptions & { env?: NodeJS.ProcessEnv; shell?: boolean } = {}): ChildProcess {
  const { shell, ...spawnOptions } = options;
  const env = { ...process.env, ...options.env };
  const [command, argv] = shell ? [ENARX_SHELL_BIN, args] : [process.execPath, [...LAUNCHER_FLAGS, ENARX_BIN, ...args]];
  if (shell) env.PATH = `${dirname(process.execPath)}:${env.PATH ?? ''}`;
  return spawn(command, argv, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'], ...spawnOptions, shell: false, env });
}

/** Runs `enarx ARGS` in a child process to its end, as a user would. */
export function runEnarx(
  args: string[],
  options: { input?: string | Uint8Array; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; shell?: boolean } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawnEnarx(args, { ...(options.cwd ? { cwd: options.cwd } : {}), ...(options.env ? { env: options.env } : {}), ...(options.shell ? { shell: true } : {}) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    // A command that exits before reading its stdin (bad input, usage errors) makes this EPIPE: not a failure of the test.
    child.stdin!.on('error', () => {});
    child.stdin!.end(options.input ?? '');
  });
}

/** A long-running `enarx ... serve --json`, once it has printed its JSON document. */
export interface Served<T> {
  child: ChildProcess;
  /** The JSON document the command printed on stdout. */
  doc: T;
  stdout: () => string;
  stderr: () => string;
  /** Settles when the process has ended (its pipes closed): its exit code, or `signal SIG…`. */
  exited: Promise<number | string>;
  /**
   * Ends it: `signal` (SIGTERM by default), then SIGKILL if it has not ended within `graceMs`.
   * Resolves with the exit code, or `signal SIG…` when a signal ended it.
   */
  stop: (signal?: NodeJS.Signals, graceMs?: number) => Promise<number | string>;
}

const running = new Set<Served<unknown>>();

/**
 * Starts `enarx ARGS` (a `serve --json` command) and resolves once its stdout holds one complete
 * JSON document. Rejects with the command's stderr when it exits first or prints nothing within
 * `timeoutMs`, and then never leaves the process behind.
 */
export function serveEnarx<T = Record<string, unknown>>(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<Served<T>> {
  const child = spawnEnarx(args, { stdio: ['ignore', 'pipe', 'pipe'], ...(options.cwd ? { cwd: options.cwd } : {}), ...(options.env ? { env: options.env } : {}) });
  const what = `enarx ${args.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ')}`;
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c));
  child.stderr!.on('data', (c: Buffer) => (err += c));
  const exited = new Promise<number | string>((resolve) => {
    child.on('close', (code, signal) => resolve(code ?? `signal ${signal}`));
  });
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<number | string> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      void exited.then(() => clearTimeout(timer));
    }
    return exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop('SIGKILL');
      reject(new Error(`${what} printed no JSON document within ${options.timeoutMs ?? 60_000} ms; stderr:\n${err}`));
    }, options.timeoutMs ?? 60_000);
    child.stdout!.on('data', () => {
      let doc: T;
      try {
        doc = JSON.parse(out) as T;
      } catch {
        return; // not complete yet
      }
      clearTimeout(timer);
      const served: Served<T> = { child, doc, stdout: () => out, stderr: () => err, exited, stop };
      running.add(served);
      void exited.then(() => running.delete(served));
      resolve(served);
    });
    void exited.then((status) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${status}) before printing its JSON document; stderr:\n${err}`));
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Stops every server that serveEnarx started and that is still running (for `after` hooks). */
export async function stopAllServed(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop()));
}
