/**
 * The issuing core: one CSR in, one certificate out, or a refusal that names its step. It knows
 * nothing of HTTP and takes its clock (`now`) and verifier (`verify`) from its caller.
 *
 * Per CSR, in order: parse, CSR signature, presence of evidence, then either
 *  - KVM (software) evidence: debug mode only, never with a workload identity; or
 *  - hardware evidence: verification, CSR key algorithm == hardware key algorithm, key binding
 *    (report data starts with the SPKI hash, exactly as Enarx), identity binding (the rest of the
 *    report data), policy.
 * No mode skips a binding: a debug Steward differs only in accepting software evidence and in
 * saying so in every certificate.
 */
import { bytesEqual, fromHex, isAllZero } from '../attestation/bytes.ts';
import { children, readWhole, TAG } from '../attestation/der.ts';
import { evaluatePolicy, parsePolicy, type Policy } from '../attestation/policy/index.ts';
import { parseCertificate, type Certificate, type TrustAnchor } from '../attestation/x509.ts';
import {
  type CertificateOrigin,
  CsrError,
  type CsrLimits,
  DEFAULT_CSR_LIMITS,
  KEY_HASH,
  parseCsr,
  type ParsedCsr,
  reportDataFor,
  verifyCsrSignature,
  workloadSanUris,
} from '../pki/index.ts';
import { tlv } from '../pki/der.ts';
import { issueCertificate, type Issuer, makeIssuer, type SubjectAltName } from './certificate.ts';
import { StewardRefusal } from './problems.ts';
import { type CollateralProvider, verifyWithCollateral } from './collateral.ts';
import { unpackEvidence, type VerifyFn } from './verify.ts';

export type StewardMode = 'debug' | 'production';

export interface StewardOptions {
  /** The issuing CA's private key (ECDSA P-256/P-384 or RSA). */
  key: CryptoKey;
  /** The issuing CA's certificate, then the certificates above it (as in a TLS chain), DER. */
  chain: Uint8Array[];
  verify: VerifyFn;
  /** The policy; defaults to the empty policy (Enarx's built-in rules). */
  policy?: Policy;
  /** Certificate lifetime in seconds (default 86400, one day). */
  lifetimeSeconds?: number;
  /** SANs written into every certificate. */
  sans?: SubjectAltName[];
  /** Roots trusted for evidence only because the operator said so (--trust-test-root). */
  trustedTestRoots?: TrustAnchor[];
  /** Intermediates under those roots (e.g. a test ASK), offered to the verifier with every evidence. */
  testRootCerts?: Uint8Array[];
  /**
   * Where the Steward gets collateral the evidence lacks (VCEK, CRLs, TCB info, QE identity): see
   * collateral.ts. Without it, evidence must carry all it needs.
   */
  collateral?: CollateralProvider;
  /** Non-fatal notes (e.g. collateral that could not be refreshed). */
  warn?: (message: string) => void;
  now?: () => Date;
  limits?: Partial<CsrLimits & { bundleSize: number }>;
}

export const DEFAULT_LIFETIME_SECONDS = 86_400;
/** Certificates start this much before `now`, for clients whose clocks run a little behind. */
const BACKDATE_MS = 60_000;

export interface Issued {
  certificate: Uint8Array;
  origin: CertificateOrigin;
  /** Hex serial number, for the audit log. */
  serial: string;
  notAfter: Date;
}

export class Steward {
  readonly mode: StewardMode;
  readonly caCertificate: Certificate;
  /** The CA chain top-down (root side first), ending with the issuing CA: what Enarx clients expect before the leaf. */
  readonly chainTopDown: Uint8Array[];
  readonly lifetimeSeconds: number;
  readonly limits: CsrLimits & { bundleSize: number };
  readonly #issuer: Issuer;
  readonly #options: StewardOptions;
  readonly #policy: Policy;
  readonly #now: () => Date;

