// Helpers for front ends (the CLI, the browser page): turn the files a user gives into collateral,
// and tell what is missing before verifying.
import { looksLikeText, toHex } from '../bytes.ts';
import { derFromText, parseCertificates, parseCrl } from '../x509.ts';
import { VerificationError } from '../types.ts';
import { mergeCollateral, parseCollateralJson, type IntelCollateral } from './collateral.ts';
import { INTEL_QE_VENDOR_ID, TEE_TYPE_SGX, TEE_TYPE_TDX } from './quote.ts';

export interface CollateralFile {
  /** Shown in error messages (a path). */
  name: string;
  bytes: Uint8Array;
}

/**
 * Reads collateral files of any supported kind, detected from their content: Intel PCS TCB info or
 * enclave identity JSON, the combined collateral.json, a CRL (DER or PEM) or certificates (PEM or
 * DER, e.g. the TCB signing certificate). Throws VerificationError('parse') naming the file.
 */
export function loadIntelCollateral(files: readonly CollateralFile[]): IntelCollateral {
  const parts: IntelCollateral[] = [];
  for (const file of files) {
    try {
      parts.push(loadOne(file.bytes));
    } catch (err) {
      if (err instanceof VerificationError) throw new VerificationError(err.step, `${file.name}: ${err.message}`, { cause: err });
      throw err;
    }
  }
  return mergeCollateral(parts);
}

function loadOne(bytes: Uint8Array): IntelCollateral {
  if (looksLikeText(bytes)) {
    const text = new TextDecoder().decode(bytes).trim();
    if (text.startsWith('{')) return parseCollateralJson(text).collateral;
    if (/BEGIN(%20| )X509(%20| )CRL/.test(text)) return { crls: derFromText(text, 'X509 CRL').map((der) => parseCrl(der)) };
    if (/BEGIN(%20| )CERTIFICATE/.test(text)) return { certs: parseCertificates(text) };
    let der: Uint8Array;
    try {
      der = derFromText(text, 'X509 CRL')[0]!; // bare hex or base64 DER (a PCCS answer): a CRL or certificates
    } catch {
      throw new VerificationError('parse', 'not JSON collateral, a CRL or certificates (PEM, URL-encoded PEM, or hex/base64 DER)');
    }
    return loadOne(der);
  }
  try {
    return { crls: [parseCrl(bytes)] };
  } catch {
    return { certs: parseCertificates(bytes) }; // throws 'parse' when it is neither
  }
}

/** What a verification will reject for lack of collateral: a front end can ask for it first. */
export function missingIntelCollateral(collateral: IntelCollateral | undefined): string[] {
  return collateral?.tcbInfo ? [] : ['TCB info (Intel PCS /tcb?fmspc=...)'];
}

/** 'sgx' or 'tdx' when the bytes start like an Intel DCAP quote, else undefined (for kind detection). */
export function detectIntelQuote(bytes: Uint8Array): 'sgx' | 'tdx' | undefined {
  if (bytes.length < 48) return undefined;
  const version = bytes[0]! | (bytes[1]! << 8);
  const keyType = bytes[2]! | (bytes[3]! << 8);
  const tee = (bytes[4]! | (bytes[5]! << 8) | (bytes[6]! << 16) | (bytes[7]! << 24)) >>> 0;
  if (version < 3 || version > 5 || keyType !== 2 || toHex(bytes.subarray(12, 28)) !== INTEL_QE_VENDOR_ID) return undefined;
  return tee === TEE_TYPE_TDX ? 'tdx' : tee === TEE_TYPE_SGX ? 'sgx' : undefined;
}
