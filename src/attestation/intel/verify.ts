// Intel SGX and TDX quote verification, following Intel's QVL (QuoteVerifier.cpp) step by step:
// PCK chain and CRLs to the pinned Intel SGX Root CA, signed collateral (TCB info, QE identity) and
// its windows, collateral-to-quote match, QE report signature and binding, QE identity, quote
// signature, then the TCB level evaluation. Browser-safe: WebCrypto only.
import { bytesEqual, concatBytes, digest, ownBytes, toHex } from '../bytes.ts';
import { intelSgxRoot } from '../roots.ts';
import { VerificationError, oneLine, type EvidenceKind, type VerificationResult } from '../types.ts';
import { Certificate, Crl, assertValidNow, parseCertificates, parseCrl, verifyChain, type TrustAnchor } from '../x509.ts';
import type { EnclaveIdentity, IntelCollateral, Signed, TcbInfo } from './collateral.ts';
import { SGX_EXTENSION_OID, decodePckExtensions, type PckExtensions } from './pck.ts';
import { CERT_DATA_PCK_CHAIN, parseQuote, qeReportDataUpperIsZero, type IntelQuote } from './quote.ts';
import { checkTdxModuleIdentity, evaluateQeIdentity, evaluateTcb, type QeEvaluation, type TcbEvaluation } from './tcb.ts';
import { quoteClaims } from './claims.ts';
import { BytesMap } from './bytes-map.ts';

export interface IntelVerifyOptions {
  /** TCB info, QE identity, CRLs and issuer certificates (see parseCollateralJson / mergeCollateral). */
  collateral?: IntelCollateral;
  /** More CRLs, DER, PEM or parsed: the PCK Processor/Platform CRL and the Root CA CRL, told apart by issuer. */
  crls?: readonly CrlInput[];
  /**
   * More certificates, DER, PEM or parsed: the TCB signing certificate when the collateral came without its
   * issuer chain, or the PCK chain for a quote whose certification data carries none (types 1-4).
   */
  certs?: readonly CertInput[];
  /** The time every validity window is checked against. */
  now: Date;
  /** Trust anchors; the pinned Intel SGX Root CA by default. Tests pass their own test root here. */
  roots?: readonly TrustAnchor[];
}

/** Verifies an SGX quote (v3, or v4/v5 with an SGX body). */
export function verifySgxQuote(bytes: Uint8Array, options: IntelVerifyOptions): Promise<VerificationResult> {
  return verifyIntelQuote(bytes, options, 'sgx');
}

/** Verifies a TDX quote (v4, or v5 with a TD report 1.0 or 1.5 body). */
export function verifyTdxQuote(bytes: Uint8Array, options: IntelVerifyOptions): Promise<VerificationResult> {
  return verifyIntelQuote(bytes, options, 'tdx');
}

/**
 * Verifies an Intel DCAP quote. `expect` rejects a quote of the other TEE at step 'parse'; without
 * it the kind comes from the quote header. Never throws for bad evidence or collateral: the result
 * names the failing step.
 */
export async function verifyIntelQuote(bytes: Uint8Array, options: IntelVerifyOptions, expect?: 'sgx' | 'tdx'): Promise<VerificationResult> {
  // An invalid Date compares false with everything, which would pass every window: refuse it.
  assertValidNow(options.now, 'verifyIntelQuote');
  let quote: IntelQuote | undefined;
  const state: State = { warnings: [], claims: {}, revocationChecked: false, trustAnchor: null };
  try {
    quote = parseQuote(bytes);
    if (expect && quote.kind !== expect) {
      throw new VerificationError('parse', `this is ${quote.kind.toUpperCase()} evidence, not ${expect.toUpperCase()}`);
    }
    Object.assign(state.claims, quoteClaims(quote));
    const tcb = await verifyParsed(quote, options, state);
    const verified = tcb.status !== 'Revoked';
    return result(quote, state, {
      verified,
      tcbStatus: tcb.status,
      advisories: tcb.advisories,
      failure: verified ? null : { step: 'tcb', message: 'the matched TCB level is Revoked' },
    });
  } catch (err) {
    if (!(err instanceof VerificationError)) throw err;
    return result(quote, state, { verified: false, tcbStatus: null, advisories: [], failure: { step: err.step, message: err.message } }, expect);
  }
}

