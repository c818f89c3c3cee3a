/**
 * Collateral for attestation, fetched from AMD's Key Distribution Service and Intel's Provisioning
 * Certification Service (v4) and cached on disk with its expiry. Node only; see docs/collateral.md.
 */
export {
  AMD_PRODUCTS,
  type AmdKeyKind,
  type AmdProduct,
  fetchAmdCrl,
  fetchCertChain,
  fetchVcek,
  hwid,
  parseProduct,
  reportIdentity,
  snpTcb,
  type SnpTcb,
  vcekUrl,
} from './amd.ts';
export { atomicWrite, type CacheMeta, DiskCache } from './cache.ts';
export { ENARX_CRL_URLS, encodeCrlList, encodeTcbPackage } from './enarx.ts';
export { HttpError, type ProgressEvent, readBounded } from './http.ts';
export {
  fetchPckCert,
  fetchPckCrl,
  fetchQeIdentity,
  fetchRootCaCrl,
  fetchTcbInfo,
  fmspcHex,
  type IntelTee,
  type PckCa,
  type PckId,
  parsePckIdCsv,
} from './intel.ts';
export { CollateralError, type CollateralOptions, CollateralService, DEFAULTS, type Document, downloadBudget } from './service.ts';
export { collateralForEvidence, type EvidenceCollateral } from './evidence.ts';
export { defaultCacheDir, environmentOptions } from './environment.ts';
export {
  collateralForKeep,
  describeKeepCollateral,
  KEEP_COLLATERAL_DEFAULTS,
  type KeepCollateral,
  type KeepCollateralSettings,
  type KeepCollateralSource,
  keepCollateralSource,
} from './keep.ts';
export {
  CLIENT,
  type CollateralFlowOptions,
  type CollateralProvider,
  CollateralUnavailableError,
  type Obtainer,
  type ProviderSettings,
  serviceProvider,
  STEWARD,
  verifyWithCollateral,
  type VerifyInput,
  wantsCollateral,
} from './verify.ts';
