// Publish and fetch throughput of a 50 MB package through Drawbridge on loopback, against the peer:
// a plain HTTPS PUT and GET of the same bytes on the same TLS setup (same certificate, same Node
// https server and agent) whose client and server compute the same four SHA-2 digests and whose
// receiver writes the bytes to a file. Drawbridge adds routing, auth, the index, fsync before the
// rename and the tree round trips. Servers run in a child process, the clients here; rounds
// alternate, medians are reported. Target: Drawbridge at >= 70% of the peer.
import { fork } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { Agent, request, createServer } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import {
  Authenticator,
  buildTree,
  DrawbridgeClient,
  ensureLocalTls,
  formatContentDigest,
  LocalIssuer,
  MultiHasher,
  startDrawbridge,
  Store,
} from '../src/drawbridge/index.ts';

const SIZE = 50 * 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

interface ServerInfo {
  baselineRssMiB: number;
  drawbridge: string;
  peer: string;
  ca: string;
  token: string;
}

async function hashFile(path: string): Promise<string> {
  const h = new MultiHasher();
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) h.update(c);
  return formatContentDigest(h.digest());
}

/** A pipeline stage that hashes what passes through. */
function hashing(h: MultiHasher) {
  return async function* (chunks: AsyncIterable<Buffer>) {
    for await (const c of chunks) {
      h.update(c);
      yield c;
    }
  };
}

/** The child: a Drawbridge and the peer, both HTTPS with the same certificate. */
async function serve(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-bench-'));
  const tls = await ensureLocalTls(dir);
  const store = Store.open(join(dir, 'data'));
  const local = await LocalIssuer.open(dir);
  const running = await startDrawbridge({ store, authenticator: new Authenticator([local]), tls: { cert: tls.certPem, key: tls.keyPem } });
  const peerFile = join(dir, 'peer.bin');
  let peerDigest = '';
  // The same server settings as Drawbridge's (keep-alive, timeouts): only the handling differs.
  const peer = createServer({ cert: tls.certPem, key: tls.keyPem, requestTimeout: 0, keepAliveTimeout: 30_000 }, (req, res) => {
    if (req.method === 'PUT') {
      const h = new MultiHasher();
      pipeline(
        req,
        hashing(h),
        createWriteStream(peerFile),
      ).then(
        () => {
          peerDigest = formatContentDigest(h.digest()); // kept, as Drawbridge keeps its digests
          res.writeHead(201).end();
        },
        () => res.writeHead(500).end(),
      );
    } else {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': SIZE, 'content-digest': peerDigest });
      pipeline(createReadStream(peerFile, { highWaterMark: 1 << 20 }), res).catch(() => {});
    }
  });
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
  const info: ServerInfo = {
    baselineRssMiB: process.resourceUsage().maxRSS / 1024,
    drawbridge: running.url,
    peer: `https://127.0.0.1:${(peer.address() as AddressInfo).port}`,
    ca: (await import('node:fs')).readFileSync(tls.caPath, 'utf8'),
    token: await local.issue({ subject: 'bench', ttlSeconds: 3600 }),
  };
  process.send?.({ info });
  process.on('message', (m: { rss?: boolean; stop?: boolean }) => {
    if (m.rss) process.send?.({ maxRssMiB: process.resourceUsage().maxRSS / 1024 });
    if (m.stop) {
      running.close().then(() => {
        peer.close();
        store.close();
        rm(dir, { recursive: true, force: true }).then(() => process.exit(0));
      });
    }
  });
}

function peerPut(base: string, agent: Agent, file: string, digest: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = request({ hostname: u.hostname, port: u.port, method: 'PUT', path: '/blob', agent, headers: { 'content-length': SIZE, 'content-digest': digest, 'content-type': 'application/octet-stream' } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`peer PUT ${res.statusCode}`))));
    });
    req.on('error', reject);
    createReadStream(file, { highWaterMark: 1 << 20 }).pipe(req);
  });
}

