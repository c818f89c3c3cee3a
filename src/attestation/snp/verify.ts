/**
 * SEV-SNP verification (shared/reference/attestation.md section 2.5): report structure, the chain
 * ARK -> ASK/ASVK -> VCEK/VLEK to a pinned ARK, AMD CRLs when given, the report's ECDSA P-384
 * signature, and the certificate's TCB and chip id against the report. Policy (measurement, debug,
 * minimum TCB, ...) is not decided here: the result's claims carry what a policy needs.
 */
import { bytesEqual, isAllZero, ownBytes, toHex } from '../bytes.ts';
import { type SnpProduct, SNP_PRODUCTS, amdRoots } from '../roots.ts';
import { VerificationError, oneLine, type VerificationResult } from '../types.ts';
import { type Certificate, type Crl, type TrustAnchor, assertValidNow, verifyChain } from '../x509.ts';
import { type SnpReport, SNP_SIGNED_SIZE, decodeTcb, parseSnpReport, productFromCpuid, snpClaims } from './report.ts';
import { amdKeyExtensions, kdsVcekUrl, productFromName } from './vcek.ts';

export interface SnpVerifyOptions {
  /** The VCEK or VLEK, and optionally its ASK/ASVK and ARK (the built-in ones are used otherwise). */
  certs?: readonly Certificate[];
  /** AMD CRLs (KDS /vcek/v1/{product}/crl, /vlek/v1/{product}/crl); each is applied to the chain link its issuer signs. */
  crls?: readonly Crl[];
  /** The time for every validity check; defaults to the current time. */
  now?: Date;
  /**
   * Extra roots to accept, e.g. a software backend's local test ARK. Never trusted implicitly: a
   * chain that ends at one is reported with that anchor's name ('test:...').
   */
  trustedTestRoots?: readonly TrustAnchor[];
}

export function emptyResult(kind: VerificationResult['kind']): VerificationResult {
  return {
    kind,
    verified: false,
    tcbStatus: null,
    advisories: [],
    debug: false,
    measurement: '',
    reportData: '',
    claims: {},
    failure: null,
    policy: null,
    trustAnchor: null,
    revocationChecked: false,
    warnings: [],
  };
}

const cap = (p: SnpProduct) => p[0]!.toUpperCase() + p.slice(1);

/** Verifies a raw 1184-byte report. Never throws for bad evidence: the result's failure names the step. */
export async function verifySnp(evidence: Uint8Array, options: SnpVerifyOptions = {}): Promise<VerificationResult> {
  if (options.now !== undefined) assertValidNow(options.now, 'verifySnp');
  const result = emptyResult('snp');
  try {
    await verifyInto(result, evidence, options);
    result.verified = true;
  } catch (err) {
    if (!(err instanceof VerificationError)) throw err;
    result.failure = { step: err.step, message: err.message, ...(err.code ? { code: err.code } : {}) };
  }
  result.warnings = result.warnings.map(oneLine);
  return result;
}

/**
 * The leaf: a non-CA certificate with a P-384 key, preferring the report's key type (a VCEK has a
 * hwID, a VLEK has none; a host may provision both) and then one whose hwID is this chip's.
 */
function pickLeaf(certs: readonly Certificate[], report: SnpReport): Certificate | undefined {
  const leaves = certs.filter((c) => !c.basicConstraints?.ca && c.publicKeyInfo.kind === 'ec');
  const ofKind = leaves.filter((c) => (amdKeyExtensions(c).hwId ? 'vcek' : 'vlek') === report.signingKey);
  const pool = ofKind.length > 0 ? ofKind : leaves;
  const ownChip = pool.find((c) => {
    const hw = amdKeyExtensions(c).hwId;
    return hw !== undefined && hw.length > 0 && bytesEqual(hw, report.chipId.subarray(0, hw.length));
  });
  return ownChip ?? pool[0];
}

/**
 * Orders the chain by names. The caller's CA certificates are used when given (so a wrong chain
 * fails rather than being silently replaced); the pinned ASK/ASVK only when the caller gave none.
 */
function buildChain(leaf: Certificate, given: readonly Certificate[], pinned: readonly Certificate[]): Certificate[] {
  const chain = [leaf];
  const offered = given.filter((c) => c !== leaf && c.basicConstraints?.ca);
  const pool = offered.length > 0 ? offered : pinned;
  for (let current = leaf; !current.isSelfIssued; ) {
    const next = pool.find((c) => !chain.includes(c) && bytesEqual(c.subject.der, current.issuer.der));
    if (!next) break;
    chain.push(next);
    current = next;
  }
  // Certificates that fit nowhere go to the chain check when the chain stops short, which then says why they do not fit.
  if (!chain[chain.length - 1]!.isSelfIssued) chain.push(...offered.filter((c) => !chain.includes(c)));
  return chain;
}

