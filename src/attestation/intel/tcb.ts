// TCB level evaluation as Intel's QVL performs it (TcbLevelCheck.cpp, TdxModuleCheck.cpp,
// TDRelaunchCheck.cpp, EnclaveReportVerifier.cpp): the platform level from the PCK certificate's TCB,
// the QE level from the QE report's ISVSVN, the TDX module level from TEE_TCB_SVN, then the statuses
// converge and the advisories of every matched level are united.
import { VerificationError } from '../types.ts';
import { bytesEqual, isAllZero, toHex } from '../bytes.ts';
import type { CombinedStatus, EnclaveIdentity, IsvSvnLevel, TcbInfo, TcbLevel, TcbStatus, TdxModuleIdentity } from './collateral.ts';
import type { PckExtensions } from './pck.ts';
import type { IntelQuote } from './quote.ts';

function lexCompare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * The levels highest first, as the QVL orders them (a std::set ordered by SGX components, then
 * PCESVN, then TDX components), whatever order the JSON lists them in. The sort is stable.
 */
export function orderTcbLevels(levels: readonly TcbLevel[]): TcbLevel[] {
  return [...levels].sort(
    (x, y) => lexCompare(y.sgxComponents, x.sgxComponents) || y.pceSvn - x.pceSvn || lexCompare(y.tdxComponents ?? [], x.tdxComponents ?? []),
  );
}

/** Identity levels highest ISVSVN first (then newest tcbDate), as the QVL orders them. */
function orderIsvSvnLevels(levels: readonly IsvSvnLevel[]): IsvSvnLevel[] {
  return [...levels].sort((x, y) => y.isvSvn - x.isvSvn || (y.tcbDate < x.tcbDate ? -1 : y.tcbDate > x.tcbDate ? 1 : 0));
}

export function matchIsvSvnLevel(levels: readonly IsvSvnLevel[], isvSvn: number): IsvSvnLevel | undefined {
  return orderIsvSvnLevels(levels).find((l) => isvSvn >= l.isvSvn);
}

export interface QeEvaluation {
  /** The QE level that matched; QE identity statuses are UpToDate, OutOfDate or Revoked. */
  level: IsvSvnLevel;
  status: TcbStatus;
}

/**
 * Checks the QE report against a QE (or TD_QE) identity: MISCSELECT and ATTRIBUTES under their
 * masks, MRSIGNER and ISVPRODID equal, then the level by ISVSVN. Mismatches reject at 'identity';
 * an ISVSVN below every level rejects at 'tcb'.
 */
export function evaluateQeIdentity(identity: EnclaveIdentity, qeReportRaw: Uint8Array, kind: 'sgx' | 'tdx'): QeEvaluation {
  const expectedId = kind === 'tdx' ? 'TD_QE' : 'QE';
  if (identity.id !== expectedId) {
    throw new VerificationError('identity', `enclave identity "${identity.id}" does not apply to an ${kind.toUpperCase()} quote (expected "${expectedId}")`);
  }
  const masked = (field: Uint8Array, mask: Uint8Array) => field.map((b, i) => b & mask[i]!);
  if (!bytesEqual(masked(qeReportRaw.subarray(16, 20), identity.miscselectMask), identity.miscselect)) {
    throw new VerificationError('identity', 'QE report MISCSELECT does not match the QE identity');
  }
  if (!bytesEqual(masked(qeReportRaw.subarray(48, 64), identity.attributesMask), identity.attributes)) {
    throw new VerificationError('identity', 'QE report ATTRIBUTES do not match the QE identity');
  }
  if (!bytesEqual(qeReportRaw.subarray(128, 160), identity.mrsigner)) {
    throw new VerificationError('identity', `QE MRSIGNER ${toHex(qeReportRaw.subarray(128, 160))} is not the QE identity's`);
  }
  const isvProdId = qeReportRaw[256]! | (qeReportRaw[257]! << 8);
  if (isvProdId !== identity.isvProdId) {
    throw new VerificationError('identity', `QE ISVPRODID ${isvProdId} is not the QE identity's ${identity.isvProdId}`);
  }
  const isvSvn = qeReportRaw[258]! | (qeReportRaw[259]! << 8);
  const level = matchIsvSvnLevel(identity.tcbLevels, isvSvn);
  if (!level) throw new VerificationError('tcb', `QE ISVSVN ${isvSvn} is below every level of the QE identity (TCB not supported)`);
  const status: TcbStatus = level.tcbStatus === 'UpToDate' || level.tcbStatus === 'Revoked' ? level.tcbStatus : 'OutOfDate';
  return { level, status };
}

