// Intel SGX (DCAP quote v3, v4/v5 SGX body) and TDX (quote v4, v5 with TD report 1.0 or 1.5)
// verification. See docs/attestation.md, "Intel SGX and TDX".
export { verifyIntelQuote, verifySgxQuote, verifyTdxQuote, type IntelVerifyOptions } from './verify.ts';
export { decodeIntelQuote, type DecodedIntelQuote } from './claims.ts';
export {
  mergeCollateral,
  parseCollateralJson,
  TCB_STATUSES,
  type CollateralFormat,
  type CombinedStatus,
  type EnclaveIdentity,
  type IntelCollateral,
  type TcbInfo,
  type TcbStatus,
} from './collateral.ts';
export { loadIntelCollateral, missingIntelCollateral, detectIntelQuote, type CollateralFile } from './load.ts';
export { parseQuote, type IntelQuote, type SgxReportBody, type TdReportBody } from './quote.ts';
export { decodePckExtensions, SGX_EXTENSION_OID, type PckExtensions } from './pck.ts';
