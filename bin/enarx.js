#!/usr/bin/env -S node --no-liftoff --no-concurrent-recompilation
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
// The shebang's --no-liftoff: wasm workloads compile with V8's optimising tier from the start.
// Its baseline tier (Liftoff) keeps a long-running loop in slow code until the function is
// called again (3-8x slower CPU kernels); V8 cannot change this once wasm has been compiled,
// so it must be a command-line flag. See docs/wasi.md, "Performance".
// --no-concurrent-recompilation: a background Maglev compile that waits for a GC while
// process.exit() shuts the platform down hangs Node forever (nodejs/node#54918; seen here once in
// ~50 runs of the stdout benchmark). Optimising on the main thread costs nothing measurable here.
// Start-up: cache compiled (and type-stripped) modules between runs.
process.getBuiltinModule('node:module').enableCompileCache?.();
// Node's own warnings (experimental features, deprecations in dependencies) are not the user's business.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (process.env.ENARX_NODE_WARNINGS) process.stderr.write(`${w.name}: ${w.message}\n`);
});
const argv = process.argv.slice(2);
// `enarx run` starts without the command-line framework when its arguments are simple.
if (argv[0] === 'run') {
  const { runFast } = await import('../src/cli/run/fast.ts');
  await runFast(argv.slice(1));
}
const { main } = await import('../src/cli/main.ts');
await main(argv);
