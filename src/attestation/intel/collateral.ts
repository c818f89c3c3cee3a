// Intel PCS collateral: TCB info (v2, v3; SGX and TDX) and enclave identities (QE, TD_QE, v2), read
// from the raw PCS bodies or from the combined collateral.json of the shared vectors. Intel signs
// the exact bytes of the inner object, so the signed text is sliced out of the body, never re-serialised.
import { VerificationError } from '../types.ts';
import { fromHex as hexToBytes } from '../bytes.ts';
import { derFromText, parseCertificate, parseCrl, type Certificate, type Crl } from '../x509.ts';

export const TCB_STATUSES = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded',
  'Revoked',
] as const;
export type TcbStatus = (typeof TCB_STATUSES)[number];
/** Statuses a TD 1.5 evaluation can add (QVL TDRelaunchCheck). */
export type CombinedStatus = TcbStatus | 'TDRelaunchAdvised' | 'TDRelaunchAdvisedConfigurationNeeded';

export interface TcbLevel {
  sgxComponents: number[];
  pceSvn: number;
  /** TDX TCB info only. */
  tdxComponents?: number[];
  tcbDate: string;
  tcbStatus: TcbStatus;
  advisoryIds: string[];
}

export interface IsvSvnLevel {
  isvSvn: number;
  tcbDate: string;
  tcbStatus: TcbStatus;
  advisoryIds: string[];
}

export interface TdxModuleIdentity {
  id: string;
  mrsigner: Uint8Array;
  attributes: Uint8Array;
  attributesMask: Uint8Array;
  tcbLevels: IsvSvnLevel[];
}

export interface TcbInfo {
  id: 'SGX' | 'TDX';
  version: number;
  issueDate: Date;
  nextUpdate: Date;
  /** Lower-case hex. */
  fmspc: string;
  pceId: string;
  tcbType: number;
  tcbEvaluationDataNumber: number;
  tdxModule?: { mrsigner: Uint8Array; attributes: Uint8Array; attributesMask: Uint8Array };
  tdxModuleIdentities?: TdxModuleIdentity[];
  tcbLevels: TcbLevel[];
}

export interface EnclaveIdentity {
  id: string;
  version: number;
  issueDate: Date;
  nextUpdate: Date;
  tcbEvaluationDataNumber: number;
  miscselect: Uint8Array;
  miscselectMask: Uint8Array;
  attributes: Uint8Array;
  attributesMask: Uint8Array;
  mrsigner: Uint8Array;
  isvProdId: number;
  tcbLevels: IsvSvnLevel[];
}

/** A signed collateral document: what Intel signed, the signature, and the parsed content. */
export interface Signed<T> {
  body: T;
  /** UTF-8 bytes of the inner JSON object exactly as transmitted: the signature input. */
  signedBytes: Uint8Array;
  /** r || s, 64 bytes. */
  signature: Uint8Array;
  /** The issuer chain (header or field), when it came with the document. */
  issuerChain?: Certificate[];
}

/** Everything a quote verification may use besides the quote; any part may be absent. */
export interface IntelCollateral {
  tcbInfo?: Signed<TcbInfo>;
  qeIdentity?: Signed<EnclaveIdentity>;
  /** CRLs (PCK Processor/Platform CRL, Root CA CRL), parsed; told apart by issuer when used. */
  crls?: Crl[];
  /** Certificates that may be needed as issuers (PCK CRL chain, TCB signing certificate), parsed. */
  certs?: Certificate[];
}

function bad(what: string): never {
  throw new VerificationError('parse', `collateral: ${what}`);
}

function fromHex(text: string, what: string): Uint8Array {
  try {
    return hexToBytes(text);
  } catch {
    bad(`${what} is not hexadecimal bytes`);
  }
}

// ---- raw JSON slicing ----------------------------------------------------------------------------

/** Index just past the JSON string that starts at text[i] === '"'. */
function skipString(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x5c) j++;
    else if (c === 0x22) return j + 1;
  }
  bad('unterminated JSON string');
}

/** Index just past the object or array that opens at text[i]. */
function skipContainer(text: string, i: number): number {
  let depth = 0;
  for (let j = i; j < text.length; j++) {
    const c = text[j];
    if (c === '"') j = skipString(text, j) - 1;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return j + 1;
    }
  }
  bad('unbalanced JSON');
}

/**
 * The exact text of the value of top-level member `key` in the JSON object `text`, which must
 * already be known to be valid JSON. Only top-level members are considered.
 */
