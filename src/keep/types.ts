import type { FileSpec } from '../config/index.ts';
import type { EvidenceSource } from './steward.ts';
import type { DeploySpec } from '../sallyport/index.ts';
import type { KeepCollateralSettings } from '../collateral/keep.ts';
import type { WorkloadLimits, WorkloadOutcome } from '../runtime/types.ts';

/** Everything a Keep backend needs to run one workload, already merged from Enarx.toml and the command line. */
export interface RunPlan {
  /** The module's bytes. */
  readonly module: Uint8Array;
  /** argv, argv[0] included. */
  readonly args: readonly string[];
  readonly env: readonly (readonly [string, string])[];
  /** Descriptors to open, in fd order. */
  readonly files: readonly FileSpec[];
  readonly steward?: string;
  /** Where the Keep's evidence comes from (software test root or hardware); absent: this host cannot attest. */
  readonly evidence?: EvidenceSource;
  readonly limits: WorkloadLimits;
  /** Aborting stops the Keep (Ctrl-C, SIGTERM). */
  readonly signal: AbortSignal;
  /** Called while the guest waits (see WorkloadRequest.onWait). */
  readonly onWait?: () => () => void;
  /** A registry deploy (process Keep only): `module` and `files` are empty, the Keep fetches the package. */
  readonly deploy?: DeploySpec;
  /** Told what a deploy's Keep verified and runs. */
  readonly onDeployed?: (d: { slug: string; digest: string; signer: string | null }) => void;
  /** Where the guest's stdout and stderr go (process Keep; default: ours). */
  readonly stdout?: NodeJS.WritableStream;
  readonly stderr?: NodeJS.WritableStream;
  /** How a hardware Keep's host gets the collateral for the Keep's CSR (flags; default the environment's). */
  readonly collateral?: KeepCollateralSettings;
}

export interface BackendAvailability {
  readonly available: boolean;
  /** Why not, and what to do about it. */
  readonly reason?: string;
}

export interface KeepBackend {
  readonly name: string;
  /** Is this backend usable on this host? Cheap: called during automatic selection. */
  availability(): Promise<BackendAvailability>;
  run(plan: RunPlan): Promise<WorkloadOutcome>;
}

/** A registry entry: enough to list and order backends without loading their code. */
export interface BackendEntry {
  readonly name: string;
  readonly description: string;
  /** Higher is stronger isolation; automatic selection takes the strongest available. */
  readonly strength: number;
  readonly load: () => Promise<KeepBackend>;
  /**
   * A cheap look, without loading the backend: false when it cannot be available here, so that
   * automatic selection skips it. A backend named explicitly is always asked in full (its reason).
   */
  readonly present?: () => boolean;
}
