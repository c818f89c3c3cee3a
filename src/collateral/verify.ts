/**
 * Verifying evidence that may lack its collateral: verify with what came with it and, when that
 * falls short, again with the collateral the cache and AMD KDS / Intel PCS give. One flow for every
 * verifier that fetches (the Steward, the keep manager's client), with one set of messages; each
 * caller decides only what an unobtainable document means to its own users (a refusal, a verdict).
 *
 * Who delivers collateral does not matter: every document is signed by AMD or Intel and the
 * verifier checks it against the pinned roots at the caller's clock.
 */
import { toHex, utf8 } from '../attestation/bytes.ts';
import { decodeIntelQuote } from '../attestation/intel/index.ts';
import type { EvidenceKind, VerificationResult } from '../attestation/types.ts';
import { reportIdentity } from './amd.ts';
import { collateralForEvidence, type EvidenceCollateral } from './evidence.ts';
import { HttpError } from './http.ts';
import { CollateralError, type CollateralOptions, CollateralService, downloadBudget } from './service.ts';

/** What a verifier is given, as src/attestation's verifyEvidence takes it (callers may add fields). */
export interface VerifyInput {
  kind: EvidenceKind;
  /** The raw SNP report, or the SGX/TDX quote. */
  evidence: Uint8Array;
  /** DER (or PEM) certificates: a VCEK, issuer chains. */
  certs: Uint8Array[];
  /** DER CRLs. */
  crls: Uint8Array[];
  /** Intel PCS JSON documents (TCB info, QE identity), as received. */
  collateral: string[];
  now: Date;
}

/**
 * Gets the collateral `evidence` needs, with freshness judged at `now`. `client` names who asked,
 * for a provider that budgets downloads per client (the Steward's).
 */
export type CollateralProvider = (evidence: Uint8Array, options: { haveLeaf: boolean; now: Date; client?: string }) => Promise<EvidenceCollateral>;

export interface ProviderSettings {
  /** The fetch for one verification's downloads, by who asked (the Steward's guarded, per-client fetch). */
  fetchFor?: (client: string | undefined) => typeof fetch;
  /**
   * All of one verification's downloads together may take this long (ms), whatever their timeouts
   * and retries; then they stop, the cache still answers, and what is missing cannot be had, with
   * the budget's message. Whose budget it is names it: "the Steward's", "this client's".
   */
  budget?: { ms: number; whose: string };
}

/** A provider over the on-disk cache, refreshed from AMD KDS and Intel PCS unless `offline`. */
export function serviceProvider(options: Omit<CollateralOptions, 'now' | 'signal'>, settings: ProviderSettings = {}): CollateralProvider {
  const { fetchFor, budget } = settings;
  return (evidence, { haveLeaf, now, client }) =>
    collateralForEvidence(
      new CollateralService({
        ...options,
        ...(fetchFor ? { fetch: fetchFor(client) } : {}),
        ...(budget ? { signal: downloadBudget(budget.ms, budget.whose) } : {}),
        now: () => now,
      }),
      evidence,
      { haveLeaf },
    );
}

/** Who obtains the collateral, as its messages name it and tell its operator what to do. */
export interface Obtainer {
  /** "the Steward" */
  who: string;
  /** Where the cache-filling commands are run: "on the Steward's host (with --cache-dir for its cache)". */
  where: string;
  /** Whose cache and clock: "its" / "this machine's". */
  whose: string;
}

export const STEWARD: Obtainer = { who: 'the Steward', where: "on the Steward's host (with --cache-dir for its cache)", whose: 'its' };
export const CLIENT: Obtainer = { who: 'this client', where: 'on this machine (with --cache-dir DIR where --collateral-dir DIR is given)', whose: "this machine's" };

/**
 * The evidence did not verify with what it carried, and its collateral could not be obtained. The
 * message names the document, why, and (unless the vendor does not know the chip, TCB or FMSPC)
 * the command that puts it into the cache.
 */
export class CollateralUnavailableError extends Error {
  /** The vendor answered 404: it knows no such chip, TCB or FMSPC, so the evidence is at fault. */
  readonly notFound: boolean;
  /** The verification with what the evidence carried. */
  readonly first: VerificationResult;
  constructor(message: string, notFound: boolean, first: VerificationResult, cause: unknown) {
    super(message, { cause });
    this.name = 'CollateralUnavailableError';
    this.notFound = notFound;
    this.first = first;
  }
}

const isTestAnchor = (r: VerificationResult) => (r.trustAnchor ?? '').startsWith('test:');

