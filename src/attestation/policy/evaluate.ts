import type { PolicyOutcome, VerificationResult } from '../types.ts';
import { Claims, MissingClaim } from './claims.ts';
import { SNP_POLICY_FLAGS } from './parse.ts';
import type { AzurePolicy, CommonPolicy, IntelMinimums, Policy, SgxPolicy, SnpPolicy, TdxPolicy } from './types.ts';
import type { AzureRuntimeClaims } from '../azure.ts';

/**
 * Decides whether a verification result is acceptable under a policy. Every failing check adds one
 * reason; the checks that Enarx's Steward has run in its order and say what it says, so the first
 * reason is the error Enarx would have given. Evidence that did not verify is never accepted.
 */
export function evaluatePolicy(policy: Policy, result: VerificationResult): PolicyOutcome {
  const reasons: string[] = [];
  if (!result.verified) {
    const why = result.failure ? `${result.failure.step}: ${result.failure.message}` : 'no failure recorded';
    return { accepted: false, reasons: [`the evidence did not verify (${why})`] };
  }
  const c = new Claims(result);
  const check = (fn: () => string | null | undefined | false): void => {
    try {
      const reason = fn();
      if (reason) reasons.push(reason);
    } catch (err) {
      if (!(err instanceof MissingClaim)) throw err;
      reasons.push(err.message);
    }
  };
  switch (result.kind) {
    case 'snp':
      evaluateSnp(policy.snp, result, c, check);
      break;
    case 'sgx':
      evaluateSgx(policy.sgx, result, c, check);
      break;
    case 'tdx':
      evaluateTdx(policy.tdx, result, c, check);
      break;
    default:
      reasons.push(`unknown evidence kind '${String((result as { kind: unknown }).kind)}'`);
  }
  if (policy.azure) evaluateAzure(policy.azure, result, check);
  return { accepted: reasons.length === 0, reasons };
}

/** `[azure]`: the claims the Azure HCL runtime data and vTPM quote gave (claims.azure), after they verified. */
function evaluateAzure(p: AzurePolicy, result: VerificationResult, check: Check): void {
  const azure = result.claims.azure as AzureRuntimeClaims | undefined;
  const wantsQuote = p.vtpmQuote || Object.keys(p.pcrs).length > 0;
  const wantsAnything = p.required || wantsQuote || Object.keys(p.vmConfiguration).length > 0;
  if (!azure) {
    check(() => wantsAnything && 'azure: the report data binds no Azure HCL runtime data (give the HCL report)');
    return;
  }
  for (const [member, expected] of Object.entries(p.vmConfiguration)) {
    check(() => {
      const actual = azure.vmConfiguration?.[member];
      if (actual === undefined) return `azure: the runtime data's vm-configuration has no '${member}'`;
      return actual !== expected && `azure: vm-configuration ${member} is ${JSON.stringify(actual)}, the policy requires ${JSON.stringify(expected)}`;
    });
  }
  if (!wantsQuote) return;
  const quote = azure.vtpmQuote;
  if (!quote) {
    check(() => 'azure: no vTPM quote was verified, and the policy requires one (give the vTPM quote with the HCL report)');
    return;
  }
  for (const [index, allowed] of Object.entries(p.pcrs)) {
    check(() => {
      const value = quote.pcrs[index];
      if (value === undefined) return `azure: the vTPM quote does not cover PCR ${index}`;
      return !allowed.includes(value.toLowerCase()) && `azure: PCR ${index} is ${value}, not a value the policy allows`;
    });
  }
}

/** Returns a copy of the result with its `policy` key filled. */
export function applyPolicy(policy: Policy, result: VerificationResult): VerificationResult {
  return { ...result, policy: evaluatePolicy(policy, result) };
}

type Check = (fn: () => string | null | undefined | false) => void;

const NO_SECTION: CommonPolicy = { debug: false, requireRevocation: false };

function inList(list: readonly string[], value: string): boolean {
  return list.includes(value);
}

function checkDebug(kind: string, p: CommonPolicy, result: VerificationResult, check: Check, what: string): void {
  check(() => result.debug && !p.debug && `${kind} ${what} (set debug = true in [${kind}] to accept it)`);
}

function checkRevocation(kind: string, p: CommonPolicy, result: VerificationResult, check: Check): void {
  check(
    () =>
      p.requireRevocation &&
      !result.revocationChecked &&
      `${kind} revocation was not checked for the whole chain, and the policy requires it (give the CRLs)`,
  );
}