interface State {
  warnings: string[];
  claims: Record<string, unknown>;
  revocationChecked: boolean;
  trustAnchor: string | null;
}

function result(
  quote: IntelQuote | undefined,
  state: State,
  outcome: Pick<VerificationResult, 'verified' | 'tcbStatus' | 'advisories' | 'failure'>,
  expect?: EvidenceKind,
): VerificationResult {
  const body = quote?.sgxBody;
  const td = quote?.tdBody;
  return {
    kind: quote?.kind ?? expect ?? 'sgx',
    ...outcome,
    debug: body ? body.attributes.debug : td ? td.tdAttributes.debug : false,
    measurement: body?.mrenclave ?? td?.mrtd ?? '',
    reportData: body?.reportData ?? td?.reportData ?? '',
    claims: state.claims,
    policy: null,
    trustAnchor: state.trustAnchor,
    revocationChecked: state.revocationChecked,
    warnings: state.warnings.map(oneLine),
    ...(quote ? { trailingBytes: quote.trailingBytes } : {}),
  };
}

// A platform sends the same PCK chain in every quote, and callers pass the same raw certificates and
// CRLs again and again. Parsed objects are remembered by content: the bytes read as latin1 text make an
// exact key that native code builds quickly (a reused buffer can never return a stale object).
const LATIN1 = new TextDecoder('latin1');
const quoteChains = new BytesMap<Certificate[]>(64);
const parsedCerts = new Map<string, Certificate[]>();
const parsedCrls = new Map<string, Crl>();

function remembered<T>(cache: Map<string, T>, input: Uint8Array | string, parse: (input: Uint8Array | string) => T): T {
  const key = typeof input === 'string' ? input : LATIN1.decode(input);
  let value = cache.get(key);
  if (value === undefined) {
    value = parse(input);
    if (cache.size >= 256) cache.clear();
    cache.set(key, value);
  }
  return value;
}

type CertInput = Uint8Array | string | Certificate;
type CrlInput = Uint8Array | string | Crl;

const toCerts = (list: readonly CertInput[] | undefined): Certificate[] =>
  (list ?? []).flatMap((c) => (c instanceof Certificate ? [c] : remembered(parsedCerts, c, parseCertificates)));
const toCrls = (list: readonly CrlInput[] | undefined): Crl[] =>
  (list ?? []).map((c) => (c instanceof Crl ? c : remembered(parsedCrls, c, parseCrl)));