export function rawMember(text: string, key: string): string | undefined {
  let i = text.indexOf('{');
  if (i < 0) return undefined;
  i++;
  while (i < text.length) {
    while (i < text.length && text[i] !== '"' && text[i] !== '}') i++;
    if (i >= text.length || text[i] === '}') return undefined;
    const keyEnd = skipString(text, i);
    const name = JSON.parse(text.slice(i, keyEnd)) as string;
    i = keyEnd;
    while (/\s/.test(text[i] ?? '') || text[i] === ':') i++;
    const start = i;
    const c = text[i];
    if (c === '{' || c === '[') i = skipContainer(text, i);
    else if (c === '"') i = skipString(text, i);
    else while (i < text.length && !/[,}\s]/.test(text[i]!)) i++;
    if (name === key) return text.slice(start, i);
    while (i < text.length && text[i] !== ',' && text[i] !== '}') i++;
    if (text[i] === ',') i++;
  }
  return undefined;
}

// ---- field readers -------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function obj(v: unknown, what: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`${what} must be an object`);
  return v as Json;
}
function int(o: Json, k: string, what: string, max = 0xffffffff): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) bad(`${what}.${k} must be an integer 0..${max}`);
  return v;
}
function str(o: Json, k: string, what: string): string {
  const v = o[k];
  if (typeof v !== 'string') bad(`${what}.${k} must be a string`);
  return v;
}
function hexField(o: Json, k: string, what: string, len: number): Uint8Array {
  const v = str(o, k, what);
  if (v.length !== len * 2) bad(`${what}.${k} must be ${len} bytes of hex`);
  return fromHex(v, `${what}.${k}`);
}
function lowerHex(o: Json, k: string, what: string, len: number): string {
  hexField(o, k, what, len);
  return str(o, k, what).toLowerCase();
}
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
function date(o: Json, k: string, what: string): Date {
  const v = str(o, k, what);
  const d = new Date(v);
  if (!RFC3339.test(v) || Number.isNaN(d.getTime())) bad(`${what}.${k} is not an RFC 3339 date`);
  return d;
}
function status(o: Json, what: string): TcbStatus {
  const v = str(o, 'tcbStatus', what);
  if (!(TCB_STATUSES as readonly string[]).includes(v)) bad(`${what}.tcbStatus "${v}" is not a known TCB status`);
  return v as TcbStatus;
}
function advisories(o: Json, what: string): string[] {
  const v = o.advisoryIDs;
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) bad(`${what}.advisoryIDs must be an array of strings`);
  return v as string[];
}
function array(o: Json, k: string, what: string): unknown[] {
  const v = o[k];
  if (!Array.isArray(v)) bad(`${what}.${k} must be an array`);
  return v;
}

function components(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || v.length !== 16) bad(`${what} must hold 16 components`);
  return v.map((c, i) => int(obj(c, `${what}[${i}]`), 'svn', `${what}[${i}]`, 255));
}

function isvSvnLevels(list: unknown[], what: string): IsvSvnLevel[] {
  return list.map((l, i) => {
    const w = `${what}[${i}]`;
    const level = obj(l, w);
    return {
      isvSvn: int(obj(level.tcb, `${w}.tcb`), 'isvsvn', `${w}.tcb`, 0xffff),
      tcbDate: (date(level, 'tcbDate', w), str(level, 'tcbDate', w)),
      tcbStatus: status(level, w),
      advisoryIds: advisories(level, w),
    };
  });
}

