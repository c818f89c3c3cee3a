// Steward throughput: certificates issued per second for real SNP evidence (the Milan Enarx CSR,
// verified with its VCEK and CRLs at the README's time, production Steward, steward.toml policy),
// under concurrent load over loopback, with two Steward processes (node:cluster) on this machine's
// cores. Beside it, in the same run and interleaved: the limit set by the raw signature work one
// certificate needs (ECDSA P-384 verify of the CSR, ECDSA P-384 verify of the report, ECDSA P-256
// sign of the certificate; the VCEK chain and CRL checks are cached by the verifier across
// requests), run by two worker threads with as many operations in flight as the load has.
// Target: >= 50% of that limit.
import cluster from 'node:cluster';
import { Agent, request } from 'node:http';
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { parsePolicy } from '../src/attestation/policy/index.ts';
import { parseCertificate } from '../src/attestation/x509.ts';
import { parseSnpReport, SNP_SIGNED_SIZE } from '../src/attestation/snp/report.ts';
import { decodeSnpEvidence, ecdsaDerToRaw, parseCsr } from '../src/pki/index.ts';
import { listen } from '../src/steward/index.ts';
import { testdata } from '../test/helpers/paths.ts';
import { productionSteward, realCsr } from '../test/steward/helpers.ts';

const PROCESSES = Math.max(2, Math.min(availableParallelism(), 4));
const IN_FLIGHT = 8 * PROCESSES;
const ROUNDS = 3;
const ROUND_MS = 2500;

const milan = realCsr('milan');

/** One Steward process: listens on the port the cluster shares and reports when ready. */
async function stewardWorker(): Promise<void> {
  const policy = parsePolicy(readFileSync(testdata('enarx-steward', 'policies', 'steward.toml'), 'utf8'));
  const steward = await productionSteward({ policy });
  await steward.issue(milan); // warm: key imports, parsed VCEK/CRL caches, JIT
  const running = await listen(steward, { addr: '127.0.0.1', port: Number(process.env.STEWARD_BENCH_PORT) });
  process.send!({ ready: running.url });
}

/** The raw signature work of one certificate, `inFlight` at a time, for `ms`; posts the count. */
async function rawWorker(ms: number, inFlight: number): Promise<number> {
  const csr = parseCsr(milan);
  const csrKey = await crypto.subtle.importKey('spki', csr.spki.slice(), { name: 'ECDSA', namedCurve: 'P-384' }, false, ['verify']);
  const csrSig = ecdsaDerToRaw(csr.signature, 48).slice();
  const info = csr.info.slice();
  const evidence = decodeSnpEvidence(csr.evidence[0]!.der);
  const vcek = parseCertificate(evidence.vcek);
  const reportKey = await vcek.verifyKey({ kind: 'ecdsa', hash: 'SHA-384' });
  const report = parseSnpReport(evidence.report);
  const reportSig = (report.signatureP1363 as Uint8Array).slice();
  const signed = evidence.report.slice(0, SNP_SIGNED_SIZE);
  const ca = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  const tbs = new Uint8Array(700).fill(7);
  const one = async () => {
    const a = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, csrKey, csrSig, info);
    const b = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, reportKey, reportSig, signed);
    if (!a || !b) throw new Error('benchmark input does not verify');
    await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ca.privateKey, tbs);
  };
  for (let i = 0; i < 50; i++) await one();
  let count = 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        await one();
        count++;
      }
    }),
  );
  return count;
}

async function rawLimit(ms: number): Promise<number> {
  const start = performance.now();
  const counts = await Promise.all(
    Array.from({ length: PROCESSES }, () => {
      const worker = new Worker(new URL(import.meta.url), { workerData: { ms, inFlight: IN_FLIGHT / PROCESSES } });
      return new Promise<number>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
    }),
  );
  return (counts.reduce((a, b) => a + b, 0) * 1000) / (performance.now() - start);
}

/** POSTs the Milan CSR with IN_FLIGHT concurrent keep-alive connections for `ms`; certificates per second. */
async function load(url: string, ms: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  const post = () =>
    new Promise<void>((resolve, reject) => {
      const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/pkcs10', 'content-length': milan.length } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks)}`))));
      });
      req.on('error', reject);
      req.end(milan);
    });
  let count = 0;
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < end) {
        await post();
        count++;
      }
    }),
  );
  const rate = (count * 1000) / (performance.now() - start);
  agent.destroy();
  return rate;
}

async function primary(): Promise<void> {
  process.env.STEWARD_BENCH_PORT = '0';
  const urls = await Promise.all(
    Array.from({ length: PROCESSES }, () => {
      const worker = cluster.fork({ STEWARD_BENCH_PORT: '0' });
      return new Promise<string>((resolve, reject) => {
        worker.once('message', (m: { ready: string }) => resolve(m.ready));
        worker.once('exit', (code) => reject(new Error(`a Steward worker exited with ${code}`)));
      });
    }),
  );
  const url = urls[0]!;
  await load(url, 800); // warm up every worker
  await rawLimit(500);
  const issued: number[] = [];
  const limit: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    issued.push(await load(url, ROUND_MS));
    limit.push(await rawLimit(ROUND_MS));
  }
  for (const id in cluster.workers) cluster.workers[id]!.kill();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const i = median(issued);
  const l = median(limit);
  process.stdout.write(
    `\nSteward, real SNP evidence (Milan Enarx CSR, production mode, steward.toml), ${PROCESSES} processes, ${IN_FLIGHT} requests in flight over loopback\n` +
      `  ${'raw signature work per certificate (2x P-384 verify + P-256 sign)'.padEnd(70)} ${l.toFixed(0).padStart(6)} /s  (the limit)\n` +
      `  ${'certificates issued over HTTP'.padEnd(70)} ${i.toFixed(0).padStart(6)} /s  ${((100 * i) / l).toFixed(0).padStart(3)}% of the limit\n` +
      `  rounds (issued / limit): ${issued.map((x, k) => `${x.toFixed(0)}/${limit[k]!.toFixed(0)}`).join(', ')}\n`,
  );
}

if (!isMainThread) {
  const { ms, inFlight } = workerData as { ms: number; inFlight: number };
  parentPort!.postMessage(await rawWorker(ms, inFlight));
} else if (cluster.isWorker) {
  await stewardWorker();
} else {
  await primary();
}
