/**
 * The attestation verifier's public surface, shared by the Steward, the client, the CLI and the
 * browser page. Browser-safe: WebCrypto and ASN.1 only, nothing from node:.
 *
 *   verifyEvidence({ evidence, certs, crls, collateral, now })  -> VerificationResult
 *   decodeEvidence(evidence)                                     -> every field, nothing verified
 *
 * docs/attestation.md documents the steps, the claims and the trust anchors.
 */
import { bytesFromText, fromHex, looksLikeText, toHex, utf8 } from './bytes.ts';
import { type EvidenceBundle, evidenceFromJson } from './json-evidence.ts';
import { type VtpmQuote, verifyVtpmQuote } from './tpm.ts';
import { looksLikeCertTable, parseCertTable } from './snp/certtable.ts';
import { AZURE_VTPM_NOT_VERIFIED, type AzureHclReport, azureRuntimeClaims, checkAzureBinding, parseAzureHcl } from './azure.ts';
import { parseSnpReport, productFromCpuid, snpClaims, SNP_REPORT_SIZE } from './snp/report.ts';
import { emptyResult, verifySnp } from './snp/verify.ts';
import { type CollateralFile, decodeIntelQuote, loadIntelCollateral, missingIntelCollateral, verifyIntelQuote } from './intel/index.ts';
import { intelSgxRoot } from './roots.ts';
import { type EvidenceKind, VerificationError, type VerificationResult, type VerificationStep } from './types.ts';
import { type Certificate, type Crl, type TrustAnchor, derFromText, parseCertificate, parseCertificates, parseCrl } from './x509.ts';

export * from './types.ts';
export { type SnpProduct, amdRoots, intelSgxRoot, PINNED_SHA256 } from './roots.ts';
export { type TrustAnchor, Certificate, Crl, parseCertificate, parseCertificates, parseCrl, verifyChain } from './x509.ts';
export { verifySnp, type SnpVerifyOptions } from './snp/verify.ts';
export { verifyIntelQuote, verifySgxQuote, verifyTdxQuote, decodeIntelQuote, type IntelVerifyOptions, type CollateralFile } from './intel/index.ts';
export { parseSnpReport, type SnpReport } from './snp/report.ts';
export { parseAzureHcl, type AzureHclReport, type AzureRuntimeClaims } from './azure.ts';
export { type EvidenceBundle, vtpmQuoteFromJson } from './json-evidence.ts';
export { parseTpmQuote, verifyVtpmQuote, vtpmQuoteFromTpm2Tools, type VtpmQuote, type VtpmQuoteClaims } from './tpm.ts';

/** Bytes or text (PEM, JSON). */
export type Input = Uint8Array | string;

/** A root to trust in addition to the vendors', e.g. a software Keep backend's. Its name is reported as 'test:<name>'. */
export interface TestRoot {
  name: string;
  certificate: Certificate | Input;
}

export interface VerifyEvidenceOptions {
  /** The raw evidence: a 1184-byte SEV-SNP report (also inside an Azure HCL report), or an SGX/TDX DCAP quote. */
  evidence: Uint8Array;
  /**
   * An Azure HCL report whose runtime data (vTPM key, VM configuration) the evidence's report data
   * must bind: with a TD quote on an Azure TDX VM (the HCL report holds the TDREPORT it was made from).
   * An SNP HCL report given as `evidence` needs nothing here.
   */
  azureHcl?: Uint8Array;
  /**
   * Azure: the vTPM quote made with the attestation key the HCL runtime data carries. Verified
   * with that key once the runtime data is bound; its PCRs and nonce become claims.azure.vtpmQuote.
   */
  vtpmQuote?: VtpmQuote;
  /** Skips detection. Evidence of another kind is then rejected at step 'parse'. */
  kind?: EvidenceKind;
  /** Certificates, PEM or DER (one, a PEM bundle or a PkiPath), or an SEV-SNP certificate table: VCEK/VLEK, ASK/ASVK, ARK; Intel PCK or TCB signing chains. */
  certs?: readonly Input[];
  /** Intel collateral: PCS TCB info / QE identity JSON, or the combined collateral.json (named files give better messages). */
  collateral?: readonly (Input | CollateralFile)[];
  /** CRLs, PEM or DER: AMD KDS CRLs, Intel PCK and Root CA CRLs. */
  crls?: readonly Input[];
  /** The time every validity window is checked against (default: now). */
  now?: Date;
  /** Extra roots, trusted only because the caller passes them here. */
  trustedTestRoots?: readonly TestRoot[];
}

