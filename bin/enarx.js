#!/usr/bin/env -S node --no-concurrent-recompilation --no-concurrent-sparkplug
// Launcher: plain JavaScript so that it runs on any Node and can explain a wrong version.
const major = Number(process.versions.node.split('.')[0]);
const argv = process.argv.slice(2);
if (major < 26) {
  process.stderr.write(
    `enarx: needs Node.js 26 or newer, but this is Node.js ${process.versions.node}.\n` +
      `  Run it through npm, which uses the Node 26 pinned in node_modules: npx enarx ...\n` +
      `  or install Node.js 26 (after 'npm ci', ./node_modules/.bin/node is one).\n`,
  );
  process.exit(1);
}
// --no-concurrent-recompilation: a background Maglev compile that waits for a GC while
// process.exit() shuts the platform down hangs Node forever (nodejs/node#54918; seen here once in
// ~50 runs of the stdout benchmark). Optimising on the main thread costs nothing measurable here.
// --no-concurrent-sparkplug: the same hang with a background baseline (Sparkplug) batch compile
// (caught in the stdout benchmark: the main thread joining a worker parked in a compile job's GC).
// The process Keep of a plain `enarx run` starts first, before this process loads a module: Node's
// start-up is most of a short run, and the two can overlap (src/keep/process/prestart.ts). Started
// as bin/enarx (the shell launcher), it started even before this Node, and is handed over with its pipes.
const shellKeep = process.env.ENARX_LAUNCHER_KEEP !== undefined ? takeShellKeep() : undefined;
// Spare pipes from bin/enarx for the Keep the run starts itself: taken (close-on-exec) before the rest is closed.
if (process.env.ENARX_LAUNCHER_PIPES !== undefined) takeSparePipes();
// What this process inherited open matters only to the processes it starts: closed before the first
// (startKeep below, launch.ts spawnKeep), not on the way to a run's `hello` (a millisecond, while
// the run that adopts the Keep bin/enarx started starts none).
globalThis[Symbol.for('enarx.before-spawn')] = () => closeInheritedDescriptors(shellKeep?.options.fds ?? []);
if (!shellKeep && ungrantedProcessRun(argv)) startKeep();
// Start-up: cache compiled (and type-stripped) modules between runs.
process.getBuiltinModule('node:module').enableCompileCache?.();
// Node's own warnings (experimental features, deprecations in dependencies) are not the user's business.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (process.env.ENARX_NODE_WARNINGS) process.stderr.write(`${w.name}: ${w.message}\n`);
});
// Workloads compile with V8's optimising tier (src/runtime/tier.ts). Not a shebang flag: V8 would then
// refuse Node's code cache for every built-in module. Set before this process compiles any wasm,
// unless this run's workload goes to a process Keep, which sets them itself: this process then runs
// no wasm, and its built-ins load from the cache.
if (!runsInProcessKeep(argv)) {
  process.getBuiltinModule('node:v8').setFlagsFromString('--no-liftoff --no-wasm-dynamic-tiering --no-wasm-deopt');
  globalThis[Symbol.for('enarx.wasm-optimising-tier')] = true;
}
// `enarx run` starts without the command-line framework when its arguments are simple, and its
// host's code loads as one bundle file (src/cli/run/load.ts).
if (argv[0] === 'run') {
  const { loadFastPath } = await import('../src/cli/run/load.ts');
  const { runFast } = await loadFastPath();
  await runFast(argv.slice(1));
}
const { main } = await import('../src/cli/main.ts');
await main(argv);

/**
 * Closes the descriptors this process inherited that every process it starts would inherit too (open
 * without close-on-exec: a shell's `9<FILE`, a build tool's pipe). A process Keep would get them, and
 * its permission model checks paths, not descriptors. enarx uses none of them. Node's IPC channel
 * to a parent that forked enarx stays, and so do the pipes of the Keep bin/enarx started (`keep`).
 */
