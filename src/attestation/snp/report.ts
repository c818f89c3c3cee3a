/**
 * The AMD SEV-SNP ATTESTATION_REPORT (SEV-SNP Firmware ABI, versions 2 to 5): a strict parser and
 * the decoding of every field into claims. Layout: shared/reference/attestation.md section 2.1.
 */
import { isAllZero, toHex } from '../bytes.ts';
import { VerificationError } from '../types.ts';
import type { SnpProduct } from '../roots.ts';

export const SNP_REPORT_SIZE = 0x4a0;
/** The signed part of a report: bytes [0, 0x2A0). */
export const SNP_SIGNED_SIZE = 0x2a0;
export const SNP_SUPPORTED_VERSIONS = [2, 3, 4, 5] as const;

export type SnpSigningKey = 'vcek' | 'vlek';

/** A TCB_VERSION as the product lays it out (Turin adds an FMC SPL and moves the others). */
export interface SnpTcb {
  /** The 8 bytes in report order, as hex (e.g. "0400000000001bde"). */
  raw: string;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  /** Turin only. */
  fmc?: number;
}

export interface SnpGuestPolicy {
  /** The 64-bit POLICY as a 0x-prefixed hex number. */
  raw: string;
  abiMinor: number;
  abiMajor: number;
  smt: boolean;
  /** Bit 17: reserved, must be 1. */
  reserved17: boolean;
  migrateMa: boolean;
  debug: boolean;
  singleSocket: boolean;
  cxlAllow: boolean;
  memAes256Xts: boolean;
  raplDis: boolean;
  ciphertextHiding: boolean;
  pageSwapDisable: boolean;
}

export interface SnpPlatformInfo {
  /** The 64-bit PLATFORM_INFO as a 0x-prefixed hex number. */
  raw: string;
  smtEnabled: boolean;
  tsmeEnabled: boolean;
  eccEnabled: boolean;
  raplDisabled: boolean;
  ciphertextHidingEnabled: boolean;
  aliasCheckComplete: boolean;
  tioEnabled: boolean;
}

export interface SnpFirmwareVersion {
  major: number;
  minor: number;
  build: number;
}

/** A parsed report. TCB fields are kept raw because their layout depends on the product. */
export interface SnpReport {
  bytes: Uint8Array;
  version: number;
  guestSvn: number;
  policy: SnpGuestPolicy;
  familyId: Uint8Array;
  imageId: Uint8Array;
  vmpl: number;
  signatureAlgo: number;
  currentTcb: Uint8Array;
  platformInfo: SnpPlatformInfo;
  authorKeyEn: boolean;
  maskChipKey: boolean;
  signingKey: SnpSigningKey;
  reportData: Uint8Array;
  measurement: Uint8Array;
  hostData: Uint8Array;
  idKeyDigest: Uint8Array;
  authorKeyDigest: Uint8Array;
  reportId: Uint8Array;
  reportIdMa: Uint8Array;
  reportedTcb: Uint8Array;
  /** CPUID family/model/stepping (versions 3+), else null. */
  cpuid: { familyId: number; modelId: number; stepping: number } | null;
  chipId: Uint8Array;
  committedTcb: Uint8Array;
  currentVersion: SnpFirmwareVersion;
  committedVersion: SnpFirmwareVersion;
  launchTcb: Uint8Array;
  /** Versions 5+: the mitigation vectors (u64, 0x-hex), else null. */
  launchMitVector: string | null;
  currentMitVector: string | null;
  /** R and S in big-endian, 48 bytes each, as WebCrypto wants them (r || s). */
  signatureP1363: Uint8Array;
}

function fail(message: string): never {
  throw new VerificationError('parse', `SEV-SNP report: ${message}`);
}

function u64Hex(view: DataView, offset: number): string {
  return `0x${view.getBigUint64(offset, true).toString(16).padStart(16, '0')}`;
}

function mbz(bytes: Uint8Array, start: number, end: number, what: string): void {
  if (!isAllZero(bytes.subarray(start, end))) fail(`${what} (0x${start.toString(16)}..0x${(end - 1).toString(16)}) must be zero`);
}

function reversed(bytes: Uint8Array): Uint8Array {
  return Uint8Array.from(bytes).reverse();
}

/**
 * Parses a report with every structural rule the ABI states: exact size, a known version, ECDSA
 * P-384 signature algorithm, must-be-zero fields (including the signature area's unused tail and
 * the high bytes of R and S), POLICY bit 17 set, and a signing key (VCEK or VLEK). Throws
 * VerificationError('parse'), or ('signature') for a report that says it is unsigned.
 */
