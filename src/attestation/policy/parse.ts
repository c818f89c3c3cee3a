import { parse as parseToml, TomlError } from 'smol-toml';
import { VersionReq } from './semver.ts';
import { PolicyError } from './types.ts';
import type { AzurePolicy, CommonPolicy, IntelMinimums, Policy, SgxPolicy, SnpPolicy, SnpTcbMinimum, TdxPolicy } from './types.ts';

/** SNP guest POLICY bits 16..20, shifted down by 16, named as in Enarx's steward.toml. */
export const SNP_POLICY_FLAGS = { SMT: 1 << 0, Reserved: 1 << 1, MigrateMA: 1 << 2, Debug: 1 << 3, SingleSocket: 1 << 4 } as const;
/** PLATFORM_INFO bits as Enarx names them (AMD calls bit 0 SMT_EN). */
export const SNP_PLATFORM_INFO_FLAGS = { SME: 1 << 0, TSME: 1 << 1 } as const;
/** SGX ATTRIBUTES flag bits. */
export const SGX_FEATURES = {
  INIT: 1n << 0n,
  Debug: 1n << 1n,
  MODE64BIT: 1n << 2n,
  ProvisioningKey: 1n << 4n,
  EInitKey: 1n << 5n,
  CET: 1n << 6n,
  KSS: 1n << 7n,
  AEXNotify: 1n << 10n,
} as const;
export const SGX_MISC_SELECT = { EXINFO: 1 << 0, CPINFO: 1 << 1 } as const;
export const TCB_STATUSES = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded',
  'TDRelaunchAdvised',
  'TDRelaunchAdvisedConfigurationNeeded',
] as const;

/**
 * Parses a policy file (TOML). Accepts Enarx's steward.toml `[snp]` and `[sgx]` sections unchanged,
 * plus `[tdx]` and the keys documented in docs/policy.md. Every mistake, including an unknown key,
 * throws a PolicyError that names the section and key.
 */
export function parsePolicy(text: string): Policy {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (err) {
    if (err instanceof TomlError) {
      throw new PolicyError(`invalid TOML at line ${err.line}, column ${err.column}: ${err.message.split('\n')[0]}`);
    }
    throw new PolicyError(`invalid TOML: ${(err as Error).message}`);
  }
  for (const key of Object.keys(doc)) {
    if (key !== 'snp' && key !== 'sgx' && key !== 'tdx' && key !== 'azure') {
      throw new PolicyError(`unknown section or key '${key}' (expected [snp], [sgx], [tdx] or [azure])`);
    }
  }
  return {
    snp: doc.snp === undefined ? null : parseSnp(new Section('snp', doc.snp)),
    sgx: doc.sgx === undefined ? null : parseSgx(new Section('sgx', doc.sgx)),
    tdx: doc.tdx === undefined ? null : parseTdx(new Section('tdx', doc.tdx)),
    azure: doc.azure === undefined ? null : parseAzure(new Section('azure', doc.azure)),
  };
}