function closeInheritedDescriptors(keep) {
  const { closeSync, openSync, readdirSync, readSync } = process.getBuiltinModule('node:fs');
  let names;
  try {
    names = readdirSync('/proc/self/fdinfo');
  } catch {
    return; // no procfs: not Linux, where the process Keep does not run
  }
  const ipc = Number(process.env.NODE_CHANNEL_FD);
  const O_CLOEXEC = 0o2000000; // in fdinfo's octal `flags:` (the asm-generic value: x86, arm)
  // `pos:` and `flags:` lead each fdinfo file; a read of 128 bytes holds both. open/read/close
  // rather than readFileSync: this is on the path of every run, before its Keep starts.
  const head = Buffer.allocUnsafe(128);
  for (const name of names) {
    const fd = Number(name);
    if (!(fd > 2) || fd === ipc || keep.includes(fd)) continue;
    try {
      const info = openSync(`/proc/self/fdinfo/${fd}`, 'r');
      const length = readSync(info, head, 0, head.length, null);
      closeSync(info);
      const flags = /^flags:\s*([0-7]+)$/m.exec(head.toString('latin1', 0, length))?.[1];
      if (flags !== undefined && (parseInt(flags, 8) & O_CLOEXEC) === 0) closeSync(fd);
    } catch {
      // the listing's own descriptor, closed since
    }
  }
}

/** `enarx run` with --backend process, or none (the process Keep is the strongest one on Node 26). */
function runsInProcessKeep(args) {
  if (args[0] !== 'run') return false;
  // The flags of `enarx run` that take no value (test/cli/run-switches.test.ts checks them against the command).
  const RUN_SWITCHES = ['--offline-collateral', '--no-fetch-collateral'];
  let backend = process.env.ENARX_BACKEND || undefined;
  for (let i = 1; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--' || !arg.startsWith('-') || arg === '-') break;
    if (arg.startsWith('--backend=')) backend = arg.slice('--backend='.length);
    else if (!arg.includes('=') && !RUN_SWITCHES.includes(arg)) {
      // Every other flag of `enarx run` takes a value (--help and the like run no workload).
      const value = args[++i];
      if (arg === '--backend') backend = value;
    }
  }
  return backend === undefined || backend === 'process';
}

/** A run for the process Keep that grants it no directory (no --dir, no Enarx.toml): its Keep's command is known. */
function ungrantedProcessRun(args) {
  if (!runsInProcessKeep(args) || process.env.ENARX_WASMCFGFILE) return false;
  for (const arg of args) {
    if (arg === '--') break;
    if (/^--(dir|wasmcfgfile)(=|$)/.test(arg)) return false;
  }
  return true;
}

/**
 * Starts the Keep with the command the last run left next to the Keep's bundle (prestart.ts writes
 * it, and uses this Keep only if that is still the spawn it computes; otherwise it kills it). The
 * file is a cache, so only this Node under the permission model, by itself or through setpriv with
 * its walls, is started from it.
 */
function startKeep() {
  const cache = process.env.ENARX_KEEP_CACHE ?? `${import.meta.dirname}/../node_modules/.cache/enarx-keep`;
  let keep;
  try {
    keep = JSON.parse(process.getBuiltinModule('node:fs').readFileSync(`${cache}/launcher-keep.json`, 'utf8'));
  } catch {
    return;
  }
  const { command, args, options } = keep ?? {};
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) return;
  // setpriv's walls (launch.ts SETPRIV_WALLS) and death signal, then this Node under the permission model.
  const setpriv = ['--nnp', '--inh-caps=-all', '--ambient-caps=-all', ...(process.geteuid() === 0 ? ['--bounding-set=-all'] : []), '--pdeathsig', 'KILL', '--'];
  if (command === '/usr/bin/setpriv' || command === '/bin/setpriv') {
    if (!setpriv.every((a, i) => args[i] === a) || args[setpriv.length] !== process.execPath || args[setpriv.length + 1] !== '--permission') return;
  } else if (command !== process.execPath || args[0] !== '--permission') return;
  if (typeof options !== 'object' || !Array.isArray(options?.stdio) || JSON.stringify(options.env) !== '{}') return;
  beforeSpawn();
  const child = process.getBuiltinModule('node:child_process').spawn(command, args, options);
  const started = { child, command, args, options, failed: false, discard: () => child.kill('SIGKILL') };
  child.once('error', () => (started.failed = true));
  // Until the run takes it, it must not keep this process alive (after a usage error, say).
  child.unref();
  for (const pipe of child.stdio) pipe?.unref?.();
  handOver(started);
}