export function parseTcbInfoBody(o: Json): TcbInfo {
  const w = 'tcbInfo';
  const version = int(o, 'version', w);
  if (version !== 2 && version !== 3) bad(`TCB info version ${version} is not supported (2 or 3)`);
  const id = version === 2 ? 'SGX' : str(o, 'id', w);
  if (id !== 'SGX' && id !== 'TDX') bad(`TCB info id "${id}" is neither SGX nor TDX`);
  const isTdx = id === 'TDX';
  const tcbLevels: TcbLevel[] = array(o, 'tcbLevels', w).map((l, i) => {
    const lw = `${w}.tcbLevels[${i}]`;
    const level = obj(l, lw);
    const tcb = obj(level.tcb, `${lw}.tcb`);
    let sgxComponents: number[];
    let tdxComponents: number[] | undefined;
    if (version === 2) {
      sgxComponents = Array.from({ length: 16 }, (_, c) => int(tcb, `sgxtcbcomp${String(c + 1).padStart(2, '0')}svn`, `${lw}.tcb`, 255));
    } else {
      sgxComponents = components(tcb.sgxtcbcomponents, `${lw}.tcb.sgxtcbcomponents`);
      if (isTdx) tdxComponents = components(tcb.tdxtcbcomponents, `${lw}.tcb.tdxtcbcomponents`);
    }
    return {
      sgxComponents,
      pceSvn: int(tcb, 'pcesvn', `${lw}.tcb`, 0xffff),
      tdxComponents,
      tcbDate: (date(level, 'tcbDate', lw), str(level, 'tcbDate', lw)),
      tcbStatus: status(level, lw),
      advisoryIds: advisories(level, lw),
    };
  });
  // tcbType 0 (compare each SGX TCB component SVN) is the only evaluation Intel defines.
  if (int(o, 'tcbType', w) !== 0) bad(`TCB info tcbType ${String(o.tcbType)} is not supported (only 0)`);
  const info: TcbInfo = {
    id,
    version,
    issueDate: date(o, 'issueDate', w),
    nextUpdate: date(o, 'nextUpdate', w),
    fmspc: lowerHex(o, 'fmspc', w, 6),
    pceId: lowerHex(o, 'pceId', w, 2),
    tcbType: int(o, 'tcbType', w),
    tcbEvaluationDataNumber: int(o, 'tcbEvaluationDataNumber', w),
    tcbLevels,
  };
  if (isTdx) {
    const m = obj(o.tdxModule, `${w}.tdxModule`);
    info.tdxModule = {
      mrsigner: hexField(m, 'mrsigner', `${w}.tdxModule`, 48),
      attributes: hexField(m, 'attributes', `${w}.tdxModule`, 8),
      attributesMask: hexField(m, 'attributesMask', `${w}.tdxModule`, 8),
    };
    if (o.tdxModuleIdentities !== undefined) {
      info.tdxModuleIdentities = array(o, 'tdxModuleIdentities', w).map((e, i) => {
        const ew = `${w}.tdxModuleIdentities[${i}]`;
        const ident = obj(e, ew);
        return {
          id: str(ident, 'id', ew),
          mrsigner: hexField(ident, 'mrsigner', ew, 48),
          attributes: hexField(ident, 'attributes', ew, 8),
          attributesMask: hexField(ident, 'attributesMask', ew, 8),
          tcbLevels: isvSvnLevels(array(ident, 'tcbLevels', ew), `${ew}.tcbLevels`),
        };
      });
    }
  }
  return info;
}

export function parseEnclaveIdentityBody(o: Json): EnclaveIdentity {
  const w = 'enclaveIdentity';
  const version = int(o, 'version', w);
  if (version !== 2) bad(`enclave identity version ${version} is not supported (2)`);
  return {
    id: str(o, 'id', w),
    version,
    issueDate: date(o, 'issueDate', w),
    nextUpdate: date(o, 'nextUpdate', w),
    tcbEvaluationDataNumber: int(o, 'tcbEvaluationDataNumber', w),
    miscselect: hexField(o, 'miscselect', w, 4),
    miscselectMask: hexField(o, 'miscselectMask', w, 4),
    attributes: hexField(o, 'attributes', w, 16),
    attributesMask: hexField(o, 'attributesMask', w, 16),
    mrsigner: hexField(o, 'mrsigner', w, 32),
    isvProdId: int(o, 'isvprodid', w, 0xffff),
    tcbLevels: isvSvnLevels(array(o, 'tcbLevels', w), `${w}.tcbLevels`),
  };
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    bad(`${what} is not valid JSON`);
  }
}

function signatureHex(v: unknown, what: string): Uint8Array {
  if (typeof v !== 'string' || v.length !== 128) bad(`${what} must be 128 hex characters (r || s)`);
  return fromHex(v, what);
}

function signed<T>(innerText: string, signature: unknown, parse: (o: Json) => T, what: string, chain?: unknown): Signed<T> {
  const body = parse(obj(parseJson(innerText, what), what));
  const out: Signed<T> = { body, signedBytes: new TextEncoder().encode(innerText), signature: signatureHex(signature, `${what} signature`) };
  if (chain !== undefined) {
    if (typeof chain !== 'string') bad(`${what} issuer chain must be PEM text`);
    out.issuerChain = pemCertificates(chain).map(parseCertificate);
  }
  return out;
}

/** A CRL given as DER hex (the shared vectors, dcap-qvl) or as PEM text (PCCS). */
function crlField(v: string, what: string): Uint8Array {
  try {
    return derFromText(v, 'X509 CRL')[0]!;
  } catch {
    bad(`${what} holds neither a PEM X509 CRL nor hex DER`);
  }
}

/** Every PEM CERTIFICATE block in `text`, as DER (derFromText: also URL-encoded, as PCS headers give them, or one bare hex/base64 DER). */
export function pemCertificates(text: string): Uint8Array[] {
  try {
    return derFromText(text, 'CERTIFICATE');
  } catch {
    bad('issuer chain holds no PEM certificate');
  }
}

