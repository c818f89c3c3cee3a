// Attested Keep identity: time from `enarx run` to the first byte a TLS client gets back from the
// echo workload, for a process Keep certified by a local Steward (software SNP evidence, test root)
// against the same Keep with its self-signed certificate (no Steward), side by side in one run;
// and where the attested Keep's time goes, from the phases the Keep logs at debug level.
//
// Phase boundaries are the moments the Keep's debug lines reach this process on enarx's stderr
// (relayed by the host over the sallyport, then a pipe: well under a millisecond on an idle machine).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:tls';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const ENARX = join(ROOT, 'bin', 'enarx.js');
const ECHO = join(ROOT, 'examples', 'echo-server.wasm');
const ROUNDS = Number(process.env.ROUNDS ?? 9);

const dir = mkdtempSync(join(tmpdir(), 'enarx-identity-bench-'));
const children: ChildProcess[] = [];
const config = join(dir, 'echo.toml');
writeFileSync(config, '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n[[files]]\nname = "ingest"\nkind = "listen"\nprot = "tls"\naddr = "127.0.0.1"\nport = 0\n');

/** Marks on enarx's stderr, in the order they appear, and the phase each one ends. */
const MARKS: [RegExp, string][] = [
  [/running .* in the process Keep/, 'enarx start (CLI, config, backend choice)'],
  [/keep: started/, 'Keep start (evidence source, spawn, Node, bundle, module)'],
  [/keep: identity: keygen/, ''],
  [/keep: identity: evidence/, 'keygen'],
  [/keep: identity: csr/, 'evidence'],
  [/keep: identity: steward/, 'CSR'],
  [/keep: the Steward at .* certified this Keep/, 'Steward round trip'],
];

function run(cmd: string[], onLine: (line: string, at: number) => void): ChildProcess {
  const child = spawn(process.execPath, [ENARX, ...cmd], { cwd: ROOT, stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, ENARX_LOG: 'debug' } });
  children.push(child);
  let buffered = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    const at = performance.now();
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) onLine(line, at);
  });
  return child;
}

/** One Keep: start it, connect as soon as its port is known, and time the first echoed byte. */
function once(attested: { url: string; ca: string; root: string } | null): Promise<{ total: number; phases: Map<string, number> }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const args = ['run', '--backend', 'process', ...(attested ? ['--steward', attested.url, '--software-evidence', attested.root] : []), '--wasmcfgfile', config, ECHO];
    const seen = new Map<RegExp, number>();
    let stderr = '';
    const keep = run(args, (line, at) => {
      stderr += `${line}\n`;
      for (const [re] of MARKS) if (!seen.has(re) && re.test(line)) seen.set(re, at);
      const port = /listen file 'ingest' is bound to \S+ port (\d+)/.exec(line)?.[1];
      if (port) client(Number(port));
    });
    keep.on('close', (code) => reject(new Error(`the Keep ended (${code}) before answering:\n${stderr}`)));
    const client = (port: number) => {
      const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ...(attested ? { ca: attested.ca } : { rejectUnauthorized: false }) }, () => socket.write('x\n'));
      socket.once('data', () => {
        const firstByte = performance.now();
        socket.destroy();
        keep.removeAllListeners('close');
        keep.kill('SIGTERM');
        const phases = new Map<string, number>();
        let previous = started;
        for (const [re, name] of MARKS) {
          const at = seen.get(re);
          if (at === undefined) continue;
          if (name) phases.set(name, at - previous);
          previous = at;
        }
        phases.set(attested ? 'TLS ready (fds, compile, accept, handshake, echo)' : 'to the echo (key, fds, compile, accept, handshake)', firstByte - previous);
        keep.once('close', () => resolve({ total: firstByte - started, phases }));
      });
      socket.once('error', reject);
    };
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const root = join(dir, 'root');
  await new Promise<void>((resolve, reject) => run(['platform', 'test-root', 'create', '--dir', root], () => {}).on('close', (c) => (c === 0 ? resolve() : reject(new Error('test-root create failed')))));
  const url = await new Promise<{ url: string; ca: string }>((resolve, reject) => {
    const s = spawn(process.execPath, [ENARX, 'steward', 'serve', '--port', '0', '--data-dir', join(dir, 'steward'), '--san', 'localhost', '--trust-test-root', join(root, 'ark.pem'), '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(s);
    let out = '';
    s.stdout.on('data', (c: Buffer) => {
      out += c;
      if (out.trim().endsWith('}')) {
        const doc = JSON.parse(out) as { url: string; ca: { path: string } };
        resolve({ url: doc.url, ca: readFileSync(doc.ca.path, 'utf8') });
      }
    });
    s.on('close', () => reject(new Error('the Steward did not start')));
  });
  const attested = { ...url, root };
  // Warm up both paths once: the Keep bundle build and Node's compile cache are one-off costs.
  await once(null);
  await once(attested);
  const plain: number[] = [];
  const certified: number[] = [];
  const phases = new Map<string, number[]>();
  const plainPhases = new Map<string, number[]>();
  for (let i = 0; i < ROUNDS; i++) {
    const a = await once(null);
    const b = await once(attested);
    plain.push(a.total);
    certified.push(b.total);
    for (const [k, v] of b.phases) phases.set(k, [...(phases.get(k) ?? []), v]);
    for (const [k, v] of a.phases) plainPhases.set(k, [...(plainPhases.get(k) ?? []), v]);
    process.stderr.write(`round ${i + 1}/${ROUNDS}: self-signed ${a.total.toFixed(0)} ms, attested ${b.total.toFixed(0)} ms\n`);
  }
  const p = median(plain);
  const c = median(certified);
  const ratios = plain.map((x, i) => certified[i]! / x);
  process.stdout.write(`enarx run -> first echoed TLS byte, median of ${ROUNDS} interleaved rounds\n`);
  process.stdout.write(`${'self-signed (no Steward)'.padEnd(48)} ${p.toFixed(1).padStart(8)} ms\n`);
  process.stdout.write(`${'attested (software SNP evidence, local Steward)'.padEnd(48)} ${c.toFixed(1).padStart(8)} ms\n`);
  process.stdout.write(`${'attested / self-signed'.padEnd(48)} ${(c / p).toFixed(2).padStart(8)}x (median of per-round ratios ${median(ratios).toFixed(2)}x; +${(c - p).toFixed(1)} ms)\n\n`);
  const table = (title: string, m: Map<string, number[]>, total: number) => {
    process.stdout.write(`${title}\n${'phase'.padEnd(52)} ${'median ms'.padStart(10)} ${'share'.padStart(7)}\n`);
    for (const [k, v] of m) process.stdout.write(`${k.padEnd(52)} ${median(v).toFixed(1).padStart(10)} ${`${((median(v) / total) * 100).toFixed(0)}%`.padStart(7)}\n`);
    process.stdout.write('\n');
  };
  table('attested Keep, where the time goes', phases, c);
  table('self-signed Keep, for comparison', plainPhases, p);
}

try {
  await main();
} finally {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