/**
 * The kind of some evidence from its bytes: an Intel DCAP quote header (version 3-5, attestation key
 * type 2, Intel's QE vendor id; TEE type 0 = SGX, 0x81 = TDX), else an SNP report (VERSION 2-5 as a
 * u32 and 1184 bytes long), alone or inside an Azure HCL report. Undefined when none fits.
 */
export function detectEvidenceKind(bytes: Uint8Array): EvidenceKind | undefined {
  if (bytes.length >= 48) {
    const version = bytes[0]! | (bytes[1]! << 8);
    const keyType = bytes[2]! | (bytes[3]! << 8);
    const tee = (bytes[4]! | (bytes[5]! << 8) | (bytes[6]! << 16) | (bytes[7]! << 24)) >>> 0;
    if (version >= 3 && version <= 5 && (keyType === 2 || keyType === 3)) {
      if (tee === 0x81) return 'tdx';
      if (tee === 0) return 'sgx';
    }
  }
  if (isSnpReport(bytes)) return 'snp';
  const hcl = parseAzureHcl(bytes);
  if (hcl?.reportType === 'snp' && isSnpReport(hcl.hardwareReport)) return 'snp';
  return undefined;
}

function isSnpReport(bytes: Uint8Array): boolean {
  return bytes.length === SNP_REPORT_SIZE && [2, 3, 4, 5].includes(new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true));
}

/** The hardware evidence itself: the SNP report inside an Azure HCL report, else the bytes as they are. */
export function hardwareEvidence(bytes: Uint8Array): Uint8Array {
  const hcl = parseAzureHcl(bytes);
  return hcl?.reportType === 'snp' && isSnpReport(hcl.hardwareReport) ? hcl.hardwareReport : bytes;
}

/** Why some bytes are not evidence, in one line that says what to do instead. */
function notEvidence(bytes: Uint8Array): string {
  const other = otherInput(bytes);
  if (other) return `not attestation evidence: this is ${other}`;
  const json = jsonEvidence(bytes);
  if (json && 'error' in json) return json.error;
  const hcl = parseAzureHcl(bytes);
  if (hcl?.reportType === 'tdx') {
    return 'an Azure HCL report holding a TDX TDREPORT, which only the local CPU can check: verify the TD quote made from it (Azure IMDS /acc/tdquote) with this file as its Azure HCL report (enarx attest verify --azure-hcl)';
  }
  return `not attestation evidence: neither a ${SNP_REPORT_SIZE}-byte SEV-SNP report nor an SGX/TDX DCAP quote (${bytes.length} bytes)`;
}

/**
 * The evidence a file holds, as tools write it: raw bytes (also an Azure HCL report, kept whole so
 * that its runtime data can be checked), an SNP report with the MSG_REPORT_RSP header the
 * SNP_GET_REPORT ioctl puts before it, or text with the bytes as hex (optionally
 * 0x-prefixed; dcap-qvl, teekit and automata samples) or base64 in either alphabet (Azure's and
 * GCP's attestation APIs). Text is decoded only when the result is evidence; anything else is
 * returned unchanged, so detection and its error messages stay those of the raw bytes.
 */
export function evidenceFromFile(bytes: Uint8Array): Uint8Array {
  return evidenceBundleFromFile(bytes).evidence;
}

/**
 * evidenceFromFile, also for a JSON document that carries the evidence in a field (as a byte array,
 * hex or base64: Confidential Containers' attesters, DCAP tools), with the certificates and the
 * Azure HCL report it carries beside it. A JSON document without exactly one piece of evidence is
 * returned as it is (verifying it then says why).
 */
export function evidenceBundleFromFile(bytes: Uint8Array): EvidenceBundle {
  const json = jsonEvidence(bytes);
  if (json && 'bundle' in json) return { ...json.bundle, evidence: unwrapEvidence(json.bundle.evidence) ?? json.bundle.evidence };
  return { evidence: fromFile(bytes, unwrapEvidence) ?? bytes, certs: [], field: '' };
}

// A TDX HCL report is not evidence, but decoding it from text lets the verifier say what to do with it.
const unwrapEvidence = (b: Uint8Array) => snpReportFromResponse(b) ?? (detectEvidenceKind(b) || parseAzureHcl(b) ? b : undefined);

const jsonEvidence = (bytes: Uint8Array) => evidenceFromJson(bytes, (b) => unwrapEvidence(b) !== undefined && !(parseAzureHcl(b)?.reportType === 'tdx'));

