/**
 * A vTPM quote (TPM 2.0 TPM2_Quote): the TPMS_ATTEST the vTPM signs with its attestation key, the
 * signature, and the PCR values it covers. On Azure the attestation key is the one the HCL runtime
 * data carries (kid HCLAkPub), which REPORT_DATA binds to the hardware report; verifying the quote
 * with it extends that trust to the PCRs. Layouts: TPM 2.0 Library Part 2 (TPMS_ATTEST,
 * TPMS_QUOTE_INFO, TPML_PCR_SELECTION, TPMT_SIGNATURE), all big-endian. Browser-safe.
 */
import { bytesEqual, concatAll, digest, ownBytes, toHex } from './bytes.ts';
import { VerificationError } from './types.ts';

const TPM_GENERATED_VALUE = 0xff544347;
const TPM_ST_ATTEST_QUOTE = 0x8018;
const TPM_ALG_RSASSA = 0x0014;
const HASH_ALGS: Record<number, { name: 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512'; size: number }> = {
  0x0004: { name: 'SHA-1', size: 20 },
  0x000b: { name: 'SHA-256', size: 32 },
  0x000c: { name: 'SHA-384', size: 48 },
  0x000d: { name: 'SHA-512', size: 64 },
};

/** A vTPM quote as tools hand it over: the attestation structure, its signature and the PCR values (index order, one bank). */
export interface VtpmQuote {
  message: Uint8Array;
  signature: Uint8Array;
  /** The PCR values of the quoted bank, PCR 0 first (tpm2_quote --pcrs_format values; Azure: all 24 SHA-256 PCRs). */
  pcrs: Uint8Array[];
}

export interface TpmQuoteInfo {
  /** TPMS_ATTEST.extraData: the verifier's nonce. */
  extraData: Uint8Array;
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
  firmwareVersion: bigint;
  /** The selected PCRs, bank by bank, in selection order. */
  selections: Array<{ hash: (typeof HASH_ALGS)[number]['name']; pcrs: number[] }>;
  pcrDigest: Uint8Array;
}

function fail(message: string): never {
  throw new VerificationError('parse', `vTPM quote: ${message}`);
}

/** Parses a TPMS_ATTEST of type quote. Throws VerificationError('parse'). */
export function parseTpmQuote(message: Uint8Array): TpmQuoteInfo {
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  let at = 0;
  const need = (n: number, what: string) => {
    if (at + n > message.length) fail(`${what} runs past the end (${message.length} bytes)`);
  };
  const u8 = (what: string) => (need(1, what), message[at++]!);
  const u16 = (what: string) => (need(2, what), (at += 2), view.getUint16(at - 2));
  const u32 = (what: string) => (need(4, what), (at += 4), view.getUint32(at - 4));
  const u64 = (what: string) => (need(8, what), (at += 8), view.getBigUint64(at - 8));
  const sized = (what: string) => {
    const n = u16(what);
    need(n, what);
    at += n;
    return message.subarray(at - n, at);
  };
  if (u32('magic') !== TPM_GENERATED_VALUE) fail('not a TPM-generated structure (magic is not TPM_GENERATED_VALUE)');
  const type = u16('type');
  if (type !== TPM_ST_ATTEST_QUOTE) fail(`attestation type 0x${type.toString(16)} is not a quote (0x8018)`);
  sized('qualifiedSigner');
  const extraData = sized('extraData');
  const clock = u64('clock');
  const resetCount = u32('resetCount');
  const restartCount = u32('restartCount');
  const safe = u8('safe') !== 0;
  const firmwareVersion = u64('firmwareVersion');
  const count = u32('PCR selection count');
  if (count > 16) fail(`${count} PCR banks selected`);
  const selections: TpmQuoteInfo['selections'] = [];
  for (let i = 0; i < count; i++) {
    const alg = u16('PCR bank hash');
    const hash = HASH_ALGS[alg];
    if (!hash) fail(`PCR bank hash algorithm 0x${alg.toString(16)} is unknown`);
    const size = u8('PCR select size');
    need(size, 'PCR select');
    const pcrs: number[] = [];
    for (let b = 0; b < size; b++) for (let bit = 0; bit < 8; bit++) if ((message[at + b]! >> bit) & 1) pcrs.push(b * 8 + bit);
    at += size;
    selections.push({ hash: hash.name, pcrs });
  }
  const pcrDigest = sized('pcrDigest');
  if (at !== message.length) fail(`${message.length - at} bytes after the quote information`);
  return { extraData, clock, resetCount, restartCount, safe, firmwareVersion, selections, pcrDigest };
}

/**
 * A vTPM quote from the three files tpm2_quote writes: the attestation structure (-m), its signature
 * (-s) and, with `-F values`, the selected PCRs' values concatenated in selection order (-o).
 * Throws VerificationError('parse') when the values do not fit the quote's one PCR bank.
 */
