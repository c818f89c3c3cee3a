/**
 * The test SEV-SNP chain of a software keep manager (`enarx keepmgr serve --software-snp DIR`):
 * made once with the attestation library's test generator, kept in DIR, and handed to each Keep
 * so it can sign SNP-format reports. Clients trust DIR/ark.pem only when told to
 * (`--trust-test-root`), and the verifier reports the anchor as `test:...`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCertificates } from '../attestation/x509.ts';
import type { EvidenceConfig } from './keep/evidence.ts';

function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

function unpem(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64'));
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
    // A chip id starting with 0x04 (an OCTET STRING tag) is mis-read by the verifier's hwId
    // parser as DER (about 1 chain in 256); until that is fixed there, such ids are not drawn.
    const chipId = crypto.getRandomValues(new Uint8Array(64));
    if (chipId[0] === 0x04) chipId[0] = 0x05;
    const chain = await createTestSnpChain({ product: 'milan', signingKey: 'vcek', chipId });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const key = new Uint8Array(await crypto.subtle.exportKey('pkcs8', chain.leafKey.privateKey));
    writeFileSync(files.key, pem('PRIVATE KEY', key), { mode: 0o600 });
    writeFileSync(files.ark, pem('CERTIFICATE', chain.ark.der));
    writeFileSync(files.ask, pem('CERTIFICATE', chain.ask.der));
    writeFileSync(files.vcek, pem('CERTIFICATE', chain.leaf.der));
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
    config: { kind: 'snp-test', product: meta.product, chipId: new Uint8Array(Buffer.from(meta.chipId, 'hex')), tcb: meta.tcb, leafKey: unpem(readFileSync(files.key, 'utf8')), certs },
    arkPath: files.ark,
    created,
  };
}
