/**
 * Azure confidential VMs: the HCL report (vTPM NV index 0x01400001) that the paravisor writes.
 * Layout (Microsoft's az-cvm-vtpm `hcl` module, read to learn it):
 *
 *   0     32    header: "HCLA", version, report size, request type, status, reserved[3]
 *   32    1184  the hardware report: an SEV-SNP ATTESTATION_REPORT, or a TDX TDREPORT (1024 bytes, padded)
 *   1216  20    runtime data header: data size, version, report type (2 SNP, 4 TDX), hash type
 *                (1 SHA-256, 2 SHA-384, 3 SHA-512), variable data size
 *   1236  n     the runtime data: JSON with the vTPM's attestation key (kid "HCLAkPub"), its
 *                endorsement key ("HCLEkPub"), the VM configuration and the user data
 *
 * The hardware report's REPORT_DATA starts with the hash of the runtime data: that is what binds
 * the vTPM key and the VM configuration to signed hardware evidence. Browser-safe.
 */
import { bytesEqual, digest, isAllZero, toHex } from './bytes.ts';
import { VerificationError, oneLine } from './types.ts';
import type { VtpmQuoteClaims } from './tpm.ts';

const MAGIC = [0x48, 0x43, 0x4c, 0x41]; // "HCLA"
const HEADER_SIZE = 32;
const HARDWARE_REPORT_SIZE = 1184;
const RUNTIME_HEADER = HEADER_SIZE + HARDWARE_REPORT_SIZE;
const RUNTIME_DATA = RUNTIME_HEADER + 20;
/** A TDREPORT: REPORTMACSTRUCT, TEE_TCB_INFO, TDINFO. */
const TD_REPORT_SIZE = 1024;

const REPORT_TYPES = { 2: 'snp', 4: 'tdx' } as const;
const HASH_TYPES = { 1: 'SHA-256', 2: 'SHA-384', 3: 'SHA-512' } as const;
type HashName = (typeof HASH_TYPES)[keyof typeof HASH_TYPES];
const HASH_LENGTH: Record<HashName, number> = { 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 };

export interface AzureHclReport {
  /** The whole HCL report as given. */
  bytes: Uint8Array;
  /** What the hardware report is: an SEV-SNP report (verifiable evidence) or a TDX TDREPORT (MAC'd for the local CPU only). */
  reportType: 'snp' | 'tdx';
  /** The SEV-SNP report (1184 bytes) or the TDREPORT (1024 bytes). */
  hardwareReport: Uint8Array;
  hashType: HashName;
  /** The runtime data exactly as hashed. */
  runtimeData: Uint8Array;
}

/**
 * The HCL report in some bytes, or undefined when they are not one ("HCLA", a known report type
 * and hash type, a runtime data size that fits). What follows the runtime data is ignored: the NV
 * index is read whole (2600 bytes), padded with zeros.
 */
export function parseAzureHcl(bytes: Uint8Array): AzureHclReport | undefined {
  if (bytes.length < RUNTIME_DATA || MAGIC.some((b, i) => bytes[i] !== b)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const reportType = REPORT_TYPES[view.getUint32(RUNTIME_HEADER + 8, true) as keyof typeof REPORT_TYPES];
  const hashType = HASH_TYPES[view.getUint32(RUNTIME_HEADER + 12, true) as keyof typeof HASH_TYPES];
  const size = view.getUint32(RUNTIME_HEADER + 16, true);
  if (!reportType || !hashType || size > bytes.length - RUNTIME_DATA) return undefined;
  const hardwareReport = bytes.subarray(HEADER_SIZE, HEADER_SIZE + (reportType === 'snp' ? HARDWARE_REPORT_SIZE : TD_REPORT_SIZE));
  return { bytes, reportType, hardwareReport, hashType, runtimeData: bytes.subarray(RUNTIME_DATA, RUNTIME_DATA + size) };
}

/** A JSON Web Key from the runtime data, its string members only (kid, kty, n, e, key_ops...). */
export type RuntimeKey = Record<string, string | string[]>;

export interface AzureRuntimeClaims {
  /** 'snp' or 'tdx': the hardware report the HCL report carried. */
  reportType: 'snp' | 'tdx';
  /** The hash REPORT_DATA carries over the runtime data. */
  runtimeDataHash: HashName;
  /** The vTPM attestation key (kid "HCLAkPub"), the key a vTPM quote is checked with; null when absent. */
  akPub: RuntimeKey | null;
  /** The vTPM endorsement key (kid "HCLEkPub"); null when absent. */
  ekPub: RuntimeKey | null;
  /** The "vm-configuration" object's scalar members (secure-boot, tpm-enabled, console-enabled, vmUniqueId...); null when absent. */
  vmConfiguration: Record<string, string | number | boolean> | null;
  /** The "user-data" string (hex of the 64 bytes the guest asked for); null when absent. */
  userData: string | null;
  /** Set when a vTPM quote was given and verified with akPub: its nonce and PCR values. */
  vtpmQuote?: VtpmQuoteClaims;
}

/** Strings from the runtime data reach terminals and pages: control characters come out escaped. */
const printable = (text: string): string => (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(text) ? oneLine(text) : text);

function stringMembers(value: unknown): RuntimeKey | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const out: RuntimeKey = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'string') out[printable(k)] = printable(v);
    else if (Array.isArray(v) && v.every((e) => typeof e === 'string')) out[printable(k)] = v.map(printable);
  }
  return out;
}