async function verifyParsed(quote: IntelQuote, options: IntelVerifyOptions, state: State): Promise<TcbEvaluation> {
  const { now } = options;
  const anchors = options.roots ?? [await intelSgxRoot()];
  const collateral = options.collateral ?? {};
  const crls = [...toCrls(collateral.crls), ...toCrls(options.crls)];
  const extraCerts = [...toCerts(collateral.certs), ...toCerts(options.certs)];

  // PCK certificate chain (QVL 4.1.2.4.4 - 4.1.2.4.7).
  const pckChain = pckCertificateChain(quote, extraCerts);
  const leaf = pckChain[0]!;
  if (!leaf.subject.commonName.includes('SGX PCK Certificate')) {
    throw new VerificationError('chain', `certificate ${leaf.label} is not an SGX PCK certificate`);
  }
  const rootCrls = crls.filter((c) => anchors.some((a) => bytesEqual(c.issuer.der, a.certificate.subject.der)));
  const pckCrls = crls.filter((c) => !rootCrls.includes(c) && bytesEqual(c.issuer.der, leaf.issuer.der));
  // A PCK CRL of the other Intel CA (Processor vs Platform) is the wrong collateral, as in the QVL;
  // CRLs of unrelated issuers (another vendor's) are simply not used.
  const foreignCrls = crls.filter((c) => !rootCrls.includes(c) && !pckCrls.includes(c) && / PCK /.test(` ${c.issuer.commonName} `));
  if (pckCrls.length === 0 && foreignCrls.length > 0) {
    const names = foreignCrls.map((c) => `'${c.issuer.commonName || c.issuer.text}'`).join(', ');
    throw new VerificationError('crl', `the PCK CRL given is issued by ${names}, not by the PCK certificate's issuer '${leaf.issuer.commonName}'`);
  }
  // The three WebCrypto operations a quote needs run while the chain and collateral are checked;
  // their outcomes are still examined in the QVL's order below.
  const cryptoChecks = startCryptoChecks(quote, leaf);
  cryptoChecks.catch(() => {}); // examined after the chain; never an unhandled rejection
  const chain = await verifyChain(pckChain, { anchors, now, crls: [...rootCrls, ...pckCrls] });
  state.trustAnchor = chain.anchor.name;
  // As the QVL: root -> PCK Processor or Platform CA -> PCK certificate, nothing shorter or longer.
  const intermediate = chain.path[1]!;
  if (chain.path.length !== 3 || !PCK_CA_NAME.test(intermediate.subject.commonName)) {
    throw new VerificationError(
      'chain',
      `a PCK certificate is issued by the Intel SGX PCK Processor or Platform CA under the root; this chain has ${chain.path.length} certificates and its issuer is ${intermediate.label}`,
    );
  }
  const pck = pckExtensionsOf(leaf);
  Object.assign(state.claims, pckClaims(pck, leaf), { tcbComponents: [...pck.tcbComponents] }); // a copy the caller may keep
  if (pckCrls.length === 0) state.warnings.push(`no PCK CRL given: revocation of the PCK certificate by '${leaf.issuer.commonName}' was not checked`);
  if (rootCrls.length === 0) state.warnings.push('no Intel SGX Root CA CRL given: revocation of the intermediate and TCB signing certificates was not checked');

  // Signed collateral: TCB info (required) and QE identity (optional, as in the QVL).
  if (!collateral.tcbInfo) {
    throw new VerificationError('collateral', `no TCB info given for FMSPC ${pck.fmspc} (Intel PCS /${quote.kind}/certification/v4/tcb?fmspc=${pck.fmspc})`);
  }
  const tcbInfo = await verifySignedCollateral(collateral.tcbInfo, 'TCB info', extraCerts, anchors, rootCrls, now);
  let qeIdentity: Signed<EnclaveIdentity> | undefined;
  if (collateral.qeIdentity) {
    qeIdentity = await verifySignedCollateral(collateral.qeIdentity, 'QE identity', extraCerts, anchors, rootCrls, now);
  } else {
    state.warnings.push(`no QE identity given: the Quoting Enclave's identity and TCB level were not checked`);
  }
  state.revocationChecked = chain.crlChecked.every(Boolean) && rootCrls.length > 0;
  checkTcbInfoMatches(tcbInfo.body, quote, pck);
  state.claims.tcbEvaluationDataNumber = tcbInfo.body.tcbEvaluationDataNumber;
  if (quote.kind === 'tdx') checkTdxModuleIdentity(tcbInfo.body, quote); // QVL 4.1.2.4.11, before the QE report

  // QE report: signed by the PCK key, and binding the attestation key (QVL 4.1.2.4.12 - 13).
  const checks = await cryptoChecks;
  if (!checks.qeReportSignature) throw new VerificationError('signature', 'the QE report signature does not verify with the PCK certificate key');
  if (!bytesEqual(checks.binding, quote.qeReportRaw.subarray(320, 352))) {
    throw new VerificationError('binding', 'QE report data is not SHA-256(attestation key || QE authentication data)');
  }
  if (!qeReportDataUpperIsZero(quote)) state.warnings.push('QE report data bytes 32..63 are not zero');

  // QE identity (QVL 4.1.2.4.14 - 15). An ISVSVN below every QE level is reported only after the
  // quote signature, as the QVL reports it (from the TCB level check).
  let qe: QeEvaluation | undefined;
  let qeNotSupported: VerificationError | undefined;
  state.claims.qeStatus = null;
  if (qeIdentity) {
    try {
      qe = evaluateQeIdentity(qeIdentity.body, quote.qeReportRaw, quote.kind);
      state.claims.qeStatus = qe.status;
      state.claims.qeTcbDate = qe.level.tcbDate;
      state.claims.qeAdvisories = qe.level.advisoryIds;
    } catch (err) {
      if (!(err instanceof VerificationError && err.step === 'tcb')) throw err;
      qeNotSupported = err;
    }
  }

  // The quote itself (QVL 4.1.2.4.16).
  if (checks.quoteSignature instanceof VerificationError) throw checks.quoteSignature;
  if (!checks.quoteSignature) throw new VerificationError('signature', 'the quote signature does not verify with the attestation key');
  if (qeNotSupported) throw qeNotSupported;

  // TCB levels (QVL 4.1.2.4.17).
  const tcb = evaluateTcb(tcbInfo.body, pck, quote, qe);
  state.claims.tcbDate = tcb.platformLevel.tcbDate;
  state.claims.platformTcbStatus = tcb.platformLevel.tcbStatus;
  state.claims.platformAdvisories = tcb.platformLevel.advisoryIds;
  if (tcb.tdxModule) {
    state.claims.tdxModule = {
      id: tcb.tdxModule.id ?? null,
      majorVersion: quote.teeTcbSvn![1],
      isvSvn: quote.teeTcbSvn![0],
      status: tcb.tdxModule.status,
      tcbDate: tcb.tdxModule.level?.tcbDate ?? null,
      advisories: tcb.tdxModule.level?.advisoryIds ?? [],
    };
  }
  return tcb;
}

