// Runs the public wasi-testsuite (https://github.com/WebAssembly/wasi-testsuite, prebuilt
// preview1 binaries from its prod/testsuite-all branch) against `enarx run`, as the suite's own
// adapters do: each test's .json gives args, env, preopened dirs, the exit code and the expected
// start of stdout/stderr. Nothing of the suite is in this repository; name a checkout:
//
//   node scripts/wasi-testsuite.ts [--backend nil|process]... [--filter TEXT] [--jobs N] [--json] [--verbose] SUITE_DIR
//
// SUITE_DIR is the suite's root (its tests/*/testsuite/wasm32-wasip1 folders are found) or one
// folder of .wasm files. Each test runs on a fresh copy of its directories, so runs do not
// interfere. Prints one line per failure and a count per backend (or one JSON document with
// --json); exits 1 if any test failed.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LAUNCHER_FLAGS } from '../test/helpers/cli.ts';

const ENARX = resolve(import.meta.dirname, '..', 'bin', 'enarx.js');
const TIMEOUT_MS = 60_000;

interface Expectation {
  args: string[];
  env: Record<string, string>;
  dirs: string[];
  /** The newer specs' `root`: a directory preopened as the guest's `/`. */
  root?: string;
  exitCode: number;
  stdout?: string;
  stderr?: string;
}

interface TestCase {
  suite: string;
  name: string;
  wasm: string;
  expect: Expectation | { unsupported: string };
}

interface Outcome {
  backend: string;
  suite: string;
  name: string;
  status: 'pass' | 'fail' | 'skip';
  reason?: string;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    backend: { type: 'string', multiple: true },
    filter: { type: 'string' },
    jobs: { type: 'string', default: '2' },
    json: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
});
if (positionals.length !== 1) {
  process.stderr.write('usage: node scripts/wasi-testsuite.ts [--backend nil|process]... [--filter TEXT] [--jobs N] [--json] SUITE_DIR\n');
  process.exit(2);
}
const backends = values.backend ?? ['nil', 'process'];
const jobs = Math.max(1, Number(values.jobs) || 1);
const cases = findSuites(resolve(positionals[0]!)).flatMap(loadSuite).filter((c) => !values.filter || `${c.suite}/${c.name}`.includes(values.filter));
if (cases.length === 0) {
  process.stderr.write(`no tests found under ${positionals[0]} (expected folders of .wasm files, e.g. tests/c/testsuite/wasm32-wasip1)\n`);
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'enarx-wasi-testsuite-'));
const outcomes: Outcome[] = [];
try {
  const queue = backends.flatMap((backend) => cases.map((c) => ({ backend, c })));
  let done = 0;
  await Promise.all(Array.from({ length: jobs }, async () => {
    for (let item = queue.shift(); item; item = queue.shift()) {
      const outcome = await runCase(item.backend, item.c);
      outcomes.push(outcome);
      done++;
      if (values.verbose || outcome.status === 'fail') {
        process.stderr.write(`${outcome.status.toUpperCase()} ${outcome.backend} ${outcome.suite}/${outcome.name}${outcome.reason ? `: ${outcome.reason}` : ''}\n`);
      } else if (process.stderr.isTTY) {
        process.stderr.write(`\r${done}/${backends.length * cases.length}`);
      }
    }
  }));
} finally {
  rmSync(work, { recursive: true, force: true });
}
if (process.stderr.isTTY && !values.verbose) process.stderr.write('\r');

const summary = backends.map((backend) => {
  const mine = outcomes.filter((o) => o.backend === backend);
  const failed = mine.filter((o) => o.status === 'fail').map((o) => `${o.suite}/${o.name}`).sort();
  const skipped = mine.filter((o) => o.status === 'skip').map((o) => `${o.suite}/${o.name}`).sort();
  return { backend, passed: mine.filter((o) => o.status === 'pass').length, total: mine.length, failed, skipped };
});
if (values.json) {
  process.stdout.write(`${JSON.stringify({ summary, outcomes }, null, 2)}\n`);
} else {
  for (const s of summary) {
    process.stdout.write(`${s.backend}: ${s.passed}/${s.total} passed${s.skipped.length ? `, ${s.skipped.length} skipped` : ''}\n`);
    for (const f of s.failed) process.stdout.write(`  failed: ${f}\n`);
  }
}
process.exitCode = summary.some((s) => s.failed.length > 0) ? 1 : 0;

/** Folders holding .wasm tests: the one given, or every tests/<lang>/testsuite/wasm32-wasip1 below it. */
function findSuites(root: string): string[] {
  if (readdirSync(root).some((f) => f.endsWith('.wasm'))) return [root];
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.') || entry.name.endsWith('.dir')) continue;
      const path = join(dir, entry.name);
      if (entry.name === 'wasm32-wasip1' && basename(dirname(path)) === 'testsuite') found.push(path);
      else if (depth < 4) walk(path, depth + 1);
    }
  };
  walk(root, 0);
  return found.sort();
}