/** An Azure HCL report from a file: raw, or as hex or base64 text (as evidenceFromFile reads them). Undefined when it holds none. */
export function azureHclFromFile(bytes: Uint8Array): Uint8Array | undefined {
  return fromFile(bytes, (b) => (parseAzureHcl(b) ? b : undefined));
}

/** Text evidence (hex, base64) is decoded only up to this size: a report or quote is a few KiB. */
export const TEXT_EVIDENCE_MAX_BYTES = 1 << 20;

/** The bytes `accept` takes: the file's own, else its hex or base64 text decoded (up to TEXT_EVIDENCE_MAX_BYTES of text). */
function fromFile(bytes: Uint8Array, accept: (b: Uint8Array) => Uint8Array | undefined): Uint8Array | undefined {
  const raw = accept(bytes);
  if (raw || bytes.length > TEXT_EVIDENCE_MAX_BYTES || !looksLikeText(bytes)) return raw;
  const decoded = bytesFromText(utf8(bytes));
  return decoded && accept(decoded);
}

/**
 * The report inside an SNP MSG_REPORT_RSP, as the legacy /dev/sev-guest SNP_GET_REPORT ioctl returns
 * it and some tools save it: STATUS (u32, 0 = success), REPORT_SIZE (u32, 0x4A0), 24 reserved bytes,
 * then the report (AMD SEV-SNP ABI, MSG_REPORT_RSP), possibly followed by the zeros of the rest of
 * the 4000-byte response buffer. Undefined for anything else.
 */
function snpReportFromResponse(bytes: Uint8Array): Uint8Array | undefined {
  // The ioctl's response buffer is 4000 bytes (struct snp_report_resp): tools that save it whole leave zeros after the report.
  if (bytes.length < 32 + SNP_REPORT_SIZE || bytes.length > SNP_RESPONSE_BUFFER) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 32);
  if (view.getUint32(0, true) !== 0 || view.getUint32(4, true) !== SNP_REPORT_SIZE || bytes.subarray(8, 32).some((b) => b !== 0)) return undefined;
  if (bytes.subarray(32 + SNP_REPORT_SIZE).some((b) => b !== 0)) return undefined;
  const report = bytes.subarray(32, 32 + SNP_REPORT_SIZE);
  return detectEvidenceKind(report) === 'snp' ? report : undefined;
}

/** The size of the legacy SNP_GET_REPORT ioctl's response buffer (Linux uapi sev-guest.h, snp_report_resp). */
const SNP_RESPONSE_BUFFER = 4000;

/**
 * What a file that is not evidence is instead, when it is one of the other inputs a verification
 * takes (a certificate, a CRL, Intel collateral) or a verifier's answer (a JWT): users drop those on
 * --evidence too.
 */
function otherInput(bytes: Uint8Array): string | undefined {
  if (bytes.length > 1 << 20) return undefined;
  const text = looksLikeText(bytes) ? utf8(bytes).trim() : '';
  if (/^eyJ[\w-]*\.[\w-]+\.[\w-]*$/.test(text)) return 'a JSON Web Token: an attestation service\'s verdict (Azure MAA, Intel Trust Authority), not the evidence it judged';
  if (/"(tcbInfo|enclaveIdentity|tcb_info|qe_identity)"\s*:/.test(text)) return 'Intel collateral (TCB info, QE identity): give it as collateral (--collateral), with the quote as the evidence';
  if (text.includes('-----BEGIN X509 CRL-----') || (!text && isDerCrl(bytes))) return 'a CRL: give it as a CRL (--crl), with the report or quote as the evidence';
  if (text.includes('-----BEGIN CERTIFICATE-----') || (!text && certificateCount(bytes) > 0)) {
    return 'a certificate: give it as a certificate (--cert), with the report or quote as the evidence';
  }
  return undefined;
}

function isDerCrl(bytes: Uint8Array): boolean {
  if (bytes[0] !== 0x30) return false;
  try {
    parseCrl(bytes);
    return true;
  } catch {
    return false;
  }
}

function certificateCount(bytes: Uint8Array): number {
  if (bytes[0] !== 0x30) return 0;
  try {
    return parseCertificates(bytes).length;
  } catch {
    return 0;
  }
}

/** The kind to report when detection fails: the closest guess, so the failure still names a kind. */
function guessKind(bytes: Uint8Array): EvidenceKind {
  const hcl = parseAzureHcl(bytes);
  if (hcl) return hcl.reportType;
  if (bytes.length >= 8 && bytes[2] === 2 && bytes[3] === 0) return bytes[4] === 0x81 ? 'tdx' : 'sgx';
  return 'snp';
}

