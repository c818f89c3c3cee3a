/**
 * Starting the Keep process before the host has loaded the rest of `enarx run`. Node's own
 * start-up is most of a short run's wall time, and the host's and the Keep's can overlap: the
 * Keep boots and loads its bundle while the host parses its flags, reads the module and loads
 * the sallyport. The early Keep has exactly the grants the run will compute (otherwise it is
 * discarded and a fresh one started), waits on its pipe for `hello`, and is killed if the run
 * ends before taking it.
 *
 * Earlier still: for a run without directory grants, bin/enarx.js starts the Keep before it loads
 * any module, with the command the last run left in LAUNCHER_KEEP_FILE. That Keep is used only if
 * its command and spawn options are exactly the ones this host computes now (else it is killed, and
 * the file brought up to date); like any early Keep, only if its bundle is current.
 */
import type { ChildProcess } from 'node:child_process';
import { indexedKeepCommand, KEEP_SPAWN_OPTIONS, LAUNCHER_KEEP_FILE, spawnKeep } from './launch.ts';
import type { KeepGrants } from './launch.ts';

const { resolve } = process.getBuiltinModule('node:path');

/** Where bin/enarx.js leaves the Keep it started, with how it started it. */
const LAUNCHER_KEEP = Symbol.for('enarx.launcher-keep');
type LauncherKeep = { child: ChildProcess; command: string; args: string[]; options: unknown; failed: boolean };

/** The Keep bin/enarx.js started, handed over once; undefined if it started none. */
function takeLauncherKeep(): LauncherKeep | undefined {
  const g = globalThis as { [LAUNCHER_KEEP]?: LauncherKeep };
  const started = g[LAUNCHER_KEEP];
  delete g[LAUNCHER_KEEP];
  return started;
}

/** Leaves the command of a Keep without directory grants for the launcher's next start (best effort). */
function rememberForLauncher(command: { command: string; args: string[] }): void {
  const { readFileSync, renameSync, writeFileSync } = process.getBuiltinModule('node:fs');
  const text = JSON.stringify({ command: command.command, args: command.args, options: KEEP_SPAWN_OPTIONS });
  try {
    if (readFileSync(LAUNCHER_KEEP_FILE, 'utf8') === text) return;
  } catch {
    // missing: written below
  }
  try {
    const tmp = `${LAUNCHER_KEEP_FILE}.${process.pid}`;
    writeFileSync(tmp, text);
    renameSync(tmp, LAUNCHER_KEEP_FILE);
  } catch {
    // A read-only installation: the launcher then never starts a Keep itself.
  }
}

let early: { child: ChildProcess; key: string; failed: boolean } | undefined;

function grantsKey(grants: KeepGrants): string {
  // A hardware Keep's attestation paths are grants too: an early Keep without them is not its Keep.
  return JSON.stringify([grants.readDirs.map((d) => resolve(d)), grants.writeDirs.map((d) => resolve(d)), grants.attestation ?? null]);
}

/**
 * Starts a Keep now if its bundle is built (the first run builds it on the regular path), or takes
 * the one the launcher started if it is that Keep: says which, or undefined if none was started.
 */
export function prestartKeep(grants: KeepGrants): 'launcher' | 'host' | undefined {
  const started = takeLauncherKeep();
  if (early) return void started?.child.kill('SIGKILL');
  const command = indexedKeepCommand(grants);
  if (!command) return void started?.child.kill('SIGKILL');
  // The whole spawn, stdio layout included: a file left by another version must not be half right.
  const same =
    started !== undefined &&
    !started.failed &&
    JSON.stringify([started.command, started.args, started.options]) === JSON.stringify([command.command, command.args, KEEP_SPAWN_OPTIONS]);
  let child: ChildProcess;
  if (same) {
    // The launcher unreferenced it so that an unused Keep would not hold the process; now it is used.
    child = started.child;
    child.ref();
    for (const pipe of child.stdio) (pipe as { ref?: () => void } | null)?.ref?.();
  } else {
    started?.child.kill('SIGKILL');
    child = spawnKeep(command);
  }
  if (grants.readDirs.length === 0 && grants.writeDirs.length === 0 && !grants.attestation) rememberForLauncher(command);
  const entry = { child, key: grantsKey(grants), failed: false };
  // Until the host takes it, nobody else listens: a spawn error must not go unhandled.
  child.once('error', () => (entry.failed = true));
  early = entry;
  // Checked while the Keep boots, not before: a Keep of a stale bundle is never handed a workload
  // (takePrestarted kills it, and the run builds and starts a current one).
  if (!command.isCurrent()) entry.failed = true;
  return same ? 'launcher' : 'host';
}

/** The early Keep if it was started with these grants and is still waiting, else undefined. */
export function takePrestarted(grants: KeepGrants): ChildProcess | undefined {
  const entry = early;
  early = undefined;
  if (!entry) return undefined;
  const { child } = entry;
  if (entry.failed || child.exitCode !== null || child.signalCode !== null || entry.key !== grantsKey(grants)) {
    child.kill('SIGKILL');
    return undefined;
  }
  return child;
}

/** Kills an early Keep the run did not take. */
export function discardPrestarted(): void {
  early?.child.kill('SIGKILL');
  early = undefined;
}