// Intel's names (a local test PKI prefixes them, e.g. "Test SGX PCK Platform CA").
const PCK_CA_NAME = /SGX PCK (Processor|Platform) CA$/;
const TCB_SIGNER_NAME = /SGX TCB Signing$/;

const pckExtensions = new WeakMap<Certificate, PckExtensions>();

function pckExtensionsOf(leaf: Certificate): PckExtensions {
  let pck = pckExtensions.get(leaf);
  if (!pck) {
    const ext = leaf.extension(SGX_EXTENSION_OID);
    if (!ext) throw new VerificationError('parse', `PCK certificate ${leaf.label} has no SGX extension (${SGX_EXTENSION_OID})`);
    pckExtensions.set(leaf, (pck = decodePckExtensions(ext.value)));
  }
  return pck;
}

interface CryptoOutcome {
  qeReportSignature: boolean;
  binding: Uint8Array;
  /** A VerificationError when the attestation key is not a P-256 point. */
  quoteSignature: boolean | VerificationError;
}

const ECDSA_P256_SHA256 = { name: 'ECDSA', hash: 'SHA-256' };

// The QE report, its signature, the attestation key and the QE authentication data are the same in
// every quote a Quoting Enclave produces until it restarts: their checks are pure functions of those
// exact bytes and the PCK key, so they are remembered per PCK certificate. Only the quote signature
// is new with every quote.
const qeChecks = new WeakMap<Certificate, BytesMap<Promise<Omit<CryptoOutcome, 'quoteSignature'>>>>();

function checkQe(quote: IntelQuote, leaf: Certificate): Promise<Omit<CryptoOutcome, 'quoteSignature'>> {
  let byQe = qeChecks.get(leaf);
  if (!byQe) qeChecks.set(leaf, (byQe = new BytesMap(64)));
  const key = [quote.qeReportRaw, quote.qeReportSignature, quote.attestationKey, quote.qeAuthData];
  let outcome = byQe.get(...key);
  if (!outcome) {
    const qeReportSignature = leaf
      .verifyKey({ kind: 'ecdsa', hash: 'SHA-256' })
      .then((k) => crypto.subtle.verify(ECDSA_P256_SHA256, k, ownBytes(quote.qeReportSignature), ownBytes(quote.qeReportRaw)))
      .catch(() => false);
    const binding = digest('SHA-256', concatBytes(quote.attestationKey, quote.qeAuthData));
    outcome = Promise.all([qeReportSignature, binding]).then(([ok, hash]) => ({ qeReportSignature: ok, binding: hash }));
    byQe.set(key, outcome);
  }
  return outcome;
}

