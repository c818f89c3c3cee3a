/**
 * The attestation verifier's public surface, shared by the Steward, the client, the CLI and the
 * browser page. Browser-safe: WebCrypto and ASN.1 only, nothing from node:.
 *
 *   verifyEvidence({ evidence, certs, crls, collateral, now })  -> VerificationResult
 *   decodeEvidence(evidence)                                     -> every field, nothing verified
 *
 * docs/attestation.md documents the steps, the claims and the trust anchors.
 */
import { fromAnyBase64, fromHex, looksLikeText, toHex, utf8 } from './bytes.ts';
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

/** Bytes or text (PEM, JSON). */
export type Input = Uint8Array | string;

/** A root to trust in addition to the vendors', e.g. a software Keep backend's. Its name is reported as 'test:<name>'. */
export interface TestRoot {
  name: string;
  certificate: Certificate | Input;
}

export interface VerifyEvidenceOptions {
  /** The raw evidence: a 1184-byte SEV-SNP report, or an SGX/TDX DCAP quote. */
  evidence: Uint8Array;
  /** Skips detection. Evidence of another kind is then rejected at step 'parse'. */
  kind?: EvidenceKind;
  /** Certificates, PEM or DER (one, a PEM bundle or a PkiPath): VCEK/VLEK, ASK/ASVK, ARK; Intel PCK or TCB signing chains. */
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
 * u32 and 1184 bytes long). Undefined when neither fits.
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
  if (bytes.length === SNP_REPORT_SIZE) {
    const version = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
    if (version >= 2 && version <= 5) return 'snp';
  }
  return undefined;
}

/**
 * The evidence a file holds, as tools write it: raw bytes, an SNP report with the MSG_REPORT_RSP
 * header the SNP_GET_REPORT ioctl puts before it or inside an Azure HCL report, or text with the bytes as hex (optionally
 * 0x-prefixed; dcap-qvl, teekit and automata samples) or base64 in either alphabet (Azure's and
 * GCP's attestation APIs). Text is decoded only when the result is evidence; anything else is
 * returned unchanged, so detection and its error messages stay those of the raw bytes.
 */
export function evidenceFromFile(bytes: Uint8Array): Uint8Array {
  const asEvidence = (b: Uint8Array) => snpReportFromResponse(b) ?? snpReportFromAzureHcl(b) ?? (detectEvidenceKind(b) ? b : undefined);
  const raw = asEvidence(bytes);
  if (raw || bytes.length > 1 << 20 || !looksLikeText(bytes)) return raw ?? bytes;
  const text = utf8(bytes).replace(/\s+/g, '');
  const hex = text.startsWith('0x') || text.startsWith('0X') ? text.slice(2) : text;
  let decoded: Uint8Array | undefined;
  if (/^([0-9A-Fa-f]{2})+$/.test(hex)) decoded = fromHex(hex);
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    try {
      decoded = fromAnyBase64(text);
    } catch {
      decoded = undefined;
    }
  }
  return (decoded && asEvidence(decoded)) ?? bytes;
}

/**
 * The report inside an SNP MSG_REPORT_RSP, as the legacy /dev/sev-guest SNP_GET_REPORT ioctl returns
 * it and some tools save it: STATUS (u32, 0 = success), REPORT_SIZE (u32, 0x4A0), 24 reserved bytes,
 * then the report (AMD SEV-SNP ABI, MSG_REPORT_RSP). Undefined for anything else.
 */
function snpReportFromResponse(bytes: Uint8Array): Uint8Array | undefined {
  if (bytes.length !== 32 + SNP_REPORT_SIZE) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 32);
  if (view.getUint32(0, true) !== 0 || view.getUint32(4, true) !== SNP_REPORT_SIZE || bytes.subarray(8, 32).some((b) => b !== 0)) return undefined;
  const report = bytes.subarray(32);
  return detectEvidenceKind(report) === 'snp' ? report : undefined;
}