export function parseSnpReport(bytes: Uint8Array): SnpReport {
  if (bytes.length !== SNP_REPORT_SIZE) fail(`${bytes.length} bytes, expected exactly ${SNP_REPORT_SIZE}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (offset: number) => view.getUint32(offset, true);
  const slice = (offset: number, length: number) => bytes.slice(offset, offset + length);

  const version = u32(0x00);
  if (!(SNP_SUPPORTED_VERSIONS as readonly number[]).includes(version)) fail(`unsupported version ${version} (supported: 2 to 5)`);
  const signatureAlgo = u32(0x34);
  if (signatureAlgo !== 1) fail(`unsupported signature algorithm ${signatureAlgo} (expected 1, ECDSA P-384 with SHA-384)`);

  const policyValue = view.getBigUint64(0x08, true);
  const bit = (n: number) => ((policyValue >> BigInt(n)) & 1n) === 1n;
  const policy: SnpGuestPolicy = {
    raw: u64Hex(view, 0x08),
    abiMinor: Number(policyValue & 0xffn),
    abiMajor: Number((policyValue >> 8n) & 0xffn),
    smt: bit(16),
    reserved17: bit(17),
    migrateMa: bit(18),
    debug: bit(19),
    singleSocket: bit(20),
    cxlAllow: bit(21),
    memAes256Xts: bit(22),
    raplDis: bit(23),
    ciphertextHiding: bit(24),
    pageSwapDisable: bit(25),
  };
  if (!policy.reserved17) fail('POLICY bit 17 (reserved, must be one) is clear');

  const vmpl = u32(0x30);
  if (vmpl > 3) fail(`VMPL ${vmpl} is out of range (0 to 3)`);

  const info = view.getBigUint64(0x40, true);
  const infoBit = (n: number) => ((info >> BigInt(n)) & 1n) === 1n;
  const platformInfo: SnpPlatformInfo = {
    raw: u64Hex(view, 0x40),
    smtEnabled: infoBit(0),
    tsmeEnabled: infoBit(1),
    eccEnabled: infoBit(2),
    raplDisabled: infoBit(3),
    ciphertextHidingEnabled: infoBit(4),
    aliasCheckComplete: infoBit(5),
    tioEnabled: infoBit(7),
  };

  const signer = u32(0x48);
  if (signer >>> 5 !== 0) fail(`signer info bits 31:5 must be zero (0x${signer.toString(16)})`);
  const keySelector = (signer >>> 2) & 7;
  if (keySelector === 7) throw new VerificationError('signature', 'SEV-SNP report: SIGNING_KEY is 7, the report is not signed');
  if (keySelector > 1) fail(`SIGNING_KEY ${keySelector} is reserved`);

  mbz(bytes, 0x4c, 0x50, 'reserved');
  mbz(bytes, version >= 3 ? 0x18b : 0x188, 0x1a0, 'reserved');
  if (bytes[0x1eb] !== 0) fail('reserved byte 0x1eb must be zero');
  if (bytes[0x1ef] !== 0) fail('reserved byte 0x1ef must be zero');
  if (version < 5) mbz(bytes, 0x1f8, 0x208, 'reserved (mitigation vectors before version 5)');
  mbz(bytes, 0x208, SNP_SIGNED_SIZE, 'reserved');
  mbz(bytes, 0x2a0 + 48, 0x2a0 + 72, 'high bytes of the signature R');
  mbz(bytes, 0x2e8 + 48, 0x2e8 + 72, 'high bytes of the signature S');
  mbz(bytes, 0x330, SNP_REPORT_SIZE, 'unused signature area');

  const signatureP1363 = new Uint8Array(96);
  signatureP1363.set(reversed(bytes.subarray(0x2a0, 0x2a0 + 48)), 0);
  signatureP1363.set(reversed(bytes.subarray(0x2e8, 0x2e8 + 48)), 48);

  return {
    bytes,
    version,
    guestSvn: u32(0x04),
    policy,
    familyId: slice(0x10, 16),
    imageId: slice(0x20, 16),
    vmpl,
    signatureAlgo,
    currentTcb: slice(0x38, 8),
    platformInfo,
    authorKeyEn: (signer & 1) === 1,
    maskChipKey: (signer & 2) === 2,
    signingKey: keySelector === 0 ? 'vcek' : 'vlek',
    reportData: slice(0x50, 64),
    measurement: slice(0x90, 48),
    hostData: slice(0xc0, 32),
    idKeyDigest: slice(0xe0, 48),
    authorKeyDigest: slice(0x110, 48),
    reportId: slice(0x140, 32),
    reportIdMa: slice(0x160, 32),
    reportedTcb: slice(0x180, 8),
    cpuid: version >= 3 ? { familyId: bytes[0x188]!, modelId: bytes[0x189]!, stepping: bytes[0x18a]! } : null,
    chipId: slice(0x1a0, 64),
    committedTcb: slice(0x1e0, 8),
    currentVersion: { build: bytes[0x1e8]!, minor: bytes[0x1e9]!, major: bytes[0x1ea]! },
    committedVersion: { build: bytes[0x1ec]!, minor: bytes[0x1ed]!, major: bytes[0x1ee]! },
    launchTcb: slice(0x1f0, 8),
    launchMitVector: version >= 5 ? u64Hex(view, 0x1f8) : null,
    currentMitVector: version >= 5 ? u64Hex(view, 0x200) : null,
    signatureP1363,
  };
}

/** Decodes a TCB_VERSION for a product: Milan and Genoa share a layout, Turin's differs. */
export function decodeTcb(raw: Uint8Array, product: SnpProduct): SnpTcb {
  if (product === 'turin') {
    return { raw: toHex(raw), fmc: raw[0]!, bootloader: raw[1]!, tee: raw[2]!, snp: raw[3]!, microcode: raw[7]! };
  }
  return { raw: toHex(raw), bootloader: raw[0]!, tee: raw[1]!, snp: raw[6]!, microcode: raw[7]! };
}

/**
 * The product a version 3+ report names through CPUID, or undefined when the family/model is not
 * one of them (or the report is version 2). Family 0x19: models 0x00-0x0F Milan, 0x10-0x1F and
 * 0xA0-0xAF Genoa (with Bergamo and Siena, which share its KDS path). Family 0x1A: models
 * 0x00-0x1F Turin, both the classic (0x0X) and the dense (0x1X, e.g. CPUID 0x00B10F20 = model
 * 0x12) parts.
 */
export function productFromCpuid(report: SnpReport): SnpProduct | undefined {
  return report.cpuid ? productOfCpu(report.cpuid.familyId, report.cpuid.modelId) : undefined;
}

/** productFromCpuid's table, for a family and model read from a report's CPUID bytes (0x188, 0x189). */
export function productOfCpu(familyId: number, modelId: number): SnpProduct | undefined {
  if (familyId === 0x19 && modelId <= 0x0f) return 'milan';
  if (familyId === 0x19 && ((modelId >= 0x10 && modelId <= 0x1f) || (modelId >= 0xa0 && modelId <= 0xaf))) return 'genoa';
  if (familyId === 0x1a && modelId <= 0x1f) return 'turin';
  return undefined;
}

/** Each product's name in AMD KDS paths (Genoa's also serves Bergamo and Siena). */
export const KDS_PRODUCT_NAMES = { milan: 'Milan', genoa: 'Genoa', turin: 'Turin' } as const;

const version = (v: SnpFirmwareVersion) => ({ major: v.major, minor: v.minor, build: v.build, text: `${v.major}.${v.minor}.${v.build}` });

/**
 * Every field as claims (docs/attestation.md lists them). `product` decides the TCB layout; when it
 * is unknown (a version 2 report decoded without its certificate) the Milan/Genoa layout is used,
 * which is right for every version 2 report since Turin firmware reports version 3 or later.
 */
export function snpClaims(report: SnpReport, product: SnpProduct | null): Record<string, unknown> {
  const layout = product ?? 'milan';
  return {
    version: report.version,
    product,
    signingKey: report.signingKey,
    guestSvn: report.guestSvn,
    policy: report.policy,
    familyId: toHex(report.familyId),
    imageId: toHex(report.imageId),
    vmpl: report.vmpl,
    signatureAlgo: report.signatureAlgo,
    currentTcb: decodeTcb(report.currentTcb, layout),
    reportedTcb: decodeTcb(report.reportedTcb, layout),
    committedTcb: decodeTcb(report.committedTcb, layout),
    launchTcb: decodeTcb(report.launchTcb, layout),
    platformInfo: report.platformInfo,
    authorKeyEn: report.authorKeyEn,
    maskChipKey: report.maskChipKey,
    hostData: toHex(report.hostData),
    idKeyDigest: toHex(report.idKeyDigest),
    authorKeyDigest: toHex(report.authorKeyDigest),
    reportId: toHex(report.reportId),
    reportIdMa: toHex(report.reportIdMa),
    chipId: toHex(report.chipId),
    cpuid: report.cpuid,
    currentVersion: version(report.currentVersion),
    committedVersion: version(report.committedVersion),
    launchMitVector: report.launchMitVector,
    currentMitVector: report.currentMitVector,
  };
}
