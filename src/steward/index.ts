/**
 * The Steward: an attestation CA, wire-compatible with Enarx's. See docs/steward.md.
 */
export { Steward, type StewardMode, type StewardOptions, type Issued, DEFAULT_LIFETIME_SECONDS, checkBinding } from './steward.ts';
export { StewardRefusal, PROBLEMS, PROBLEM_CONTENT_TYPE, type Problem, type ProblemName } from './problems.ts';
export { collateralProvider, type CollateralProvider, verifyWithCollateral, wantsCollateral } from './collateral.ts';
export { builtinVerifier, unpackEvidence, type EvidenceInput, type VerifyFn } from './verify.ts';
export { stewardHandler, PKCS10, BUNDLE, PEM_CHAIN, DEFAULT_MAX_BODY_BYTES, type HandlerOptions, trustedProxies, forwardedClient } from './http.ts';
export { listen, type ListenOptions, type RunningSteward } from './server.ts';
export { loadCa, loadOrCreateDefaultCa, defaultDataDir, createSelfSignedCa, CaError, type CaMaterial } from './ca.ts';
export { type SubjectAltName, parseSubjectAltName } from './certificate.ts';
