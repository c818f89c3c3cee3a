// The runtime against its peers, measured side by side and interleaved in this run:
//   - `enarx run hello.wasm`, end to end, against a node:wasi script doing the same;
//   - stdout throughput and file write/read throughput (examples/iobench.wasm), against node:wasi;
//   - CPU kernels (examples/kernels.c) built natively with clang -O2, against kernels.wasm under
//     `enarx run`: end to end, and the kernel's own time (CLOCK_MONOTONIC inside the program).
// enarx is started as bin/enarx.js through its shebang; npm's bin, bin/enarx, execs the same Node with the
// same flags for a nil-Keep run.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ENARX_BIN, REPO_ROOT } from '../test/helpers/paths.ts';

const work = mkdtempSync(join(tmpdir(), 'enarx-bench-'));
const ex = (name: string) => join(REPO_ROOT, 'examples', `${name}.wasm`);
// The nil Keep: this measures the runtime itself (the process Keep has bench/sallyport.bench.ts).
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}`, ENARX_BACKEND: 'nil' };
const quick = process.env.BENCH_QUICK === '1';
// BENCH_PARTS=hello,stdout,files,kernels runs only those parts.
const parts = new Set((process.env.BENCH_PARTS ?? 'hello,stdout,files,kernels').split(','));

// A node:wasi runner doing what `enarx run` does: read, compile, instantiate, start.
const nodeWasi = join(work, 'node-wasi.mjs');
writeFileSync(nodeWasi, `import { WASI } from 'node:wasi';
import { readFileSync } from 'node:fs';
const [module, ...rest] = process.argv.slice(2);
const dirs = {};
if (process.env.PREOPEN) dirs['/data'] = process.env.PREOPEN;
const wasi = new WASI({ version: 'preview1', args: [module, ...rest], env: {}, preopens: dirs, returnOnExit: true });
const m = new WebAssembly.Module(readFileSync(module));
const code = wasi.start(new WebAssembly.Instance(m, wasi.getImportObject()));
process.exitCode = code;
`);

interface Run {
  ms: number;
  bytes: number;
  stdout: string;
}

/** Runs a command, draining its stdout (counting bytes, keeping the first 4 KiB). */
function run(cmd: string, args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let bytes = 0;
    let head = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      bytes += c.length;
      if (head.length < 4096) head += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.trim()}`));
      else resolve({ ms: performance.now() - t0, bytes, stdout: head });
    });
  });
}

const enarx = (args: string[], extraEnv?: Record<string, string>) => run(ENARX_BIN, ['run', ...args], extraEnv);
const wasi = (args: string[], extraEnv?: Record<string, string>) =>
  run(process.execPath, ['--no-warnings', nodeWasi, ...args], extraEnv);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const geomean = (xs: number[]) => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
const fmt = (x: number, digits = 1) => x.toFixed(digits);

/** Interleaves the contenders round by round, so that machine noise hits both alike. */
async function compare(rounds: number, contenders: Record<string, () => Promise<Run>>): Promise<Record<string, number>> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (const fn of Object.values(contenders)) await fn(); // warm-up: compile caches, page cache
  for (let r = 0; r < rounds; r++) {
    for (const [name, fn] of Object.entries(contenders)) times[name]!.push((await fn()).ms);
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}

const rounds = quick ? 3 : 11;
process.stdout.write(`(medians of ${rounds} interleaved rounds; ratios < 1 favour enarx unless said otherwise)\n\n`);

// 1. hello, end to end
if (parts.has('hello')) {
  const t = await compare(rounds, { enarx: () => enarx([ex('hello')]), 'node:wasi': () => wasi([ex('hello')]) });
  process.stdout.write(`hello, end to end: enarx ${fmt(t.enarx!)} ms, node:wasi ${fmt(t['node:wasi']!)} ms, ` +
    `ratio ${fmt(t.enarx! / t['node:wasi']!, 2)}x (target <= 1.2x)\n`);
}

