/**
 * Software SNP evidence for development and CI: a local test ARK -> ASK -> VCEK chain (made by
 * `enarx platform test-root create`) signs reports in the real 1184-byte SNP format. The names
 * say TEST and the root is a fresh local key, so a Steward accepts this only with
 * --trust-test-root, and marks what it issues. Nothing here is or imitates an AMD signature.
 */
import { createPrivateKey } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SnpProduct } from '../attestation/roots.ts';
import { buildSnpReport, createTestSnpChain, signSnpReport, type SnpTcbValues } from '../attestation/testing/snp.ts';
import { parseCertificates, toPem } from '../attestation/x509.ts';
import { encodeSnpEvidence } from '../pki/index.ts';
import type { EvidenceSource } from './steward.ts';

/** Files of a test root directory. `ark.pem` holds the ARK then the ASK: give it to --trust-test-root. */
export const TEST_ROOT_FILES = { trust: 'ark.pem', vcek: 'vcek.pem', vcekKey: 'vcek.key', info: 'test-root.json' } as const;

interface TestRootInfo {
  product: SnpProduct;
  chipId: string;
  tcb: SnpTcbValues;
}

/** Creates a test root in `dir` (made 0700; the VCEK key 0600). The ARK/ASK keys are not kept: nothing more can be issued from this root. */
export async function createTestRoot(dir: string, options: { product?: SnpProduct; notBefore?: Date; notAfter?: Date } = {}): Promise<{ trustFile: string; product: SnpProduct }> {
  const now = Date.now();
  const chain = await createTestSnpChain({
    product: options.product ?? 'milan',
    modulusLength: 2048,
    notBefore: options.notBefore ?? new Date(now - 24 * 3600_000),
    notAfter: options.notAfter ?? new Date(now + 10 * 365 * 24 * 3600_000),
  });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', chain.leafKey.privateKey));
  const write = (name: string, text: string, mode: number) => {
    writeFileSync(join(dir, name), text, { mode });
    chmodSync(join(dir, name), mode);
  };
  write(TEST_ROOT_FILES.vcekKey, toPem('PRIVATE KEY', pkcs8), 0o600);
  write(TEST_ROOT_FILES.vcek, toPem('CERTIFICATE', chain.leaf.der), 0o644);
  write(TEST_ROOT_FILES.trust, toPem('CERTIFICATE', chain.ark.der) + toPem('CERTIFICATE', chain.ask.der), 0o644);
  const info: TestRootInfo = { product: chain.product, chipId: Buffer.from(chain.chipId).toString('hex'), tcb: chain.tcb };
  write(TEST_ROOT_FILES.info, `${JSON.stringify(info, null, 2)}\n`, 0o644);
  return { trustFile: join(dir, TEST_ROOT_FILES.trust), product: chain.product };
}

export class TestRootError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TestRootError';
  }
}

/** SNP guest POLICY: ABI 0.0, SMT allowed, reserved bit 17; bit 19 is DEBUG. */
const GUEST_POLICY = 0x30000n;
const GUEST_POLICY_DEBUG = 1n << 19n;

/**
 * Loads a test root directory as an evidence source whose reports carry `measurement` (48 bytes).
 * `debug` sets POLICY.DEBUG, as a debuggable guest's report would (policies refuse it by default).
 */
export async function softwareSnpEvidence(dir: string, options: { measurement?: Uint8Array; debug?: boolean } = {}): Promise<EvidenceSource> {
  const read = (name: string): Buffer => {
    try {
      return readFileSync(join(dir, name));
    } catch (err) {
      throw new TestRootError(`cannot read ${join(dir, name)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; create a test root with \`enarx platform test-root create --dir ${dir}\``);
    }
  };
  let info: TestRootInfo;
  let vcek: Uint8Array;
  let key: CryptoKey;
  try {
    info = JSON.parse(read(TEST_ROOT_FILES.info).toString('utf8')) as TestRootInfo;
    if (!['milan', 'genoa', 'turin'].includes(info.product) || !/^[0-9a-f]{128}$/.test(info.chipId)) throw new Error('unexpected product or chip id');
    vcek = parseCertificates(new Uint8Array(read(TEST_ROOT_FILES.vcek)))[0]!.der;
    const der = createPrivateKey(read(TEST_ROOT_FILES.vcekKey)).export({ type: 'pkcs8', format: 'der' });
    key = await crypto.subtle.importKey('pkcs8', new Uint8Array(der), { name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign']);
  } catch (err) {
    if (err instanceof TestRootError) throw err;
    throw new TestRootError(`${dir} is not a usable test root: ${(err as Error).message}`);
  }
  const chain = { product: info.product, signingKey: 'vcek' as const, chipId: new Uint8Array(Buffer.from(info.chipId, 'hex')), tcb: info.tcb };
  const measurement = options.measurement ?? new Uint8Array(48);
  const policy = options.debug ? GUEST_POLICY | GUEST_POLICY_DEBUG : GUEST_POLICY;
  return {
    kind: 'snp',
    description: `software SNP evidence (test root ${info.product} in ${dir})`,
    async collect(reportData) {
      const report = await signSnpReport(buildSnpReport(chain, { reportData, measurement, policy }), key);
      return { enarxEvidence: { kind: 'snp', der: encodeSnpEvidence({ vcek, crls: [], report }) } };
    },
  };
}