async function verifyInto(result: VerificationResult, evidence: Uint8Array, options: SnpVerifyOptions): Promise<void> {
  const report = parseSnpReport(evidence);
  const cpuidProduct = productFromCpuid(report);
  result.measurement = toHex(report.measurement);
  result.reportData = toHex(report.reportData);
  result.debug = report.policy.debug;
  result.claims = snpClaims(report, cpuidProduct ?? null);
  const unknownPolicy = BigInt(report.policy.raw) >> 26n;
  if (unknownPolicy !== 0n) {
    result.warnings.push(`POLICY sets bits this verifier does not know (0x${(unknownPolicy << 26n).toString(16)}, above PAGE_SWAP_DISABLE, bit 25): newer firmware may give them a meaning a policy should decide on`);
  }
  if (report.version >= 3 && !cpuidProduct) {
    result.warnings.push(`CPUID family 0x${report.cpuid!.familyId.toString(16)} model 0x${report.cpuid!.modelId.toString(16)} is not a known SEV-SNP product`);
  }

  const now = options.now ?? new Date();
  const allRoots = await Promise.all(SNP_PRODUCTS.map((p) => amdRoots(p)));
  const keyName = report.signingKey.toUpperCase();
  const leaf = pickLeaf(options.certs ?? [], report);
  if (!leaf) {
    const product = cpuidProduct ?? 'milan';
    const where =
      report.signingKey === 'vcek'
        ? `fetch it from AMD KDS: ${kdsVcekUrl(product, report.chipId, decodeTcb(report.reportedTcb, product))}${cpuidProduct ? '' : ' (or the Genoa/Turin path)'}`
        : 'VLEKs come from the host (the extended report / configfs-tsm auxblob)';
    throw new VerificationError('collateral', `no ${keyName} certificate given for this ${keyName}-signed report; ${where}`, { code: 'missing-collateral' });
  }
  if (leaf.publicKeyInfo.kind !== 'ec' || leaf.publicKeyInfo.curve !== 'P-384') {
    throw new VerificationError('chain', `certificate ${leaf.label} does not hold a P-384 key, so it cannot be a ${keyName}`);
  }

  const pinnedSigners = allRoots.flatMap((r) => [r.ask, r.asvk]);
  const chain = buildChain(leaf, options.certs ?? [], pinnedSigners);
  const testRoots = options.trustedTestRoots ?? [];
  const anchors = [...allRoots.map((r) => r.ark), ...testRoots];
  const verdict = await verifyChain(chain, { anchors, now, crls: options.crls });
  const { anchor, path } = verdict;
  result.trustAnchor = anchor.name;
  const isTest = testRoots.includes(anchor);
  const ext = amdKeyExtensions(leaf);

  // Which product, and which signing key the chain is for.
  let product: SnpProduct;
  let chainKey: 'vcek' | 'vlek';
  if (!isTest) {
    const roots = allRoots.find((r) => r.ark === anchor)!;
    product = roots.product;
    if (path.length !== 3) throw new VerificationError('chain', `an AMD chain is ARK -> ASK/ASVK -> ${keyName}; this one has ${path.length} certificates`);
    const signer = path[1]!;
    const pinnedAs = [roots.ask, roots.asvk].find((p) => bytesEqual(p.subject.der, signer.subject.der) && bytesEqual(p.spki, signer.spki));
    chainKey = bytesEqual(signer.subject.der, roots.asvk.subject.der) ? 'vlek' : 'vcek';
    if (!pinnedAs || !bytesEqual(pinnedAs.der, signer.der)) {
      if (!verdict.crlChecked[1]) {
        throw new VerificationError(
          'chain',
          `${signer.label} is not AMD's current ${chainKey === 'vlek' ? 'ASVK' : 'ASK'} for ${cap(product)} and no AMD CRL was given to show it is not revoked (AMD revoked Genoa ASK 0x20001)`,
        );
      }
      result.warnings.push(`${signer.label} is not the built-in ${cap(product)} signing key; it was accepted because the AMD CRL does not list it`);
    }
  } else {
    const named = productFromName(ext.productName) ?? cpuidProduct;
    if (!named) throw new VerificationError('collateral', `the ${keyName} names no product (productName extension) and the report does not either`);
    product = named;
    chainKey = ext.hwId ? 'vcek' : 'vlek';
  }
  if (chainKey !== report.signingKey) {
    throw new VerificationError('chain', `the report is signed with a ${keyName}, but ${leaf.label} is a ${chainKey.toUpperCase()}`);
  }
  if (cpuidProduct && cpuidProduct !== product) {
    throw new VerificationError('collateral', `the report's CPUID names ${cap(cpuidProduct)}, but the ${keyName} chains to ${cap(product)}`);
  }
  const namedProduct = productFromName(ext.productName);
  if (ext.productName !== undefined && namedProduct !== product) {
    throw new VerificationError('collateral', `the ${keyName}'s productName '${ext.productName}' does not match ${cap(product)}`);
  }
  if (product === 'turin' && report.version < 3) throw new VerificationError('collateral', `a version ${report.version} report cannot come from Turin`);
  result.claims = { ...snpClaims(report, product), certificate: certificateClaims(leaf, ext) };

  // Revocation: AMD publishes CRLs for the ASK/ASVK only (every VCEK has serial 0).
  result.revocationChecked = verdict.crlChecked.length >= 2 && verdict.crlChecked.slice(1).every(Boolean);
  if (!result.revocationChecked) {
    const kds = `https://kdsintf.amd.com/${chainKey}/v1/${cap(product)}/crl`;
    result.warnings.push(isTest ? 'no CRL given for the test signing key' : `no AMD CRL given (${kds}): the ${chainKey === 'vlek' ? 'ASVK' : 'ASK'} was not checked for revocation`);
  }
  for (const { crl, reason } of verdict.ignoredCrls) {
    result.warnings.push(`a CRL from '${crl.issuer.commonName || crl.issuer.text}' was set aside (${reason}); a valid one from the same issuer was used`);
  }
  for (const unused of verdict.unusedCrls) {
    result.warnings.push(`CRL from '${unused.issuer.commonName || unused.issuer.text}' does not apply to this chain and was not used`);
  }

  // The report's signature, by the VCEK/VLEK.
  let key: CryptoKey;
  try {
    key = await leaf.verifyKey({ kind: 'ecdsa', hash: 'SHA-384' });
  } catch (err) {
    throw new VerificationError('chain', `the public key of ${leaf.label} cannot be used: ${err instanceof Error ? err.message : String(err)}`);
  }
  const valid = await crypto.subtle.verify(
    { name: 'ECDSA', hash: 'SHA-384' },
    key,
    ownBytes(report.signatureP1363),
    report.bytes.subarray(0, SNP_SIGNED_SIZE) as Uint8Array<ArrayBuffer>,
  );
  if (!valid) {
    const masked = report.maskChipKey && isAllZero(report.signatureP1363);
    throw new VerificationError('signature', masked ? 'the host set MASK_CHIP_KEY, so the firmware did not sign this report' : `the report's signature does not verify with ${leaf.label}`);
  }

  // The certificate is for this TCB and this chip.
  const reported = decodeTcb(report.reportedTcb, product);
  const fields: Array<keyof typeof ext.tcb> = ['bootloader', 'tee', 'snp', 'microcode', ...(product === 'turin' ? (['fmc'] as const) : [])];
  if (fields.some((f) => ext.tcb[f] !== reported[f])) {
    const show = (t: Partial<Record<keyof typeof ext.tcb, number>>) => fields.map((f) => `${f} ${t[f] ?? 'absent'}`).join(', ');
    throw new VerificationError('tcb', `the ${keyName} was issued for TCB (${show(ext.tcb)}), but the report's REPORTED_TCB is (${show(reported)})`);
  }
  if (chainKey === 'vcek') {
    const hw = ext.hwId!;
    const expected = product === 'turin' ? 8 : 64;
    if (isAllZero(report.chipId)) {
      result.warnings.push('the host masked CHIP_ID, so the VCEK hwID could not be compared (the signature still binds the report to that VCEK)');
    } else if (hw.length !== expected || !bytesEqual(hw, report.chipId.subarray(0, expected))) {
      throw new VerificationError('binding', `the VCEK belongs to chip ${toHex(hw).slice(0, 16)}..., not to this report's CHIP_ID ${toHex(report.chipId).slice(0, 16)}...`);
    }
  }
}

function certificateClaims(leaf: Certificate, ext: ReturnType<typeof amdKeyExtensions>): Record<string, unknown> {
  return {
    subject: leaf.subject.text,
    issuer: leaf.issuer.text,
    serialNumber: leaf.serialNumber,
    notBefore: leaf.notBefore.toISOString(),
    notAfter: leaf.notAfter.toISOString(),
    productName: ext.productName ?? null,
    structVersion: ext.structVersion ?? null,
    tcb: ext.tcb,
    hwId: ext.hwId ? toHex(ext.hwId) : null,
    cspId: ext.cspId ?? null,
  };
}
