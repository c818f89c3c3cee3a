// SGX and TDX quote verifications per second with warm caches (collateral, chains, CRLs, keys and the
// QE's checks already seen), against the limit: the one ECDSA P-256 verification no cache can save,
// the quote signature by the attestation key (key imported). For reference, the same run also times
// both signature checks of a cold QE (quote signature and QE report signature by the PCK key, run
// concurrently). All are measured in alternating rounds of the same run, one quote at a time.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHARED_ROOT } from '../test/helpers/paths.ts';
import { loadIntelCollateral, parseQuote, verifyIntelQuote, type IntelVerifyOptions } from '../src/attestation/intel/index.ts';
import { parseCertificates } from '../src/attestation/x509.ts';
import { verifyEvidence } from '../src/attestation/index.ts';

const data = (...p: string[]) => new Uint8Array(readFileSync(join(SHARED_ROOT, 'testdata', 'attestation', ...p)));

interface Case {
  name: string;
  quote: Uint8Array;
  options: IntelVerifyOptions;
  /** The collateral file's bytes, for the verifyEvidence path. */
  collateralBytes: Uint8Array;
}

const cases: Case[] = [
  {
    name: 'SGX quote v3 (Phala)',
    quote: data('sgx', 'phala-sgx-v3', 'quote.bin'),
    collateralBytes: data('sgx', 'phala-sgx-v3', 'collateral.json'),
    options: {
      collateral: loadIntelCollateral([{ name: 'collateral.json', bytes: data('sgx', 'phala-sgx-v3', 'collateral.json') }]),
      now: new Date('2025-07-01T00:00:00Z'),
    },
  },
  {
    name: 'TDX quote v4 (Phala)',
    quote: data('tdx', 'phala-tdx-v4', 'quote.bin'),
    collateralBytes: data('tdx', 'phala-tdx-v4', 'collateral.json'),
    options: {
      collateral: loadIntelCollateral([{ name: 'collateral.json', bytes: data('tdx', 'phala-tdx-v4', 'collateral.json') }]),
      now: new Date('2025-07-01T00:00:00Z'),
    },
  },
];

async function rawVerifiers(c: Case): Promise<{ quoteOnly: () => Promise<boolean>; both: () => Promise<boolean> }> {
  const q = parseQuote(c.quote);
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  const attKey = await crypto.subtle.importKey('raw', new Uint8Array([4, ...q.attestationKey]), alg, false, ['verify']);
  const pck = parseCertificates(q.certificationData)[0]!;
  const pckKey = await crypto.subtle.importKey('spki', new Uint8Array(pck.spki), alg, false, ['verify']);
  const sig = new Uint8Array(q.signature);
  const signed = new Uint8Array(q.signedData);
  const qeSig = new Uint8Array(q.qeReportSignature);
  const qeReport = new Uint8Array(q.qeReportRaw);
  const ecdsa = { name: 'ECDSA', hash: 'SHA-256' };
  return {
    quoteOnly: () => crypto.subtle.verify(ecdsa, attKey, sig, signed),
    both: async () => {
      const [a, b] = await Promise.all([crypto.subtle.verify(ecdsa, attKey, sig, signed), crypto.subtle.verify(ecdsa, pckKey, qeSig, qeReport)]);
      return a && b;
    },
  };
}

interface Sample {
  /** Completed operations per second of wall time. */
  perSecond: number;
  /** CPU time (all of this process's threads, WebCrypto's included) per operation, microseconds. */
  cpuMicros: number;
}

async function measure(f: () => Promise<unknown>, ms: number): Promise<Sample> {
  let n = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let elapsed = 0;
  while ((elapsed = performance.now() - start) < ms) {
    await f();
    n++;
  }
  const cpu = process.cpuUsage(cpu0);
  return { perSecond: (n * 1000) / elapsed, cpuMicros: (cpu.user + cpu.system) / n };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// Many short interleaved rounds, ratios taken per round, and CPU time besides wall time: load from
// other processes then shifts both sides of a ratio alike instead of skewing it.
const ROUNDS = 9;
const ROUND_MS = 200;

for (const c of cases) {
  const full = async () => {
    const r = await verifyIntelQuote(c.quote, c.options);
    if (!r.verified) throw new Error(`${c.name} did not verify: ${r.failure?.message}`);
  };
  const viaEvidence = async () => {
    const r = await verifyEvidence({ evidence: c.quote, collateral: [c.collateralBytes], now: c.options.now });
    if (!r.verified) throw new Error(`${c.name} did not verify: ${r.failure?.message}`);
  };
  const { quoteOnly: raw, both } = await rawVerifiers(c);
  if (!(await raw()) || !(await both())) throw new Error(`${c.name}: raw signatures do not verify`);
  await viaEvidence();
  await full(); // warm the caches: parsed collateral and chains, chain/CRL/collateral/QE checks, keys
  await measure(full, 200);
  await measure(raw, 200);
  const runs = { full: [] as Sample[], evidence: [] as Sample[], raw: [] as Sample[], both: [] as Sample[] };
  for (let i = 0; i < ROUNDS; i++) {
    runs.full.push(await measure(full, ROUND_MS));
    runs.evidence.push(await measure(viaEvidence, ROUND_MS));
    runs.raw.push(await measure(raw, ROUND_MS));
    runs.both.push(await measure(both, ROUND_MS));
  }
  const line = (what: string, xs: Sample[]) => {
    const rate = median(xs.map((x) => x.perSecond));
    const wall = median(xs.map((x, i) => x.perSecond / runs.raw[i]!.perSecond));
    const cpu = median(xs.map((x, i) => runs.raw[i]!.cpuMicros / x.cpuMicros));
    const us = median(xs.map((x) => x.cpuMicros));
    return `  ${what.padEnd(56)} ${rate.toFixed(0).padStart(6)}/s ${(100 * wall).toFixed(0).padStart(4)}% | ${us.toFixed(0).padStart(5)} us CPU ${(100 * cpu).toFixed(0).padStart(4)}%\n`;
  };
  process.stdout.write(
    `${c.name} (rate, % of the limit's rate | CPU time per verification, % of the limit's cost)\n` +
      line('limit: the quote signature, 1 ECDSA P-256 verify', runs.raw) +
      line('reference: quote + QE report signatures, concurrently', runs.both) +
      line('verifyIntelQuote (parsed collateral, warm caches)', runs.full) +
      line('verifyEvidence (collateral.json bytes, warm caches)', runs.evidence),
  );
}