function toBytes(input: Input): Uint8Array {
  return typeof input === 'string' ? new TextEncoder().encode(input) : input;
}

/**
 * Certificates from PEM (any number of blocks), DER (one certificate or a PkiPath) or SEV-SNP
 * certificate table (configfs-tsm auxblob: its VCEK/VLEK, ASK and ARK entries) inputs.
 */
export function parseCertificateInputs(inputs: readonly Input[]): Certificate[] {
  return [...new Set(inputs.flatMap((input) => (typeof input !== 'string' && looksLikeCertTable(input) ? certTableCertificates(input) : parseCertificates(input))))];
}

function certTableCertificates(table: Uint8Array): Certificate[] {
  return parseCertTable(table)
    .filter((e) => e.name === 'vcek' || e.name === 'vlek' || e.name === 'ask' || e.name === 'ark')
    .map((e) => parseCertificate(e.der));
}

/** CRLs from DER or text inputs (any number of PEM blocks, URL-encoded PEM, hex or base64 DER). */
export function parseCrlInputs(inputs: readonly Input[]): Crl[] {
  return inputs.flatMap((input) => {
    const bytes = toBytes(input);
    if (looksLikeText(bytes)) return derFromText(utf8(bytes), 'X509 CRL').map((der) => parseCrl(der));
    return [parseCrl(bytes)];
  });
}

function testAnchors(roots: readonly TestRoot[]): TrustAnchor[] {
  return roots.map((root) => {
    const certificate = typeof root.certificate === 'string' || root.certificate instanceof Uint8Array ? parseCertificates(root.certificate)[0]! : root.certificate;
    return { name: root.name.startsWith('test:') ? root.name : `test:${root.name}`, certificate };
  });
}

/** A rejection result for evidence whose inputs failed before verification (e.g. a malformed certificate table). */
export function rejectedResult(evidence: Uint8Array, failure: { step: VerificationStep; message: string }, kind?: EvidenceKind): VerificationResult {
  const result = emptyResult(kind ?? detectEvidenceKind(evidence) ?? guessKind(evidence));
  result.failure = failure;
  return result;
}

/**
 * Verifies evidence of any supported kind and returns a result whatever the outcome: a rejection
 * is `verified: false` with `failure.step` naming the step. Throws only on programming errors.
 */
export async function verifyEvidence(options: VerifyEvidenceOptions): Promise<VerificationResult> {
  const detected = detectEvidenceKind(options.evidence);
  const kind = options.kind ?? detected ?? guessKind(options.evidence);
  let result: VerificationResult;
  let hcl: AzureHclReport | undefined;
  try {
    if (!detected) throw new VerificationError('parse', notEvidence(options.evidence));
    if (options.kind && detected !== options.kind) {
      throw new VerificationError('parse', `the evidence is ${kindName(detected)}, not ${kindName(options.kind)}`);
    }
    hcl = azureHclFor(options);
    if (options.vtpmQuote && !hcl) throw new VerificationError('parse', 'a vTPM quote was given without the Azure HCL report whose runtime data holds its key');
    const evidence = hardwareEvidence(options.evidence);
    const trustedTestRoots = testAnchors(options.trustedTestRoots ?? []);
    if (kind === 'snp') {
      result = await verifySnp(evidence, {
        certs: parseCertificateInputs(options.certs ?? []),
        crls: parseCrlInputs(options.crls ?? []),
        now: options.now,
        trustedTestRoots,
      });
    } else {
      result = await verifyIntel(kind, { ...options, evidence }, trustedTestRoots);
    }
  } catch (err) {
    if (!(err instanceof VerificationError)) throw err;
    result = emptyResult(kind);
    result.failure = { step: err.step, message: err.message, ...(err.code ? { code: err.code } : {}) };
    return result;
  }
  if (hcl) await bindAzureRuntimeData(result, hcl, options.vtpmQuote);
  return result;
}