/** `[azure]`: required, vtpm_quote, pcrs = { "7" = ["hex", ...] }, vm_configuration = { secure-boot = true, ... }. */
function parseAzure(s: Section): AzurePolicy {
  const pcrs: Record<string, string[]> = {};
  const pcrTable = s.raw('pcrs');
  if (pcrTable !== undefined) {
    if (!isTable(pcrTable)) s.fail('pcrs', 'expected a table of PCR index = [hex values]');
    for (const [index, values] of Object.entries(pcrTable)) {
      const key = `pcrs.${index}`;
      if (!/^(0|[1-9]\d?)$/.test(index) || Number(index) > 23) s.fail(key, 'a PCR index is 0 to 23');
      if (!Array.isArray(values) || values.length === 0) s.fail(key, 'expected a non-empty array of hex values');
      pcrs[index] = [...new Set(values.map((v, i) => {
        if (typeof v !== 'string' || !/^([0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{96}|[0-9a-fA-F]{128})$/.test(v)) {
          s.fail(`${key}[${i}]`, 'expected the hex of a SHA-1, SHA-256, SHA-384 or SHA-512 PCR value');
        }
        return v.toLowerCase();
      }))];
    }
  }
  const vmConfiguration: Record<string, string | number | boolean> = {};
  const vmTable = s.raw('vm_configuration');
  if (vmTable !== undefined) {
    if (!isTable(vmTable)) s.fail('vm_configuration', 'expected a table of member = value');
    for (const [member, value] of Object.entries(vmTable)) {
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') s.fail(`vm_configuration.${member}`, 'expected a string, a number or true/false');
      vmConfiguration[member] = value;
    }
  }
  const out: AzurePolicy = { required: s.bool('required', false), vtpmQuote: s.bool('vtpm_quote', false), pcrs, vmConfiguration };
  s.finish();
  return out;
}

/** Reads the keys of one table and remembers which it used, so the rest can be reported as unknown. */
class Section {
  readonly name: string;
  private readonly table: Record<string, unknown>;
  private readonly used = new Set<string>();

  constructor(name: string, value: unknown) {
    this.name = name;
    if (!isTable(value)) throw new PolicyError(`'${name}' must be a table ([${name}])`);
    this.table = value;
  }

  fail(key: string, message: string): never {
    throw new PolicyError(`[${this.name}] ${key}: ${message}`);
  }

  raw(key: string): unknown {
    this.used.add(key);
    return this.table[key];
  }

  has(key: string): boolean {
    return this.table[key] !== undefined;
  }

  digests(key: string, bytes: number): string[] {
    const value = this.raw(key);
    if (value === undefined) return [];
    if (!Array.isArray(value)) this.fail(key, 'expected an array of hex strings');
    const out = value.map((item, i) => {
      if (typeof item !== 'string') this.fail(`${key}[${i}]`, 'expected a hex string');
      return this.hex(`${key}[${i}]`, item, bytes);
    });
    return [...new Set(out)];
  }

  hex(key: string, text: string, bytes: number): string {
    if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) this.fail(key, `invalid hex '${text}'`);
    if (text.length !== bytes * 2) {
      this.fail(key, `expected digest to have length of ${bytes}, got ${text.length / 2}`);
    }
    return text.toLowerCase();
  }

  bool(key: string, fallback: boolean): boolean {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') this.fail(key, 'expected true or false');
    return value;
  }

  int(key: string, max: number): number | null {
    const value = this.raw(key);
    if (value === undefined) return null;
    return this.intValue(key, value, max);
  }

  intValue(key: string, value: unknown, max: number): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
      this.fail(key, `expected an integer from 0 to ${max}`);
    }
    return value;
  }

  names<T extends number | bigint>(key: string, known: Record<string, T>): T[] | null {
    const value = this.raw(key);
    if (value === undefined) return null;
    if (!Array.isArray(value)) this.fail(key, `expected an array of names (${Object.keys(known).join(', ')})`);
    return value.map((item) => this.name1(key, item, known));
  }

  name1<T>(key: string, item: unknown, known: Record<string, T>): T {
    if (typeof item !== 'string' || !Object.hasOwn(known, item)) {
      this.fail(key, `unknown value ${JSON.stringify(item)} (expected one of ${Object.keys(known).join(', ')})`);
    }
    return known[item] as T;
  }

  strings(key: string): string[] | null {
    const value = this.raw(key);
    if (value === undefined) return null;
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) this.fail(key, 'expected an array of strings');
    return [...new Set(value as string[])];
  }

  versionReq(key: string): VersionReq | null {
    const value = this.raw(key);
    if (value === undefined) return null;
    if (typeof value !== 'string') this.fail(key, 'expected a version requirement string such as ">=1.51"');
    try {
      return VersionReq.parse(value);
    } catch (err) {
      this.fail(key, (err as Error).message);
    }
  }

  tcbStatus(key: string): string[] | null {
    const list = this.strings(key);
    if (list === null) return null;
    for (const status of list) {
      if (status === 'Revoked') this.fail(key, 'a Revoked TCB can never be accepted');
      if (!(TCB_STATUSES as readonly string[]).includes(status)) {
        this.fail(key, `unknown TCB status '${status}' (expected one of ${TCB_STATUSES.join(', ')})`);
      }
    }
    return list;
  }

  common(): CommonPolicy {
    return { debug: this.bool('debug', false), requireRevocation: this.bool('require_revocation', false) };
  }

  intelMinimums(): IntelMinimums {
    return {
      minQeSvn: this.int('min_qe_svn', 0xffff),
      minPceSvn: this.int('min_pce_svn', 0xffff),
      minTcbEvaluationDataNumber: this.int('min_tcb_evaluation_data_number', 0xffff_ffff),
    };
  }

  /** Enarx's rule: at least one of these must be given, and an allowed hash cannot also be denied. */
  requireIdentity(keys: readonly string[], allowed: readonly string[], denied: readonly string[], what: string): void {
    if (keys.every((k) => !this.has(k))) {
      throw new PolicyError(`[${this.name}]: one of ${keys.map((k) => `\`${k}\``).join(', ')} must be specified`);
    }
    const both = allowed.find((d) => denied.includes(d));
    if (both) this.fail(what, `same hash \`${both}\` in both \`hash\` and \`hash_blacklist\``);
  }

  finish(): void {
    for (const key of Object.keys(this.table)) {
      if (!this.used.has(key)) throw new PolicyError(`[${this.name}] unknown key '${key}'`);
    }
  }
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function bits(values: number[] | null, base: number): number | null {
  return values === null ? null : values.reduce((acc, v) => acc | v, base);
}

function bigBits(values: bigint[] | null, base: bigint): bigint | null {
  return values === null ? null : values.reduce((acc, v) => acc | v, base);
}