export interface TdxModuleEvaluation {
  /** e.g. "TDX_01"; absent when the module major version is 0 (pre-1.5 modules have no identity). */
  id?: string;
  level?: IsvSvnLevel;
  status: TcbStatus;
}

/**
 * TDX module identity (QVL 4.1.2.4.11): MRSIGNERSEAM and SEAMATTRIBUTES against the identity
 * selected by TEE_TCB_SVN[1] ("TDX_01"...), or the top-level tdxModule for major version 0.
 * Returns the selected identity (undefined for major version 0). Throws 'identity' or 'collateral'.
 */
export function checkTdxModuleIdentity(tcbInfo: TcbInfo, quote: IntelQuote): TdxModuleIdentity | undefined {
  const major = quote.teeTcbSvn![1]!;
  if (!tcbInfo.tdxModule) throw new VerificationError('collateral', 'TDX TCB info has no tdxModule');
  let expected: { mrsigner: Uint8Array; attributes: Uint8Array } = tcbInfo.tdxModule;
  let identity: TdxModuleIdentity | undefined;
  if (major > 0) {
    const id = tdxModuleId(major);
    if (!tcbInfo.tdxModuleIdentities) {
      throw new VerificationError('collateral', `the TDX module is version ${major} but the TCB info has no tdxModuleIdentities`);
    }
    identity = tcbInfo.tdxModuleIdentities.find((m) => m.id.toUpperCase() === id);
    if (!identity) throw new VerificationError('identity', `the TCB info has no TDX module identity ${id}`);
    expected = identity;
  }
  if (!bytesEqual(quote.mrSignerSeamRaw!, expected.mrsigner)) {
    throw new VerificationError('identity', `MRSIGNERSEAM ${toHex(quote.mrSignerSeamRaw!)} is not the TDX module identity's`);
  }
  const seam = quote.seamAttributesRaw!;
  if (!isAllZero(seam) || !bytesEqual(seam, expected.attributes)) {
    throw new VerificationError('identity', `SEAMATTRIBUTES ${toHex(seam)} must be zero and equal the TDX module identity's`);
  }
  return identity;
}

const tdxModuleId = (major: number): string => `TDX_${major.toString(16).padStart(2, '0').toUpperCase()}`;

/** The TDX module's identity, then its TCB level by TEE_TCB_SVN[0] (TdxModuleCheck.cpp). */
export function evaluateTdxModule(tcbInfo: TcbInfo, quote: IntelQuote): TdxModuleEvaluation {
  const identity = checkTdxModuleIdentity(tcbInfo, quote);
  if (!identity) return { status: 'UpToDate' };
  const isvSvn = quote.teeTcbSvn![0]!;
  const level = matchIsvSvnLevel(identity.tcbLevels, isvSvn);
  if (!level) throw new VerificationError('tcb', `TDX module ISVSVN ${isvSvn} is below every level of ${identity.id} (TCB not supported)`);
  return { id: tdxModuleId(quote.teeTcbSvn![1]!), level, status: level.tcbStatus };
}

function convergeOutOfDate(status: CombinedStatus, other: TcbStatus): CombinedStatus {
  if (other === 'OutOfDate') {
    if (status === 'UpToDate' || status === 'SWHardeningNeeded') return 'OutOfDate';
    if (status === 'ConfigurationNeeded' || status === 'ConfigurationAndSWHardeningNeeded') return 'OutOfDateConfigurationNeeded';
  }
  if (other === 'Revoked') return 'Revoked';
  return status;
}

const isConfigurationNeeded = (s: CombinedStatus): boolean =>
  s === 'ConfigurationNeeded' || s === 'OutOfDateConfigurationNeeded' || s === 'ConfigurationAndSWHardeningNeeded' || s === 'TDRelaunchAdvisedConfigurationNeeded';

export interface TcbEvaluation {
  status: CombinedStatus;
  /** The level matched by the SGX components and PCESVN (for TDX, the one also matching the TDX components). */
  platformLevel: TcbLevel;
  qe?: QeEvaluation;
  tdxModule?: TdxModuleEvaluation;
  /** Sorted union of the advisory IDs of the matched platform, QE and TDX module levels. */
  advisories: string[];
}