export function vtpmQuoteFromTpm2Tools(message: Uint8Array, signature: Uint8Array, pcrValues: Uint8Array): VtpmQuote {
  const { selections } = parseTpmQuote(message);
  if (selections.length !== 1) fail(`it selects ${selections.length} PCR banks; one is supported`);
  const { hash, pcrs } = selections[0]!;
  const size = Object.values(HASH_ALGS).find((h) => h.name === hash)!.size;
  if (pcrValues.length !== pcrs.length * size) {
    fail(`the PCR values are ${pcrValues.length} bytes, but the quote selects ${pcrs.length} ${hash} PCRs (${pcrs.length * size} bytes; tpm2_quote -F values -o writes them)`);
  }
  const values: Uint8Array[] = [];
  pcrs.forEach((index, k) => (values[index] = new Uint8Array(pcrValues.subarray(k * size, (k + 1) * size))));
  // Unselected PCRs have no value: a hole the verifier never reads (it reads the selected ones only).
  return { message, signature, pcrs: Array.from(values, (v) => v ?? new Uint8Array(0)) };
}

/** The raw RSA signature: as given, or inside a TPMT_SIGNATURE (RSASSA, SHA-256), as tpm2_quote writes it by default. */
function rsaSignature(signature: Uint8Array): Uint8Array {
  if (signature.length >= 6) {
    const view = new DataView(signature.buffer, signature.byteOffset, signature.byteLength);
    if (view.getUint16(0) === TPM_ALG_RSASSA && view.getUint16(2) === 0x000b && view.getUint16(4) === signature.length - 6) return signature.subarray(6);
  }
  return signature;
}

export interface VtpmQuoteClaims {
  /** Hex of TPMS_ATTEST.extraData (the nonce the verifier gave the vTPM). */
  nonce: string;
  /** The quoted PCRs of the first bank, index to hex value. */
  pcrs: Record<string, string>;
  pcrBank: string;
  clock: string;
  resetCount: number;
  restartCount: number;
  firmwareVersion: string;
}

/**
 * Verifies a vTPM quote with the attestation key (an RSA JWK, as Azure's runtime data carries it):
 * the RSASSA-PKCS1-v1_5 SHA-256 signature over TPMS_ATTEST ('signature'), then the PCR digest over
 * the given PCR values of the selected PCRs ('binding'). Returns the quoted PCRs and the nonce.
 */
export async function verifyVtpmQuote(quote: VtpmQuote, akPub: Record<string, unknown>): Promise<VtpmQuoteClaims> {
  const info = parseTpmQuote(quote.message);
  if (akPub.kty !== 'RSA' || typeof akPub.n !== 'string' || typeof akPub.e !== 'string') {
    throw new VerificationError('signature', 'the vTPM attestation key is not an RSA key, so the vTPM quote cannot be checked');
  }
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey('jwk', { kty: 'RSA', n: akPub.n, e: akPub.e, ext: true }, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['verify']);
  } catch (err) {
    throw new VerificationError('signature', `the vTPM attestation key cannot be used: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!(await crypto.subtle.verify('RSASSA-PKCS1-v1_5', key, ownBytes(rsaSignature(quote.signature)), ownBytes(quote.message)))) {
    throw new VerificationError('signature', 'the vTPM quote is not signed by the attestation key the hardware report binds');
  }
  if (info.selections.length !== 1) throw new VerificationError('binding', `the vTPM quote selects ${info.selections.length} PCR banks; one is supported`);
  const [bank] = info.selections;
  const size = Object.values(HASH_ALGS).find((h) => h.name === bank!.hash)!.size;
  const values = bank!.pcrs.map((i) => quote.pcrs[i]);
  if (values.some((v) => v === undefined || v.length !== size)) {
    throw new VerificationError('binding', `the vTPM quote covers PCRs ${bank!.pcrs.join(',')} of the ${bank!.hash} bank, but those ${size}-byte values were not all given`);
  }
  // The TPM digests the selected values with the signing scheme's hash: SHA-256 here.
  if (!bytesEqual(await digest('SHA-256', concatAll(values as Uint8Array[])), info.pcrDigest)) {
    throw new VerificationError('binding', 'the PCR values given are not the ones the vTPM quoted (PCR digest differs)');
  }
  return {
    nonce: toHex(info.extraData),
    pcrs: Object.fromEntries(bank!.pcrs.map((i) => [String(i), toHex(quote.pcrs[i]!)])),
    pcrBank: bank!.hash,
    clock: info.clock.toString(),
    resetCount: info.resetCount,
    restartCount: info.restartCount,
    firmwareVersion: `0x${info.firmwareVersion.toString(16)}`,
  };
}