function parseSnp(s: Section): SnpPolicy {
  const hash = s.digests('hash', 48);
  const hashBlacklist = s.digests('hash_blacklist', 48);
  const policy: SnpPolicy = {
    ...s.common(),
    signer: s.digests('signer', 48),
    signerBlacklist: s.digests('signer_blacklist', 48),
    hash,
    hashBlacklist,
    idKeyDigest: s.digests('id_key_digest', 48),
    idKeyDigestBlacklist: s.digests('id_key_digest_blacklist', 48),
    abi: s.versionReq('abi'),
    policyFlags: bits(s.names('policy_flags', SNP_POLICY_FLAGS), SNP_POLICY_FLAGS.Reserved),
    platformInfoFlags: platformInfoFlags(s),
    minTcb: snpMinTcb(s),
    minGuestSvn: s.int('min_guest_svn', 0xffff_ffff),
    firmware: s.versionReq('firmware'),
    vmpl: vmpl(s),
    hostData: s.digests('host_data', 32),
  };
  s.finish();
  s.requireIdentity(['signer', 'hash', 'hash_blacklist'], hash, hashBlacklist, 'hash_blacklist');
  return policy;
}

function platformInfoFlags(s: Section): number | null {
  const value = s.raw('platform_info_flags');
  if (value === undefined) return null;
  return s.name1('platform_info_flags', value, SNP_PLATFORM_INFO_FLAGS);
}

const SNP_TCB_FIELDS = ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const;

function snpMinTcb(s: Section): SnpTcbMinimum | null {
  const value = s.raw('min_tcb');
  if (value === undefined) return null;
  if (!isTable(value)) s.fail('min_tcb', `expected a table with keys ${SNP_TCB_FIELDS.join(', ')}`);
  const out: SnpTcbMinimum = {};
  for (const [key, spl] of Object.entries(value)) {
    if (!(SNP_TCB_FIELDS as readonly string[]).includes(key)) {
      s.fail('min_tcb', `unknown key '${key}' (expected ${SNP_TCB_FIELDS.join(', ')})`);
    }
    out[key as keyof SnpTcbMinimum] = s.intValue(`min_tcb.${key}`, spl, 255);
  }
  return out;
}

function vmpl(s: Section): number[] | null {
  const value = s.raw('vmpl');
  if (value === undefined) return null;
  if (!Array.isArray(value)) s.fail('vmpl', 'expected an array of VMPLs (0 to 3)');
  return value.map((v, i) => s.intValue(`vmpl[${i}]`, v, 3));
}

function parseSgx(s: Section): SgxPolicy {
  const hash = s.digests('hash', 32);
  const hashBlacklist = s.digests('hash_blacklist', 32);
  // Enarx adds INIT and MODE64BIT whenever `features` is present: every enclave has them.
  const features = bigBits(s.names('features', SGX_FEATURES), SGX_FEATURES.INIT | SGX_FEATURES.MODE64BIT);
  const policy: SgxPolicy = {
    ...s.common(),
    ...s.intelMinimums(),
    signer: s.digests('signer', 32),
    signerBlacklist: s.digests('signer_blacklist', 32),
    hash,
    hashBlacklist,
    features,
    miscSelect: bits(s.names('misc_select', SGX_MISC_SELECT), 0) ?? 0,
    enclaveSecurityVersion: s.int('enclave_security_version', 0xffff),
    enclaveProductId: s.int('enclave_product_id', 0xffff),
    allowedAdvisories: s.strings('allowed_advisories') ?? [],
    tcbStatus: s.tcbStatus('tcb_status'),
  };
  s.finish();
  s.requireIdentity(['signer', 'hash', 'hash_blacklist'], hash, hashBlacklist, 'hash_blacklist');
  return policy;
}

function parseTdx(s: Section): TdxPolicy {
  const hash = s.digests('hash', 48);
  const hashBlacklist = s.digests('hash_blacklist', 48);
  const policy: TdxPolicy = {
    ...s.common(),
    ...s.intelMinimums(),
    hash,
    hashBlacklist,
    rtmr0: s.digests('rtmr0', 48),
    rtmr1: s.digests('rtmr1', 48),
    rtmr2: s.digests('rtmr2', 48),
    rtmr3: s.digests('rtmr3', 48),
    mrSeam: s.digests('mr_seam', 48),
    mrConfigId: s.digests('mr_config_id', 48),
    mrOwner: s.digests('mr_owner', 48),
    mrOwnerConfig: s.digests('mr_owner_config', 48),
    minTeeTcbSvn: minTeeTcbSvn(s),
    allowedAdvisories: s.strings('allowed_advisories') ?? [],
    tcbStatus: s.tcbStatus('tcb_status'),
  };
  s.finish();
  s.requireIdentity(['hash', 'hash_blacklist', 'rtmr0', 'rtmr1', 'rtmr2', 'rtmr3'], hash, hashBlacklist, 'hash_blacklist');
  return policy;
}

function minTeeTcbSvn(s: Section): number[] | null {
  const value = s.raw('min_tee_tcb_svn');
  if (value === undefined) return null;
  if (typeof value !== 'string') s.fail('min_tee_tcb_svn', 'expected 16 bytes of hex');
  const hex = s.hex('min_tee_tcb_svn', value, 16);
  return Array.from({ length: 16 }, (_, i) => Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16));
}
