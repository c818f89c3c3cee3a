#!/usr/bin/env node
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
// Node's own warnings (experimental features, deprecations in dependencies) are not the user's business.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (process.env.ENARX_NODE_WARNINGS) process.stderr.write(`${w.name}: ${w.message}\n`);
});
const { main } = await import('../src/cli/main.ts');
await main(process.argv.slice(2));