/**
 * The SNP report inside an Azure HCL report (vTPM NV index 0x01400001 on Azure confidential VMs): a
 * 32-byte header starting "HCLA", the 1184-byte report, then the runtime data header (size, version,
 * report type 2 = SNP, hash type, data size) and the runtime data (JSON with the vTPM key), whose
 * hash the report's REPORT_DATA carries. Only the report is taken: the runtime data is not checked
 * here, a policy can compare REPORT_DATA. Undefined for anything else (a TDX HCL report holds a
 * TDREPORT, which is not evidence on its own).
 */
function snpReportFromAzureHcl(bytes: Uint8Array): Uint8Array | undefined {
  const runtime = 32 + SNP_REPORT_SIZE;
  if (bytes.length < runtime + 20 || bytes[0] !== 0x48 || bytes[1] !== 0x43 || bytes[2] !== 0x4c || bytes[3] !== 0x41) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(runtime + 8, true) !== 2 || runtime + 20 + view.getUint32(runtime + 16, true) > bytes.length) return undefined;
  const report = bytes.subarray(32, runtime);
  return detectEvidenceKind(report) === 'snp' ? report : undefined;
}

/** The kind to report when detection fails: the closest guess, so the failure still names a kind. */
function guessKind(bytes: Uint8Array): EvidenceKind {
  if (bytes.length >= 8 && bytes[2] === 2 && bytes[3] === 0) return bytes[4] === 0x81 ? 'tdx' : 'sgx';
  return 'snp';
}

function toBytes(input: Input): Uint8Array {
  return typeof input === 'string' ? new TextEncoder().encode(input) : input;
}

/** Certificates from PEM (any number of blocks) or DER (one certificate or a PkiPath) inputs. */
export function parseCertificateInputs(inputs: readonly Input[]): Certificate[] {
  return [...new Set(inputs.flatMap((input) => parseCertificates(input)))];
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
  const { evidence } = options;
  const detected = detectEvidenceKind(evidence);
  const kind = options.kind ?? detected ?? guessKind(evidence);
  try {
    if (!detected) {
      throw new VerificationError('parse', `not attestation evidence: neither a ${SNP_REPORT_SIZE}-byte SEV-SNP report nor an SGX/TDX DCAP quote (${evidence.length} bytes)`);
    }
    if (options.kind && detected !== options.kind) {
      throw new VerificationError('parse', `the evidence is ${kindName(detected)}, not ${kindName(options.kind)}`);
    }
    const trustedTestRoots = testAnchors(options.trustedTestRoots ?? []);
    if (kind === 'snp') {
      return await verifySnp(evidence, {
        certs: parseCertificateInputs(options.certs ?? []),
        crls: parseCrlInputs(options.crls ?? []),
        now: options.now,
        trustedTestRoots,
      });
    }
    return await verifyIntel(kind, options, trustedTestRoots);
  } catch (err) {
    if (!(err instanceof VerificationError)) throw err;
    const result = emptyResult(kind);
    result.failure = { step: err.step, message: err.message, ...(err.code ? { code: err.code } : {}) };
    return result;
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
  if (!detected) throw new VerificationError('parse', `not attestation evidence: neither a ${SNP_REPORT_SIZE}-byte SEV-SNP report nor an SGX/TDX DCAP quote (${evidence.length} bytes)`);
  if (kind && kind !== detected) throw new VerificationError('parse', `the evidence is ${kindName(detected)}, not ${kindName(kind)}`);
  if (detected === 'snp') {
    const report = parseSnpReport(evidence);
    return {
      kind: 'snp',
      measurement: toHex(report.measurement),
      reportData: toHex(report.reportData),
      debug: report.policy.debug,
      claims: snpClaims(report, productFromCpuid(report) ?? null),
    };
  }
  const { kind: quoteKind, measurement, reportData, debug, claims, ...rest } = decodeIntelQuote(evidence);
  return { kind: quoteKind, measurement, reportData, debug, claims: { ...claims, ...rest } };
}

