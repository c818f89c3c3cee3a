// Local test roots (a software Keep's ARK, `enarx platform test-root`): trusted only when a user
// names them, and reported as `test:NAME` wherever a result names its trust anchor.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseCertificates, type TrustAnchor } from '../attestation/x509.ts';
import { EnarxError } from './errors.ts';

export interface TestRoots {
  /** The self-signed certificates of the files, each a trust anchor named `test:<file stem>`. */
  anchors: TrustAnchor[];
  /** The files' other certificates (a test ASK), DER: intermediates a chain may use. */
  intermediates: Uint8Array[];
}

/**
 * Reads --trust-test-root files: each holds a root (self-signed) and optionally its intermediates,
 * PEM or DER. An unusable file is an EnarxError with the command's exit code for bad input files.
 */
export function readTestRoots(paths: readonly string[], { exitCode = 1 }: { exitCode?: number } = {}): TestRoots {
  const out: TestRoots = { anchors: [], intermediates: [] };
  for (const path of paths) {
    let certs;
    try {
      certs = parseCertificates(new Uint8Array(readFileSync(path)));
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
      throw new EnarxError(`cannot use ${path} as a test root: ${reason}`, { exitCode, hint: 'give the test root certificate (and its intermediates), PEM or DER' });
    }
    const roots = certs.filter((c) => c.isSelfIssued);
    if (roots.length === 0) throw new EnarxError(`${path} holds no self-signed root certificate`, { exitCode, hint: 'give the test ARK (or other test root), optionally followed by its intermediates' });
    const stem = basename(path).replace(/\.(pem|crt|der|cer)$/, '');
    roots.forEach((certificate, i) => out.anchors.push({ name: `test:${stem}${roots.length > 1 ? `-${i + 1}` : ''}`, certificate }));
    out.intermediates.push(...certs.filter((c) => !c.isSelfIssued).map((c) => c.der));
  }
  return out;
}
