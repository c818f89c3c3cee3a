// Intel DCAP quote parsing: SGX quote v3, SGX/TDX quote v4 and v5, to the layouts of Intel's QVL
// (QuoteStructures.h, Quote.cpp). Every length is bounds-checked; bytes after the declared end of the
// signature data are ignored, as the QVL ignores them, and counted.
import { VerificationError } from '../types.ts';
import { isAllZero, toHex } from '../bytes.ts';
import { Reader, u16le, u32le, u64le } from './reader.ts';
import { BytesMap } from './bytes-map.ts';

export const INTEL_QE_VENDOR_ID = '939a7233f79c4ca9940a0db3957f0607';
export const TEE_TYPE_SGX = 0x00000000;
export const TEE_TYPE_TDX = 0x00000081;
export const ATT_KEY_TYPE_ECDSA_P256 = 2;

const HEADER_LEN = 48;
export const SGX_REPORT_BODY_LEN = 384;
export const TD_REPORT10_LEN = 584;
export const TD_REPORT15_LEN = 648;
const BODY_TYPE_SGX = 1;
const BODY_TYPE_TD10 = 2;
const BODY_TYPE_TD15 = 3;

/** Certification data types (Intel "ECDSA Quote Library API"). */
export const CERT_DATA_PCK_CHAIN = 5;
export const CERT_DATA_QE_REPORT = 6;

export interface QuoteHeader {
  version: number;
  attestationKeyType: number;
  teeType: number;
  qeSvn: number;
  pceSvn: number;
  qeVendorId: string;
  userData: string;
}

/** An SGX REPORTBODY (the ISV enclave's, or the Quoting Enclave's). */
export interface SgxReportBody {
  cpuSvn: string;
  miscSelect: number;
  isvExtProdId: string;
  attributes: SgxAttributes;
  xfrm: string;
  mrenclave: string;
  mrsigner: string;
  configId: string;
  isvProdId: number;
  isvSvn: number;
  configSvn: number;
  isvFamilyId: string;
  reportData: string;
}

export interface SgxAttributes {
  /** The 8 flag bytes, hex, as in the report (little-endian u64). */
  raw: string;
  /** The flags as a number, "0x" hex (big-endian, as policies write them). */
  flags: string;
  init: boolean;
  debug: boolean;
  mode64bit: boolean;
  provisionKey: boolean;
  einitTokenKey: boolean;
  cet: boolean;
  kss: boolean;
  aexNotify: boolean;
}

/** A TD report body, 1.0 (584 bytes) or 1.5 (648 bytes: adds teeTcbSvn2 and mrServiceTd). */
export interface TdReportBody {
  teeTcbSvn: string;
  mrSeam: string;
  mrSignerSeam: string;
  seamAttributes: string;
  tdAttributes: TdAttributes;
  xfam: string;
  mrtd: string;
  mrConfigId: string;
  mrOwner: string;
  mrOwnerConfig: string;
  rtmr0: string;
  rtmr1: string;
  rtmr2: string;
  rtmr3: string;
  reportData: string;
  teeTcbSvn2?: string;
  mrServiceTd?: string;
}

export interface TdAttributes {
  /** The 8 bytes, hex, as in the report (little-endian u64). */
  raw: string;
  /** The attributes as a number, "0x" hex (big-endian). */
  flags: string;
  debug: boolean;
  hgsPlusProf: boolean;
  perfProf: boolean;
  pmtProf: boolean;
  icssd: boolean;
  lass: boolean;
  septVeDisable: boolean;
  migratable: boolean;
  pks: boolean;
  kl: boolean;
  tpa: boolean;
  perfmon: boolean;
}