function loadSuite(dir: string): TestCase[] {
  const suite = basename(dirname(dirname(dir))) || basename(dir);
  return readdirSync(dir).filter((f) => f.endsWith('.wasm')).sort().map((f) => {
    const name = f.slice(0, -'.wasm'.length);
    const spec = join(dir, `${name}.json`);
    return { suite, name, wasm: join(dir, f), expect: existsSync(spec) ? parseSpec(JSON.parse(readFileSync(spec, 'utf8'))) : defaults() };
  });
}

function defaults(): Expectation {
  return { args: [], env: {}, dirs: [], exitCode: 0 };
}

/** The legacy spec, or an operations list made only of run, read and wait (CLI tests). */
function parseSpec(json: Record<string, unknown>): TestCase['expect'] {
  const e = defaults();
  if (!Array.isArray(json.operations)) {
    return {
      args: (json.args as string[] | undefined) ?? [],
      env: (json.env as Record<string, string> | undefined) ?? {},
      dirs: (json.dirs as string[] | undefined) ?? [],
      ...(typeof json.root === 'string' ? { root: json.root } : {}),
      exitCode: (json.exit_code as number | undefined) ?? 0,
      ...(typeof json.stdout === 'string' ? { stdout: json.stdout } : {}),
      ...(typeof json.stderr === 'string' ? { stderr: json.stderr } : {}),
    };
  }
  if (Array.isArray(json.proposals) && json.proposals.length > 0) return { unsupported: `needs proposals ${json.proposals.join(', ')}` };
  for (const op of json.operations as Record<string, unknown>[]) {
    switch (op.type) {
      case 'run':
        e.args = (op.args as string[] | undefined) ?? [];
        e.env = (op.env as Record<string, string> | undefined) ?? {};
        e.dirs = (op.dirs as string[] | undefined) ?? [];
        if (typeof op.root === 'string') e.root = op.root;
        break;
      case 'read':
        if ((op.id ?? 'stdout') === 'stdout') e.stdout = (e.stdout ?? '') + String(op.payload ?? '');
        else e.stderr = (e.stderr ?? '') + String(op.payload ?? '');
        break;
      case 'wait':
        e.exitCode = (op.exit_code as number | undefined) ?? 0;
        break;
      default:
        return { unsupported: `operation '${String(op.type)}'` };
    }
  }
  return e;
}

async function runCase(backend: string, c: TestCase): Promise<Outcome> {
  const base = { backend, suite: c.suite, name: c.name };
  if ('unsupported' in c.expect) return { ...base, status: 'skip', reason: c.expect.unsupported };
  const e = c.expect;
  const cwd = mkdtempSync(join(work, `${backend}-${c.name}-`));
  try {
    const argv = ['run', '--backend', backend];
    const preopens: [string, string][] = e.dirs.map((d) => [d, d]);
    if (e.root !== undefined) preopens.push([e.root, '/']);
    for (const [d, guest] of preopens) {
      // A fresh copy per run, without the .cleanup leftovers of earlier runs of the real suite.
      cpSync(join(dirname(c.wasm), d), join(cwd, d), {
        recursive: true,
        verbatimSymlinks: true,
        filter: (src) => !src.endsWith('.cleanup'),
      });
      argv.push('--dir', `${join(cwd, d)}::${guest}`);
    }
    for (const [k, v] of Object.entries(e.env)) argv.push('--env', `${k}=${v}`);
    argv.push(c.wasm, ...e.args);
    const r = await run(argv, cwd);
    const problems: string[] = [];
    if (r.code !== e.exitCode) problems.push(`exit ${r.code ?? r.signal}, expected ${e.exitCode}`);
    if (e.stdout !== undefined && !r.stdout.startsWith(e.stdout)) problems.push(`stdout ${JSON.stringify(r.stdout.slice(0, 200))}, expected ${JSON.stringify(e.stdout)}`);
    if (e.stderr !== undefined && !r.stderr.startsWith(e.stderr)) problems.push(`stderr does not start with ${JSON.stringify(e.stderr)}`);
    if (problems.length === 0) return { ...base, status: 'pass' };
    const detail = r.stderr.trim().split('\n').slice(-3).join(' | ');
    return { ...base, status: 'fail', reason: `${problems.join('; ')}${detail ? ` [stderr: ${detail.slice(0, 400)}]` : ''}` };
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

function run(argv: string[], cwd: string): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const env = { ...process.env };
    delete env.ENARX_BACKEND;
    delete env.ENARX_WASMCFGFILE;
    // As `npx enarx` runs it: with the launcher's shebang flags.
    const child = spawn(process.execPath, [...LAUNCHER_FLAGS, ENARX, ...argv], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.on('error', () => {});
    child.stdin.end();
  });
}

