/**
 * The SEV-SNP certificate table, as the Keep collects it: the verifier's reader
 * (src/attestation/snp/certtable.ts), with its errors as collection errors.
 */
import { VerificationError } from '../../attestation/types.ts';
import { type CertTableEntry, parseCertTable as readCertTable } from '../../attestation/snp/certtable.ts';
import { CollectionError } from './fs.ts';

export { CERT_TABLE_GUIDS, type CertTableEntry, buildCertTable } from '../../attestation/snp/certtable.ts';

/** parseCertTable, throwing CollectionError for a malformed table. */
export function parseCertTable(table: Uint8Array): CertTableEntry[] {
  try {
    return readCertTable(table);
  } catch (err) {
    if (err instanceof VerificationError) throw new CollectionError(err.message);
    throw err;
  }
}