export interface IntelQuote {
  header: QuoteHeader;
  kind: 'sgx' | 'tdx';
  /** 'sgx' (REPORTBODY), 'td10' (TD report 1.0) or 'td15' (TD report 1.5, quote v5 only). */
  bodyType: 'sgx' | 'td10' | 'td15';
  sgxBody?: SgxReportBody;
  tdBody?: TdReportBody;
  /** Raw TEE_TCB_SVN (TDX), used by the TCB evaluation. */
  teeTcbSvn?: Uint8Array;
  teeTcbSvn2?: Uint8Array;
  mrSignerSeamRaw?: Uint8Array;
  seamAttributesRaw?: Uint8Array;
  /** The bytes the attestation key signs: header and body (and v5's body descriptor). */
  signedData: Uint8Array;
  signature: Uint8Array;
  attestationKey: Uint8Array;
  qeReportRaw: Uint8Array;
  qeReport: SgxReportBody;
  qeReportSignature: Uint8Array;
  qeAuthData: Uint8Array;
  certificationDataType: number;
  certificationData: Uint8Array;
  /** Length of the quote as declared by its structure. */
  length: number;
  /** Bytes after `length`, ignored. */
  trailingBytes: number;
}

const SGX_FLAG_BITS: [keyof Omit<SgxAttributes, 'raw' | 'flags'>, number][] = [
  ['init', 0],
  ['debug', 1],
  ['mode64bit', 2],
  ['provisionKey', 4],
  ['einitTokenKey', 5],
  ['cet', 6],
  ['kss', 7],
  ['aexNotify', 10],
];

const TD_ATTRIBUTE_BITS: [keyof Omit<TdAttributes, 'raw' | 'flags'>, number][] = [
  ['debug', 0],
  ['hgsPlusProf', 4],
  ['perfProf', 5],
  ['pmtProf', 6],
  ['icssd', 16],
  ['lass', 27],
  ['septVeDisable', 28],
  ['migratable', 29],
  ['pks', 30],
  ['kl', 31],
  ['tpa', 62],
  ['perfmon', 63],
];

function bits<K extends string>(word: bigint, table: [K, number][]): Record<K, boolean> {
  const out = {} as Record<K, boolean>;
  for (const [name, bit] of table) out[name] = ((word >> BigInt(bit)) & 1n) === 1n;
  return out;
}

const hexAt = (b: Uint8Array, at: number, len: number): string => toHex(b.subarray(at, at + len));

export function parseSgxReportBody(b: Uint8Array): SgxReportBody {
  if (b.length !== SGX_REPORT_BODY_LEN) throw new VerificationError('parse', `an SGX report body is ${SGX_REPORT_BODY_LEN} bytes, not ${b.length}`);
  return {
    cpuSvn: hexAt(b, 0, 16),
    miscSelect: u32le(b, 16),
    isvExtProdId: hexAt(b, 32, 16),
    attributes: { raw: hexAt(b, 48, 8), flags: `0x${u64le(b, 48).toString(16).padStart(16, '0')}`, ...bits(u64le(b, 48), SGX_FLAG_BITS) },
    xfrm: hexAt(b, 56, 8),
    mrenclave: hexAt(b, 64, 32),
    mrsigner: hexAt(b, 128, 32),
    configId: hexAt(b, 192, 64),
    isvProdId: u16le(b, 256),
    isvSvn: u16le(b, 258),
    configSvn: u16le(b, 260),
    isvFamilyId: hexAt(b, 304, 16),
    reportData: hexAt(b, 320, 64),
  };
}

