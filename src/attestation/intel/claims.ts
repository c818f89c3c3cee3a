// The claims a verified (or merely decoded) quote carries, in camelCase, for policies and for
// `enarx attest decode`. Hex strings are lowercase; numbers are plain numbers.
import { toHex } from '../bytes.ts';
import { VerificationError } from '../types.ts';
import { parseCertificates } from '../x509.ts';
import { SGX_EXTENSION_OID, decodePckExtensions, type PckExtensions } from './pck.ts';
import { CERT_DATA_PCK_CHAIN, parseQuote, type IntelQuote } from './quote.ts';

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
  /**
   * The PCK certificate as the quote carries it (unverified): subject and issuer, and its SGX
   * extension (FMSPC, PCE ID, TCB), which names the TCB info to fetch. Null when the certification
   * data holds no PCK chain; `error` when it does not parse.
   */
  pck: ({ subject: string; issuer: string; notBefore: string; notAfter: string } & PckExtensions) | { error: string } | null;
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
      quote.certificationDataType === CERT_DATA_PCK_CHAIN
        ? new TextDecoder().decode(quote.certificationData).replace(/\0+$/, '')
        : toHex(quote.certificationData),
    pck: pckOf(quote),
    length: quote.length,
    trailingBytes: quote.trailingBytes,
  };
}

function pckOf(quote: IntelQuote): DecodedIntelQuote['pck'] {
  if (quote.certificationDataType !== CERT_DATA_PCK_CHAIN) return null;
  try {
    const leaf = parseCertificates(quote.certificationData)[0]!;
    const ext = leaf.extension(SGX_EXTENSION_OID);
    if (!ext) return { error: `${leaf.label} has no SGX extension` };
    return {
      subject: leaf.subject.text,
      issuer: leaf.issuer.text,
      notBefore: leaf.notBefore.toISOString().replace('.000Z', 'Z'),
      notAfter: leaf.notAfter.toISOString().replace('.000Z', 'Z'),
      ...decodePckExtensions(ext.value),
    };
  } catch (err) {
    if (err instanceof VerificationError) return { error: err.message };
    throw err;
  }
}
