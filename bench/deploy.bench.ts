// Time from `enarx deploy` to the guest's exit for a small signed package (examples/catpkg.wasm
// and a data file) on loopback, against the peers measured side by side in the same rounds:
// `enarx run` of the same module (no registry, no attestation) and `enarx run --steward` (one
// attestation). A registry deploy with a Steward attests twice (fetch and workload certificates)
// and fetches the tag and every node over mutual TLS inside the Keep; the phase split comes from
// when each `deploy:` progress line reaches the host. Steward and Drawbridge are `enarx ... serve`
// child processes with software evidence from a local test root. Medians of BENCH_ROUNDS rounds.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { buildTree, DrawbridgeClient, signTagEntry } from '../src/drawbridge/index.ts';
import { ENARX_BIN, REPO_ROOT } from '../test/helpers/paths.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const children: ChildProcess[] = [];

function serve(args: string[]): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, [ENARX_BIN, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      if (out.trim().endsWith('}')) resolve(JSON.parse(out) as Record<string, unknown>);
    });
    child.on('close', (code) => reject(new Error(`enarx ${args.slice(0, 2).join(' ')} exited with ${code}`)));
  });
}

/** Runs enarx; returns the wall time and when each stderr line matching a mark arrived (ms from start). */
function timed(args: string[], env: NodeJS.ProcessEnv, marks: RegExp[] = [], okCodes = [0]): Promise<{ ms: number; at: number[] }> {
  const start = performance.now();
  const child = spawn(process.execPath, [ENARX_BIN, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const at = marks.map(() => NaN);
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err += c;
    marks.forEach((m, i) => {
      if (Number.isNaN(at[i]) && m.test(err)) at[i] = performance.now() - start;
    });
  });
  return new Promise((resolve, reject) =>
    child.on('close', (code) => (okCodes.includes(code ?? -1) ? resolve({ ms: performance.now() - start, at }) : reject(new Error(`enarx ${args[0]} failed (${code}): ${err}`)))),
  );
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'enarx-deploy-bench-'));
  try {
    const env = { XDG_CONFIG_HOME: join(dir, 'config'), ENARX_LOG: '' };
    await timed(['platform', 'test-root', 'create', '--dir', join(dir, 'root')], env);
    const steward = await serve(['steward', 'serve', '--port', '0', '--data-dir', join(dir, 'ca'), '--san', 'IP:127.0.0.1', '--trust-test-root', join(dir, 'root', 'ark.pem'), '--json']);
    const stewardCa = String((steward.ca as { path: string }).path);
    const db = await serve(['drawbridge', 'serve', '--addr', '127.0.0.1:0', '--store', join(dir, 'db'), '--ca', stewardCa, '--json']);
    const registryCa = String((db.tls as { localCa: string }).localCa);
    const token = spawn(process.execPath, [ENARX_BIN, 'drawbridge', 'token', '--store', join(dir, 'db'), 'alice'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let jwt = '';
    token.stdout.on('data', (c: Buffer) => (jwt += c));
    await new Promise((r) => token.on('close', r));

    const pkg = join(dir, 'pkg');
    await mkdir(join(pkg, 'data'), { recursive: true });
    await copyFile(join(REPO_ROOT, 'examples', 'catpkg.wasm'), join(pkg, 'main.wasm'));
    await writeFile(join(pkg, 'Enarx.toml'), 'args = ["data/greeting.txt"]\n');
    await writeFile(join(pkg, 'data', 'greeting.txt'), 'hello\n');
    const signer = await exportJWK((await generateKeyPair('ES256', { extractable: true })).privateKey);
    const pub = { kty: signer.kty, crv: signer.crv, x: signer.x, y: signer.y } as JWK;
    await writeFile(join(dir, 'signer.pub.jwk'), JSON.stringify(pub));
    const client = new DrawbridgeClient({ url: String(db.url), ca: await readFile(registryCa, 'utf8'), token: jwt.trim() });
    const at = { user: 'alice', repo: 'pkg', tag: '1.0.0' };
    await client.putUser('alice', { subject: 'alice' });
    await client.putRepository('alice', 'pkg', { public: true });
    await client.publish(at, await buildTree(pkg), { sign: (root) => signTagEntry(root, at, signer) });
    client.close();

    const ref = `${new URL(String(db.url)).host}/alice/pkg:1.0.0`;
    const attest = ['--steward', String(steward.url), '--software-evidence', join(dir, 'root')];
    const registry = ['--drawbridge-ca', registryCa, '--trust-key', join(dir, 'signer.pub.jwk')];
    const module = join(pkg, 'main.wasm');
    const phases = [/issued the fetch certificate/, /verified \/main\.wasm/, /the Steward certified workload/];
    // enarx run has no read-only --dir: the peers get a copy, where catpkg's write probe succeeds (exit 3).
    const copy = join(dir, 'run-copy');
    await mkdir(join(copy, 'data'), { recursive: true });
    await copyFile(join(pkg, 'data', 'greeting.txt'), join(copy, 'data', 'greeting.txt'));
    const runs: Record<string, { args: string[]; marks?: RegExp[]; ok?: number[] }> = {
      'run (peer)': { args: ['run', '--backend', 'process', '--dir', `${copy}::/package`, module, 'data/greeting.txt'], ok: [3] },
      'deploy DIR': { args: ['deploy', pkg] },
      'run --steward (peer)': { args: ['run', '--backend', 'process', ...attest, '--dir', `${copy}::/package`, module, 'data/greeting.txt'], ok: [3] },
      'deploy REF (no Steward)': { args: ['deploy', ...registry, ref] },
      'deploy REF --steward': { args: ['deploy', ...attest, ...registry, ref], marks: phases },
    };
    const times: Record<string, number[]> = {};
    const phaseTimes: number[][] = phases.map(() => []);
    await timed(runs['deploy REF --steward']!.args, env); // warm the Keep bundle and the servers
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, r] of Object.entries(runs)) {
        const t = await timed(r.args, env, r.marks, r.ok);
        (times[name] ??= []).push(t.ms);
        if (r.marks) t.at.forEach((x, i) => phaseTimes[i]!.push(x));
      }
    }
    const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
    const base = m['run (peer)']!;
    process.stdout.write(`medians of ${ROUNDS} rounds, wall time from spawn to exit (catpkg, ${(await readFile(module)).length} bytes, and a data file)\n`);
    for (const [name, ms] of Object.entries(m)) process.stdout.write(`  ${name.padEnd(26)} ${ms.toFixed(0).padStart(6)} ms  ${(ms / base).toFixed(2)}x run\n`);
    const full = m['deploy REF --steward']!;
    process.stdout.write(`  deploy REF --steward / run --steward: ${(full / m['run --steward (peer)']!).toFixed(2)}x\n`);
    const [fetchCert, fetched, workload] = phaseTimes.map(median) as [number, number, number];
    process.stdout.write(
      `where deploy REF --steward spends its time (median arrival of each step at the host):\n` +
        `  start + fetch certificate   ${fetchCert.toFixed(0).padStart(6)} ms\n` +
        `  fetch and verify (mTLS)     ${(fetched - fetchCert).toFixed(0).padStart(6)} ms\n` +
        `  workload certificate        ${(workload - fetched).toFixed(0).padStart(6)} ms\n` +
        `  run and exit                ${(full - workload).toFixed(0).padStart(6)} ms\n`,
    );
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
