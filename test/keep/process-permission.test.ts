import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { keepCommand } from '../../src/keep/process/launch.ts';
import { KEEP_BUILTINS } from '../../src/keep/process/wall.ts';

// Code that got control of the Keep's own JS (say, through an engine bug) runs in a Keep process:
// its flags, its entry loaded first. It must be confined to the granted directories, with no
// network, children, workers or code generated from strings.
const HOSTILE = String.raw`
const fs = require('node:fs'), net = require('node:net');
const [granted, writable, outside, port] = process.argv.slice(-4);
const out = {};
const attempt = async (name, fn) => { try { await fn(); out[name] = 'allowed'; } catch (e) { out[name] = e.code ?? String(e); } };
(async () => {
  await attempt('readGranted', () => fs.readFileSync(granted + '/in.txt'));
  await attempt('writeGranted', () => fs.writeFileSync(writable + '/new.txt', 'x'));
  await attempt('readOutside', () => fs.readFileSync(outside + '/secret.txt'));
  await attempt('readEtc', () => fs.readFileSync('/etc/passwd'));
  await attempt('listOutside', () => fs.readdirSync(outside));
  await attempt('writeReadOnlyGrant', () => fs.writeFileSync(granted + '/new.txt', 'x'));
  await attempt('writeOutside', () => fs.writeFileSync(outside + '/new.txt', 'x'));
  await attempt('symlinkOut', () => fs.symlinkSync(outside + '/secret.txt', writable + '/ln'));
  await attempt('dotdotOutside', () => fs.readFileSync(granted + '/../outside/secret.txt'));
  // node:child_process and node:worker_threads: refused by the module wall, and behind it by the permission model.
  await attempt('spawn', () => { const r = require('node:child_process').spawnSync('/bin/true'); if (r.error) throw r.error; });
  await attempt('worker', () => new (require('node:worker_threads').Worker)('1', { eval: true }));
  await attempt('connect', () => new Promise((ok, ko) => { const s = net.connect(Number(port), '127.0.0.1', () => { s.destroy(); ok(); }); s.on('error', ko); }));
  // A refused listen surfaces asynchronously, as an uncaught exception.
  await attempt('listen', () => new Promise((ok, ko) => { process.once('uncaughtException', ko); const s = net.createServer().listen(0, '127.0.0.1', () => { s.close(); ok(); }); s.on('error', ko); }));
  await attempt('addon', () => process.dlopen({ exports: {} }, '/nonexistent.node'));
  // Around the permission model: node:sqlite opened files anywhere (Node 26 checks no path for it),
  // signals reached every process of the Keep's user (root, here), inherited descriptors are not
  // paths, and V8's flags could turn off wasm's bounds checks.
  await attempt('sqliteCreate', () => new (require('node:sqlite').DatabaseSync)(outside + '/made.db'));
  await attempt('ffi', () => require('node:ffi').getRawPointer(Buffer.alloc(8)));
  await attempt('killHost', () => process.kill(process.ppid, 0));
  await attempt('killRaw', () => process._kill(process.ppid, 0));
  await attempt('v8Flags', () => require('node:v8').setFlagsFromString('--allow-natives-syntax'));
  await attempt('v8FlagsBuiltin', () => process.getBuiltinModule('node:v8').setFlagsFromString('--allow-natives-syntax'));
  // Modules: only the bundle's own files and the built-ins it imports load, and no one adds hooks.
  await attempt('vmRunInThisContext', () => require('node:vm').runInThisContext('1'));
  await attempt('vmCompileFunction', () => process.getBuiltinModule('vm').compileFunction('return 1')());
  await attempt('vmScript', () => new (process.getBuiltinModule('node:vm').Script)('1').runInThisContext());
  await attempt('importVm', () => import('node:vm'));
  await attempt('importData', () => import('data:text/javascript,export default 1'));
  await attempt('importOutside', () => import(outside + '/mod.mjs'));
  await attempt('moduleHooks', () => require('node:module').registerHooks({ load: () => ({ format: 'module', source: '', shortCircuit: true }) }));
  await attempt('moduleBuiltin', () => process.getBuiltinModule('node:module').registerHooks({}));
  await attempt('repl', () => require('node:repl'));
  await attempt('importBundleBuiltin', () => import('node:path'));
  // Code generation from strings, every way into it (the Keep's entry closed them: wall.ts).
  await attempt('eval', () => eval('1'));
  await attempt('indirectEval', () => (0, eval)('1'));
  await attempt('newFunction', () => new Function('return 1')());
  await attempt('callFunction', () => Function('return 1')());
  await attempt('functionCtor', () => (function () {}).constructor('return 1')());
  await attempt('arrowCtor', () => (() => {}).constructor('return 1')());
  await attempt('asyncCtor', () => (async function () {}).constructor('return 1')());
  await attempt('generatorCtor', () => (function* () {}).constructor('return 1')());
  await attempt('asyncGeneratorCtor', () => (async function* () {}).constructor('return 1')());
  await attempt('reflectFunction', () => Reflect.construct(Object.getPrototypeOf(() => {}).constructor, ['return 1'])());
  await attempt('restoreEval', () => Object.defineProperty(globalThis, 'eval', { value: (s) => s }));
  // Sloppy code's assignment to the fixed property is ignored: the call is still refused.
  await attempt('restoreCtor', () => { Function.prototype.constructor = () => 1; return Function.prototype.constructor('return 1'); });
  out.instanceofFunction = String((() => {}) instanceof Function && (async () => {}) instanceof Function);
  process.stdout.write(JSON.stringify(out));
  process.exit(0); // the Keep itself waits on its sallyport for the host's hello
})();
`;