/** Runs, once, what must precede the first process this one starts (closing the descriptors it inherited). */
function beforeSpawn() {
  const key = Symbol.for('enarx.before-spawn');
  const run = globalThis[key];
  delete globalThis[key];
  run?.();
}

/** Leaves a started Keep for the run (launch.ts takeLauncherKeep); if the run does not take it, it dies with this process. */
function handOver(started) {
  const key = Symbol.for('enarx.launcher-keep');
  globalThis[key] = started;
  // Not taken by the run (another command after all, a usage error): it must not outlive this process.
  process.once('exit', () => {
    if (globalThis[key] === started) started.discard();
  });
}

/**
 * Takes the two spare pipes bin/enarx made for the sallyport of the Keep this run starts itself
 * (ENARX_LAUNCHER_PIPES=1): the one to the Keep on fds 3 (read end) and 4, the one from the Keep
 * on fds 5 and 6 (write end). Only if they are that: two distinct pipes, each end of one on the
 * fds named. Each end is opened again, close-on-exec (Node cannot clear a descriptor's flag
 * otherwise), and the inherited descriptor closed: no process this one starts inherits them, and
 * launch.ts spawnKeep gives the Keep its two ends explicitly.
 */
function takeSparePipes() {
  delete process.env.ENARX_LAUNCHER_PIPES; // not for the processes this one starts
  const { closeSync, fstatSync, openSync } = process.getBuiltinModule('node:fs');
  const ends = [3, 4, 5, 6];
  let stats;
  try {
    stats = ends.map((fd) => fstatSync(fd, { bigint: true }));
  } catch {
    return; // not all open: none is taken (and closeInheritedDescriptors closes the rest)
  }
  const pipe = (a, b) => stats[a].isFIFO() && stats[b].isFIFO() && stats[a].dev === stats[b].dev && stats[a].ino === stats[b].ino;
  if (!pipe(0, 1) || !pipe(2, 3) || stats[0].ino === stats[2].ino) return;
  const reopened = [];
  try {
    // Each pipe's read end first: its write end is open here, so opening it does not wait for a writer.
    for (const [fd, flags] of [[3, 'r'], [4, 'w'], [5, 'r'], [6, 'w']]) reopened.push(openSync(`/proc/self/fd/${fd}`, flags));
  } catch {
    for (const fd of reopened) closeSync(fd);
    return;
  }
  for (const fd of ends) closeSync(fd);
  const [toKeepRead, toKeepWrite, fromKeepRead, fromKeepWrite] = reopened;
  globalThis[Symbol.for('enarx.launcher-pipes')] = { toKeep: { read: toKeepRead, write: toKeepWrite }, fromKeep: { read: fromKeepRead, write: fromKeepWrite } };
}

/**
 * Takes the Keep bin/enarx started (ENARX_LAUNCHER_KEEP: '1 PID ARGV', ARGV joined by U+001F; its
 * pipes on fds 3 to 5, see adopted.ts) for the run, which adopts it only if ARGV is exactly the
 * command it would start. Only a child of this process is taken (the variable may come from
 * elsewhere), and killed as this process exits unless the run took it.
 */
function takeShellKeep() {
  const value = process.env.ENARX_LAUNCHER_KEEP;
  delete process.env.ENARX_LAUNCHER_KEEP; // not for the processes this one starts
  const m = /^1 ([1-9]\d*) (.+)$/s.exec(value);
  if (!m) return;
  const pid = Number(m[1]);
  let stat;
  try {
    stat = process.getBuiltinModule('node:fs').readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return;
  }
  if (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] !== String(process.pid)) return;
  const [command, ...args] = m[2].split('\x1f');
  // How bin/enarx connected it: its spawn options, which the run compares with adopted.ts's SHELL_KEEP_LAYOUT.
  const options = { launcher: 'bin/enarx', fds: [3, 4, 5], env: {} };
  const discard = () => {
    // Its pipes are not close-on-exec: closed before this process starts another Keep.
    for (const fd of options.fds) {
      try {
        process.getBuiltinModule('node:fs').closeSync(fd);
      } catch {
        // closed already
      }
    }
    try {
      process.kill(pid, 'SIGKILL'); // a child that nobody reaps: the pid is still its own
    } catch {
      // gone
    }
  };
  const started = { shell: pid, command, args, options, failed: false, discard };
  handOver(started);
  return started;
}