/** The Azure HCL report that goes with the evidence: the evidence itself (SNP), or `azureHcl`. Throws 'parse' when `azureHcl` is not one, or is for the other TEE. */
function azureHclFor(options: VerifyEvidenceOptions): AzureHclReport | undefined {
  const wrapping = parseAzureHcl(options.evidence);
  if (options.azureHcl === undefined) return wrapping;
  if (wrapping) throw new VerificationError('parse', 'the evidence is an Azure HCL report already: give no second one');
  const given = parseAzureHcl(options.azureHcl);
  if (!given) throw new VerificationError('parse', 'the Azure HCL report given is not one (no "HCLA" header with a known report type, hash type and runtime data size)');
  const kind = detectEvidenceKind(options.evidence)!;
  if (given.reportType !== (kind === 'snp' ? 'snp' : 'tdx')) {
    throw new VerificationError('parse', `the Azure HCL report holds a${given.reportType === 'snp' ? 'n SEV-SNP report' : ' TDX TDREPORT'}, but the evidence is ${kindName(kind)}`);
  }
  return given;
}

/**
 * Azure: REPORT_DATA (SNP) or REPORTDATA (the TD quote) must start with the hash of the HCL runtime
 * data. Checked once the evidence parsed; a mismatch rejects at 'binding' unless an earlier step
 * already did. The runtime data's vTPM keys and VM configuration become `claims.azure`.
 */
async function bindAzureRuntimeData(result: VerificationResult, hcl: AzureHclReport, vtpmQuote: VtpmQuote | undefined): Promise<void> {
  if (result.reportData === '') return;
  try {
    const { claims, warnings } = await checkAzureBinding(hcl, fromHex(result.reportData));
    result.claims = { ...result.claims, azure: claims };
    result.warnings.push(...warnings);
    if (!vtpmQuote) {
      result.warnings.push(AZURE_VTPM_NOT_VERIFIED);
      return;
    }
    if (!claims.akPub) throw new VerificationError('binding', 'a vTPM quote was given, but the HCL runtime data holds no attestation key (HCLAkPub) to check it with');
    claims.vtpmQuote = await verifyVtpmQuote(vtpmQuote, claims.akPub);
  } catch (err) {
    if (!(err instanceof VerificationError)) throw err;
    if (!result.failure) {
      result.verified = false;
      result.failure = { step: err.step, message: err.message };
    }
  }
}

async function verifyIntel(kind: 'sgx' | 'tdx', options: VerifyEvidenceOptions, testRoots: TrustAnchor[]): Promise<VerificationResult> {
  const collateral = loadIntelCollateral(
    (options.collateral ?? []).map((c, i) => (typeof c === 'string' || c instanceof Uint8Array ? { name: `collateral #${i + 1}`, bytes: toBytes(c) } : c)),
  );
  const result = await verifyIntelQuote(
    options.evidence,
    {
      collateral,
      crls: options.crls,
      certs: options.certs,
      now: options.now ?? new Date(),
      ...(testRoots.length ? { roots: [await intelSgxRoot(), ...testRoots] } : {}),
    },
    kind,
  );
  if (result.failure?.step === 'collateral' && missingIntelCollateral(collateral).length > 0) result.failure.code = 'missing-collateral';
  return result;
}

export function kindName(kind: EvidenceKind): string {
  return { snp: 'an AMD SEV-SNP report', sgx: 'an Intel SGX quote', tdx: 'an Intel TDX quote' }[kind];
}

/** Every decoded field of some evidence, without verifying anything. */
export interface DecodedEvidence {
  kind: EvidenceKind;
  measurement: string;
  reportData: string;
  debug: boolean;
  claims: Record<string, unknown>;
}

/** Decodes evidence without verifying it. Throws VerificationError('parse') for bytes that are not evidence. */
export function decodeEvidence(evidence: Uint8Array, kind?: EvidenceKind): DecodedEvidence {
  const detected = detectEvidenceKind(evidence);
  if (!detected) throw new VerificationError('parse', notEvidence(evidence));
  if (kind && kind !== detected) throw new VerificationError('parse', `the evidence is ${kindName(detected)}, not ${kindName(kind)}`);
  if (detected === 'snp') {
    const report = parseSnpReport(hardwareEvidence(evidence));
    const hcl = parseAzureHcl(evidence);
    return {
      kind: 'snp',
      measurement: toHex(report.measurement),
      reportData: toHex(report.reportData),
      debug: report.policy.debug,
      claims: { ...snpClaims(report, productFromCpuid(report) ?? null), ...(hcl ? { azure: azureRuntimeClaims(hcl).claims } : {}) },
    };
  }
  const { kind: quoteKind, measurement, reportData, debug, claims, ...rest } = decodeIntelQuote(evidence);
  return { kind: quoteKind, measurement, reportData, debug, claims: { ...claims, ...rest } };
}

