import { bytesEqual } from '../../attestation/bytes.ts';
import { type AttestationFs, CollectionError, checkReportData, errnoOf, nodeFs } from './fs.ts';
// Gramine's pseudo-files for SGX attestation (Documentation/attestation.rst).
import { GRAMINE_ROOT } from './paths.ts';

export interface GramineOptions {
  root?: string;
  fs?: AttestationFs;
}

/** The ECDSA quote v3 header is 48 bytes; REPORT_DATA is the last 64 bytes of the 384-byte report body. */
const QUOTE_REPORT_DATA = 48 + 320;

/**
 * Gets an SGX DCAP quote from inside a Gramine enclave: writes the 64 bytes of report data to
 * `user_report_data`, then reads `quote`. The files are private to this process, so no other
 * writer can interleave, but the quote is still checked to carry our report data.
 */
export async function collectGramine(reportData: Uint8Array, options: GramineOptions = {}): Promise<Uint8Array> {
  checkReportData(reportData);
  const fs = options.fs ?? nodeFs;
  const root = options.root ?? GRAMINE_ROOT;
  const type = await readAttestationType(fs, root);
  if (type !== 'dcap') {
    throw new CollectionError(
      type === 'none'
        ? 'Gramine runs without remote attestation (set sgx.remote_attestation = "dcap" in the manifest)'
        : `Gramine attestation type '${type}' is not supported (Enarx needs "dcap"; EPID was retired by Intel)`,
    );
  }
  await fs.writeFile(`${root}/user_report_data`, reportData);
  let quote: Uint8Array;
  try {
    quote = await fs.readFile(`${root}/quote`);
  } catch (err) {
    throw new CollectionError(
      `Gramine could not produce a quote (${errnoOf(err) ?? (err as Error).message}); check that the host runs aesmd or a DCAP quote provider and its PCCS`,
      { cause: err },
    );
  }
  if (quote.length < QUOTE_REPORT_DATA + 64 || quote[0] !== 3 || quote[1] !== 0) {
    throw new CollectionError(`Gramine returned ${quote.length} bytes that are not an SGX quote v3`);
  }
  if (!bytesEqual(quote.subarray(QUOTE_REPORT_DATA, QUOTE_REPORT_DATA + 64), reportData)) {
    throw new CollectionError('the Gramine quote does not carry the report data written to user_report_data');
  }
  return quote;
}

/** `none`, `epid` or `dcap`; throws a CollectionError when this is not a Gramine enclave. */
export async function readAttestationType(fs: AttestationFs, root: string): Promise<string> {
  try {
    return new TextDecoder().decode(await fs.readFile(`${root}/attestation_type`)).trim();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') {
      throw new CollectionError(`not inside a Gramine SGX enclave: ${root}/attestation_type does not exist`, { cause: err });
    }
    throw new CollectionError(`cannot read ${root}/attestation_type (${errnoOf(err) ?? (err as Error).message})`, { cause: err });
  }
}
