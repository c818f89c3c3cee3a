import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import wabtInit from 'wabt';
import { runWorkload, WorkloadError, type WorkloadRequest } from '../../src/runtime/index.ts';
import { capMemory, MemoryCapError } from '../../src/runtime/memory-cap.ts';
import { FakeInput, FakeOutput } from '../helpers/fake-streams.ts';
import { REPO_ROOT } from '../helpers/paths.ts';

let wabt: Awaited<ReturnType<typeof wabtInit>>;
before(async () => {
  wabt = await wabtInit();
});
const wat = (src: string) => wabt.parseWat('t.wat', src).toBinary({ write_debug_names: true }).buffer as Uint8Array;
const example = (name: string) => new Uint8Array(readFileSync(join(REPO_ROOT, 'examples', `${name}.wasm`)));

function io(input?: FakeInput) {
  const stdin = input ?? new FakeInput();
  if (!input) stdin.end();
  const stdout = new FakeOutput();
  const stderr = new FakeOutput();
  return {
    stdout,
    stderr,
    descriptors: [
      { kind: 'input', name: 'stdin', stream: stdin },
      { kind: 'output', name: 'stdout', stream: stdout },
      { kind: 'output', name: 'stderr', stream: stderr },
    ] as WorkloadRequest['descriptors'],
  };
}

const GROW = (pages: number) => `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.add (memory.grow (i32.const ${pages})) (i32.const 1)))))`;

describe('linear memory cap', () => {
  test('memory.grow fails (-1) past the cap and succeeds under it', async () => {
    const over = await runWorkload({ module: wat(GROW(20)), args: ['g'], env: [], descriptors: [], limits: { maxMemoryBytes: 16 * 65536 } });
    assert.deepEqual(over, { kind: 'exit', code: 0 }, 'grow returned -1');
    const under = await runWorkload({ module: wat(GROW(10)), args: ['g'], env: [], descriptors: [], limits: { maxMemoryBytes: 16 * 65536 } });
    assert.deepEqual(under, { kind: 'exit', code: 2 }, 'grow returned the old size, 1');
  });
  test('the memory hog stops cleanly at the cap', async () => {
    const { stdout, descriptors } = io();
    const outcome = await runWorkload({ module: example('memhog'), args: ['memhog', '1000'], env: [], descriptors, limits: { maxMemoryBytes: 32 << 20 } });
    assert.deepEqual(outcome, { kind: 'exit', code: 3 });
    const got = Number(/allocated (\d+) MiB/.exec(stdout.text())?.[1]);
    assert.ok(got >= 25 && got < 32, `allocated ${got} MiB under a 32 MiB cap`);
  });
  test('a module that needs more than the cap at start is refused before it runs', async () => {
    const module = wat(`(module (memory (export "memory") 40) (func (export "_start")))`);
    await assert.rejects(runWorkload({ module, args: [], env: [], descriptors: [], limits: { maxMemoryBytes: 1 << 20 } }), (err: unknown) => {
      assert.ok(err instanceof WorkloadError);
      assert.match(err.message, /needs 2\.5 MiB of memory at start, above the limit of 1 MiB/);
      return true;
    });
  });
  // V8 caps each memory on its own: two memories under a 1 MiB limit could hold 2 MiB (measured
  // before this check: both grew to the cap).
  test('a module with two memories is refused under a memory limit, and runs without one', async () => {
    const src = `(module (memory $a (export "memory") 1) (memory $b 1)
      (func (export "_start") (if (i32.lt_s (i32.add (memory.grow $a (i32.const 15)) (memory.grow $b (i32.const 15))) (i32.const 2)) (then unreachable))))`;
    const module = wabt.parseWat('t.wat', src, { multi_memory: true } as object).toBinary({}).buffer as Uint8Array;
    await assert.rejects(runWorkload({ module, args: [], env: [], descriptors: [], limits: { maxMemoryBytes: 16 * 65536 } }), (err: unknown) => {
      assert.ok(err instanceof WorkloadError);
      assert.match(err.message, /defines 2 linear memories, and a memory limit caps one/);
      return true;
    });
    assert.deepEqual(await runWorkload({ module, args: [], env: [], descriptors: [] }), { kind: 'exit', code: 0 }, 'positive control: it runs, and grows both');
  });
  test('an existing smaller maximum is kept', () => {
    const module = wat(`(module (memory (export "memory") 1 3) (func (export "_start")))`);
    const capped = new WebAssembly.Module(capMemory(module, 100) as Uint8Array<ArrayBuffer>);
    const inst = new WebAssembly.Instance(capped, {});
    const mem = inst.exports.memory as WebAssembly.Memory;
    assert.throws(() => mem.grow(3));
    mem.grow(2);
  });
  test('property: capMemory never crashes on arbitrary bytes, and keeps valid modules valid', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 70000 }), (bytes, pages) => {
      const withHeader = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...bytes]);
      try {
        capMemory(withHeader, pages);
      } catch (err) {
        assert.ok(err instanceof MemoryCapError, String(err));
      }
    }), { numRuns: 1000 });
    const hello = example('hello');
    const capped = capMemory(hello, 64);
    assert.ok(WebAssembly.validate(capped as Uint8Array<ArrayBuffer>));
    assert.notDeepEqual(capped, hello);
  });
});