function peerGet(base: string, agent: Agent, dest: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    request({ hostname: u.hostname, port: u.port, method: 'GET', path: '/blob', agent }, (res: IncomingMessage) => {
      const h = new MultiHasher();
      pipeline(
        res,
        hashing(h),
        createWriteStream(dest),
      ).then(() => (formatContentDigest(h.digest()) === res.headers['content-digest'] ? resolve() : reject(new Error('peer digest mismatch'))), reject);
    })
      .on('error', reject)
      .end();
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const info = await new Promise<ServerInfo>((resolve) => child.once('message', (m: { info: ServerInfo }) => resolve(m.info)));
  const work = await mkdtemp(join(tmpdir(), 'drawbridge-bench-client-'));
  const pkg = join(work, 'pkg');
  await mkdir(pkg);
  await writeFile(join(pkg, 'main.wasm'), randomBytes(SIZE));
  await writeFile(join(pkg, 'Enarx.toml'), '[[files]]\nkind = "stdin"\n');
  const file = join(pkg, 'main.wasm');

  const client = new DrawbridgeClient({ url: info.drawbridge, ca: info.ca, token: info.token });
  await client.putUser('bench', { subject: 'bench' });
  await client.putRepository('bench', 'pkg', { public: true });
  const agent = new Agent({ keepAlive: true, ca: info.ca });

  const mb = SIZE / (1024 * 1024);
  const t = { dbPut: [] as number[], peerPut: [] as number[], dbGet: [] as number[], peerGet: [] as number[] };
  const time = async (fn: () => Promise<unknown>) => {
    const start = performance.now();
    await fn();
    return mb / ((performance.now() - start) / 1000);
  };
  // One warm-up round of each, not counted.
  for (let round = -1; round < ROUNDS; round++) {
    const at = { user: 'bench', repo: 'pkg', tag: `1.0.${round + 1}` };
    const p1 = await time(async () => client.publish(at, await buildTree(pkg)));
    const p2 = await time(async () => peerPut(info.peer, agent, file, await hashFile(file)));
    const dest = join(work, `fetch-${round + 1}`);
    const g1 = await time(() => client.fetchTree(at, dest));
    const g2 = await time(() => peerGet(info.peer, agent, join(work, `peer-${round + 1}.bin`)));
    await rm(dest, { recursive: true, force: true });
    await rm(join(work, `peer-${round + 1}.bin`), { force: true });
    process.stderr.write(`round ${round < 0 ? 'warm-up' : round + 1}/${ROUNDS}: publish ${p1.toFixed(0)} vs ${p2.toFixed(0)} MB/s, fetch ${g1.toFixed(0)} vs ${g2.toFixed(0)} MB/s\n`);
    if (round < 0) continue;
    t.dbPut.push(p1);
    t.peerPut.push(p2);
    t.dbGet.push(g1);
    t.peerGet.push(g2);
  }
  child.send({ rss: true });
  const rss = await new Promise<number>((resolve) => child.once('message', (m: { maxRssMiB: number }) => resolve(m.maxRssMiB)));
  child.send({ stop: true });
  client.close();
  agent.destroy();
  await rm(work, { recursive: true, force: true });

  // The machine is shared and its load drifts, so the ratio is taken per round (the two transfers
  // of a round run back to back) and the median of those ratios is reported.
  const row = (name: string, db: number[], peer: number[]) => {
    const ratio = median(db.map((x, i) => x / (peer[i] as number)));
    process.stdout.write(
      `${name.padEnd(8)} drawbridge ${median(db).toFixed(0).padStart(5)} MB/s   plain HTTPS ${median(peer).toFixed(0).padStart(5)} MB/s   median per-round ratio ${(ratio * 100).toFixed(0)}% ${ratio >= 0.7 ? '(>= 70% target)' : '(BELOW the 70% target)'}\n`,
    );
  };
  process.stdout.write(`50 MB package over TLS on loopback, median of ${ROUNDS} alternating rounds (client hashes too)\n`);
  row('publish', t.dbPut, t.peerPut);
  row('fetch', t.dbGet, t.peerGet);
  process.stdout.write(`server process (Drawbridge and the peer) peak RSS ${rss.toFixed(0)} MiB, ${info.baselineRssMiB.toFixed(0)} MiB before the first transfer, for ${mb} MB bodies\n`);
}

if (process.argv[2] === '--serve') await serve();
else await main();