function scalarMembers(value: unknown): Record<string, string | number | boolean> | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'string') out[printable(k)] = printable(v);
    else if (typeof v === 'number' || typeof v === 'boolean') out[printable(k)] = v;
  }
  return out;
}

/**
 * The claims of the runtime data, and warnings for what could not be read. Never throws: runtime
 * data that is not JSON still has its hash checked, it just yields no keys.
 */
export function azureRuntimeClaims(hcl: AzureHclReport): { claims: AzureRuntimeClaims; warnings: string[] } {
  const warnings: string[] = [];
  const claims: AzureRuntimeClaims = {
    reportType: hcl.reportType,
    runtimeDataHash: hcl.hashType,
    akPub: null,
    ekPub: null,
    vmConfiguration: null,
    userData: null,
  };
  let json: unknown;
  try {
    // Trailing NULs are not JSON; they are still part of what is hashed.
    let end = hcl.runtimeData.length;
    while (end > 0 && hcl.runtimeData[end - 1] === 0) end--;
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hcl.runtimeData.subarray(0, end)));
  } catch {
    warnings.push('the Azure HCL runtime data is not JSON: no vTPM key or VM configuration could be read from it');
    return { claims, warnings };
  }
  const record = typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : {};
  const keys = Array.isArray(record.keys) ? record.keys.map(stringMembers).filter((k): k is RuntimeKey => k !== null) : [];
  claims.akPub = keys.find((k) => k.kid === 'HCLAkPub') ?? null;
  claims.ekPub = keys.find((k) => k.kid === 'HCLEkPub') ?? null;
  claims.vmConfiguration = scalarMembers(record['vm-configuration']);
  claims.userData = typeof record['user-data'] === 'string' ? printable(record['user-data']) : null;
  if (!claims.akPub) warnings.push('the Azure HCL runtime data holds no vTPM attestation key (kid HCLAkPub)');
  return { claims, warnings };
}

/**
 * Checks that `reportData` (the verified evidence's REPORT_DATA / REPORTDATA) starts with the hash
 * of the HCL runtime data, and returns the runtime data's claims. Throws VerificationError('binding').
 * The rest of the report data is zero as Azure writes it; anything else there is a warning.
 */
export async function checkAzureBinding(hcl: AzureHclReport, reportData: Uint8Array): Promise<{ claims: AzureRuntimeClaims; warnings: string[] }> {
  const { claims, warnings } = azureRuntimeClaims(hcl);
  const n = HASH_LENGTH[hcl.hashType];
  const expected = await digest(hcl.hashType, hcl.runtimeData);
  if (!bytesEqual(reportData.subarray(0, n), expected)) {
    throw new VerificationError(
      'binding',
      `the Azure HCL runtime data is not the data this evidence was made for: its ${hcl.hashType} is ${toHex(expected).slice(0, 16)}..., the report data starts ${toHex(reportData.subarray(0, 8))}...`,
    );
  }
  if (!isAllZero(reportData.subarray(n))) warnings.push(`the report data after the runtime data's ${hcl.hashType} is not zero (Azure writes zeros there)`);
  return { claims, warnings };
}

/** The warning an Azure result without a vTPM quote carries: what the binding alone does not cover. */
export const AZURE_VTPM_NOT_VERIFIED =
  "the Azure vTPM quote (PCRs) is not verified: only the HCL runtime data (vTPM attestation key, VM configuration, user data) is bound to the hardware report; give the vTPM quote too, or check one with claims.azure.akPub";
