// The same file-system workload in both Keeps must print the same, line for line: symlinks
// (which the process Keep's host creates for it, Node's permission model forbidding it inside),
// times set through a descriptor and fsync (which the permission model disables), hard links,
// renames and loops, and escape attempts. The program is test/wasi/programs/fsops.c.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runEnarx } from '../helpers/cli.ts';
import { REPO_ROOT } from '../helpers/paths.ts';
import { Errno } from '../../src/wasi/constants.ts';

const FSOPS = join(REPO_ROOT, 'test', 'wasi', 'programs', 'fsops.wasm');
let work: string;

before(() => {
  work = mkdtempSync(join(tmpdir(), 'enarx-parity-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

/** Runs fsops with OPS in BACKEND on a fresh preopen next to an `outside` directory. */
async function fsops(backend: string, ops: string[]): Promise<{ lines: string[]; dir: string; outside: string }> {
  const base = mkdtempSync(join(work, `${backend}-`));
  const dir = join(base, 'sandbox');
  const outside = join(base, 'outside');
  mkdirSync(dir);
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), 'SECRET');
  const ro = join(base, 'ro');
  mkdirSync(ro);
  writeFileSync(join(ro, 'precious'), 'PRECIOUS');
  const config = join(base, 'Enarx.toml');
  writeFileSync(config, ['stdin', 'stdout', 'stderr'].map((k) => `[[files]]\nkind = "${k}"\n`).join('') +
    `[[files]]\nkind = "dir"\nname = "/sandbox"\npath = "sandbox"\n[[files]]\nkind = "dir"\nname = "/ro"\npath = "ro"\nreadonly = true\n`);
  const r = await runEnarx(['run', '--backend', backend, '--wasmcfgfile', config, FSOPS, ...ops], { timeoutMs: 60_000 });
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.deepEqual(readdirSync(outside), ['secret']);
  assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'SECRET');
  assert.deepEqual(readdirSync(ro), ['precious']);
  assert.equal(readFileSync(join(ro, 'precious'), 'utf8'), 'PRECIOUS');
  return { lines: r.stdout.trimEnd().split('\n'), dir, outside };
}

const SYMLINKS: [string, string][] = [
  ['write:f:hello', 'ok 5'],
  ['mkdir:sub', 'ok'],
  ['write:sub/g:x', 'ok 1'],
  ['symlink:f:l', 'ok'],
  ['symlink:g:sub/l2', 'ok'],
  ['symlink:sub/g:l3', 'ok'],
  ['symlink:f:l', `errno ${Errno.EXIST}`],
  ['symlink:../f:up', `errno ${Errno.PERM}`],
  ['symlink:sub/../f:up', `errno ${Errno.PERM}`],
  ['symlink:.:dot', `errno ${Errno.PERM}`],
  ['symlink:/etc:abs', `errno ${Errno.NOTCAPABLE}`],
  ['symlink:f:../escaped', `errno ${Errno.NOTCAPABLE}`],
  ['readlink:l', 'ok f'],
  ['readlink:sub/l2', 'ok g'],
  ['read:l', 'ok hello'],
  ['read:sub/l2', 'ok x'],
  ['read:l3', 'ok x'],
  ['lutimes:l:1200000000', `ok type=7 size=1 mtime=1200000000`],
  ['rename:l:sub/l', 'ok'],
  ['read:sub/l', `errno ${Errno.NOENT}`],
  ['symlink:loop:loop', 'ok'],
  ['read:loop', `errno ${Errno.LOOP}`],
  ['unlink:loop', 'ok'],
  ['symlink:dangling:d', 'ok'],
  ['unlink:d', 'ok'],
];

const TIMES_AND_LINKS: [string, string][] = [
  ['write:f:hello', 'ok 5'],
  ['futimes:f:1000000000', 'ok type=4 size=5 mtime=1000000000'],
  ['symlink:f:l', 'ok'],
  ['utimes:l:1100000000', 'ok type=4 size=5 mtime=1100000000'],
  ['stat:f', 'ok type=4 size=5 mtime=1100000000'],
  ['link:f:h', 'ok'],
  ['read:h', 'ok hello'],
  ['link:l:hl', 'ok'],
  ['readlink:hl', 'ok f'],
  ['sync:f', 'ok'],
  ['read:f', 'ok synced'],
  ['mkdir:d', 'ok'],
  ['write:d/x:1', 'ok 1'],
  ['movedsync:f:f:g:1300000000', 'ok type=4 size=6 mtime=1300000000'],
  ['movedsync:d/x:d:e:1400000000', 'ok type=4 size=1 mtime=1400000000'],
  ['stat:e/x', 'ok type=4 size=1 mtime=1400000000'],
];

// Escape attempts, with a read-only preopen at fd 4 holding `precious`.
const ATTACKS: [string, string][] = [
  ['rolink:precious:stolen', `errno ${Errno.ROFS}`],
  ['write:stolen:overwritten', 'ok 11'],
  ['rotimes', `errno ${Errno.ROFS}`],
  ['symlink:missing:dangling', 'ok'],
  ['excl:dangling', `errno ${Errno.EXIST}`],
  ['read:missing', `errno ${Errno.NOENT}`],
  ['longsym:4096:long', `errno ${Errno.NAMETOOLONG}`],
  ['longsym:100:short', 'ok'],
  ['symlink:sub:l', 'ok'],
  ['mkdir:sub', 'ok'],
  ['rename:l:sub/l', 'ok'],
  ['readlink:sub/l', 'ok sub'],
  ['write:f:x', 'ok 1'],
  ['setflags:f:1', `set=0 write=${Errno.BADF}`],
  ['rmdir:sub/.', `errno ${Errno.INVAL}`],
  ['rmdir:.', `errno ${Errno.BUSY}`],
];

for (const [name, script] of [['symlinks', SYMLINKS], ['times and hard links', TIMES_AND_LINKS], ['escape attempts', ATTACKS]] as const) {
  describe(`both Keeps agree: ${name}`, () => {
    test('nil and process print the same, as expected', async () => {
      const ops = script.map(([op]) => op);
      const expected = script.map(([op, out]) => `${op.split(':')[0]} ${out}`);
      const [nil, proc] = await Promise.all([fsops('nil', ops), fsops('process', ops)]);
      assert.deepEqual(nil.lines, expected);
      assert.deepEqual(proc.lines, expected);
      if (name === 'symlinks') {
        for (const { dir } of [nil, proc]) {
          assert.equal(readlinkSync(join(dir, 'sub', 'l')), 'f');
          assert.equal(readlinkSync(join(dir, 'sub', 'l2')), 'g');
          assert.deepEqual(readdirSync(dir).sort(), ['f', 'l3', 'sub']);
        }
      }
    });
  });
}
