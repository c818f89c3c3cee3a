/**
 * Starting the Keep process before the host has loaded the rest of `enarx run`. Node's own
 * start-up is most of a short run's wall time, and the host's and the Keep's can overlap: the
 * Keep boots and loads its bundle while the host parses its flags, reads the module and loads
 * the sallyport. The early Keep has exactly the grants the run will compute (otherwise it is
 * discarded and a fresh one started), waits on its pipe for `hello`, and is killed if the run
 * ends before taking it.
 *
 * Earlier still: for a run without directory grants, bin/enarx.js starts the Keep before it loads
 * any module, with the command the last run left in LAUNCHER_KEEP_FILE; bin/enarx, the shell
 * launcher npm installs, starts it before the host's Node even starts, from LAUNCHER_KEEP_ARGV_FILE
 * (adopted.ts). That Keep is used only if its command and spawn options are exactly the ones this
 * host computes now (else it is killed, and the files brought up to date); like any early Keep,
 * only if its bundle is current.
 */
import type { ChildProcess } from 'node:child_process';
import type { SallyportPipe } from '../../sallyport/index.ts';
import { grantedDir, indexedKeepCommand, KEEP_SPAWN_OPTIONS, LAUNCHER_KEEP_ARGV_FILE, LAUNCHER_KEEP_FILE, spawnKeep, takeLauncherKeep } from './launch.ts';
import type { KeepGrants } from './launch.ts';
import { adoptKeep, SHELL_KEEP_LAYOUT } from './adopted.ts';
import { pipeSides } from './pipes.ts';

/** Leaves the command of a Keep without directory grants for the launchers' next start (best effort). */
function rememberForLauncher(command: { command: string; args: string[] }): void {
  const { readFileSync, renameSync, writeFileSync } = process.getBuiltinModule('node:fs');
  const argv = [command.command, ...command.args];
  const files: [string, string][] = [
    [LAUNCHER_KEEP_FILE, JSON.stringify({ command: command.command, args: command.args, options: KEEP_SPAWN_OPTIONS })],
    // bin/enarx reads it with bash's mapfile, and hands it back joined by U+001F: an argument
    // holding either separator is left out (the shell launcher then starts nothing).
    [LAUNCHER_KEEP_ARGV_FILE, argv.some((a) => /[\0\x1f]/.test(a)) ? '' : argv.map((a) => `${a}\0`).join('')],
  ];
  for (const [file, text] of files) {
    try {
      if (readFileSync(file, 'utf8') === text) continue;
    } catch {
      // missing: written below
    }
    try {
      const tmp = `${file}.${process.pid}`;
      writeFileSync(tmp, text);
      renameSync(tmp, file);
    } catch {
      // A read-only installation: the launchers then never start a Keep themselves.
    }
  }
}

let early: { child: ChildProcess; key: string; failed: boolean } | undefined;

function grantsKey(grants: KeepGrants): string {
  // A hardware Keep's attestation paths are grants too: an early Keep without them is not its Keep.
  return JSON.stringify([grants.readDirs.map(grantedDir), grants.writeDirs.map(grantedDir), grants.attestation ?? null]);
}

/**
 * Starts a Keep now if its bundle is built (the first run builds it on the regular path), or takes
 * the one the launcher started if it is that Keep: says which, or undefined if none was started.
 */
export function prestartKeep(grants: KeepGrants): 'shell launcher' | 'launcher' | 'host' | undefined {
  const started = takeLauncherKeep();
  if (early) return void started?.discard();
  const command = indexedKeepCommand(grants);
  if (!command) return void started?.discard();
  // The whole spawn, stdio layout included: a file left by another version must not be half right.
  const layout = started?.shell !== undefined ? SHELL_KEEP_LAYOUT : KEEP_SPAWN_OPTIONS;
  const same =
    started !== undefined &&
    !started.failed &&
    JSON.stringify([started.command, started.args, started.options]) === JSON.stringify([command.command, command.args, layout]);
  let child: ChildProcess;
  if (same && started.shell !== undefined) child = adoptKeep(started.shell);
  else if (same && started.child) {
    // The launcher unreferenced it so that an unused Keep would not hold the process; now it is used.
    child = started.child;
    child.ref();
    for (const pipe of child.stdio) (pipe as { ref?: () => void } | null)?.ref?.();
  } else {
    started?.discard();
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
  return !same ? 'host' : started.shell !== undefined ? 'shell launcher' : 'launcher';
}

/** The early Keep if it was started with these grants and is still waiting, else undefined. */
export function takePrestarted(grants: KeepGrants): ChildProcess | undefined {
  const entry = early;
  early = undefined;
  if (!entry) return undefined;
  const { child } = entry;
  if (entry.failed || child.exitCode !== null || child.signalCode !== null || entry.key !== grantsKey(grants)) {
    stop(child);
    return undefined;
  }
  return child;
}

/** Kills an early Keep the run did not take. */
export function discardPrestarted(): void {
  if (early) stop(early.child);
  early = undefined;
}

/** Kills a Keep and closes its pipes now (the shell launcher's are not close-on-exec: the next Keep would inherit them). */
function stop(child: ChildProcess): void {
  child.kill('SIGKILL');
  for (const pipe of child.stdio as unknown as (SallyportPipe | null)[]) {
    if (pipe) for (const side of pipeSides(pipe)) side.destroy();
  }
}