/** Platform TCB level selection and status convergence. Throws 'tcb' when no level matches. */
export function evaluateTcb(tcbInfo: TcbInfo, pck: PckExtensions, quote: IntelQuote, qe: QeEvaluation | undefined): TcbEvaluation {
  const isTdx = quote.kind === 'tdx';
  const levels = orderTcbLevels(tcbInfo.tcbLevels);
  const sgxOk = (l: TcbLevel) => l.sgxComponents.every((svn, i) => pck.tcbComponents[i]! >= svn) && pck.pceSvn >= l.pceSvn;
  const sgxLevel = levels.find(sgxOk);
  if (!sgxLevel) {
    throw new VerificationError('tcb', `no TCB level matches the PCK certificate's TCB (components ${pck.tcbComponents.join(',')}, PCESVN ${pck.pceSvn}): TCB not supported`);
  }
  let status: CombinedStatus;
  let platformLevel = sgxLevel;
  let tdxModule: TdxModuleEvaluation | undefined;
  if (!isTdx) {
    status = sgxLevel.tcbStatus;
  } else {
    const svn = quote.teeTcbSvn!;
    const from = svn[1]! > 0 ? 2 : 0;
    const tdxOk = (l: TcbLevel) => (l.tdxComponents ?? []).every((c, i) => i < from || svn[i]! >= c);
    const tdxLevel = levels.find((l) => sgxOk(l) && tdxOk(l));
    if (!tdxLevel) {
      throw new VerificationError('tcb', `no TCB level matches both the PCK TCB and TEE_TCB_SVN ${toHex(svn)}: TCB not supported`);
    }
    platformLevel = tdxLevel;
    tdxModule = evaluateTdxModule(tcbInfo, quote);
    status = convergeOutOfDate(tdxLevel.tcbStatus, tdxModule.status);
    if (status !== 'Revoked' && quote.teeTcbSvn2) {
      status = relaunchCheck(quote.teeTcbSvn2, tcbInfo, levels, sgxLevel.tcbStatus, status, tdxModule.status, qe?.status);
    }
  }
  if (qe) status = convergeOutOfDate(status, qe.status);
  const advisories = new Set([...platformLevel.advisoryIds, ...(qe?.level.advisoryIds ?? []), ...(tdxModule?.level?.advisoryIds ?? [])]);
  return { status, platformLevel, qe, tdxModule, advisories: [...advisories].sort() };
}

/** TD 1.5: a TD whose current TDX module (TEE_TCB_SVN2) is already up to date only needs a relaunch. */
function relaunchCheck(
  svn2: Uint8Array,
  tcbInfo: TcbInfo,
  levels: TcbLevel[],
  sgxStatus: TcbStatus,
  tdxStatus: CombinedStatus,
  moduleStatus: TcbStatus,
  qeStatus: TcbStatus | undefined,
): CombinedStatus {
  if (qeStatus !== undefined && qeStatus !== 'UpToDate') return tdxStatus;
  if (!['UpToDate', 'SWHardeningNeeded', 'ConfigurationNeeded', 'ConfigurationAndSWHardeningNeeded'].includes(sgxStatus)) return tdxStatus;
  if (tdxStatus !== 'OutOfDate' && tdxStatus !== 'OutOfDateConfigurationNeeded') return tdxStatus;
  if (moduleStatus !== 'OutOfDate') return tdxStatus;
  const latest = levels[0];
  if (!latest?.tdxComponents) throw new VerificationError('tcb', 'TDX TCB info has no TCB level');
  let latestModuleSvn = latest.tdxComponents[0]!;
  if (svn2[1] !== 0) {
    const id = tdxModuleId(svn2[1]!);
    const identity = tcbInfo.tdxModuleIdentities?.find((m) => m.id.toUpperCase() === id);
    if (!identity) throw new VerificationError('identity', `the TCB info has no TDX module identity ${id} (TEE_TCB_SVN2)`);
    const top = orderIsvSvnLevels(identity.tcbLevels)[0];
    if (!top) throw new VerificationError('tcb', `TDX module identity ${id} has no TCB level`);
    latestModuleSvn = top.isvSvn;
  }
  if (svn2[0]! >= latestModuleSvn && svn2[2]! >= latest.tdxComponents[2]!) {
    return isConfigurationNeeded(sgxStatus) || isConfigurationNeeded(tdxStatus) ? 'TDRelaunchAdvisedConfigurationNeeded' : 'TDRelaunchAdvised';
  }
  return tdxStatus;
}
