/**
 * Refusals as RFC 9457 problem details. Every refusal names a `step` from the verifier's list
 * (src/attestation/types.ts), so a client can tell malformed input from a bad chain, a broken
 * binding or a policy decision. `type` URIs live in the informal `urn:enarx:` namespace.
 */
import type { VerificationStep } from '../attestation/types.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export const PROBLEMS = {
  'bad-request': { status: 400, title: 'The request is malformed' },
  'bad-csr': { status: 400, title: 'The certification request is malformed or unsupported' },
  'bad-csr-signature': { status: 400, title: "The certification request's signature does not verify" },
  'attestation-required': { status: 401, title: 'The certification request carries no attestation evidence' },
  'evidence-rejected': { status: 400, title: 'The attestation evidence did not verify' },
  'key-algorithm-mismatch': { status: 400, title: "The request's key algorithm differs from the hardware key's" },
  'binding-mismatch': { status: 400, title: 'The report data does not bind this request' },
  'policy-refused': { status: 400, title: 'The policy refuses this evidence' },
  'debug-only': { status: 400, title: 'Software evidence is accepted only by a debug-mode Steward' },
  'collateral-unavailable': { status: 503, title: 'The Steward cannot obtain the collateral this evidence needs' },
  'not-found': { status: 404, title: 'No such resource' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'payload-too-large': { status: 413, title: 'The request body is too large' },
  'unsupported-media-type': { status: 415, title: 'Unsupported content type' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemName = keyof typeof PROBLEMS;

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  step: VerificationStep;
  /** In a bundle: which CSR (0-based) was refused. */
  index?: number;
  /** Policy refusals: every reason, first one first. */
  reasons?: string[];
}

/** A refusal on its way to the client. */
export class StewardRefusal extends Error {
  readonly problem: Problem;
  constructor(name: ProblemName, step: VerificationStep, detail: string, extra: { reasons?: string[]; cause?: unknown } = {}) {
    super(detail, { cause: extra.cause });
    this.name = 'StewardRefusal';
    const { status, title } = PROBLEMS[name];
    this.problem = { type: `urn:enarx:steward:problem:${name}`, title, status, detail, step };
    if (extra.reasons) this.problem.reasons = extra.reasons;
  }

  /** The same refusal, saying which CSR of a bundle it concerns. */
  at(index: number): StewardRefusal {
    this.problem.index = index;
    this.problem.detail = `CSR ${index}: ${this.problem.detail}`;
    return this;
  }
}