// 2. stdout throughput
if (parts.has('stdout')) {
  const mib = quick ? 64 : 512;
  const t = await compare(Math.max(3, rounds >> 1), {
    enarx: () => enarx([ex('iobench'), 'stdout', String(mib)]),
    'node:wasi': () => wasi([ex('iobench'), 'stdout', String(mib)]),
  });
  const rate = (ms: number) => mib / (ms / 1000);
  process.stdout.write(`stdout, ${mib} MiB through a pipe: enarx ${fmt(rate(t.enarx!), 0)} MiB/s, node:wasi ${fmt(rate(t['node:wasi']!), 0)} MiB/s, ` +
    `throughput ratio ${fmt(t['node:wasi']! / t.enarx!, 2)}x (target >= 1x)\n`);
}

// 3. file write and read throughput in a preopened directory
if (parts.has('files')) {
  const mib = quick ? 64 : 512;
  const dir = join(work, 'io');
  rmSync(dir, { recursive: true, force: true });
  spawnSync('mkdir', [dir]);
  for (const op of ['write', 'read'] as const) {
    const t = await compare(Math.max(3, rounds >> 1), {
      enarx: () => enarx(['--dir', `${dir}::/data`, ex('iobench'), op, '/data', String(mib)]),
      'node:wasi': () => wasi([ex('iobench'), op, '/data', String(mib)], { PREOPEN: dir }),
    });
    const rate = (ms: number) => mib / (ms / 1000);
    process.stdout.write(`file ${op}, ${mib} MiB: enarx ${fmt(rate(t.enarx!), 0)} MiB/s, node:wasi ${fmt(rate(t['node:wasi']!), 0)} MiB/s, ` +
      `throughput ratio ${fmt(t['node:wasi']! / t.enarx!, 2)}x (target >= 1x)\n`);
  }
}

// 4. CPU kernels: native C against wasm under enarx run
if (parts.has('kernels')) {
  const native = join(work, 'kernels-native');
  const cc = spawnSync('clang', ['-O2', '-o', native, join(REPO_ROOT, 'examples', 'src', 'kernels.c')], { encoding: 'utf8' });
  if (cc.status !== 0) {
    process.stdout.write(`CPU kernels: skipped, clang is not available to build the native side (${(cc.stderr || cc.error?.message || '').trim()})\n`);
  } else {
    const kernelMs = (out: string) => Number(/ ([\d.]+) ms\n/.exec(out)?.[1]);
    const wall: number[] = [];
    const inner: number[] = [];
    process.stdout.write('CPU kernels (wall: whole process; kernel: time inside the program):\n');
    // Repetitions chosen so that each kernel runs 1-2 s natively: start-up stays a small part.
    const repeats: Record<string, number> = { sieve: 2, matmul: 16, mandelbrot: 10, crc32: 5, fib: 30 };
    for (const [k, times] of Object.entries(repeats)) {
      const reps = String(quick ? Math.max(1, times >> 2) : times);
      const n: Run[] = [];
      const w: Run[] = [];
      for (let i = 0; i < (quick ? 1 : 3); i++) {
        n.push(await run(native, [k, reps]));
        w.push(await enarx([ex('kernels'), k, reps]));
      }
      const [nWall, wWall] = [median(n.map((r) => r.ms)), median(w.map((r) => r.ms))];
      const [nIn, wIn] = [median(n.map((r) => kernelMs(r.stdout))), median(w.map((r) => kernelMs(r.stdout)))];
      if (n[0]!.stdout.split(' ')[1] !== w[0]!.stdout.split(' ')[1]) throw new Error(`${k}: native and wasm disagree`);
      wall.push(wWall / nWall);
      inner.push(wIn / nIn);
      process.stdout.write(`  ${k.padEnd(10)} native ${fmt(nWall, 0).padStart(5)} ms, enarx ${fmt(wWall, 0).padStart(5)} ms: wall ${fmt(wWall / nWall, 2)}x, kernel ${fmt(wIn / nIn, 2)}x\n`);
    }
    process.stdout.write(`  geometric mean: wall ${fmt(geomean(wall), 2)}x, kernel ${fmt(geomean(inner), 2)}x (target <= 1.3x)\n`);
  }
}

rmSync(work, { recursive: true, force: true });
