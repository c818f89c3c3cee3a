// Attestation verification throughput with warm caches, against its physical limit: the raw
// signature verifications alone, measured side by side in this run (interleaved rounds, because
// these machines are noisy). Target: verification >= 50% of the limit.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHARED_ROOT } from '../test/helpers/paths.ts';
import { verifyEvidence } from '../src/attestation/index.ts';
import { verifySnp } from '../src/attestation/snp/verify.ts';
import { parseSnpReport, SNP_SIGNED_SIZE } from '../src/attestation/snp/report.ts';
import { parseCertificates, parseCrl } from '../src/attestation/x509.ts';

const data = (...p: string[]) => new Uint8Array(readFileSync(join(SHARED_ROOT, 'testdata', 'attestation', ...p)));

/** Runs `fn` repeatedly for `ms` and returns operations per second. */
async function rate(fn: () => Promise<unknown>, ms: number): Promise<number> {
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < 20; i++) await fn();
    n += 20;
    elapsed = performance.now() - start;
  }
  return (n * 1000) / elapsed;
}

interface Case {
  name: string;
  run: () => Promise<unknown>;
}

/** Interleaves the cases for `rounds` rounds and reports the median rate of each. */
async function compare(title: string, limit: Case, cases: Case[], rounds = 5, ms = 300): Promise<void> {
  const all = [limit, ...cases];
  for (const c of all) await rate(c.run, 100); // warm up: JIT, key imports, caches
  const samples = new Map<Case, number[]>(all.map((c) => [c, []]));
  for (let r = 0; r < rounds; r++) for (const c of all) samples.get(c)!.push(await rate(c.run, ms));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const limitRate = median(samples.get(limit)!);
  process.stdout.write(`\n${title}\n  ${limit.name.padEnd(58)} ${limitRate.toFixed(0).padStart(7)} /s  (the limit)\n`);
  for (const c of cases) {
    const v = median(samples.get(c)!);
    process.stdout.write(`  ${c.name.padEnd(58)} ${v.toFixed(0).padStart(7)} /s  ${((100 * v) / limitRate).toFixed(0).padStart(3)}% of the limit\n`);
  }
}

// --- AMD SEV-SNP ----------------------------------------------------------------------------
{
  const report = data('sev-snp', 'milan-v5-gcp-teekit', 'report.bin');
  const vcekPem = data('sev-snp', 'milan-v5-gcp-teekit', 'vcek.pem');
  const chainPem = data('sev-snp', 'amd-roots', 'ask_ark_milan.pem');
  const crlPem = data('sev-snp', 'amd-roots', 'crl_vcek_milan.pem');
  const now = new Date('2025-12-06T00:00:00Z');
  const certs = parseCertificates(vcekPem);
  const crls = [parseCrl(crlPem)];
  const parsed = parseSnpReport(report);
  const key = await certs[0]!.verifyKey({ kind: 'ecdsa', hash: 'SHA-384' });
  const signed = report.slice(0, SNP_SIGNED_SIZE);
  const check = (r: { verified: boolean; failure: { message: string } | null }) => {
    if (!r.verified) throw new Error(`benchmark input does not verify: ${r.failure?.message}`);
  };
  check(await verifySnp(report, { certs, crls, now }));
  await compare(
    'SEV-SNP report (Milan v5, VCEK, ARK CRL), warm caches',
    { name: 'raw ECDSA P-384 verify of the report (WebCrypto)', run: () => crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, key, parsed.signatureP1363 as Uint8Array<ArrayBuffer>, signed) },
    [
      { name: 'verifySnp (parsed certificates and CRL)', run: async () => check(await verifySnp(report, { certs, crls, now })) },
      { name: 'verifyEvidence (PEM certificate, chain and CRL bytes)', run: async () => check(await verifyEvidence({ evidence: report, certs: [vcekPem, chainPem], crls: [crlPem], now })) },
    ],
  );
}