test('code running in a Keep process cannot read outside its grants, connect, listen, spawn, start workers or eval strings', async () => {
  const root = mkdtempSync(join(tmpdir(), 'enarx-perm-'));
  const server = createServer((s) => s.destroy()).listen(0, '127.0.0.1');
  try {
    const granted = join(root, 'granted');
    const writable = join(root, 'writable');
    const outside = join(root, 'outside');
    for (const d of [granted, writable, outside]) mkdirSync(d);
    writeFileSync(join(granted, 'in.txt'), 'in');
    writeFileSync(join(outside, 'secret.txt'), 'SECRET');
    writeFileSync(join(outside, 'mod.mjs'), 'export default 1');
    await new Promise((r) => server.once('listening', r));
    const port = String((server.address() as { port: number }).port);
    const { command, args } = await keepCommand({ readDirs: [granted, writable], writeDirs: [writable] });
    // The Keep's own flags and its real entry, loaded first (it then waits on fd 3 for the host's
    // hello), then the hostile code in the same process.
    const flags = args.slice(0, -1);
    const entry = args.at(-1)!;
    // Whichever file of the bundle Node evaluates first raises the wall: it heads every one of them.
    const bundleDir = dirname(entry);
    for (const file of readdirSync(bundleDir)) {
      const head = readFileSync(join(bundleDir, file), 'utf8').slice(0, 2000);
      assert.match(head, /^\(function\(\)\{[^]*code generation from strings is disallowed in a Keep[^]*a Keep sends no signals[^]*not loadable in a Keep/, `${file} starts with the walls`);
      // Every built-in the bundle imports is one the module wall lets it load.
      const text = readFileSync(join(bundleDir, file), 'utf8');
      for (const [, name] of text.matchAll(/(?:from\s*|import\(|getBuiltinModule\(|require\()"([^".\/][^"]*)"/g)) {
        assert.ok(KEEP_BUILTINS.includes(name!), `${file} imports ${name}, which KEEP_BUILTINS (wall.ts) does not list`);
      }
    }
    const r = spawnSync(command, [...flags, `--import=${entry}`, '-e', HOSTILE, granted, writable, outside, port], {
      encoding: 'utf8',
      timeout: 20_000,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, string>;
    assert.equal(got.readGranted, 'allowed', 'positive control: the grant works');
    assert.equal(got.writeGranted, 'allowed', 'positive control: the writable grant works');
    for (const key of ['readOutside', 'readEtc', 'listOutside', 'writeReadOnlyGrant', 'writeOutside', 'symlinkOut', 'dotdotOutside',
      'spawn', 'worker', 'connect', 'listen']) {
      assert.equal(got[key], 'ERR_ACCESS_DENIED', `${key}: ${got[key]}`);
    }
    assert.ok(['ERR_DLOPEN_DISABLED', 'ERR_ACCESS_DENIED'].includes(got.addon!), `addon: ${got.addon}`);
    for (const key of ['sqliteCreate', 'ffi']) assert.equal(got[key], 'ERR_UNKNOWN_BUILTIN_MODULE', `${key}: ${got[key]}`);
    // Below the module wall, the Keep's command line leaves node:sqlite and node:ffi out of Node.
    const bare = spawnSync(command, [...flags, '-e', "process.stdout.write(String([process.getBuiltinModule('node:sqlite'), process.getBuiltinModule('node:ffi')]))"], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(bare.stdout, ',', bare.stderr);
    for (const key of ['killHost', 'killRaw', 'vmRunInThisContext', 'vmCompileFunction', 'vmScript', 'importVm', 'importData',
      'importOutside', 'moduleHooks', 'moduleBuiltin', 'repl']) {
      assert.equal(got[key], 'ERR_ACCESS_DENIED', `${key}: ${got[key]}`);
    }
    for (const key of ['v8Flags', 'v8FlagsBuiltin']) assert.match(got[key]!, /^EvalError: v8.setFlagsFromString: V8 flags are fixed in a Keep$/, key);
    assert.equal(got.importBundleBuiltin, 'allowed', 'positive control: a built-in the bundle imports loads');
    for (const key of ['eval', 'indirectEval', 'newFunction', 'callFunction', 'functionCtor', 'arrowCtor', 'asyncCtor', 'generatorCtor', 'asyncGeneratorCtor', 'reflectFunction', 'restoreCtor']) {
      assert.match(got[key]!, /^EvalError: \w+: code generation from strings is disallowed in a Keep$/, `${key}: ${got[key]}`);
    }
    assert.match(got.restoreEval!, /^TypeError: Cannot redefine property: eval/);
    assert.equal(got.instanceofFunction, 'true', 'functions are still instances of Function');
    assert.ok(!existsSync(join(outside, 'new.txt')) && !existsSync(join(granted, 'new.txt')) && !existsSync(join(outside, 'made.db')));
  } finally {
    server.close();
    rmSync(root, { recursive: true, force: true });
  }
});
