/**
 * What `enarx platform info` says about the software Keeps, and whether the process Keep can
 * run here. Cheap checks only: selection calls availability() on every `enarx run`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { diesWithHost } from './launch.ts';

export interface KeepCheck {
  name: string;
  pass: boolean;
  info?: string;
  mesg?: string;
  data?: KeepCheck[];
}

function nodeMajor(): number {
  return Number(process.versions.node.split('.')[0]);
}

export function nilChecks(): KeepCheck[] {
  const jspi = typeof (WebAssembly as unknown as { Suspending?: unknown }).Suspending === 'function';
  return [
    { name: 'Node.js', pass: nodeMajor() >= 26, info: process.versions.node, mesg: 'Keeps need Node.js 26 or newer: run enarx through npx (it uses the Node pinned in node_modules)' },
    { name: 'WebAssembly JS Promise Integration', pass: jspi, mesg: 'this Node lacks WebAssembly.Suspending: use Node.js 26' },
    { name: 'isolation', pass: true, info: 'WASI capability sandbox only, in the enarx process (for development)' },
  ];
}

/** The permission model's walls: each exists only if this Node knows the flag that would lift it. */
function permissionCheck(): KeepCheck {
  const flags = process.allowedNodeEnvironmentFlags;
  const walls: [string, string, string][] = [
    ['--allow-net', 'no network', 'without --allow-net'],
    ['--allow-child-process', 'no child processes', 'without --allow-child-process'],
    ['--allow-worker', 'no worker threads', 'without --allow-worker'],
    ['--allow-addons', 'no native addons', 'without --allow-addons'],
    ['--allow-fs-read', 'reads only its own code and the granted directories', '--allow-fs-read=<Keep bundle>,<dirs>'],
    ['--allow-fs-write', 'writes only the granted writable directories', '--allow-fs-write=<writable dirs>'],
  ];
  const wallChecks = walls.map(([flag, name, info]) => ({ name, pass: flags.has(flag), info, mesg: `this Node has no ${flag}: use Node.js 26` }));
  const permission = flags.has('--permission') && wallChecks.every((c) => c.pass);
  return {
    name: 'Node.js permission model',
    pass: permission,
    info: '--permission',
    mesg: 'the process Keep needs a Node.js whose permission model covers all of these: use Node.js 26',
    data: wallChecks,
  };
}

export function processChecks(): KeepCheck[] {
  const proc = existsSync('/proc/self/statm') && (() => {
    try {
      return readFileSync('/proc/self/statm', 'latin1').length > 0;
    } catch {
      return false;
    }
  })();
  return [
    ...requiredChecks(),
    {
      name: 'Keep dies with its host',
      pass: diesWithHost,
      info: diesWithHost ? 'setpriv --pdeathsig KILL' : 'only when the sallyport closes',
      mesg: 'install util-linux (setpriv) so that a Keep is killed even if enarx is SIGKILLed while the guest computes',
    },
    keepPrivileges(),
    {
      // The keep manager (docs/keepmgr.md) starts each Keep under its own user when it can.
      name: 'Keeps under users of their own (keep manager)',
      pass: process.getuid?.() === 0 && diesWithHost,
      info: process.getuid?.() === 0 ? 'root: setpriv --reuid/--regid --clear-groups' : 'Keeps share the daemon\'s user',
      mesg: 'run enarx keepmgr serve as root (with util-linux\'s setpriv) so that Keeps cannot signal or ptrace each other',
    },
    {
      name: 'RSS limit',
      pass: proc,
      info: proc ? '/proc/PID/statm' : undefined,
      mesg: 'the rss limit reads /proc/PID/statm, which this system lacks: the other limits still apply',
    },
  ];
}

/**
 * Whether a Keep starts without capabilities (launch.ts SETPRIV_WALLS). Root can empty the bounding
 * set only holding CAP_SETPCAP (a container may have dropped it), and setpriv then leaves it full
 * without a word: the Keep, exec'd as uid 0, would get every capability left in it.
 */
function keepPrivileges(): KeepCheck {
  const name = 'Keep holds no capabilities (no_new_privs)';
  if (!diesWithHost) return { name, pass: false, mesg: 'install util-linux (setpriv): without it a Keep started by root holds root\'s capabilities' };
  if (process.geteuid?.() !== 0) return { name, pass: true, info: 'setpriv --nnp, inheritable and ambient sets cleared' };
  let setpcap = false;
  try {
    const eff = /^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'latin1'))?.[1];
    setpcap = eff !== undefined && (BigInt(`0x${eff}`) & (1n << 8n)) !== 0n; // CAP_SETPCAP is capability 8
  } catch {
    // no /proc: unknown, reported as missing
  }
  return setpcap
    ? { name, pass: true, info: 'root: setpriv --nnp, all capability sets emptied (bounding set included)' }
    : { name, pass: false, mesg: 'enarx runs as root without CAP_SETPCAP, so setpriv cannot empty the Keep\'s bounding set: give enarx CAP_SETPCAP, or run it as another user' };
}

/** What the process Keep cannot run without: Node 26, JSPI and the permission model (processChecks' first three). */
function requiredChecks(): KeepCheck[] {
  return [...nilChecks().slice(0, 2), permissionCheck()];
}

/** The first Node.js release whose permission model has every wall permissionCheck asks for (--allow-net came last). */
const ALL_WALLS_SINCE_MAJOR = 25;

/**
 * The process Keep runs where Node 26 does; the optional pieces only weaken limits. Only the
 * required checks run: this is on the path of every `enarx run`. On a Node release known to have
 * every wall, the permission model's check is left to `platform info`: it builds the set of all of
 * Node's flags (process.allowedNodeEnvironmentFlags), about a millisecond before a run's `hello`.
 */
export function processAvailability(): { available: boolean; reason?: string } {
  const checks = nodeMajor() >= ALL_WALLS_SINCE_MAJOR ? nilChecks().slice(0, 2) : requiredChecks();
  const failed = checks.find((c) => !c.pass);
  return failed ? { available: false, reason: `${failed.name}: ${failed.mesg}` } : { available: true };
}
