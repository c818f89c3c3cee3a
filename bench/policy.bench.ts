// The cost of deciding: evaluating a policy against a verification result, compared with the
// verification that must precede it (measured side by side, interleaved, in this run). The peer is
// verifyEvidence on the same real Enarx Keep's evidence; a policy should add only a few percent.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyEvidence } from '../src/attestation/index.ts';
import { evaluatePolicy, parsePolicy } from '../src/attestation/policy/index.ts';
import { SHARED_ROOT } from '../test/helpers/paths.ts';

const steward = (...p: string[]) => join(SHARED_ROOT, 'testdata', 'enarx-steward', ...p);
const bytes = (...p: string[]) => new Uint8Array(readFileSync(steward(...p)));
const options = {
  evidence: bytes('extracted', 'milan', 'report.bin'),
  certs: [bytes('extracted', 'milan', 'vcek.der')],
  crls: [bytes('extracted', 'milan', 'crl-milan.der')],
  now: new Date('2023-02-01T00:00:00Z'),
};
const policyText = readFileSync(steward('policies', 'steward.toml'), 'utf8');
const policy = parsePolicy(policyText);
const result = await verifyEvidence(options);
if (!evaluatePolicy(policy, result).accepted) throw new Error('steward.toml should accept the Milan CSR');

async function rate(fn: () => unknown, ms: number): Promise<number> {
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

const cases: [string, () => unknown][] = [
  ['verifyEvidence (Milan report, VCEK, CRL; warm caches), the peer', () => verifyEvidence(options)],
  ['evaluatePolicy (steward.toml, parsed once)', () => evaluatePolicy(policy, result)],
  ['parsePolicy + evaluatePolicy (steward.toml text each time)', () => evaluatePolicy(parsePolicy(policyText), result)],
];
for (const [, fn] of cases) await rate(fn, 100);
const samples = cases.map(() => [] as number[]);
for (let round = 0; round < 5; round++) for (const [i, [, fn]] of cases.entries()) samples[i]!.push(await rate(fn, 300));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[2]!;
const peer = median(samples[0]!);
process.stdout.write('\nPolicy evaluation against the verification it follows (median of 5 interleaved rounds)\n');
for (const [i, [name]] of cases.entries()) {
  const v = median(samples[i]!);
  const extra = i === 0 ? '' : `  adds ${((100 * peer) / v).toFixed(2)}% to a verification`;
  process.stdout.write(`  ${name.padEnd(62)} ${v.toFixed(0).padStart(9)} /s${extra}\n`);
}
