/**
 * The test SEV-SNP chain of a software keep manager (`enarx keepmgr serve --software-snp DIR`):
 * made once with the attestation library's test generator, kept in DIR, and handed to each Keep
 * so it can sign SNP-format reports. Clients trust DIR/ark.pem only when told to
 * (`--trust-test-root`), and the verifier reports the anchor as `test:...`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCertificates, parsePem, toPem } from '../attestation/x509.ts';
import type { EvidenceConfig } from './keep/evidence.ts';

function privateKeyDer(path: string): Uint8Array {
  const der = parsePem(readFileSync(path, 'utf8')).find((b) => b.label === 'PRIVATE KEY')?.der;
  if (!der) throw new Error(`${path} holds no PEM PRIVATE KEY`);
  return der;
}

export interface SoftwareSnp {
  config: Extract<EvidenceConfig, { kind: 'snp-test' }>;
  /** The test root clients must trust explicitly. */
  arkPath: string;
  created: boolean;
}

export async function loadOrCreateSoftwareSnp(dir: string): Promise<SoftwareSnp> {
  const files = { ark: join(dir, 'ark.pem'), ask: join(dir, 'ask.pem'), vcek: join(dir, 'vcek.pem'), key: join(dir, 'vcek.key'), meta: join(dir, 'chain.json') };
  let created = false;
  if (!Object.values(files).every(existsSync)) {
    const { createTestSnpChain } = await import('../attestation/testing/snp.ts');
    const chain = await createTestSnpChain({ product: 'milan', signingKey: 'vcek' });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const key = new Uint8Array(await crypto.subtle.exportKey('pkcs8', chain.leafKey.privateKey));
    writeFileSync(files.key, toPem('PRIVATE KEY', key), { mode: 0o600 });
    writeFileSync(files.ark, toPem('CERTIFICATE', chain.ark.der));
    writeFileSync(files.ask, toPem('CERTIFICATE', chain.ask.der));
    writeFileSync(files.vcek, toPem('CERTIFICATE', chain.leaf.der));
    writeFileSync(files.meta, `${JSON.stringify({ product: chain.product, chipId: Buffer.from(chain.chipId).toString('hex'), tcb: chain.tcb }, null, 2)}\n`);
    created = true;
  }
  // A Steward's --trust-test-root wants the root followed by its intermediates, in one file.
  const stewardTrust = join(dir, 'steward-trust.pem');
  if (!existsSync(stewardTrust)) writeFileSync(stewardTrust, readFileSync(files.ark, 'utf8') + readFileSync(files.ask, 'utf8'));
  const meta = JSON.parse(readFileSync(files.meta, 'utf8')) as { product: 'milan' | 'genoa' | 'turin'; chipId: string; tcb: { bootloader: number; tee: number; snp: number; microcode: number } };
  const certs = [files.vcek, files.ask, files.ark].map((f) => {
    const c = parseCertificates(readFileSync(f, 'utf8'))[0];
    if (!c) throw new Error(`${f} holds no certificate`);
    return c.der;
  });
  return {
    config: { kind: 'snp-test', product: meta.product, chipId: new Uint8Array(Buffer.from(meta.chipId, 'hex')), tcb: meta.tcb, leafKey: privateKeyDer(files.key), certs },
    arkPath: files.ark,
    created,
  };
}