describe('running a module', () => {
  test('stdout, argv and proc_exit', async () => {
    const { stdout, descriptors } = io();
    assert.deepEqual(await runWorkload({ module: example('hello'), args: ['hello'], env: [], descriptors }), { kind: 'exit', code: 0 });
    assert.equal(stdout.text(), 'Hello, world!\n');
    assert.deepEqual(await runWorkload({ module: example('exitcode'), args: ['x', '9'], env: [], descriptors }), { kind: 'exit', code: 9 });
  });
  test('a guest waiting for stdin does not block the event loop (JSPI)', async () => {
    const stdin = new FakeInput();
    const { stdout, descriptors } = io(stdin);
    const run = runWorkload({ module: example('rot13'), args: ['rot13'], env: [], descriptors });
    let turns = 0;
    for (const word of ['Hello', ' ', 'World']) {
      await new Promise((r) => setTimeout(r, 5));
      turns++;
      stdin.push(word);
    }
    stdin.end();
    assert.deepEqual(await run, { kind: 'exit', code: 0 });
    assert.equal(turns, 3);
    assert.equal(stdout.text(), 'Uryyb Jbeyq');
  });
  test('traps: divide by zero, unreachable in the start function, stack overflow', async () => {
    const { descriptors } = io();
    const t = await runWorkload({ module: example('trap'), args: ['trap'], env: [], descriptors });
    assert.equal(t.kind, 'trap');
    assert.match((t as { message: string }).message, /^wasm trap: divide by zero in function 'divide'$/);
    const startTrap = await runWorkload({ module: wat(`(module (memory (export "memory") 1) (func $s unreachable) (start $s) (func (export "_start")))`), args: [], env: [], descriptors: [] });
    assert.deepEqual(startTrap, { kind: 'trap', message: "wasm trap: unreachable in function 's'" });
    const deep = await runWorkload({ module: wat(`(module (memory (export "memory") 1) (func $f (call $f)) (func (export "_start") (call $f)))`), args: [], env: [], descriptors: [] });
    assert.deepEqual(deep, { kind: 'trap', message: 'wasm trap: call stack exhausted' });
  });
  test("a trap in a function whose name (the guest's text) holds terminal escapes is reported with them escaped", async () => {
    const module = wat(`(module (memory (export "memory") 1) (func $QQQQQQQQQQQQ unreachable) (func (export "_start") (call $QQQQQQQQQQQQ)))`);
    // The name section is the guest's: an OSC title sequence, 12 bytes as the placeholder.
    module.set(new TextEncoder().encode('\u001b]0;pwned\u0007xx'), Buffer.from(module).indexOf('QQQQQQQQQQQQ'));
    const t = await runWorkload({ module, args: [], env: [], descriptors: [] });
    assert.deepEqual(t, { kind: 'trap', message: "wasm trap: unreachable in function '\\u001b]0;pwned\\u0007xx'" });
  });
  test('aborting a waiting guest ends the run with its reason', async () => {
    const stdin = new FakeInput();
    const { descriptors } = io(stdin);
    const controller = new AbortController();
    const run = runWorkload({ module: example('rot13'), args: ['rot13'], env: [], descriptors, signal: controller.signal });
    setTimeout(() => controller.abort('wall-time limit 1s'), 10);
    assert.deepEqual(await run, { kind: 'aborted', reason: 'wall-time limit 1s' });
  });
  test('the descriptor limit covers the configured descriptors', async () => {
    const { descriptors } = io();
    await assert.rejects(runWorkload({ module: example('hello'), args: [], env: [], descriptors, limits: { maxDescriptors: 2 } }), /3 descriptors configured, above the limit of 2/);
  });
  test('bad modules are WorkloadErrors before anything runs', async () => {
    const bad: [Uint8Array, RegExp][] = [
      [new TextEncoder().encode('hello'), /not a WebAssembly module/],
      [example('hello').subarray(0, 100), /invalid WebAssembly module/],
      [wat(`(module (import "env" "f" (func)) (memory (export "memory") 1) (func (export "_start")))`), /imports function 'env\.f'/],
      [wat(`(module (import "wasi_snapshot_preview1" "memory" (memory 1)) (func (export "_start")))`), /imports memory/],
      [wat(`(module (func (export "_start")))`), /exports no 'memory'/],
      [wat(`(module (memory (export "memory") 1))`), /no '_start'/],
    ];
    for (const [module, pattern] of bad) {
      await assert.rejects(runWorkload({ module, args: [], env: [], descriptors: [] }), (err: unknown) => err instanceof WorkloadError && pattern.test(err.message));
    }
  });
});