function evaluateSnp(p: SnpPolicy | null, result: VerificationResult, c: Claims, check: Check): void {
  checkDebug('snp', p ?? NO_SECTION, result, check, 'guest policy permits debugging');
  if (p === null) return;
  const abi = () => ({ major: c.num('policy.abiMajor'), minor: c.num('policy.abiMinor'), patch: 0 });
  check(() => p.abi !== null && !p.abi.matches(abi()) && 'snp minimum abi not met');
  if (p.signer.length > 0) {
    check(() => {
      if (!c.bool('authorKeyEn')) return 'snp author key unset';
      return !inList(p.signer, c.hex('authorKeyDigest')) && 'snp untrusted enarx author_key_digest';
    });
  }
  check(
    () =>
      p.signerBlacklist.length > 0 &&
      inList(p.signerBlacklist, c.hex('authorKeyDigest')) &&
      'snp untrusted enarx author_key_digest in signer_blacklist',
  );
  check(
    () =>
      p.idKeyDigest.length > 0 &&
      !inList(p.idKeyDigest, c.hex('idKeyDigest')) &&
      'snp untrusted enarx id_key_digest not in list of allowed key digests',
  );
  check(
    () =>
      p.idKeyDigestBlacklist.length > 0 &&
      inList(p.idKeyDigestBlacklist, c.hex('idKeyDigest')) &&
      'snp untrusted enarx id_key_digest in blacklist',
  );
  check(() => p.hash.length > 0 && !inList(p.hash, result.measurement.toLowerCase()) && 'snp untrusted enarx measurement');
  check(() => p.hashBlacklist.length > 0 && inList(p.hashBlacklist, result.measurement.toLowerCase()) && 'snp untrusted enarx hash');
  check(() => p.platformInfoFlags !== null && snpPlatformInfoFlags(c) !== p.platformInfoFlags && 'snp unexpected platform info flags');
  check(() => {
    if (p.policyFlags === null) return null;
    const extra = snpPolicyFlags(c) & ~p.policyFlags;
    const names = Object.entries(SNP_POLICY_FLAGS)
      .filter(([, bit]) => extra & bit)
      .map(([name]) => name);
    return names.length > 0 && `snp guest policy enables ${names.join(', ')}, which policy_flags does not list`;
  });
  if (p.minTcb) {
    for (const [field, min] of Object.entries(p.minTcb)) {
      check(() => {
        const spl = c.num(`reportedTcb.${field}`);
        return spl < (min as number) && `snp reported TCB ${field} SPL ${spl} is below the minimum ${min}`;
      });
    }
  }
  check(() => {
    if (p.minGuestSvn === null) return null;
    const svn = c.num('guestSvn');
    return svn < p.minGuestSvn && `snp guest SVN ${svn} is below the minimum ${p.minGuestSvn}`;
  });
  check(() => {
    if (p.firmware === null) return null;
    const v = snpFirmware(c);
    return !p.firmware.matches(v) && `snp firmware ${v.major}.${v.minor}.${v.patch} does not meet ${p.firmware}`;
  });
  check(() => {
    if (p.vmpl === null) return null;
    const vmpl = c.num('vmpl');
    return !p.vmpl.includes(vmpl) && `snp report VMPL ${vmpl} is not one of ${p.vmpl.join(', ')}`;
  });
  check(() => p.hostData.length > 0 && !inList(p.hostData, c.hex('hostData')) && 'snp host_data not in the allowed list');
  checkRevocation('snp', p, result, check);
}

/** Guest POLICY bits 16..20 (SMT, Reserved, MigrateMA, Debug, SingleSocket). */
function snpPolicyFlags(c: Claims): number {
  return Number((c.uint('policy.raw') >> 16n) & 0x1fn);
}

/** PLATFORM_INFO bits 0 and 1, the two Enarx knows (SME, TSME). */
function snpPlatformInfoFlags(c: Claims): number {
  return Number(c.uint('platformInfo.raw') & 3n);
}

function snpFirmware(c: Claims): { major: number; minor: number; patch: number } {
  return { major: c.num('currentVersion.major'), minor: c.num('currentVersion.minor'), patch: c.num('currentVersion.build') };
}

function evaluateIntelMinimums(kind: 'sgx' | 'tdx', p: IntelMinimums, c: Claims, check: Check): void {
  const minimums: [number | null, string, string][] = [
    [p.minQeSvn, 'qeSvn', 'QE SVN'],
    [p.minPceSvn, 'pceSvn', 'PCE SVN'],
    [p.minTcbEvaluationDataNumber, 'tcbEvaluationDataNumber', 'TCB evaluation data number'],
  ];
  for (const [min, claim, what] of minimums) {
    check(() => {
      if (min === null) return null;
      const value = c.num(claim);
      return value < min && `${kind} ${what} ${value} is below the minimum ${min}`;
    });
  }
}