async function startCryptoChecks(quote: IntelQuote, leaf: Certificate): Promise<CryptoOutcome> {
  const qe = checkQe(quote, leaf);
  const quoteSignature = importAttestationKey(quote.attestationKey)
    .then((key) => crypto.subtle.verify(ECDSA_P256_SHA256, key, ownBytes(quote.signature), ownBytes(quote.signedData)))
    .catch((err: unknown) => (err instanceof VerificationError ? err : false));
  return { ...(await qe), quoteSignature: await quoteSignature };
}

/** The PCK chain, leaf first: from certification data type 5, or for types 1-4 from the given certificates. */
function pckCertificateChain(quote: IntelQuote, extra: Certificate[]): Certificate[] {
  if (quote.certificationDataType === CERT_DATA_PCK_CHAIN) {
    let chain = quoteChains.get(quote.certificationData);
    if (!chain) quoteChains.set([quote.certificationData], (chain = parseCertificates(quote.certificationData)));
    if (chain.length < 2) throw new VerificationError('parse', `the quote's PCK chain holds ${chain.length} certificate(s); expected leaf, intermediate and root`);
    return chain;
  }
  const leaf = extra.find((c) => c.extension(SGX_EXTENSION_OID));
  if (!leaf) {
    throw new VerificationError(
      'collateral',
      `the quote's certification data (type ${quote.certificationDataType}) carries no PCK certificate; give the PCK certificate chain`,
    );
  }
  const chain = [leaf];
  for (let c: Certificate | undefined = leaf; c && !c.isSelfIssued; ) {
    c = extra.find((x) => x !== c && bytesEqual(x.subject.der, c!.issuer.der));
    if (c) chain.push(c);
  }
  return chain;
}

// Collateral signatures are checked once per document and signing certificate, then remembered:
// repeated verifications against the same collateral (the warm path) cost no ECDSA work here.
const collateralSignatures = new WeakMap<Signed<unknown>, Map<Certificate, Promise<boolean>>>();

function collateralSignatureValid(doc: Signed<unknown>, signer: Certificate): Promise<boolean> {
  let bySigner = collateralSignatures.get(doc);
  if (!bySigner) collateralSignatures.set(doc, (bySigner = new Map()));
  let ok = bySigner.get(signer);
  if (!ok) {
    ok = signer
      .verifyKey({ kind: 'ecdsa', hash: 'SHA-256' })
      .then((key) => crypto.subtle.verify(ECDSA_P256_SHA256, key, ownBytes(doc.signature), ownBytes(doc.signedBytes)))
      .catch(() => false);
    bySigner.set(signer, ok);
  }
  return ok;
}

/**
 * Checks a signed collateral document: its signing certificate chains to a pinned root (with the
 * Root CA CRL when given), its signature covers the exact transmitted bytes, and `now` lies in
 * [issueDate, nextUpdate].
 */
async function verifySignedCollateral<T extends TcbInfo | EnclaveIdentity>(
  doc: Signed<T>,
  what: string,
  extra: Certificate[],
  anchors: readonly TrustAnchor[],
  rootCrls: Crl[],
  now: Date,
): Promise<Signed<T>> {
  const own = toCerts(doc.issuerChain);
  const candidates = [...own, ...extra].filter((c) => !c.isSelfIssued && !c.extension(SGX_EXTENSION_OID) && !c.basicConstraints?.ca);
  if (candidates.length === 0) {
    throw new VerificationError('collateral', `no signing certificate for the ${what} (give its issuer chain, the Intel SGX TCB Signing certificate)`);
  }
  let firstError: VerificationError | undefined;
  for (const signer of candidates) {
    try {
      if (!TCB_SIGNER_NAME.test(signer.subject.commonName)) {
        throw new VerificationError('chain', `${signer.label} is not an Intel SGX TCB Signing certificate, so it cannot sign the ${what}`);
      }
      const signerChain = await verifyChain([signer], { anchors, now, crls: rootCrls });
      if (signerChain.path.length !== 2) {
        throw new VerificationError('chain', `the ${what} signing certificate ${signer.label} must be issued by the root itself`);
      }
      if (!(await collateralSignatureValid(doc, signer))) {
        throw new VerificationError('signature', `the ${what} signature does not verify with ${signer.label}`);
      }
      firstError = undefined;
      break;
    } catch (err) {
      if (!(err instanceof VerificationError)) throw err;
      firstError ??= err;
    }
  }
  if (firstError) throw firstError;
  const { issueDate, nextUpdate } = doc.body;
  if (now < issueDate) throw new VerificationError('collateral', `the ${what} is not valid before its issueDate ${iso(issueDate)} (now ${iso(now)})`);
  if (now > nextUpdate) throw new VerificationError('collateral', `the ${what} expired at its nextUpdate ${iso(nextUpdate)} (now ${iso(now)})`);
  return doc;
}