/** What a collateral document was detected as. */
export type CollateralFormat = 'pcs-tcb-info' | 'pcs-enclave-identity' | 'combined';

/**
 * Parses one collateral JSON document, detecting its format from its content: an Intel PCS TCB info
 * body ({"tcbInfo":…,"signature":…}), an enclave identity body ({"enclaveIdentity":…}), or the
 * combined collateral.json of the shared vectors (tcb_info, qe_identity, CRLs and chains).
 */
export function parseCollateralJson(text: string): { format: CollateralFormat; collateral: IntelCollateral } {
  // The same collateral is typically given with every quote of a platform for a month: reusing the
  // parsed documents also reuses their remembered signature checks (see verify.ts).
  let parsed = parsedDocuments.get(text);
  if (!parsed) {
    parsed = parseCollateralText(text);
    if (parsedDocuments.size >= 64) parsedDocuments.clear();
    parsedDocuments.set(text, parsed);
  }
  const { format, collateral } = parsed;
  return { format, collateral: { ...collateral, crls: [...(collateral.crls ?? [])], certs: [...(collateral.certs ?? [])] } };
}

const parsedDocuments = new Map<string, { format: CollateralFormat; collateral: IntelCollateral }>();

function parseCollateralText(text: string): { format: CollateralFormat; collateral: IntelCollateral } {
  const top = obj(parseJson(text, 'collateral file'), 'collateral file');
  if ('tcbInfo' in top) {
    const inner = rawMember(text, 'tcbInfo');
    if (inner === undefined || typeof top.tcbInfo !== 'object') bad('tcbInfo must be an object');
    return { format: 'pcs-tcb-info', collateral: { tcbInfo: signed(inner, top.signature, parseTcbInfoBody, 'TCB info') } };
  }
  if ('enclaveIdentity' in top) {
    const inner = rawMember(text, 'enclaveIdentity');
    if (inner === undefined || typeof top.enclaveIdentity !== 'object') bad('enclaveIdentity must be an object');
    return {
      format: 'pcs-enclave-identity',
      collateral: { qeIdentity: signed(inner, top.signature, parseEnclaveIdentityBody, 'enclave identity') },
    };
  }
  if ('qeIdentity' in top) bad('enclave identity version 1 (qeIdentity) is not supported; use the v4 PCS API');
  if ('tcb_info' in top || 'qe_identity' in top) {
    const c: IntelCollateral = { crls: [], certs: [] };
    if (top.tcb_info !== undefined) {
      if (typeof top.tcb_info !== 'string') bad('tcb_info must be the TCB info JSON text');
      c.tcbInfo = signed(top.tcb_info, top.tcb_info_signature, parseTcbInfoBody, 'TCB info', top.tcb_info_issuer_chain);
    }
    if (top.qe_identity !== undefined) {
      if (typeof top.qe_identity !== 'string') bad('qe_identity must be the enclave identity JSON text');
      c.qeIdentity = signed(top.qe_identity, top.qe_identity_signature, parseEnclaveIdentityBody, 'QE identity', top.qe_identity_issuer_chain);
    }
    for (const k of ['pck_crl', 'root_ca_crl'] as const) {
      const v = top[k];
      if (v === undefined) continue;
      if (typeof v !== 'string') bad(`${k} must be a CRL: DER as hex, or PEM`);
      c.crls!.push(parseCrl(crlField(v, k)));
    }
    if (top.pck_crl_issuer_chain !== undefined) {
      if (typeof top.pck_crl_issuer_chain !== 'string') bad('pck_crl_issuer_chain must be PEM text');
      c.certs!.push(...pemCertificates(top.pck_crl_issuer_chain).map(parseCertificate));
    }
    return { format: 'combined', collateral: c };
  }
  if ('tcbEvaluationDataNumbers' in top) {
    bad('this is a PCS TCB evaluation data numbers document (/tcbevaluationdatanumbers), which verification does not use: leave it out');
  }
  bad('not recognised: expected a PCS TCB info, a PCS enclave identity, or a combined collateral.json');
}

/** Merges collateral from several files; a second TCB info or QE identity is an error, not a silent override. */
export function mergeCollateral(parts: IntelCollateral[]): IntelCollateral {
  const out: IntelCollateral = { crls: [], certs: [] };
  for (const p of parts) {
    if (p.tcbInfo) {
      if (out.tcbInfo) bad('more than one TCB info was given');
      out.tcbInfo = p.tcbInfo;
    }
    if (p.qeIdentity) {
      if (out.qeIdentity) bad('more than one QE identity was given');
      out.qeIdentity = p.qeIdentity;
    }
    out.crls!.push(...(p.crls ?? []));
    out.certs!.push(...(p.certs ?? []));
  }
  return out;
}