  private constructor(options: StewardOptions, issuer: Issuer) {
    this.#options = options;
    this.#issuer = issuer;
    this.caCertificate = issuer.certificate;
    // As Enarx: a self-signed Steward certificate means debug mode.
    this.mode = issuer.certificate.isSelfIssued ? 'debug' : 'production';
    this.chainTopDown = [...options.chain].reverse();
    this.lifetimeSeconds = options.lifetimeSeconds ?? DEFAULT_LIFETIME_SECONDS;
    this.limits = { ...DEFAULT_CSR_LIMITS, bundleSize: 64, ...options.limits };
    this.#policy = options.policy ?? parsePolicy('');
    this.#now = options.now ?? (() => new Date());
  }

  static async create(options: StewardOptions): Promise<Steward> {
    const [first] = options.chain;
    if (!first) throw new Error('the Steward needs its CA certificate');
    const cert = parseCertificate(first);
    if (!cert.basicConstraints?.ca) throw new Error(`the Steward certificate ${cert.label} is not a CA certificate (basicConstraints cA)`);
    if (cert.keyUsage !== undefined && !(cert.keyUsage & (1 << 5))) throw new Error(`the Steward certificate ${cert.label} may not sign certificates (keyUsage lacks keyCertSign)`);
    if (!(options.lifetimeSeconds ?? DEFAULT_LIFETIME_SECONDS > 0)) throw new Error('the certificate lifetime must be positive');
    const issuer = await makeIssuer(cert, options.key);
    await checkKeyMatches(issuer, cert);
    return new Steward(options, issuer);
  }

  /**
   * Verifies one DER CSR and issues its certificate, or throws a StewardRefusal. `client` names who
   * sent it (http.ts clientKey), for the per-client collateral download budget.
   */
  async issue(der: Uint8Array, now: Date = this.#now(), client?: string): Promise<Issued> {
    const csr = await this.#checkRequest(der);
    const origin = await this.#attest(csr, now, client);
    const sans = [...(this.#options.sans ?? [])];
    if (origin.identity) sans.push(...workloadSanUris(origin.identity).map((value) => ({ type: 'uri' as const, value })));
    const caEnd = this.caCertificate.notAfter.getTime();
    const notAfter = new Date(Math.min(now.getTime() + this.lifetimeSeconds * 1000, caEnd));
    if (notAfter.getTime() <= now.getTime()) {
      throw new Error(`the Steward's CA certificate expired at ${this.caCertificate.notAfter.toISOString()}; it cannot issue`);
    }
    const certificate = await issueCertificate(this.#issuer, {
      subject: csr.subject,
      spki: csr.spki,
      sans,
      origin,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter,
    });
    return { certificate, origin, serial: parseCertificate(certificate).serialNumber, notAfter };
  }

  /** Enarx's application/pkcs10 answer: DER SEQUENCE OF Certificate, the CA chain then the leaf. */
  async certify(der: Uint8Array, now?: Date): Promise<Uint8Array> {
    return this.pkiPath((await this.issue(der, now)).certificate);
  }

  /** The DER SEQUENCE OF Certificate Enarx clients expect: the CA chain top-down, then `leaf`. */
  pkiPath(leaf: Uint8Array): Uint8Array {
    return tlv(TAG.SEQUENCE, ...this.chainTopDown, leaf);
  }

  /**
   * Enarx's application/vnd.steward.pkcs10-bundle.v1: a DER SEQUENCE OF CertificationRequest in,
   * `Output ::= SEQUENCE { chain SEQUENCE OF Certificate, issued SEQUENCE OF Certificate }` out.
   * One refused CSR refuses the bundle; the refusal says which.
   */
  async certifyBundle(der: Uint8Array, now?: Date): Promise<Uint8Array> {
    return this.bundleOutput(await this.issueBundle(der, now));
  }

  /** Issues for every CSR of a bundle (DER SEQUENCE OF CertificationRequest), or refuses them all. */
  async issueBundle(der: Uint8Array, now?: Date, client?: string): Promise<Issued[]> {
    let csrs: Uint8Array[];
    try {
      csrs = children(readWhole(der, TAG.SEQUENCE)).map((t) => t.raw);
    } catch (err) {
      throw new StewardRefusal('bad-request', 'parse', `malformed CSR bundle: ${(err as Error).message}`);
    }
    if (csrs.length === 0) throw new StewardRefusal('bad-request', 'parse', 'the CSR bundle is empty');
    if (csrs.length > this.limits.bundleSize) {
      throw new StewardRefusal('bad-request', 'parse', `too many CSRs in the bundle: ${csrs.length} (at most ${this.limits.bundleSize})`);
    }
    const when = now ?? this.#now();
    const issued: Issued[] = [];
    for (const [i, csr] of csrs.entries()) {
      try {
        issued.push(await this.issue(csr, when, client));
      } catch (err) {
        throw err instanceof StewardRefusal ? err.at(i) : err;
      }
    }
    return issued;
  }

  /** Enarx's bundle answer for issued certificates. */
  bundleOutput(issued: Issued[]): Uint8Array {
    return tlv(TAG.SEQUENCE, tlv(TAG.SEQUENCE, ...this.chainTopDown), tlv(TAG.SEQUENCE, ...issued.map((i) => i.certificate)));
  }

  async #checkRequest(der: Uint8Array): Promise<ParsedCsr> {
    let csr: ParsedCsr;
    try {
      csr = parseCsr(der, this.limits);
    } catch (err) {
      if (!(err instanceof CsrError)) throw err;
      throw new StewardRefusal('bad-csr', 'parse', err.message);
    }
    let valid: boolean;
    try {
      valid = await verifyCsrSignature(csr);
    } catch (err) {
      if (!(err instanceof CsrError)) throw err;
      throw new StewardRefusal('bad-csr', 'signature', err.message);
    }
    if (!valid) throw new StewardRefusal('bad-csr-signature', 'signature', "the CSR's self-signature does not verify with the CSR's key");
    if (csr.evidence.length === 0) {
      throw new StewardRefusal('attestation-required', 'parse', 'the CSR has no evidence: add an Enarx evidence extension (1.3.6.1.4.1.58270.1.x) or an id-aa-attestation attribute');
    }
    if (csr.evidence.length > 1) throw new StewardRefusal('bad-csr', 'parse', `the CSR carries ${csr.evidence.length} pieces of evidence; send exactly one`);
    return csr;
  }

