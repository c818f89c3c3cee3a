/** The keep manager: daemon, API, store, pool, Keep-side agent and client library. */
export { startDaemon, DEFAULT_LIMITS, MAX_LIMITS, type Daemon, type DaemonOptions } from './server.ts';
export { KeepManager, ManagerError, type Contract } from './manager.ts';
export { KeepStore, KEEP_STATES, type KeepRecord, type KeepState, type Verdict } from './store.ts';
export {
  KeepmgrClient, ApiError, KeepRefused, attestKeep, provisionKeep, followOutput, openSession,
  libraryVerifier, type Challenge, type ClientOptions, type EvidenceVerifier, type AttestedKeep, type Session, type Workload, type KeepView, type OutputEnd,
} from './client.ts';
export { ChannelError, OutputReader, bindingReportData, type OutputPayload, type SealedRecord } from './crypto.ts';
export type { KeepLimits, KeepUsage } from './keep/host.ts';