export function parseTdReportBody(b: Uint8Array): TdReportBody {
  if (b.length !== TD_REPORT10_LEN && b.length !== TD_REPORT15_LEN) {
    throw new VerificationError('parse', `a TD report body is ${TD_REPORT10_LEN} or ${TD_REPORT15_LEN} bytes, not ${b.length}`);
  }
  const body: TdReportBody = {
    teeTcbSvn: hexAt(b, 0, 16),
    mrSeam: hexAt(b, 16, 48),
    mrSignerSeam: hexAt(b, 64, 48),
    seamAttributes: hexAt(b, 112, 8),
    tdAttributes: { raw: hexAt(b, 120, 8), flags: `0x${u64le(b, 120).toString(16).padStart(16, '0')}`, ...bits(u64le(b, 120), TD_ATTRIBUTE_BITS) },
    xfam: hexAt(b, 128, 8),
    mrtd: hexAt(b, 136, 48),
    mrConfigId: hexAt(b, 184, 48),
    mrOwner: hexAt(b, 232, 48),
    mrOwnerConfig: hexAt(b, 280, 48),
    rtmr0: hexAt(b, 328, 48),
    rtmr1: hexAt(b, 376, 48),
    rtmr2: hexAt(b, 424, 48),
    rtmr3: hexAt(b, 472, 48),
    reportData: hexAt(b, 520, 64),
  };
  if (b.length === TD_REPORT15_LEN) {
    body.teeTcbSvn2 = hexAt(b, 584, 16);
    body.mrServiceTd = hexAt(b, 600, 48);
  }
  return body;
}

// A Quoting Enclave puts the same report in every quote it makes: decode it once.
const qeReports = new BytesMap<SgxReportBody>(64);

function qeReportBody(raw: Uint8Array): SgxReportBody {
  let body = qeReports.get(raw);
  if (!body) qeReports.set([raw], (body = parseSgxReportBody(raw)));
  return { ...body, attributes: { ...body.attributes } }; // a copy the caller may keep or change
}

/**
 * Parses an Intel DCAP quote (v3, v4 or v5) without verifying anything. Throws a 'parse'
 * VerificationError with a one-line reason for anything malformed or unsupported.
 */