  async #attest(csr: ParsedCsr, now: Date, client?: string): Promise<CertificateOrigin> {
    const evidence = csr.evidence[0]!;
    if (evidence.kind === 'kvm') {
      if (this.mode !== 'debug') {
        throw new StewardRefusal('debug-only', 'policy', 'software (KVM) evidence proves nothing about the platform; only a debug-mode Steward accepts it');
      }
      // Empty as Enarx sends it, or a DER NULL (what `openssl req -addext <oid>=ASN1:NULL` writes).
      const isNull = evidence.der.length === 2 && evidence.der[0] === 0x05 && evidence.der[1] === 0;
      if (evidence.der.length > 0 && !isNull) throw new StewardRefusal('evidence-rejected', 'parse', 'KVM evidence carries nothing: send it empty (as Enarx) or as a DER NULL');
      if (csr.identity) throw new StewardRefusal('binding-mismatch', 'binding', 'software evidence has no report data, so it cannot bind a workload identity; drop the identity attribute');
      return { tee: 'software', stewardDebug: true, teeDebug: false, testRoot: false, trustAnchor: 'none', measurement: new Uint8Array(0) };
    }

    const unpacked = unpackEvidence(evidence, csr.attestationCerts);
    const input = { ...unpacked.input, now, trustedTestRoots: this.#options.trustedTestRoots ?? [] };
    if (this.#options.testRootCerts?.length) input.certs = [...input.certs, ...this.#options.testRootCerts];
    const result = this.#options.collateral
      ? await verifyWithCollateral(input, this.#options.verify, this.#options.collateral, this.#options.warn, client)
      : await this.#options.verify(input);
    if (!result.verified) {
      const failure = result.failure ?? { step: 'parse' as const, message: 'the verifier gave no reason' };
      throw new StewardRefusal('evidence-rejected', failure.step, `${evidence.kind.toUpperCase()} evidence rejected at step '${failure.step}': ${failure.message}`);
    }
    if (csr.key.namedCurve !== unpacked.hardwareCurve) {
      throw new StewardRefusal(
        'key-algorithm-mismatch',
        'binding',
        `the CSR key is ${csr.key.namedCurve ?? csr.key.algorithmOid} but the ${evidence.kind.toUpperCase()} hardware key is ${unpacked.hardwareCurve}; generate the Keep key with the hardware key's algorithm`,
      );
    }
    await checkBinding(evidence.kind, csr, result.reportData);

    const outcome = evaluatePolicy(this.#policy, result);
    if (!outcome.accepted) {
      throw new StewardRefusal('policy-refused', 'policy', outcome.reasons[0] ?? 'refused by policy', { reasons: outcome.reasons });
    }
    const origin: CertificateOrigin = {
      tee: evidence.kind,
      stewardDebug: this.mode === 'debug',
      teeDebug: result.debug,
      testRoot: (result.trustAnchor ?? '').startsWith('test:'),
      trustAnchor: result.trustAnchor ?? 'unknown',
      measurement: fromHex(result.measurement),
    };
    if (csr.identity) origin.identity = csr.identity.value;
    return origin;
  }
}

/** The key binding exactly as Enarx checks it, then our identity binding in the remaining bytes. */
export async function checkBinding(kind: 'snp' | 'sgx' | 'tdx', csr: ParsedCsr, reportDataHex: string): Promise<void> {
  const reportData = fromHex(reportDataHex);
  if (reportData.length !== 64) throw new StewardRefusal('binding-mismatch', 'binding', `the evidence has ${reportData.length} bytes of report data, not 64`);
  const { hash, length } = KEY_HASH[kind];
  const expected = await reportDataFor(kind, csr.spki, csr.identity?.der);
  if (!bytesEqual(reportData.subarray(0, length), expected.subarray(0, length))) {
    throw new StewardRefusal('binding-mismatch', 'binding', `the report data does not begin with ${hash} of this CSR's public key: the evidence was made for another key`);
  }
  const bound = reportData.subarray(length);
  if (csr.identity) {
    if (isAllZero(bound)) throw new StewardRefusal('binding-mismatch', 'binding', 'the CSR names a workload identity, but the report data binds none (its identity bytes are zero)');
    if (!bytesEqual(bound, expected.subarray(length))) {
      throw new StewardRefusal('binding-mismatch', 'binding', "the report data binds another workload identity than the CSR's identity attribute");
    }
  } else if (!isAllZero(bound)) {
    throw new StewardRefusal('binding-mismatch', 'binding', 'the report data binds a workload identity, but the CSR carries no identity attribute');
  }
}

/** Refuses a CA key that does not belong to the CA certificate: better at start than at the first issuance. */
async function checkKeyMatches(issuer: Issuer, cert: Certificate): Promise<void> {
  const probe = new TextEncoder().encode('enarx steward key check');
  const signature = new Uint8Array(await crypto.subtle.sign(issuer.signing.params, issuer.signing.key, probe));
  const alg = issuer.signing.key.algorithm as EcKeyAlgorithm;
  const importParams = issuer.signing.ecdsa ? { name: 'ECDSA', namedCurve: alg.namedCurve } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  let ok = false;
  try {
    const pub = await crypto.subtle.importKey('spki', cert.spki.slice(), importParams, false, ['verify']);
    ok = await crypto.subtle.verify(issuer.signing.params, pub, signature, probe);
  } catch {
    ok = false;
  }
  if (!ok) throw new Error(`the CA key does not match the Steward certificate ${cert.label}`);
}
