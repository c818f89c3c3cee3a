/**
 * Drawbridge: a content-addressed registry of workload packages, API-compatible with Enarx's.
 * The server (startDrawbridge), its storage (Store), authentication (Authenticator, LocalIssuer,
 * discoverOidc) and the client library (DrawbridgeClient, buildTree) that the CLI and Keeps use.
 */
export {
  ALGORITHMS,
  type Algorithm,
  type Digests,
  DigestError,
  digestBytes,
  digestsAgree,
  firstMismatch,
  formatContentDigest,
  MultiHasher,
  parseContentDigest,
  parseDigestObject,
} from './digest.ts';
export { compareSemver, LIMITS as NAME_LIMITS, NameError, type PackageReference, parseEntryName, parsePackageReference, parseRepositoryName, parseSlug, parseTagName, parseTreePath, parseUserName, type Slug } from './names.ts';
export {
  checkSignedNames,
  type Directory,
  DocumentError,
  type FlattenedJws,
  MEDIA_TYPES,
  parseDirectory,
  parseTagEntry,
  type RepositoryConfig,
  serializeDirectory,
  serializeTreeEntry,
  type SignedNames,
  type TagEntry,
  type TreeEntry,
  type UserRecord,
  validateTreeEntry,
} from './types.ts';
export { ALL_SCOPES, AuthError, Authenticator, discoverOidc, hasScope, LocalIssuer, type Principal, SCOPE_CONTEXTS, type ScopeContext, type ScopeLevel, type TokenVerifier } from './auth.ts';
export { type CertificateOrigin, certificateOrigin, originRefusal, setCertificateOriginDecoder } from './origin.ts';
export { DEFAULT_PENDING_TTL_MS, Store, type StoreOptions } from './store.ts';
export { API_VERSION, DEFAULT_LIMITS, Drawbridge, type DrawbridgeOptions, type Limits, parseRoute, type RunningDrawbridge, startDrawbridge } from './server.ts';
export { createCertificateAuthority, ensureLocalTls, issueCertificate, type Issuer, loadIssuer } from './tls.ts';
export {
  buildTree,
  type ClientOptions,
  type Coordinates,
  type FetchOptions,
  DrawbridgeClient,
  DrawbridgeError,
  IntegrityError,
  type LocalNode,
  type LocalTree,
  mediaTypeFor,
  type NodeMeta,
  type Progress,
  type PublishResult,
  VerifyingStream,
} from './client.ts';
export { keyId, SignatureError, SIGNING_ALGORITHMS, type SigningAlgorithm, signTagEntry, type VerifiedTag, verifyTagEntry } from './signing.ts';
