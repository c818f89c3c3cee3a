// What the Steward's own collateral costs per CSR: a real TDX quote (Phala v4) verified up to the
// binding step (the recorded quote cannot bind a fresh key, so every attempt ends there, after the
// whole verification) by an in-process production Steward, in three forms, interleaved:
//  - peer: the CSR carries all its collateral (TCB info, TD_QE identity, PCK and Root CA CRLs), as
//    an Enarx 0.7 Keep carried its TCB package;
//  - bare quote, collateral from the Steward's warm disk cache;
//  - bare quote, cold: a fresh cache each time, four downloads from a local PCS stand-in (loopback,
//    so the network's own latency is not in it; a real PCS adds its round trips once per nextUpdate).
// Medians of per-CSR times over interleaved rounds.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCertificates } from '../src/attestation/x509.ts';
import { attestationStatementType, buildCsr, encodeTdxEvidence, type TdxEvidence } from '../src/pki/index.ts';
import { collateralProvider, type Steward, StewardRefusal } from '../src/steward/index.ts';
import { testdata } from '../test/helpers/paths.ts';
import { phalaTdxRoutes } from '../test/collateral/fixtures.ts';
import { startServer } from '../test/collateral/server.ts';
import { productionSteward } from '../test/steward/helpers.ts';

const ROUNDS = 7;
const PER_ROUND = 10;
const NOW = new Date('2025-07-01T00:00:00Z');

const dir = ['attestation', 'tdx', 'phala-tdx-v4'];
const quote = new Uint8Array(readFileSync(testdata(...dir, 'quote.bin')));
const c = JSON.parse(readFileSync(testdata(...dir, 'collateral.json'), 'utf8')) as Record<string, string>;
const enc = new TextEncoder();
const ders = (pem: string) => parseCertificates(enc.encode(pem)).map((x) => x.der);

const full: TdxEvidence = {
  quote,
  crls: [
    { url: 'https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der', crl: Buffer.from(c.pck_crl!, 'hex') },
    { url: 'https://certificates.trustedservices.intel.com/IntelSGXRootCA.der', crl: Buffer.from(c.root_ca_crl!, 'hex') },
  ],
  tcb: { certs: ders(c.tcb_info_issuer_chain!), report: enc.encode(`{"tcbInfo":${c.tcb_info},"signature":"${c.tcb_info_signature}"}`) },
  qeIdentity: { certs: ders(c.qe_identity_issuer_chain!), report: enc.encode(`{"enclaveIdentity":${c.qe_identity},"signature":"${c.qe_identity_signature}"}`) },
};
const bare: TdxEvidence = { quote, crls: [], tcb: { certs: [], report: new Uint8Array(0) } };

async function csrFor(ev: TdxEvidence): Promise<Uint8Array> {
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  return buildCsr({ keys, attestation: { attestations: [{ type: attestationStatementType('tdx'), stmt: encodeTdxEvidence(ev) }], certs: [] } });
}

/** Time of one attempt, which must end at the binding step (the whole verification passed). */
async function attempt(steward: Steward, csr: Uint8Array): Promise<number> {
  const t = performance.now();
  try {
    await steward.issue(csr);
  } catch (err) {
    if (!(err instanceof StewardRefusal) || err.problem.step !== 'binding') throw err;
    return performance.now() - t;
  }
  throw new Error('the recorded quote cannot bind a fresh key');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const server = await startServer(phalaTdxRoutes());
const base = mkdtempSync(join(tmpdir(), 'enarx-bench-collateral-'));
try {
  const options = { amdBaseUrl: server.url, intelBaseUrl: server.url, intelCertsBaseUrl: server.url, retries: 0 };
  const peer = await productionSteward({ now: () => NOW });
  const warm = await productionSteward({ now: () => NOW, collateral: collateralProvider({ cacheDir: join(base, 'warm'), ...options }) });
  let n = 0;
  const cold = () => productionSteward({ now: () => NOW, collateral: collateralProvider({ cacheDir: join(base, `cold-${n++}`), ...options }) });
  const fullCsr = await csrFor(full);
  const bareCsr = await csrFor(bare);
  // Warm-up: JIT, parsed certificates, and the warm cache's first fill.
  for (let i = 0; i < 5; i++) {
    await attempt(peer, fullCsr);
    await attempt(warm, bareCsr);
    await attempt(await cold(), bareCsr);
  }
  const times = { peer: [] as number[], warm: [] as number[], cold: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < PER_ROUND; i++) {
      times.peer.push(await attempt(peer, fullCsr));
      times.warm.push(await attempt(warm, bareCsr));
      times.cold.push(await attempt(await cold(), bareCsr));
    }
  }
  const p = median(times.peer);
  const line = (what: string, ms: number) => process.stdout.write(`${what.padEnd(64)} ${ms.toFixed(2).padStart(7)} ms  ${(ms / p).toFixed(2)}x\n`);
  process.stdout.write(`TDX quote to the binding step, median of ${ROUNDS * PER_ROUND} per form (interleaved)\n`);
  line('CSR carries its collateral (peer)', p);
  line('bare quote, Steward collateral from its warm cache', median(times.warm));
  line('bare quote, cold cache: 4 downloads from a loopback PCS', median(times.cold));
} finally {
  await server.close();
  rmSync(base, { recursive: true, force: true });
}
