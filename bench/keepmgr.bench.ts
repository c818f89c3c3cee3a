// Keep manager: Keeps handed out per second from the warm pool against cold starts (same daemon,
// alternating rounds); create-to-first-byte of a provisioned hello (attested with software SNP
// evidence, and unattested) against a bare `node` process printing one byte; memory of an idle
// Keep against a bare idle `node` process. Everything runs side by side in this one run.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, KeepmgrClient, attestKeep, provisionKeep, libraryVerifier, openSession, type Daemon } from '../src/keepmgr/index.ts';
import { REPO_ROOT } from '../test/helpers/paths.ts';

const hello = readFileSync(join(REPO_ROOT, 'test', 'keepmgr', 'wasm', 'hello.wasm'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
const pss = (pid: number) => Number(/Pss:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) / 1024;
const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

const dir = mkdtempSync(join(tmpdir(), 'keepmgr-bench-'));
const POOL = 8;
let daemon: Daemon | undefined;
try {
  daemon = await startDaemon({ dataDir: dir, listen: '127.0.0.1:0', poolSize: POOL, maxKeeps: 64, softwareSnp: join(dir, 'snp') });
  const client = new KeepmgrClient({ url: `unix:${daemon.socketPath}` });
  const verifier = await libraryVerifier({ trustedTestRoots: [{ name: 'bench', pem: readFileSync(daemon.testRootPath!, 'utf8') }] });

  // A Keep is usable once it has generated its key and answers a challenge.
  const usable = async (limits?: { memoryMiB: number }) => {
    const t0 = performance.now();
    const k = await client.create(limits ? { limits } : {});
    const handout = performance.now() - t0;
    await client.challenge(k.id, crypto.getRandomValues(new Uint8Array(32)));
    const ms = performance.now() - t0;
    await client.stop(k.id);
    return { ms, handout, origin: k.origin };
  };
  await daemon.manager.poolReady();
  await usable();
  await usable({ memoryMiB: 255 });

  const warm: number[] = [];
  const handouts: number[] = [];
  const cold: number[] = [];
  for (let round = 0; round < 5; round++) {
    await daemon.manager.poolReady();
    for (let i = 0; i < POOL / 2; i++) {
      const w = await usable();
      if (w.origin === 'pool') {
        warm.push(w.ms);
        handouts.push(w.handout);
      }
    }
    for (let i = 0; i < 4; i++) cold.push((await usable({ memoryMiB: 255 })).ms);
  }
  console.log(`create → usable Keep (its key made, evidence for a fresh challenge returned), one client, median of ${warm.length} warm / ${cold.length} cold:`);
  console.log(`  warm pool   ${fmt(median(warm))}  = ${(1000 / median(warm)).toFixed(0)} Keeps/s (the create call alone: ${fmt(median(handouts))})`);
  console.log(`  cold start  ${fmt(median(cold))}  = ${(1000 / median(cold)).toFixed(1)} Keeps/s`);
  console.log(`  ratio       the warm pool is ${(median(cold) / median(warm)).toFixed(1)}x faster than a cold start`);

  // Create → first decrypted stdout byte of a provisioned hello, vs. a bare node process's first byte.
  const firstByte = async () => {
    const t0 = performance.now();
    const k = await client.create();
    const att = await attestKeep(client, k.id, { verifier });
    const session = await provisionKeep(client, att, { wasm: hello, config: null });
    const reader = await openSession(session);
    for await (const item of client.output(k.id, { follow: true })) {
      if ('end' in item) throw new Error('no output');
      const p = await reader.open(item);
      if (p.stream === 'stdout') break;
    }
    const ms = performance.now() - t0;
    await client.stop(k.id);
    return ms;
  };
  const bareNode = () =>
    new Promise<number>((resolve) => {
      const t0 = performance.now();
      const c = spawn(process.execPath, ['-e', 'process.stdout.write("h")'], { stdio: ['ignore', 'pipe', 'ignore'] });
      c.stdout.once('data', () => resolve(performance.now() - t0));
    });
  const fbSnp: number[] = [];
  const fbNode: number[] = [];
  for (let round = 0; round < 8; round++) {
    await daemon.manager.poolReady();
    fbSnp.push(await firstByte());
    fbNode.push(await bareNode());
  }
  console.log('create → attest (software SNP, verified) → provision → first decrypted stdout byte of hello, warm pool, median of 8:');
  console.log(`  keepmgr     ${fmt(median(fbSnp))}`);
  console.log(`  peer        ${fmt(median(fbNode))}  (a bare node process spawned to its first stdout byte)`);
  console.log(`  ratio       ${(median(fbSnp) / median(fbNode)).toFixed(2)}x the peer`);

  // Memory of idle Keeps (the warm pool's) against idle bare node processes.
  await daemon.manager.poolReady();
  await new Promise((r) => setTimeout(r, 500));
  const idle: number[] = [];
  const bare = Array.from({ length: POOL }, () => spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], { stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, 800));
  const poolPids = (await import('node:child_process')).execFileSync('pgrep', ['-P', String(process.pid)], { encoding: 'utf8' })
    .split('\n').map(Number).filter((p) => p && !bare.some((b) => b.pid === p) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('keep.mjs'));
  for (const p of poolPids) idle.push(p);
  const keepPss = idle.reduce((n, p) => n + pss(p), 0) / idle.length;
  const keepRss = idle.reduce((n, p) => n + rss(p), 0) / idle.length;
  const barePss = bare.reduce((n, b) => n + pss(b.pid!), 0) / bare.length;
  const bareRss = bare.reduce((n, b) => n + rss(b.pid!), 0) / bare.length;
  for (const b of bare) b.kill('SIGKILL');
  console.log(`memory of an idle Keep (${idle.length} pooled) vs an idle bare node process (${bare.length}):`);
  console.log(`  PSS  ${keepPss.toFixed(1)} MiB vs ${barePss.toFixed(1)} MiB  (${(keepPss / barePss).toFixed(2)}x)`);
  console.log(`  RSS  ${keepRss.toFixed(1)} MiB vs ${bareRss.toFixed(1)} MiB  (${(keepRss / bareRss).toFixed(2)}x)`);
} finally {
  await daemon?.close();
  rmSync(dir, { recursive: true, force: true });
}