export function parseQuote(bytes: Uint8Array): IntelQuote {
  const r = new Reader(bytes);
  if (bytes.length < HEADER_LEN) throw new VerificationError('parse', `quote is truncated: ${bytes.length} bytes, a header alone is ${HEADER_LEN}`);
  const h = r.take(HEADER_LEN, 'header');
  const header: QuoteHeader = {
    version: u16le(h, 0),
    attestationKeyType: u16le(h, 2),
    teeType: u32le(h, 4),
    qeSvn: u16le(h, 8),
    pceSvn: u16le(h, 10),
    qeVendorId: hexAt(h, 12, 16),
    userData: hexAt(h, 28, 20),
  };
  if (header.version !== 3 && header.version !== 4 && header.version !== 5) {
    throw new VerificationError('parse', `unsupported quote version ${header.version} (supported: 3, 4, 5)`);
  }
  if (header.attestationKeyType !== ATT_KEY_TYPE_ECDSA_P256) {
    throw new VerificationError('parse', `unsupported attestation key type ${header.attestationKeyType} (only 2, ECDSA P-256, is supported)`);
  }
  if (header.teeType !== TEE_TYPE_SGX && header.teeType !== TEE_TYPE_TDX) {
    throw new VerificationError('parse', `unknown TEE type 0x${header.teeType.toString(16)}`);
  }
  if (header.version === 3 && header.teeType !== TEE_TYPE_SGX) {
    throw new VerificationError('parse', 'a version 3 quote must be an SGX quote (TEE type 0)');
  }
  if (header.qeVendorId !== INTEL_QE_VENDOR_ID) {
    throw new VerificationError('parse', `QE vendor id ${header.qeVendorId} is not Intel's`);
  }

  let bodyType: IntelQuote['bodyType'];
  if (header.version === 5) {
    const type = r.u16('body type');
    const size = r.u32('body size');
    const expected = { [BODY_TYPE_SGX]: SGX_REPORT_BODY_LEN, [BODY_TYPE_TD10]: TD_REPORT10_LEN, [BODY_TYPE_TD15]: TD_REPORT15_LEN }[type];
    if (expected === undefined) throw new VerificationError('parse', `unknown quote v5 body type ${type}`);
    if (size !== expected) throw new VerificationError('parse', `quote v5 body type ${type} must be ${expected} bytes, not ${size}`);
    bodyType = type === BODY_TYPE_SGX ? 'sgx' : type === BODY_TYPE_TD10 ? 'td10' : 'td15';
    if ((header.teeType === TEE_TYPE_SGX) !== (bodyType === 'sgx')) {
      throw new VerificationError('parse', `quote v5 body type ${type} does not match TEE type 0x${header.teeType.toString(16)}`);
    }
  } else {
    bodyType = header.teeType === TEE_TYPE_SGX ? 'sgx' : 'td10';
  }
  const bodyLen = bodyType === 'sgx' ? SGX_REPORT_BODY_LEN : bodyType === 'td10' ? TD_REPORT10_LEN : TD_REPORT15_LEN;
  const body = r.take(bodyLen, 'report body');
  const signedData = bytes.subarray(0, r.pos);

  const sigDataLen = r.u32('signature data length');
  if (sigDataLen > r.remaining) {
    throw new VerificationError('parse', `signature data length ${sigDataLen} exceeds the ${r.remaining} bytes left in the quote`);
  }
  const sigEnd = r.pos + sigDataLen;
  const s = new Reader(bytes, r.pos, sigEnd);
  const signature = s.take(64, 'quote signature');
  const attestationKey = s.take(64, 'attestation key');

  let qe: Reader;
  let certOuterType: number | undefined;
  if (header.version === 3) {
    qe = s;
  } else {
    certOuterType = s.u16('certification data type');
    const size = s.u32('certification data size');
    if (certOuterType !== CERT_DATA_QE_REPORT) {
      throw new VerificationError('parse', `quote v${header.version} certification data must be type 6 (QE report), not ${certOuterType}`);
    }
    if (size !== s.remaining) {
      throw new VerificationError('parse', `QE report certification data declares ${size} bytes but ${s.remaining} are present`);
    }
    qe = new Reader(bytes, s.pos, sigEnd);
  }
  const qeReportRaw = qe.take(SGX_REPORT_BODY_LEN, 'QE report');
  const qeReportSignature = qe.take(64, 'QE report signature');
  const qeAuthLen = qe.u16('QE authentication data length');
  const qeAuthData = qe.take(qeAuthLen, 'QE authentication data');
  const certificationDataType = qe.u16('certification data type');
  const certSize = qe.u32('certification data size');
  if (certSize !== qe.remaining) {
    throw new VerificationError('parse', `certification data declares ${certSize} bytes but ${qe.remaining} are present`);
  }
  if (certificationDataType < 1 || certificationDataType > 5) {
    throw new VerificationError('parse', `certification data type ${certificationDataType} is not valid inside a quote v${header.version} (1 to 5)`);
  }
  const certificationData = qe.take(certSize, 'certification data');

  const quote: IntelQuote = {
    header,
    kind: header.teeType === TEE_TYPE_TDX ? 'tdx' : 'sgx',
    bodyType,
    signedData,
    signature,
    attestationKey,
    qeReportRaw,
    qeReport: qeReportBody(qeReportRaw),
    qeReportSignature,
    qeAuthData,
    certificationDataType,
    certificationData,
    length: sigEnd,
    trailingBytes: bytes.length - sigEnd,
  };
  if (bodyType === 'sgx') {
    quote.sgxBody = parseSgxReportBody(body);
  } else {
    quote.tdBody = parseTdReportBody(body);
    quote.teeTcbSvn = body.subarray(0, 16);
    quote.mrSignerSeamRaw = body.subarray(64, 112);
    quote.seamAttributesRaw = body.subarray(112, 120);
    if (bodyType === 'td15') quote.teeTcbSvn2 = body.subarray(584, 600);
  }
  return quote;
}

/** True when the QE report's upper 32 report-data bytes are zero, as Intel's QE writes them. */
export function qeReportDataUpperIsZero(quote: IntelQuote): boolean {
  return isAllZero(quote.qeReportRaw.subarray(320 + 32, 384));
}
