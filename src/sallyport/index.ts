/**
 * The sallyport: the only channel between a process Keep and the untrusted host. One inherited
 * pipe carries length-prefixed CBOR frames (docs/sallyport.md). This module is shared by both
 * ends; the host role lives in src/keep/process/host.ts and the Keep role in src/keep/process/keep.ts.
 */
export { FrameDecoder, ProtocolError, encodeFrame, joinPieces, FRAME_HEADER_BYTES, MAX_FRAME_BYTES } from './frame.ts';
export {
  PROTOCOL_VERSION,
  PROVISIONING_VERSION,
  MAX_PROVISION_BYTES,
  NONCE_BYTES,
  STDIN_STREAM,
  STDOUT_STREAM,
  STDERR_STREAM,
  FIRST_DYNAMIC_STREAM,
  MAX_STREAM_ID,
  MAX_CHUNK_BYTES,
  REPORT_DATA_BYTES,
  COLLATERAL_LIMITS,
  decodeMessage,
  encodeMessage,
} from './messages.ts';
export type {
  CollateralRequest,
  DeploySpec,
  HostCollateral,
  SignedDocument,
  Direction,
  EvidenceInterface,
  FailKind,
  FileSpec,
  HostMessage,
  KeepInit,
  KeepLimits,
  KeepMessage,
  LogLevel,
  Message,
  Protocol,
  StandbyInit,
} from './messages.ts';
export { Endpoint, messageFrame, INITIAL_WINDOW, DATA_CHUNK_BYTES, DEFAULT_RATES } from './endpoint.ts';
export type { EndpointOptions, HostEndpoint, KeepEndpoint, RateLimit, ReusedReads, SallyportPipe } from './endpoint.ts';
