// Azure HCL reports built for tests: the layout of the vTPM NV index 0x01400001, around any hardware
// report (real ones from shared/testdata, or ones signed under a test root) and runtime data of ours.
import { createHash } from 'node:crypto';

const utf8 = (s: string) => new TextEncoder().encode(s);

export const RUNTIME = JSON.stringify({
  keys: [
    { kid: 'HCLAkPub', key_ops: ['sign'], kty: 'RSA', e: 'AQAB', n: 'ak-modulus' },
    { kid: 'HCLEkPub', key_ops: ['encrypt'], kty: 'RSA', e: 'AQAB', n: 'ek-modulus' },
  ],
  'vm-configuration': { 'console-enabled': true, 'secure-boot': true, 'tpm-enabled': true, vmUniqueId: 'A1B2', nested: { ignored: 1 } },
  'user-data': '00'.repeat(64),
});
export const HASH_TYPES = { 'SHA-256': 1, 'SHA-384': 2, 'SHA-512': 3 } as const;

/** An HCL report as the vTPM NV index holds it: header, hardware report, runtime data header and data, zero padding. */
export function hclReport(hardware: Uint8Array, o: { type?: 'snp' | 'tdx'; hash?: keyof typeof HASH_TYPES; runtime?: Uint8Array; padding?: number } = {}): Uint8Array {
  const runtime = o.runtime ?? utf8(RUNTIME);
  const out = new Uint8Array(32 + 1184 + 20 + runtime.length + (o.padding ?? 64));
  const view = new DataView(out.buffer);
  out.set(utf8('HCLA'), 0);
  for (const [i, v] of [2, out.length, 2, 0].entries()) view.setUint32(4 + 4 * i, v, true);
  out.set(hardware, 32);
  const fields = [20 + runtime.length, 1, o.type === 'tdx' ? 4 : 2, HASH_TYPES[o.hash ?? 'SHA-256'], runtime.length];
  for (const [i, v] of fields.entries()) view.setUint32(1216 + 4 * i, v, true);
  out.set(runtime, 1236);
  return out;
}

/** REPORT_DATA as Azure's paravisor writes it: the runtime data's hash, zero-padded to 64 bytes. */
export function reportDataFor(runtime: string | Uint8Array, hash: keyof typeof HASH_TYPES = 'SHA-256'): Uint8Array {
  const out = new Uint8Array(64);
  out.set(createHash(hash.replace('-', '').toLowerCase()).update(typeof runtime === 'string' ? utf8(runtime) : runtime).digest());
  return out;
}

const be16 = (n: number) => Uint8Array.of(n >> 8, n & 0xff);
const be32 = (n: number) => Uint8Array.of(n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
const cat = (...parts: Uint8Array[]): Uint8Array<ArrayBuffer> => new Uint8Array(Buffer.concat(parts));
const sized = (b: Uint8Array) => cat(be16(b.length), b);

/**
 * A TPMS_ATTEST quote as a vTPM makes it, over the SHA-256 bank: `pcrs` holds the values of the
 * `selected` PCRs (all 24 by default), in selection order.
 */
export function tpmsAttest(nonce: Uint8Array, pcrs: Uint8Array[], selected: number[] = Array.from({ length: 24 }, (_, i) => i)): Uint8Array<ArrayBuffer> {
  const digest = createHash('sha256').update(Buffer.concat(pcrs)).digest();
  const select = new Uint8Array(3);
  for (const i of selected) select[i >> 3]! |= 1 << (i & 7);
  return cat(
    be32(0xff544347), be16(0x8018), sized(new Uint8Array(34)), sized(nonce),
    new Uint8Array(8), be32(3), be32(1), Uint8Array.of(1), new Uint8Array(8),
    be32(1), be16(0x000b), Uint8Array.of(3), select, sized(new Uint8Array(digest)),
  );
}

/** tpm2_quote's default signature file: a TPMT_SIGNATURE (RSASSA, SHA-256, size) around the raw signature. */
export function tpmtSignature(raw: Uint8Array): Uint8Array<ArrayBuffer> {
  return cat(be16(0x0014), be16(0x000b), be16(raw.length), raw);
}
