/**
 * Attestation policy: a TOML file compatible with Enarx's steward.toml, parsed once and evaluated
 * against verification results. Browser-safe (no node: imports). See docs/policy.md.
 */
export { parsePolicy, SGX_FEATURES, SGX_MISC_SELECT, SNP_PLATFORM_INFO_FLAGS, SNP_POLICY_FLAGS, TCB_STATUSES } from './parse.ts';
export { applyPolicy, evaluatePolicy } from './evaluate.ts';
export { VersionReq } from './semver.ts';
export type { Version } from './semver.ts';
export { PolicyError } from './types.ts';
export type { CommonPolicy, Policy, SgxPolicy, SnpPolicy, SnpTcbMinimum, TdxPolicy } from './types.ts';
