/**
 * Starting the Keep process before the host has loaded the rest of `enarx run`. Node's own
 * start-up is most of a short run's wall time, and the host's and the Keep's can overlap: the
 * Keep boots and loads its bundle while the host parses its flags, reads the module and loads
 * the sallyport. The early Keep has exactly the grants the run will compute (otherwise it is
 * discarded and a fresh one started), waits on its pipe for `hello`, and is killed if the run
 * ends before taking it.
 */
import type { ChildProcess } from 'node:child_process';
import { indexedKeepCommand, spawnKeep } from './launch.ts';
import type { KeepGrants } from './launch.ts';

const { resolve } = process.getBuiltinModule('node:path');

let early: { child: ChildProcess; key: string; failed: boolean } | undefined;

function grantsKey(grants: KeepGrants): string {
  // A hardware Keep's attestation paths are grants too: an early Keep without them is not its Keep.
  return JSON.stringify([grants.readDirs.map((d) => resolve(d)), grants.writeDirs.map((d) => resolve(d)), grants.attestation ?? null]);
}

/** Starts a Keep now if its bundle is built (the first run builds it on the regular path). */
export function prestartKeep(grants: KeepGrants): void {
  if (early) return;
  const command = indexedKeepCommand(grants);
  if (!command) return;
  const child = spawnKeep(command);
  const entry = { child, key: grantsKey(grants), failed: false };
  // Until the host takes it, nobody else listens: a spawn error must not go unhandled.
  child.once('error', () => (entry.failed = true));
  early = entry;
  // Checked while the Keep boots, not before: a Keep of a stale bundle is never handed a workload
  // (takePrestarted kills it, and the run builds and starts a current one).
  if (!command.isCurrent()) entry.failed = true;
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
