// The claims a verified (or merely decoded) quote carries, in camelCase, for policies and for
// `enarx attest decode`. Hex strings are lowercase; numbers are plain numbers.
import { toHex } from '../bytes.ts';
import { parseQuote, type IntelQuote } from './quote.ts';

/** Header, body and QE report fields of a quote. PCK and TCB claims are added by the verifier. */
export function quoteClaims(quote: IntelQuote): Record<string, unknown> {
  const h = quote.header;
  const claims: Record<string, unknown> = {
    quoteVersion: h.version,
    teeType: quote.kind,
    bodyType: quote.bodyType,
    attestationKeyType: h.attestationKeyType,
    headerQeSvn: h.qeSvn,
    headerPceSvn: h.pceSvn,
    qeVendorId: h.qeVendorId,
    userData: h.userData,
  };
  if (quote.sgxBody) Object.assign(claims, quote.sgxBody);
  if (quote.tdBody) Object.assign(claims, quote.tdBody);
  const qe = quote.qeReport;
  claims.qeSvn = qe.isvSvn;
  claims.qeReport = qe;
  claims.attestationKey = toHex(quote.attestationKey);
  claims.certificationDataType = quote.certificationDataType;
  return claims;
}

/** Every field of a quote, for `enarx attest decode`: nothing is verified. */
export interface DecodedIntelQuote {
  kind: 'sgx' | 'tdx';
  /** Hex: SGX MRENCLAVE or TDX MRTD. */
  measurement: string;
  reportData: string;
  debug: boolean;
  claims: Record<string, unknown>;
  signature: string;
  qeReportSignature: string;
  qeAuthData: string;
  /** The certification data as text when it is a PEM chain (type 5), else hex. */
  certificationData: string;
  length: number;
  trailingBytes: number;
}

/** Decodes an Intel quote (SGX or TDX) without verifying it. Throws VerificationError('parse'). */
export function decodeIntelQuote(bytes: Uint8Array): DecodedIntelQuote {
  const quote = parseQuote(bytes);
  const body = quote.sgxBody;
  const td = quote.tdBody;
  return {
    kind: quote.kind,
    measurement: body?.mrenclave ?? td!.mrtd,
    reportData: body?.reportData ?? td!.reportData,
    debug: body ? body.attributes.debug : td!.tdAttributes.debug,
    claims: quoteClaims(quote),
    signature: toHex(quote.signature),
    qeReportSignature: toHex(quote.qeReportSignature),
    qeAuthData: toHex(quote.qeAuthData),
    certificationData:
      quote.certificationDataType === 5
        ? new TextDecoder().decode(quote.certificationData).replace(/\0+$/, '')
        : toHex(quote.certificationData),
    length: quote.length,
    trailingBytes: quote.trailingBytes,
  };
}