/**
 * Whether a first verification, with what the evidence carried, calls for collateral of our own:
 * something required is missing; a CRL or collateral document was stale or absent (not for
 * evidence under a local test root, which no vendor serves); or genuine evidence verified without
 * revocation checks or (SGX, TDX) without the QE identity.
 */
export function wantsCollateral(result: VerificationResult): boolean {
  if (result.failure) {
    if (result.failure.code === 'missing-collateral') return true;
    return (result.failure.step === 'crl' || result.failure.step === 'collateral') && !isTestAnchor(result);
  }
  if (isTestAnchor(result) || !result.trustAnchor) return false;
  return !result.revocationChecked || (result.kind !== 'snp' && result.claims.qeStatus == null);
}

export interface CollateralFlowOptions {
  /** Who fetches (STEWARD, CLIENT): the messages name it. */
  by: Obtainer;
  /** Told when evidence that already verified could not be supplemented (CRLs, QE identity). */
  warn?: (message: string) => void;
  /** Passed to the provider (the Steward's per-client download budget). */
  client?: string;
}

/**
 * Verifies with what the evidence carried and, when that falls short (`wantsCollateral`), again with
 * the collateral `provider` obtains: its documents replace the input's of the same kind (CRLs, TCB
 * info, QE identity); certificates are added. Collateral that cannot be obtained throws a
 * CollateralUnavailableError, unless the evidence already verified (then the first result stands,
 * with a warning). A second failure because the newest collateral is stale says what to do.
 */
export async function verifyWithCollateral<I extends VerifyInput>(
  input: I,
  verify: (input: I) => Promise<VerificationResult>,
  provider: CollateralProvider,
  options: CollateralFlowOptions,
): Promise<VerificationResult> {
  const { by } = options;
  const first = await verify(input);
  if (!wantsCollateral(first)) return first;
  const haveLeaf = !(input.kind === 'snp' && first.failure?.code === 'missing-collateral');
  let fetched: EvidenceCollateral;
  try {
    fetched = await provider(input.evidence, { haveLeaf, now: input.now, ...(options.client === undefined ? {} : { client: options.client }) });
  } catch (err) {
    if (!(err instanceof CollateralError)) throw err;
    if (first.verified) {
      options.warn?.(`verified without ${by.who}'s own collateral: ${err.message}`);
      return first;
    }
    const notFound = err.cause instanceof HttpError && err.cause.status === 404;
    const detail = `${by.who} cannot obtain the collateral this ${input.kind.toUpperCase()} evidence needs: ${err.message}${notFound ? '' : `; ${fillCacheHint(input, by)}`}`;
    throw new CollateralUnavailableError(detail, notFound, first, err);
  }
  const merged: I = {
    ...input,
    certs: [...input.certs, ...fetched.certs],
    crls: fetched.crls.length > 0 ? fetched.crls : input.crls,
    collateral: fetched.collateral.length > 0 ? fetched.collateral.map((c) => utf8(c.bytes)) : input.collateral,
  };
  const second = await verify(merged);
  const f = second.failure;
  if (f && (f.step === 'crl' || f.step === 'collateral') && /expired|nextUpdate|not yet valid/.test(f.message)) {
    // The newest copy that could be had is stale: only a refresh or the clock can help.
    const source = fetched.documents.some((d) => d.source === 'cache') ? `${by.whose} cache and the vendors` : 'the vendors';
    second.failure = { ...f, message: `${f.message} (in the newest collateral ${by.who} got from ${source}: refresh ${by.whose} cache with enarx update-cache, or check ${by.whose} clock)` };
  }
  return second;
}

/** What to run, and where, to put this evidence's collateral into the cache. */
function fillCacheHint(input: VerifyInput, by: Obtainer): string {
  const tail = `run ${by.where}, or let it reach AMD KDS / Intel PCS`;
  try {
    if (input.kind === 'snp') {
      const id = reportIdentity(input.evidence);
      const t = id.tcb;
      const tcb = [t.bootloader, t.tee, t.snp, t.microcode, ...(t.fmc !== undefined ? [t.fmc] : [])].join(',');
      return `${tail}: enarx platform snp update --product ${id.product} --chip-id ${toHex(id.chipId)} --tcb ${tcb} && enarx platform snp cache-crl`;
    }
    const pck = decodeIntelQuote(input.evidence).pck;
    const fmspc = pck && !('error' in pck) ? pck.fmspc.toUpperCase() : 'FMSPC';
    return `${tail}: enarx platform sgx cache-tcb --fmspc ${fmspc}${input.kind === 'tdx' ? ' --tdx' : ''} && enarx platform sgx cache-crl`;
  } catch {
    return `${tail}: enarx attest verify --fetch --evidence FILE fills the cache for a saved report or quote`;
  }
}
