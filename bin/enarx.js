#!/usr/bin/env -S node --no-concurrent-recompilation --no-concurrent-sparkplug
// Launcher: plain JavaScript so that it runs on any Node and can explain a wrong version.
const major = Number(process.versions.node.split('.')[0]);
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
// Start-up: cache compiled (and type-stripped) modules between runs.
process.getBuiltinModule('node:module').enableCompileCache?.();
// Node's own warnings (experimental features, deprecations in dependencies) are not the user's business.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (process.env.ENARX_NODE_WARNINGS) process.stderr.write(`${w.name}: ${w.message}\n`);
});
const argv = process.argv.slice(2);
// Workloads compile with V8's optimising tier (src/runtime/tier.ts). Not a shebang flag: V8 would then
// refuse Node's code cache for every built-in module. Set before this process compiles any wasm,
// unless this run's workload goes to a process Keep, which sets them itself: this process then runs
// no wasm, and its built-ins load from the cache.
if (!runsInProcessKeep(argv)) {
  process.getBuiltinModule('node:v8').setFlagsFromString('--no-liftoff --no-wasm-dynamic-tiering --no-wasm-deopt');
  globalThis[Symbol.for('enarx.wasm-optimising-tier')] = true;
}
// `enarx run` starts without the command-line framework when its arguments are simple.
if (argv[0] === 'run') {
  const { runFast } = await import('../src/cli/run/fast.ts');
  await runFast(argv.slice(1));
}
const { main } = await import('../src/cli/main.ts');
await main(argv);

/** `enarx run` with --backend process, or none (the process Keep is the strongest one on Node 26). */
function runsInProcessKeep(args) {
  if (args[0] !== 'run') return false;
  let backend = process.env.ENARX_BACKEND || undefined;
  for (let i = 1; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--' || !arg.startsWith('-') || arg === '-') break;
    if (arg.startsWith('--backend=')) backend = arg.slice('--backend='.length);
    else if (!arg.includes('=')) {
      // Every flag of `enarx run` takes a value (--help and the like run no workload).
      const value = args[++i];
      if (arg === '--backend') backend = value;
    }
  }
  return backend === undefined || backend === 'process';
}
