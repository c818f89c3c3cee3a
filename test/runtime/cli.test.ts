import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync, chmodSync, existsSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import wabtInit from 'wabt';
import { runEnarx, spawnEnarx } from '../helpers/cli.ts';
import { REPO_ROOT } from '../helpers/paths.ts';

const ex = (name: string) => join(REPO_ROOT, 'examples', `${name}.wasm`);
let work: string;

before(() => {
  work = mkdtempSync(join(tmpdir(), 'enarx-cli-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

async function wat(name: string, source: string): Promise<string> {
  const wabt = await wabtInit();
  const path = join(work, `${name}.wasm`);
  writeFileSync(path, wabt.parseWat(`${name}.wat`, source).toBinary({}).buffer);
  return path;
}

/** One line on stderr, starting with "enarx: ", and no stack trace. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${stderr}`);
  assert.match(lines[0]!, /^enarx: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(stderr, /\bat .*\.ts:\d+/);
}

describe('enarx run: workloads', { concurrency: true }, () => {
  test('hello: the guest output is the only output', async () => {
    const r = await runEnarx(['run', 'examples/hello.wasm']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'Hello, world!\n');
    assert.equal(r.stderr, '');
  });
  test('rot13 over stdin', async () => {
    const input = 'Hello, World!\n'.repeat(20000);
    const r = await runEnarx(['run', ex('rot13')], { input });
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'Uryyb, Jbeyq!\n'.repeat(20000));
  });
  test('proc_exit codes pass through', async () => {
    for (const code of ['0', '3', '255']) {
      const r = await runEnarx(['run', ex('exitcode'), code]);
      assert.equal(r.code, Number(code));
      assert.equal(r.stderr, '');
    }
  });
  test('a proc_exit status above 255 is an error in every Keep, never its low byte', async () => {
    for (const status of [256, 0xffffffff]) {
      const path = await wat(`exit${status}`, `(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1) (func (export "_start") (call $exit (i32.const ${status | 0}))))`);
      for (const backend of ['nil', 'process']) {
        const r = await runEnarx(['run', '--backend', backend, path]);
        assert.equal(r.code, 1, `${backend} ${status}: ${r.stderr}`);
        assertOneLine(r.stderr, new RegExp(`exited with status ${status}, which does not fit in 0-255`));
      }
    }
  });
  test('a trap exits 134 with one readable line', async () => {
    const r = await runEnarx(['run', ex('trap')]);
    assert.equal(r.code, 134);
    assert.equal(r.stdout, 'about to divide by 0\n');
    assertOneLine(r.stderr, /wasm trap: .*divide by zero.*in function 'divide'/);
  });
  test('unreachable in a hand-written module is a trap too', async () => {
    const path = await wat('unreachable', `(module (memory (export "memory") 1) (func (export "_start") unreachable))`);
    const r = await runEnarx(['run', path]);
    assert.equal(r.code, 134);
    assertOneLine(r.stderr, /wasm trap: unreachable/);
  });
  test('sleep waits the time asked', async () => {
    const r = await runEnarx(['run', ex('sleep'), '60']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^slept (6\d|[7-9]\d|\d{3}) ms\n$/);
  });
  test('the wall-time limit stops a waiting guest with 137 and the same words in every Keep', async () => {
    const r = await runEnarx(['run', '--wall-time-limit', '1s', ex('sleep'), '60000']);
    assert.equal(r.code, 137);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'enarx: the Keep went over its wall-time limit (1s)\n');
  });
  test('the wall-time limit stops a guest that computes without ever waiting, in both Keeps', async () => {
    const spin = await wat('spin', `(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))`);
    for (const backend of ['nil', 'process']) {
      const r = await runEnarx(['run', '--backend', backend, '--wall-time-limit', '1s', spin], { timeoutMs: 60_000 });
      // The nil Keep's watchdog ends enarx with SIGKILL (a shell reports 137); the process Keep's host exits 137.
      if (backend === 'nil') assert.equal(r.signal, 'SIGKILL');
      else assert.equal(r.code, 137);
      assert.equal(r.stderr, 'enarx: the Keep went over its wall-time limit (1s)\n', backend);
    }
  });
  test('file I/O in a --dir preopen', async () => {
    const data = join(work, 'data');
    mkdirSync(data);
    const r = await runEnarx(['run', '--dir', `${data}::/data`, ex('fileio'), '/data']);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'read: first line\nread: second line\nsize: 23\nentry: notes.txt\ndone\n');
    assert.equal(existsSync(join(data, 'notes.old')), false);
  });
  test('a --dir named through a symlink works in both Keeps, on the directory it leads to', async () => {
    const real = join(work, 'linked-real');
    mkdirSync(real);
    const link = join(work, 'linked');
    symlinkSync(real, link);
    for (const backend of ['nil', 'process']) {
      const r = await runEnarx(['run', '--backend', backend, '--dir', `${link}::/data`, ex('fileio'), '/data']);
      assert.equal(r.stderr, '', backend);
      assert.equal(r.code, 0, backend);
      assert.equal(r.stdout, 'read: first line\nread: second line\nsize: 23\nentry: notes.txt\ndone\n', backend);
      assert.deepEqual(readdirSync(real), [], backend);
    }
  });
  test("the process Keep refuses two --dir whose names extend one another, with what to do (Node's permission model would deny the shorter one)", async () => {
    const a = join(work, 'pair');
    const b = join(work, 'pair2');
    mkdirSync(a);
    mkdirSync(b);
    const r = await runEnarx(['run', '--backend', 'process', '--dir', `${a}::/a`, '--dir', `${b}::/b`, ex('fileio'), '/a']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /cannot be granted both .*pair and .*pair2: .*rename one of them, or use --backend nil\n$/);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    const nil = await runEnarx(['run', '--backend', 'nil', '--dir', `${a}::/a`, '--dir', `${b}::/b`, ex('fileio'), '/a']);
    assert.equal(nil.code, 0, nil.stderr);
  });
  test('a file outside the preopens is out of reach', async () => {
    const r = await runEnarx(['run', ex('fileio'), '/etc']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /fileio: create \/etc\/notes.txt/);
  });
  test('memory hog under no cap gets what it asks for', async () => {
    const r = await runEnarx(['run', ex('memhog'), '64']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^allocated 64 MiB \(checksum \d+\)\n$/);
  });
  test('everything after MODULE goes to the guest; argv[0] is MODULE as given; env is exactly --env', async () => {
    const r = await runEnarx(['run', '--env', 'A=1', '--env', 'EMPTY=', 'examples/args.wasm', '--env', 'B=2', '-x', '--', 'y'], {
      env: { SHOULD_NOT_LEAK: '1' },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, ['arg 0: examples/args.wasm', 'arg 1: --env', 'arg 2: B=2', 'arg 3: -x', 'arg 4: --', 'arg 5: y', 'env: A=1', 'env: EMPTY=', ''].join('\n'));
  });
  test('--env NAME copies the host value; --dir preopens follow stdio in order', async () => {
    const r = await runEnarx(['run', '--env', 'FROM_HOST', '--dir', work, '--dir', `${REPO_ROOT}::/repo`, ex('args')], { env: { FROM_HOST: 'yes' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /env: FROM_HOST=yes\npreopen 3: .*enarx-cli-.*\npreopen 4: \/repo\n$/);
  });
});

describe('enarx run: Enarx.toml', { concurrency: true }, () => {
  test('args, env, FD_COUNT and FD_NAMES as Enarx sets them; command line after and over the file', async () => {
    const dataDir = join(work, 'cfgdata');
    mkdirSync(dataDir, { recursive: true });
    const cfg = join(work, 'Enarx.toml');
    writeFileSync(cfg, `args = ["--from-file"]\n[env]\nVAR = "file"\nKEEP = "k"\n[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n[[files]]\nkind = "null"\nname = "nothing"\n[[files]]\nkind = "dir"\nname = "/data"\npath = "cfgdata"\n`);
    const r = await runEnarx(['run', '--wasmcfgfile', cfg, '--env', 'VAR=cli', '--dir', `${work}::/extra`, ex('args'), 'cli-arg']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, [
      `arg 0: ${ex('args')}`, 'arg 1: --from-file', 'arg 2: cli-arg',
      'env: FD_COUNT=6', 'env: FD_NAMES=stdin:stdout:stderr:nothing:/data:/extra', 'env: VAR=cli', 'env: KEEP=k',
      'preopen 4: /data', 'preopen 5: /extra', '',
    ].join('\n'));
  });
  test('ENARX_WASMCFGFILE is honoured; Enarx.toml is never read implicitly', async () => {
    const dir = join(work, 'implicit');
    mkdirSync(dir);
    writeFileSync(join(dir, 'Enarx.toml'), 'args = ["from-file"]\n');
    const implicit = await runEnarx(['run', ex('args')], { cwd: dir });
    assert.equal(implicit.stdout, `arg 0: ${ex('args')}\n`);
    const viaEnv = await runEnarx(['run', ex('args')], { cwd: dir, env: { ENARX_WASMCFGFILE: join(dir, 'Enarx.toml') } });
    assert.match(viaEnv.stdout, /arg 1: from-file\nenv: FD_COUNT=3\nenv: FD_NAMES=stdin:stdout:stderr\n/);
  });
  test('a malformed Enarx.toml is one line naming file and key, exit 1', async () => {
    const cases: [string, RegExp][] = [
      ['args = [1]\n', /bad1\.toml: args\[0\]: expected a string/],
      ['[[files]]\nkind = "stdin"\ncolour = "red"\n', /bad2\.toml: files\[0\]\.colour: unknown key/],
      ['unknown = 1\n', /bad3\.toml: unknown: unknown key/],
      ['args = [\n', /bad4\.toml: invalid TOML at line/],
      ['[[files]]\nkind = "listen"\nport = 99999\nname = "x"\n', /bad5\.toml: files\[0\]\.port: expected a port number/],
    ];
    for (const [i, [text, pattern]] of cases.entries()) {
      const cfg = join(work, `bad${i + 1}.toml`);
      writeFileSync(cfg, text);
      const r = await runEnarx(['run', '--wasmcfgfile', cfg, ex('hello')]);
      assert.equal(r.code, 1, text);
      assert.equal(r.stdout, '');
      assertOneLine(r.stderr, pattern);
    }
  });
  test('a missing Enarx.toml is one line, exit 1', async () => {
    const r = await runEnarx(['run', '--wasmcfgfile', join(work, 'none.toml'), ex('hello')]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /none\.toml: cannot read it: no such file/);
  });
  test('a connect file that cannot connect fails before the guest starts', async () => {
    const cfg = join(work, 'net.toml');
    writeFileSync(cfg, '[[files]]\nkind = "connect"\nprot = "tcp"\nhost = "127.0.0.1"\nport = 9\n');
    const r = await runEnarx(['run', '--wasmcfgfile', cfg, ex('hello')]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assertOneLine(r.stderr, /cannot connect on 127\.0\.0\.1 port 9 for '127\.0\.0\.1': connect ECONNREFUSED 127\.0\.0\.1:9/);
  });
});

describe('enarx run: bad input', { concurrency: true }, () => {
  test('not a wasm file', async () => {
    const path = join(work, 'not.wasm');
    writeFileSync(path, '#!/bin/sh\necho hi\n');
    const r = await runEnarx(['run', path]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /not a WebAssembly module/);
  });
  test('a truncated module', async () => {
    const bytes = readFileSync(ex('hello'));
    const path = join(work, 'truncated.wasm');
    writeFileSync(path, bytes.subarray(0, bytes.length >> 1));
    const r = await runEnarx(['run', path]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /invalid WebAssembly module/);
  });
  test('a module with imports a Keep does not provide', async () => {
    const path = await wat('missing', `(module (import "env" "launch_missiles" (func)) (memory (export "memory") 1) (func (export "_start")))`);
    const r = await runEnarx(['run', path]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /imports function 'env\.launch_missiles'/);
    const path2 = await wat('missing2', `(module (import "wasi_snapshot_preview1" "no_such_call" (func)) (memory (export "memory") 1) (func (export "_start")))`);
    const r2 = await runEnarx(['run', path2]);
    assert.equal(r2.code, 1);
    assertOneLine(r2.stderr, /wasi_snapshot_preview1\.no_such_call/);
  });
  test('a module without _start or memory', async () => {
    const lib = await wat('lib', `(module (memory (export "memory") 1) (func (export "f")))`);
    const r = await runEnarx(['run', lib]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /no '_start'/);
  });
  test('an unreadable file, a missing file, a directory', async () => {
    const path = join(work, 'secret.wasm');
    writeFileSync(path, readFileSync(ex('hello')));
    chmodSync(path, 0);
    const unreadable = await runEnarx(['run', path]);
    if (process.getuid?.() !== 0) {
      assert.equal(unreadable.code, 1);
      assertOneLine(unreadable.stderr, /permission denied/);
    }
    const missing = await runEnarx(['run', join(work, 'nope.wasm')]);
    assert.equal(missing.code, 1);
    assertOneLine(missing.stderr, /cannot read module .*nope\.wasm: no such file/);
    const directory = await runEnarx(['run', work]);
    assert.equal(directory.code, 1);
    assertOneLine(directory.stderr, /is a directory/);
  });
  test('usage errors exit 2', async () => {
    assert.equal((await runEnarx(['run'])).code, 2);
    assert.equal((await runEnarx(['run', '--no-such-flag', ex('hello')])).code, 2);
    const badDir = await runEnarx(['run', '--dir', '::x', ex('hello')]);
    assert.equal(badDir.code, 2);
    const badBackend = await runEnarx(['run', '--backend', 'sgx-nope', ex('hello')]);
    assert.equal(badBackend.code, 1);
    assertOneLine(badBackend.stderr, /unknown backend 'sgx-nope'/);
    const envBackend = await runEnarx(['run', ex('hello')], { env: { ENARX_BACKEND: 'nil' } });
    assert.equal(envBackend.code, 0);
    // Node's timers hold 2^31-1 ms: a longer wall-time limit would fire at once, so it is refused.
    const longWall = await runEnarx(['run', '--wall-time-limit', '600h', ex('hello')]);
    assert.equal(longWall.code, 2);
    assertOneLine(longWall.stderr, /--wall-time-limit may be at most 2147483647 ms \(about 24\.8 days\), not "600h"/);
    const config = join(work, 'long-wall.toml');
    writeFileSync(config, '[limits]\nwall-time = "600h"\n');
    const longConfig = await runEnarx(['run', '--wasmcfgfile', config, ex('hello')]);
    assert.equal(longConfig.code, 1);
    assertOneLine(longConfig.stderr, /limits.*wall-time.* may be at most 2147483647 ms/);
  });
  test('argv and environment beyond what a Keep takes: one line, exit 1, in every Keep', async () => {
    const many = await runEnarx(['run', ex('args'), ...Array.from({ length: 4100 }, (_, i) => String(i))]);
    assert.equal(many.code, 1);
    assertOneLine(many.stderr, /4101 guest arguments, more than the 4096 a Keep takes/);
    const big = await runEnarx(['run', ex('args'), ...Array.from({ length: 10 }, () => 'x'.repeat(60_000))]);
    assert.equal(big.code, 1);
    assertOneLine(big.stderr, /arguments and environment are \d+ bytes, more than the 524288 a Keep takes/);
    const fits = await runEnarx(['run', ex('args'), ...Array.from({ length: 4095 }, (_, i) => String(i))]);
    assert.equal(fits.code, 0);
    assert.match(fits.stdout, /4094/);
  });
  test('a --dir that does not exist', async () => {
    const r = await runEnarx(['run', '--dir', join(work, 'absent'), ex('hello')]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /cannot preopen/);
  });
});

describe('enarx run: signals', () => {
  test('SIGTERM stops a waiting guest cleanly (exit 143)', async () => {
    const child = spawnEnarx(['run', ex('rot13')]);
    let stderr = '';
    child.stderr!.on('data', (c) => (stderr += c));
    // Listened for from the start: a child that ends early fails the test instead of hanging it.
    const closed = new Promise<number | string>((resolve) => child.on('close', (code, signal) => resolve(code ?? `signal ${signal}`)));
    const watchdog = setTimeout(() => child.kill('SIGKILL'), 60_000);
    try {
      child.stdin!.write('abc\n');
      const first = await Promise.race([new Promise((resolve) => child.stdout!.once('data', resolve)), closed.then((code) => `exit ${code}`)]);
      assert.notEqual(typeof first, 'string', `enarx ended before echoing (${String(first)}): ${stderr}`);
      // Give the guest time to come back to its read() and wait there.
      await new Promise((resolve) => setTimeout(resolve, 500));
      child.kill('SIGTERM');
      assert.equal(await closed, 143, stderr);
    } finally {
      clearTimeout(watchdog);
      child.kill('SIGKILL');
    }
    assertOneLine(stderr, /stopped by SIGTERM/);
  });
});

describe('enarx config', { concurrency: true }, () => {
  test('init writes a template that parses, and refuses to overwrite', async () => {
    const dir = join(work, 'init');
    mkdirSync(dir);
    const r = await runEnarx(['config', 'init'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(readFileSync(join(dir, 'Enarx.toml'), 'utf8'), /kind = "stdin"/);
    const check = await runEnarx(['config', 'check', join(dir, 'Enarx.toml')]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /fd 0: stdin 'stdin'\nfd 1: stdout 'stdout'\nfd 2: stderr 'stderr'\n$/);
    const again = await runEnarx(['config', 'init'], { cwd: dir });
    assert.equal(again.code, 1);
    assertOneLine(again.stderr, /already exists/);
    const run = await runEnarx(['run', '--wasmcfgfile', join(dir, 'Enarx.toml'), ex('hello')]);
    assert.equal(run.code, 0, run.stderr);
  });
  test('check --json prints one JSON document', async () => {
    const cfg = join(work, 'json.toml');
    writeFileSync(cfg, '[[files]]\nkind = "listen"\nprot = "tcp"\nname = "web"\n');
    const r = await runEnarx(['config', 'check', '--json', cfg]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(doc.files, [{ kind: 'listen', name: 'web', prot: 'tcp', addr: '::', port: 80 }]);
    assert.deepEqual(doc.env, { FD_COUNT: '1', FD_NAMES: 'web' });
  });
  test('check names what to fix: the path, the key or the file', async () => {
    const badKey = join(work, 'bad-key.toml');
    writeFileSync(badKey, '[[files]]\nkind = "bogus"\n');
    const badToml = join(work, 'bad-toml.toml');
    writeFileSync(badToml, 'x =\n');
    const cases: [string, RegExp][] = [
      [join(work, 'missing.toml'), /no such file \(check the path\)$/],
      [badKey, /files\[0\]\.kind: .* \(fix files\[0\]\.kind\)$/],
      [badToml, /invalid TOML .* \(fix the file\)$/],
    ];
    for (const [file, expected] of cases) {
      const r = await runEnarx(['config', 'check', file]);
      assert.equal(r.code, 1, file);
      assert.equal(r.stdout, '');
      assertOneLine(r.stderr, expected);
    }
  });
});

describe('enarx run: logging', () => {
  test('--log-level info logs to stderr and leaves stdout to the guest', async () => {
    const r = await runEnarx(['run', '--log-level', 'info', ex('hello')]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'Hello, world!\n');
    assert.match(r.stderr, /^\[info\] running .*hello\.wasm in the (nil|process) Keep\n$/);
    const bad = await runEnarx(['run', '--log-level', 'loud', ex('hello')]);
    assert.equal(bad.code, 2);
  });
});