function evaluateIntelTcb(
  kind: 'sgx' | 'tdx',
  p: { allowedAdvisories: readonly string[]; tcbStatus: readonly string[] | null } | null,
  result: VerificationResult,
  check: Check,
): void {
  const status = result.tcbStatus;
  const allowed = p?.allowedAdvisories ?? [];
  if (allowed.length > 0) {
    check(() => {
      const extra = result.advisories.filter((a) => !allowed.includes(a));
      return extra.length > 0 && `${kind} TCB report has additional advisories: ${extra.join(', ')}`;
    });
  }
  if (p?.tcbStatus) {
    const accepted = p.tcbStatus;
    check(() => !accepted.includes(status ?? '') && `${kind} TCB status ${status} is not one of ${accepted.join(', ')}`);
  } else if (allowed.length === 0) {
    check(() => status !== 'UpToDate' && `${kind} TCB report shows firmware not \`UpToDate\``);
  }
}

function evaluateSgx(p: SgxPolicy | null, result: VerificationResult, c: Claims, check: Check): void {
  checkDebug('sgx', p ?? NO_SECTION, result, check, 'enclave has the DEBUG attribute');
  if (p !== null) {
    const mrenclave = result.measurement.toLowerCase();
    check(() => {
      if (p.signer.length === 0) return null;
      const mrsigner = c.hex('mrsigner');
      return !inList(p.signer, mrsigner) && `sgx untrusted enarx signer ${mrsigner}`;
    });
    check(() => p.signerBlacklist.length > 0 && inList(p.signerBlacklist, c.hex('mrsigner')) && 'sgx untrusted enarx signer in signer_blacklist');
    check(() => p.hash.length > 0 && !inList(p.hash, mrenclave) && `sgx untrusted enarx hash ${mrenclave}`);
    check(() => p.hashBlacklist.length > 0 && inList(p.hashBlacklist, mrenclave) && 'sgx untrusted enarx hash');
    check(() => {
      if (p.enclaveProductId === null) return null;
      const id = c.num('isvProdId');
      return id !== p.enclaveProductId && `sgx untrusted enclave product id ${id}`;
    });
    check(() => p.enclaveSecurityVersion !== null && c.num('isvSvn') < p.enclaveSecurityVersion && 'sgx untrusted enclave security version');
    check(() => p.features !== null && (sgxFeatures(c) & ~p.features) !== 0n && 'sgx untrusted features');
    check(() => p.miscSelect !== 0 && (c.num('miscSelect') & ~p.miscSelect) !== 0 && 'sgx untrusted misc select');
  }
  if (p !== null) evaluateIntelMinimums('sgx', p, c, check);
  evaluateIntelTcb('sgx', p, result, check);
  if (p !== null) checkRevocation('sgx', p, result, check);
}

/** SGX ATTRIBUTES flags (the low 64 bits). */
function sgxFeatures(c: Claims): bigint {
  return c.uint('attributes.flags');
}

const TDX_REGISTERS = [
  ['rtmr0', 'rtmr0'],
  ['rtmr1', 'rtmr1'],
  ['rtmr2', 'rtmr2'],
  ['rtmr3', 'rtmr3'],
  ['mrSeam', 'mr_seam'],
  ['mrConfigId', 'mr_config_id'],
  ['mrOwner', 'mr_owner'],
  ['mrOwnerConfig', 'mr_owner_config'],
] as const;

function evaluateTdx(p: TdxPolicy | null, result: VerificationResult, c: Claims, check: Check): void {
  checkDebug('tdx', p ?? NO_SECTION, result, check, 'TD has the DEBUG attribute');
  if (p !== null) {
    const mrtd = result.measurement.toLowerCase();
    check(() => p.hash.length > 0 && !inList(p.hash, mrtd) && `tdx untrusted MRTD ${mrtd}`);
    check(() => p.hashBlacklist.length > 0 && inList(p.hashBlacklist, mrtd) && `tdx MRTD ${mrtd} in hash_blacklist`);
    for (const [claim, key] of TDX_REGISTERS) {
      const allowed = p[claim];
      check(() => {
        if (allowed.length === 0) return null;
        const value = c.hex(claim);
        return !inList(allowed, value) && `tdx untrusted ${key} ${value}`;
      });
    }
    check(() => {
      if (p.minTeeTcbSvn === null) return null;
      const svn = c.hex('teeTcbSvn');
      const low = p.minTeeTcbSvn.findIndex((min, i) => Number.parseInt(svn.slice(i * 2, i * 2 + 2) || '0', 16) < min);
      return low >= 0 && `tdx TEE_TCB_SVN ${svn} is below min_tee_tcb_svn at byte ${low}`;
    });
    evaluateIntelMinimums('tdx', p, c, check);
  }
  evaluateIntelTcb('tdx', p, result, check);
  if (p !== null) checkRevocation('tdx', p, result, check);
}
