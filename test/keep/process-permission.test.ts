import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keepCommand } from '../../src/keep/process/launch.ts';

// Code that got control of the Keep's own JS (say, through an engine bug) runs with exactly the
// flags a Keep gets. It must be confined to the granted directories, with no network, children or workers.
const HOSTILE = String.raw`
const fs = require('node:fs'), net = require('node:net'), cp = require('node:child_process');
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
  await attempt('spawn', () => { const r = cp.spawnSync('/bin/true'); if (r.error) throw r.error; });
  await attempt('worker', () => new (require('node:worker_threads').Worker)('1', { eval: true }));
  await attempt('connect', () => new Promise((ok, ko) => { const s = net.connect(Number(port), '127.0.0.1', () => { s.destroy(); ok(); }); s.on('error', ko); }));
  // A refused listen surfaces asynchronously, as an uncaught exception.
  await attempt('listen', () => new Promise((ok, ko) => { process.once('uncaughtException', ko); const s = net.createServer().listen(0, '127.0.0.1', () => { s.close(); ok(); }); s.on('error', ko); }));
  await attempt('addon', () => process.dlopen({ exports: {} }, '/nonexistent.node'));
  await attempt('eval', () => new Function('return 1')());
  process.stdout.write(JSON.stringify(out));
})();
`;

test('code running with the Keep process flags cannot read outside its grants, connect, listen, spawn or start workers', async () => {
  const root = mkdtempSync(join(tmpdir(), 'enarx-perm-'));
  const server = createServer((s) => s.destroy()).listen(0, '127.0.0.1');
  try {
    const granted = join(root, 'granted');
    const writable = join(root, 'writable');
    const outside = join(root, 'outside');
    for (const d of [granted, writable, outside]) mkdirSync(d);
    writeFileSync(join(granted, 'in.txt'), 'in');
    writeFileSync(join(outside, 'secret.txt'), 'SECRET');
    await new Promise((r) => server.once('listening', r));
    const port = String((server.address() as { port: number }).port);
    const { command, args } = await keepCommand({ readDirs: [granted, writable], writeDirs: [writable] });
    // Everything but the Keep's entry (the last argument) is kept: the same permission flags.
    const flags = args.slice(0, -1);
    const r = spawnSync(command, [...flags, '-e', HOSTILE, granted, writable, outside, port], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, string>;
    assert.equal(got.readGranted, 'allowed', 'positive control: the grant works');
    assert.equal(got.writeGranted, 'allowed', 'positive control: the writable grant works');
    for (const key of ['readOutside', 'readEtc', 'listOutside', 'writeReadOnlyGrant', 'writeOutside', 'symlinkOut', 'dotdotOutside',
      'spawn', 'worker', 'connect', 'listen']) {
      assert.equal(got[key], 'ERR_ACCESS_DENIED', `${key}: ${got[key]}`);
    }
    assert.ok(['ERR_DLOPEN_DISABLED', 'ERR_ACCESS_DENIED'].includes(got.addon!), `addon: ${got.addon}`);
    assert.equal(got.eval, 'EvalError: Code generation from strings disallowed for this context');
    assert.ok(!existsSync(join(outside, 'new.txt')) && !existsSync(join(granted, 'new.txt')));
  } finally {
    server.close();
    rmSync(root, { recursive: true, force: true });
  }
});