function iso(d: Date): string {
  return d.toISOString().replace('.000Z', 'Z');
}

/** QVL 4.1.2.4.9 - 10: the TCB info is for this TEE and this platform. */
function checkTcbInfoMatches(info: TcbInfo, quote: IntelQuote, pck: PckExtensions): void {
  if (quote.kind === 'tdx' && (info.id !== 'TDX' || info.version < 3)) {
    throw new VerificationError('collateral', `TCB info "${info.id}" v${info.version} does not apply to a TDX quote (a TDX v3 TCB info is needed)`);
  }
  if (quote.kind === 'sgx' && info.id !== 'SGX') {
    throw new VerificationError('collateral', `TCB info "${info.id}" does not apply to an SGX quote`);
  }
  if (info.fmspc !== pck.fmspc) {
    throw new VerificationError('collateral', `TCB info is for FMSPC ${info.fmspc}, the PCK certificate's FMSPC is ${pck.fmspc}`);
  }
  if (info.pceId !== pck.pceId) {
    throw new VerificationError('collateral', `TCB info is for PCE ID ${info.pceId}, the PCK certificate's PCE ID is ${pck.pceId}`);
  }
}

// Attestation keys repeat for as long as a QE runs; importing one costs about as much as a verify.
const attestationKeys = new BytesMap<Promise<CryptoKey>>(256);

function importAttestationKey(raw: Uint8Array): Promise<CryptoKey> {
  let key = attestationKeys.get(raw);
  if (!key) {
    key = crypto.subtle
      .importKey('raw', ownBytes(concatBytes(Uint8Array.of(4), raw)), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify'])
      .catch(() => {
        throw new VerificationError('binding', 'the attestation key is not a valid P-256 public key');
      });
    attestationKeys.set([raw], key);
  }
  return key;
}

const pckClaimsCache = new WeakMap<Certificate, Record<string, unknown>>();

function pckClaims(pck: PckExtensions, leaf: Certificate): Record<string, unknown> {
  let claims = pckClaimsCache.get(leaf);
  if (!claims) pckClaimsCache.set(leaf, (claims = makePckClaims(pck, leaf.issuer.commonName)));
  return claims;
}

function makePckClaims(pck: PckExtensions, issuer: string): Record<string, unknown> {
  return {
    fmspc: pck.fmspc,
    pceId: pck.pceId,
    pceSvn: pck.pceSvn,
    tcbComponents: pck.tcbComponents,
    pckCpuSvn: pck.cpuSvn,
    ppid: pck.ppid,
    sgxType: ['Standard', 'Scalable', 'ScalableWithIntegrity'][pck.sgxType] ?? pck.sgxType,
    pckIssuer: /Platform/.test(issuer) ? 'platform' : /Processor/.test(issuer) ? 'processor' : issuer,
    ...(pck.platformInstanceId ? { platformInstanceId: pck.platformInstanceId } : {}),
    // Multi-package platforms (Platform CA): whether the platform may change, keeps keys cached, runs SMT.
    ...(pck.configuration ? { pckConfiguration: { ...pck.configuration } } : {}),
  };
}

