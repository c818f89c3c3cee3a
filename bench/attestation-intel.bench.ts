// SGX and TDX quote verifications per second with warm caches (same collateral objects, chains and
// keys already seen), against the limit: the two ECDSA P-256 verifications every quote needs
// (quote signature by the attestation key, QE report signature by the PCK key) with keys already
// imported, run concurrently. Both are measured in alternating rounds of the same run, one quote at a time.
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

async function rawVerifier(c: Case): Promise<() => Promise<boolean>> {
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
  // The two verifications are independent, so the limit runs them concurrently, as the verifier does.
  return async () => {
    const [a, b] = await Promise.all([crypto.subtle.verify(ecdsa, attKey, sig, signed), crypto.subtle.verify(ecdsa, pckKey, qeSig, qeReport)]);
    return a && b;
  };
}

async function rate(f: () => Promise<unknown>, ms: number): Promise<number> {
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while ((elapsed = performance.now() - start) < ms) {
    await f();
    n++;
  }
  return (n * 1000) / elapsed;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// Many short interleaved rounds, and the ratio taken per round: load from other processes then
// shifts both sides of a ratio alike instead of skewing it.
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
  const raw = await rawVerifier(c);
  if (!(await raw())) throw new Error(`${c.name}: raw signatures do not verify`);
  await viaEvidence();
  await full(); // warm the caches: parsed certificates, chain and CRL signatures, collateral signatures, keys
  await rate(full, 200);
  await rate(raw, 200);
  const fulls: number[] = [];
  const evidences: number[] = [];
  const raws: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    fulls.push(await rate(full, ROUND_MS));
    evidences.push(await rate(viaEvidence, ROUND_MS));
    raws.push(await rate(raw, ROUND_MS));
  }
  const r = median(raws);
  const ratio = (xs: number[]) => median(xs.map((x, i) => x / raws[i]!));
  const line = (what: string, rate: number, share: number) =>
    `  ${what.padEnd(58)} ${rate.toFixed(0).padStart(6)}/s  ${(100 * share).toFixed(0).padStart(4)}% of the limit\n`;
  process.stdout.write(
    `${c.name}\n` +
      line('limit: the 2 ECDSA P-256 verifies alone (WebCrypto)', r, 1) +
      line('verifyIntelQuote (parsed collateral, warm caches)', median(fulls), ratio(fulls)) +
      line('verifyEvidence (collateral.json bytes, warm caches)', median(evidences), ratio(evidences)),
  );
}
