import { VerificationError } from '../types.ts';

/**
 * The SEV-SNP certificate table a host provisions beside a report (configfs-tsm `auxblob`, the
 * extended report's certificate buffer). Browser-safe: the verifier reads it among its certificates.
 */

/** GUIDs of the SEV-SNP certificate table (GHCB spec; go-sev-guest abi.go), in canonical string order. */
export const CERT_TABLE_GUIDS: Record<string, 'vcek' | 'vlek' | 'ask' | 'ark' | 'extra'> = {
  '63da758d-e664-4564-adc5-f4b93be8accd': 'vcek',
  'a8074bc2-a25a-483e-aae6-39c045a0b8a1': 'vlek',
  '4ab7b379-bbac-4fe4-a02f-05aef327c782': 'ask',
  'c0b406a4-a803-4952-9743-3fb6014cd0ae': 'ark',
  'ecae0c0f-9502-43b1-afa2-0ae2e0d565b6': 'extra',
};

export interface CertTableEntry {
  guid: string;
  /** null for a GUID this table does not know. */
  name: 'vcek' | 'vlek' | 'ask' | 'ark' | 'extra' | null;
  der: Uint8Array;
}

function guidString(b: Uint8Array): string {
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Parses the certificate table an SNP host provisions (configfs-tsm auxblob, or the extended
 * report): 24-byte entries {guid, offset u32 LE, length u32 LE} ending with an all-zero entry;
 * offsets count from the start of the table. Throws VerificationError('parse') for a malformed table.
 */
export function parseCertTable(table: Uint8Array): CertTableEntry[] {
  const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const out: CertTableEntry[] = [];
  for (let at = 0; ; at += 24) {
    if (at + 24 > table.length) throw new VerificationError('parse', 'SNP certificate table has no terminating entry');
    const guid = table.subarray(at, at + 16);
    const offset = view.getUint32(at + 16, true);
    const length = view.getUint32(at + 20, true);
    if (guid.every((b) => b === 0) && offset === 0 && length === 0) return out;
    if (out.length >= 64) throw new VerificationError('parse', 'SNP certificate table has too many entries');
    if (offset + length > table.length) {
      throw new VerificationError('parse', `SNP certificate table entry ${out.length} points outside the table (offset ${offset}, length ${length})`);
    }
    const id = guidString(guid);
    out.push({ guid: id, name: CERT_TABLE_GUIDS[id] ?? null, der: table.subarray(offset, offset + length) });
  }
}

/** Builds a certificate table (what a host provisions), for fakes and for the host side. */
export function buildCertTable(entries: { guid: string; der: Uint8Array }[]): Uint8Array {
  const header = (entries.length + 1) * 24;
  const total = header + entries.reduce((n, e) => n + e.der.length, 0);
  const table = new Uint8Array(total);
  const view = new DataView(table.buffer);
  let offset = header;
  entries.forEach((e, i) => {
    const hex = e.guid.replaceAll('-', '');
    for (let j = 0; j < 16; j++) table[i * 24 + j] = Number.parseInt(hex.slice(j * 2, j * 2 + 2), 16);
    view.setUint32(i * 24 + 16, offset, true);
    view.setUint32(i * 24 + 20, e.der.length, true);
    table.set(e.der, offset);
    offset += e.der.length;
  });
  return table;
}

/** Whether some bytes start like a certificate table: a known GUID in the first entry. */
export function looksLikeCertTable(bytes: Uint8Array): boolean {
  return bytes.length >= 24 && CERT_TABLE_GUIDS[guidString(bytes.subarray(0, 16))] !== undefined;
}
