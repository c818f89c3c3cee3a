/**
 * Evidence that tools hand over inside a JSON document: Confidential Containers' attesters
 * (`{"report": [bytes], "vcek": "..."}`, `{"hcl_report": "<base64url>", "td_quote": "..."}`),
 * DCAP tools (`{"quote": "<hex>"}`) and the like. Every field, at any depth up to a few levels, is
 * looked at: a byte array, hex or base64 (either alphabet) that decodes to an SEV-SNP report, a
 * DCAP quote or an Azure HCL report is evidence; one that decodes to a certificate (or a PEM text)
 * is a certificate to verify it with. Browser-safe.
 */
import { bytesFromText, fromHex, looksLikeText, utf8 } from './bytes.ts';
import { parseAzureHcl } from './azure.ts';
import { parseCertificates } from './x509.ts';
import type { VtpmQuote } from './tpm.ts';

export interface EvidenceBundle {
  /** The evidence: an SNP report (or the Azure HCL report holding one) or a DCAP quote. */
  evidence: Uint8Array;
  /** An Azure TDX HCL report found beside a TD quote. */
  azureHcl?: Uint8Array;
  /** A vTPM quote found beside it (`{message, signature, pcrs}`, as Azure attesters write it). */
  vtpmQuote?: VtpmQuote;
  /** Certificates found beside it (a VCEK, a chain): DER, or PEM text. */
  certs: Array<Uint8Array | string>;
  /** The JSON path of the evidence, e.g. "hcl_report", for messages. */
  field: string;
}

/** The outcome for a JSON document: a bundle, or why none (several candidates, none). */
export type JsonEvidence = { bundle: EvidenceBundle } | { error: string };

const MAX_JSON = 4 << 20;
const MAX_DEPTH = 4;

/** Bytes a JSON value may hold: an array of byte values, or a string of hex or base64 (at least 64 bytes' worth). */
function bytesOf(value: unknown): Uint8Array | undefined {
  if (Array.isArray(value)) {
    if (value.length < 64 || !value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) return undefined;
    return Uint8Array.from(value as number[]);
  }
  if (typeof value !== 'string' || value.length < 86) return undefined;
  return bytesFromText(value);
}

/** A short byte value (a PCR): an array of byte values or hex. */
function smallBytesOf(value: unknown): Uint8Array | undefined {
  if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) return Uint8Array.from(value as number[]);
  if (typeof value === 'string' && /^([0-9A-Fa-f]{2})*$/.test(value)) return fromHex(value);
  return undefined;
}

/** `{message, signature, pcrs}` whose message is a TPM-generated structure (magic ff544347). */
function vtpmQuoteOf(value: unknown): VtpmQuote | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  const message = bytesOf(o.message) ?? smallBytesOf(o.message);
  const signature = bytesOf(o.signature);
  if (!message || !signature || message[0] !== 0xff || message[1] !== 0x54 || message[2] !== 0x43 || message[3] !== 0x47) return undefined;
  const pcrs = Array.isArray(o.pcrs) ? o.pcrs.map(smallBytesOf) : [];
  if (pcrs.some((p) => p === undefined)) return undefined;
  return { message, signature, pcrs: pcrs as Uint8Array[] };
}

/**
 * The vTPM quote in a JSON document (`{message, signature, pcrs}` at the top or in a field, as Azure
 * attesters write it), a reason when there is none or more than one, or undefined when the bytes
 * are not a JSON object.
 */
export function vtpmQuoteFromJson(bytes: Uint8Array): { quote: VtpmQuote } | { error: string } | undefined {
  const json = jsonObjectOf(bytes);
  if (json === undefined) return undefined;
  const quotes: VtpmQuote[] = [];
  const visit = (value: unknown, depth: number): void => {
    const quote = vtpmQuoteOf(value);
    if (quote) quotes.push(quote);
    else if (depth < MAX_DEPTH && typeof value === 'object' && value !== null) for (const child of Object.values(value)) visit(child, depth + 1);
  };
  visit(json, 0);
  if (quotes.length === 1) return { quote: quotes[0]! };
  return { error: quotes.length ? 'the JSON document holds more than one vTPM quote' : 'no field of the JSON document is a vTPM quote ({message, signature, pcrs} whose message is a TPM-generated TPMS_ATTEST)' };
}

/** The JSON object the bytes hold (text up to MAX_JSON, starting with `{`), or undefined. */
function jsonObjectOf(bytes: Uint8Array): object | undefined {
  if (bytes.length > MAX_JSON || !looksLikeText(bytes)) return undefined;
  const text = utf8(bytes).trim();
  if (!text.startsWith('{')) return undefined;
  try {
    return JSON.parse(text) as object;
  } catch {
    return undefined;
  }
}

function isCertificate(bytes: Uint8Array | string): boolean {
  if (typeof bytes !== 'string' && bytes[0] !== 0x30) return false;
  try {
    return parseCertificates(bytes).length > 0;
  } catch {
    return false;
  }
}

/**
 * The evidence in a JSON document, or undefined when the bytes are not a JSON object. `isEvidence`
 * says which decoded bytes are evidence (the caller's detection), so that this module needs no
 * knowledge of the formats beyond the Azure HCL report.
 */
export function evidenceFromJson(bytes: Uint8Array, isEvidence: (b: Uint8Array) => boolean): JsonEvidence | undefined {
  const json = jsonObjectOf(bytes);
  if (json === undefined) return undefined;
  const evidence: Array<{ field: string; bytes: Uint8Array }> = [];
  const hcls: Array<{ field: string; bytes: Uint8Array }> = [];
  const certs: Array<Uint8Array | string> = [];
  const quotes: VtpmQuote[] = [];
  const visit = (value: unknown, path: string, depth: number): void => {
    const vtpm = vtpmQuoteOf(value);
    if (vtpm) {
      quotes.push(vtpm);
      return;
    }
    if (typeof value === 'string' && value.includes('-----BEGIN CERTIFICATE-----')) {
      if (isCertificate(value)) certs.push(value);
      return;
    }
    const decoded = bytesOf(value);
    if (decoded) {
      if (isEvidence(decoded)) evidence.push({ field: path, bytes: decoded });
      else if (parseAzureHcl(decoded)) hcls.push({ field: path, bytes: decoded });
      else if (isCertificate(decoded)) certs.push(decoded);
      return;
    }
    if (depth >= MAX_DEPTH || value === null || typeof value !== 'object') return;
    for (const [key, child] of Object.entries(value)) visit(child, path ? `${path}.${key}` : key, depth + 1);
  };
  visit(json, '', 0);
  const names = (list: Array<{ field: string }>) => list.map((e) => e.field || '(the document)').join(', ');
  if (evidence.length > 1) return { error: `the JSON document holds more than one piece of evidence (${names(evidence)}): save the one to verify on its own` };
  if (hcls.length > 1) return { error: `the JSON document holds more than one Azure HCL report (${names(hcls)})` };
  if (quotes.length > 1) return { error: 'the JSON document holds more than one vTPM quote' };
  // A TDX HCL report alone: the verifier then says to verify the TD quote with it.
  const found = evidence[0] ?? (hcls.length === 1 ? hcls.pop() : undefined);
  if (!found) return { error: 'a JSON document in which no field holds evidence (an SEV-SNP report, an Azure HCL report or a DCAP quote, as a byte array, hex or base64)' };
  const bundle: EvidenceBundle = { evidence: found.bytes, certs, field: found.field };
  if (hcls[0]) bundle.azureHcl = hcls[0].bytes;
  if (quotes[0]) bundle.vtpmQuote = quotes[0];
  return { bundle };
}
