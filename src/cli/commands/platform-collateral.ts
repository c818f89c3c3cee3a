import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { defaultCacheDir, environmentOptions } from '../../collateral/environment.ts';
import type { CollateralOptions } from '../../collateral/index.ts';
import { EnarxError, UsageError } from '../errors.ts';
import { printJson } from '../output.ts';

/**
 * Collateral commands, the equivalents of Enarx's `platform snp update|cache-crl` and
 * `platform sgx cache-crl|cache-tcb|cache-pck`, added under `enarx platform`. The collateral
 * library is loaded only when one of them runs.
 */
export function registerCollateralCommands(platform: Command): void {
  const snp = platform.command('snp').description('AMD SEV-SNP collateral from the AMD Key Distribution Service');
  common(
    snp
      .command('update')
      .description("download this chip's VCEK (for its reported TCB) and its product's ASK/ARK chain")
      .option('--report <file>', 'an SNP attestation report to take the chip id, reported TCB and product from')
      .option('--chip-id <hex>', 'the 64-byte CHIP_ID, hex (instead of --report)')
      .option('--tcb <spls>', 'the reported TCB SPLs: bootloader,tee,snp,microcode[,fmc] (instead of --report)')
      .option('--product <name>', 'Milan, Genoa or Turin (needed for version 2 reports and with --chip-id)'),
  ).action(async (opts) => report(opts, await snpUpdate(opts)));
  common(
    snp
      .command('cache-crl')
      .description("download the ARK CRLs of Milan, Genoa and Turin and write them as Enarx's CrlList")
      .option('--products <list>', 'which products, comma-separated', 'Milan,Genoa,Turin')
      .option('--out <file>', "where to write the DER CrlList (default: <cache-dir>/amd/crls.der)"),
  ).action(async (opts) => report(opts, await snpCacheCrl(opts)));

  const sgx = platform.command('sgx').description('Intel SGX/TDX collateral from the Intel Provisioning Certification Service (v4)');
  common(
    sgx
      .command('cache-crl')
      .description("download the Intel SGX Root CA CRL and the PCK Processor and Platform CA CRLs, and write Enarx's CrlList")
      .option('--out <file>', 'where to write the DER CrlList (default: <cache-dir>/intel/crls.der)'),
  ).action(async (opts) => report(opts, await sgxCacheCrl(opts)));
  common(
    sgx
      .command('cache-tcb')
      .description("download the TCB info and QE identity for this platform's FMSPC, and write Enarx's TcbPackage")
      .option('--fmspc <hex>', 'the FMSPC (default: the one `enarx platform sgx cache-pck` saved)')
      .option('--tdx', 'fetch the TDX TCB info and TD_QE identity instead of SGX')
      .option('--out <file>', 'where to write the DER TcbPackage (default: <cache-dir>/intel/tcb.der)'),
  ).action(async (opts) => report(opts, await sgxCacheTcb(opts)));
  common(
    sgx
      .command('cache-pck')
      .description("download this platform's PCK certificate (needs an Intel PCS API key) and save its FMSPC")
      .requiredOption('--pckid <file>', 'the CSV line PCKIDRetrievalTool writes: encrypted_ppid,pceid,cpusvn,pcesvn,qeid')
      .option('--api-key <key>', 'Intel PCS subscription key (default: $INTEL_PCS_API_KEY)'),
  ).action(async (opts) => report(opts, await sgxCachePck(opts)));
}

export interface CommonOptions {
  cacheDir?: string;
  offline?: boolean;
  kdsUrl?: string;
  pcsUrl?: string;
  intelCertsUrl?: string;
  timeout?: string;
  retries?: string;
  json?: boolean;
}

export function common(cmd: Command): Command {
  return cmd
    .option('--cache-dir <dir>', 'collateral cache (default: $ENARX_COLLATERAL_DIR or ~/.cache/enarx/collateral)')
    .option('--offline', 'use only the cache; never the network')
    .option('--kds-url <url>', 'AMD KDS base URL (default: $ENARX_KDS_URL or https://kdsintf.amd.com)')
    .option('--pcs-url <url>', 'Intel PCS or PCCS base URL (default: $ENARX_PCS_URL or https://api.trustedservices.intel.com)')
    .option('--intel-certs-url <url>', 'where the Intel Root CA CRL is (default: $ENARX_INTEL_CERTS_URL or https://certificates.trustedservices.intel.com)')
    .option('--timeout <seconds>', 'per-request timeout', '15')
    .option('--retries <n>', 'retries after a failed request', '3')
    .option('--json', 'print one JSON document on stdout');
}

export function positive(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${name} must be a non-negative number, got '${text}'`);
  return n;
}

/** Progress of downloads, on stderr. */
function progress(event: import('../../collateral/index.ts').ProgressEvent): void {
  switch (event.type) {
    case 'start':
      process.stderr.write(`downloading ${event.url}${event.attempt > 0 ? ` (attempt ${event.attempt + 1})` : ''}\n`);
      break;
    case 'done':
      process.stderr.write(`  ${event.bytes} bytes in ${event.ms} ms\n`);
      break;
    case 'retry':
      process.stderr.write(`  ${event.reason}; retrying in ${(event.delayMs / 1000).toFixed(1)} s\n`);
      break;
    case 'cache':
      process.stderr.write(`using the cached copy of ${event.url}${event.state === 'fresh' ? '' : ` (${event.state})`}\n`);
      break;
    case 'warning':
      process.stderr.write(`warning: ${event.message}\n`);
      break;
  }
}

export async function openService(opts: CommonOptions, now?: Date, signal?: AbortSignal) {
  const { CollateralService } = await import('../../collateral/index.ts');
  return new CollateralService({
    ...(now ? { now: () => now } : {}),
    ...(signal ? { signal } : {}),
    ...collateralOptions(opts, { timeout: ['--timeout', 15], retries: ['--retries', 3] }),
    onProgress: progress,
  });
}

/**
 * The collateral service's settings from the flags that name them (here `--cache-dir`, `--timeout`…;
 * `enarx steward serve` has them under `--collateral-…` names), with the environment's defaults.
 */
export function collateralOptions(
  opts: Omit<CommonOptions, 'json'>,
  defaults: { timeout: [flag: string, seconds: number]; retries: [flag: string, count: number] },
): Omit<CollateralOptions, 'now' | 'onProgress'> {
  const env = environmentOptions();
  return {
    ...env,
    cacheDir: opts.cacheDir ?? env.cacheDir,
    offline: opts.offline ?? false,
    amdBaseUrl: opts.kdsUrl ?? env.amdBaseUrl,
    intelBaseUrl: opts.pcsUrl ?? env.intelBaseUrl,
    intelCertsBaseUrl: opts.intelCertsUrl ?? env.intelCertsBaseUrl,
    timeoutMs: positive(opts.timeout, defaults.timeout[0], defaults.timeout[1]) * 1000,
    retries: Math.floor(positive(opts.retries, defaults.retries[0], defaults.retries[1])),
  };
}

/** The flags of a command that obtains the collateral evidence lacks (`steward serve`, `keep attest`). */
export interface FetchCollateralFlags {
  fetchCollateral: boolean;
  offlineCollateral?: boolean;
  collateralDir?: string;
  kdsUrl?: string;
  pcsUrl?: string;
  intelCertsUrl?: string;
  /** Seconds; absent: the flag's default (a library caller that gives no flags). */
  collateralTimeout?: string;
  collateralRetries?: string;
  collateralBudget?: string;
}

/** What --collateral-budget bounds where the command verifies evidence (`steward serve`, `keep attest`). */
export const VERIFY_BUDGET_HELP = "how long one verification's collateral downloads may take, all together; then what is missing cannot be had";

export function fetchCollateralFlags(cmd: Command, budgetHelp = VERIFY_BUDGET_HELP): Command {
  return cmd
    .option('--collateral-dir <dir>', 'collateral cache for evidence that lacks it (default: $ENARX_COLLATERAL_DIR or ~/.cache/enarx/collateral)')
    .option('--offline-collateral', 'take missing collateral from the cache only (fill it with enarx platform snp|sgx ... or enarx update-cache)')
    .option('--no-fetch-collateral', 'never obtain collateral: evidence must carry all it needs (Enarx 0.7)')
    .option('--kds-url <url>', 'AMD KDS base URL (default: $ENARX_KDS_URL or https://kdsintf.amd.com)')
    .option('--pcs-url <url>', 'Intel PCS or PCCS base URL (default: $ENARX_PCS_URL or https://api.trustedservices.intel.com)')
    .option('--intel-certs-url <url>', 'where the Intel Root CA CRL is (default: $ENARX_INTEL_CERTS_URL or https://certificates.trustedservices.intel.com)')
    .option('--collateral-timeout <seconds>', 'per-request timeout for collateral downloads', '10')
    .option('--collateral-retries <n>', 'retries after a failed collateral download', '1')
    .option('--collateral-budget <seconds>', budgetHelp, '10');
}

/** --collateral-budget in milliseconds (10 s when a library caller gives no flags); a bad value is a usage error. */
export function collateralBudgetMs(flags: { collateralBudget?: string | undefined }): number {
  return positive(flags.collateralBudget, '--collateral-budget', 10) * 1000;
}

/** The collateral settings those flags give, or undefined with --no-fetch-collateral. */
export function fetchCollateralOptions(flags: FetchCollateralFlags): Omit<CollateralOptions, 'now' | 'onProgress'> | undefined {
  if (!flags.fetchCollateral) return undefined;
  return collateralOptions(
    { cacheDir: flags.collateralDir, offline: flags.offlineCollateral, kdsUrl: flags.kdsUrl, pcsUrl: flags.pcsUrl, intelCertsUrl: flags.intelCertsUrl, timeout: flags.collateralTimeout, retries: flags.collateralRetries },
    { timeout: ['--collateral-timeout', 10], retries: ['--collateral-retries', 1] },
  );
}

/** The flags of a command that starts a Keep (`run`, `deploy`): those above, the budget bounding the Keep's start. */
export type KeepCollateralFlags = Partial<FetchCollateralFlags>;

export const KEEP_COLLATERAL_HELP = `
Collateral (--collateral-*, --kds-url, --pcs-url, --intel-certs-url): a hardware Keep (sev, tdx, sgx)
with a Steward carries its host's collateral (VCEK and CRLs, or TCB info and CRLs) in its CSR, so
that a Steward that fetches none can verify it. The host takes it from the collateral cache,
refreshed from AMD KDS / Intel PCS; all downloads of one Keep share --collateral-budget, after which
the Keep goes on without what is missing (said once on stderr). Fill the cache beforehand with
'enarx update-cache' or 'enarx platform snp|sgx ...' to keep the start off the network.`;

export function keepCollateralFlags(cmd: Command): Command {
  return fetchCollateralFlags(cmd, "how long a hardware Keep's start waits for its host's collateral downloads, all together; then it goes on without what is missing");
}

/**
 * A hardware Keep's host collateral settings from those flags, with the environment's defaults
 * (the fast `enarx run` path passes none of them: all defaults). Bad values are usage errors;
 * with --no-fetch-collateral the download settings are unused, and not read.
 */
export function keepCollateralSettings(flags: KeepCollateralFlags): import('../../collateral/keep.ts').KeepCollateralSettings {
  if (flags.fetchCollateral === false) return { fetch: false };
  const budgetMs = collateralBudgetMs(flags);
  return { options: fetchCollateralOptions({ ...flags, fetchCollateral: true })!, budgetMs };
}

/** Runs a collateral operation, turning its errors into one-line CLI errors. */
export async function run<T>(fn: () => Promise<T>): Promise<T> {
  const { CollateralError } = await import('../../collateral/index.ts');
  const { VerificationError } = await import('../../attestation/types.ts');
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CollateralError || err instanceof VerificationError) {
      throw new EnarxError(err.message, { hint: 'check the network or the URLs, or use --offline with a filled cache' });
    }
    throw err;
  }
}

type Doc = import('../../collateral/index.ts').Document;
const summary = (d: Doc) => ({ path: d.path, source: d.source, expiresAt: d.meta.expiresAt, url: d.meta.url, ...(d.warning ? { warning: d.warning } : {}) });

interface Outcome {
  docs: Record<string, Doc>;
  written: Record<string, string>;
}

function report(opts: CommonOptions, { docs, written }: Outcome): void {
  if (opts.json) {
    printJson({ documents: Object.fromEntries(Object.entries(docs).map(([k, d]) => [k, summary(d)])), written });
    return;
  }
  for (const [name, d] of Object.entries(docs)) {
    process.stdout.write(`${name}: ${d.path} (${d.source === 'network' ? 'downloaded' : 'cached'}, valid until ${d.meta.expiresAt})\n`);
  }
  for (const [name, path] of Object.entries(written)) process.stdout.write(`${name}: ${path}\n`);
}

async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'check the path');
  }
}

async function snpUpdate(opts: CommonOptions & { report?: string; chipId?: string; tcb?: string; product?: string }): Promise<Outcome> {
  const c = await import('../../collateral/index.ts');
  const { fromHex } = await import('../../attestation/bytes.ts');
  const product = opts.product ? await run(async () => c.parseProduct(opts.product!)) : undefined;
  let id: { product: import('../../collateral/index.ts').AmdProduct; chipId: Uint8Array; tcb: import('../../collateral/index.ts').SnpTcb };
  if (opts.report) {
    if (opts.chipId || opts.tcb) throw new UsageError('give either --report or --chip-id with --tcb, not both');
    const report = await readInput(opts.report, 'the report');
    id = await run(async () => c.reportIdentity(report, product));
  } else {
    if (!opts.chipId || !opts.tcb || !product) {
      throw new UsageError('give --report FILE, or --chip-id, --tcb and --product', "the chip id and reported TCB are in the guest's attestation report");
    }
    let chipId: Uint8Array;
    try {
      chipId = fromHex(opts.chipId);
    } catch {
      throw new UsageError('--chip-id must be hex');
    }
    const spls = opts.tcb.split(',').map((s) => Number(s.trim()));
    if (spls.length < 4 || spls.length > 5 || spls.some((n) => !Number.isInteger(n))) {
      throw new UsageError('--tcb takes bootloader,tee,snp,microcode[,fmc] as integers');
    }
    const [bootloader, tee, snp, microcode, fmc] = spls as [number, number, number, number, number | undefined];
    id = { product, chipId, tcb: { bootloader, tee, snp, microcode, ...(fmc !== undefined ? { fmc } : {}) } };
  }
  const service = await openService(opts);
  const vcek = await run(() => c.fetchVcek(service, id.product, id.chipId, id.tcb));
  const chain = await run(() => c.fetchCertChain(service, id.product));
  return { docs: { vcek, chain }, written: {} };
}

async function snpCacheCrl(opts: CommonOptions & { out?: string; products?: string }): Promise<Outcome> {
  const c = await import('../../collateral/index.ts');
  const products = await run(async () => [...new Set((opts.products ?? c.AMD_PRODUCTS.join(',')).split(',').map((p) => c.parseProduct(p.trim())))]);
  const service = await openService(opts);
  const docs: Record<string, Doc> = {};
  for (const product of products) docs[`${product} CRL`] = await run(() => c.fetchAmdCrl(service, product));
  const out = opts.out ?? join(service.options.cacheDir, 'amd', 'crls.der');
  await c.atomicWrite(out, c.encodeCrlList(products.map((p) => ({ url: c.ENARX_CRL_URLS.amd(p), der: docs[`${p} CRL`]!.body }))));
  return { docs, written: { 'AMD CrlList': out } };
}

async function sgxCacheCrl(opts: CommonOptions & { out?: string }): Promise<Outcome> {
  const c = await import('../../collateral/index.ts');
  const service = await openService(opts);
  const root = await run(() => c.fetchRootCaCrl(service));
  const processor = await run(() => c.fetchPckCrl(service, 'processor'));
  const platform = await run(() => c.fetchPckCrl(service, 'platform'));
  const out = opts.out ?? join(service.options.cacheDir, 'intel', 'crls.der');
  await c.atomicWrite(
    out,
    c.encodeCrlList([
      { url: c.ENARX_CRL_URLS.intelRoot, der: root.body },
      { url: c.ENARX_CRL_URLS.intelPck('processor'), der: processor.body },
      { url: c.ENARX_CRL_URLS.intelPck('platform'), der: platform.body },
    ]),
  );
  return { docs: { 'Root CA CRL': root, 'PCK Processor CA CRL': processor, 'PCK Platform CA CRL': platform }, written: { 'Intel CrlList': out } };
}

async function sgxCacheTcb(opts: CommonOptions & { fmspc?: string; tdx?: boolean; out?: string }): Promise<Outcome> {
  const c = await import('../../collateral/index.ts');
  const { pemCertificates } = await import('../../attestation/intel/collateral.ts');
  const service = await openService(opts);
  let fmspc = opts.fmspc;
  if (!fmspc) {
    const saved = join(service.options.cacheDir, 'intel', 'fmspc.txt');
    try {
      fmspc = (await readFile(saved, 'utf8')).trim();
    } catch {
      throw new UsageError(`no --fmspc given and ${saved} does not exist`, 'run `enarx platform sgx cache-pck` first, or give --fmspc');
    }
  }
  const tee = opts.tdx ? 'tdx' : 'sgx';
  const tcb = await run(() => c.fetchTcbInfo(service, tee, fmspc!));
  const qe = await run(() => c.fetchQeIdentity(service, tee));
  const out = opts.out ?? join(service.options.cacheDir, 'intel', tee === 'sgx' ? 'tcb.der' : 'tdx-tcb.der');
  const chain = pemCertificates(tcb.meta.headers['issuer-chain'] ?? '');
  await c.atomicWrite(out, c.encodeTcbPackage(chain, tcb.body));
  return { docs: { 'TCB info': tcb, 'QE identity': qe }, written: { TcbPackage: out } };
}

async function sgxCachePck(opts: CommonOptions & { pckid: string; apiKey?: string }): Promise<Outcome> {
  const c = await import('../../collateral/index.ts');
  const text = new TextDecoder().decode(await readInput(opts.pckid, 'the PCK id file'));
  const id = await run(async () => c.parsePckIdCsv(text));
  if (opts.apiKey) process.env.INTEL_PCS_API_KEY = opts.apiKey;
  const service = await openService(opts);
  const { document, fmspc } = await run(() => c.fetchPckCert(service, id));
  const saved = join(service.options.cacheDir, 'intel', 'fmspc.txt');
  await c.atomicWrite(saved, `${fmspc}\n`);
  return { docs: { 'PCK certificate': document }, written: { FMSPC: saved } };
}

/** `enarx update-cache`: refreshes the AMD and Intel CRLs and, when the FMSPC is known, the SGX TCB info. */
export async function updateCache(opts: CommonOptions & { products?: string }): Promise<void> {
  const parts = [await snpCacheCrl(opts), await sgxCacheCrl(opts)];
  const saved = join(opts.cacheDir ?? defaultCacheDir(), 'intel', 'fmspc.txt');
  if (await readFile(saved).then(() => true, () => false)) parts.push(await sgxCacheTcb(opts));
  else process.stderr.write(`skipping the SGX TCB info: ${saved} does not exist (run \`enarx platform sgx cache-pck\` first)\n`);
  report(opts, {
    docs: Object.assign({}, ...parts.map((p) => p.docs)),
    written: Object.assign({}, ...parts.map((p) => p.written)),
  });
}

/**
 * `enarx attest verify --fetch`: the collateral the evidence needs, from the cache or the vendors.
 * Certificates the user gave are kept; a given VCEK/VLEK is not fetched again. Failing to get it is
 * missing collateral (exit 2), as for `attest verify`. With `now` (attest verify --now), cached
 * documents are judged fresh or expired at that time.
 */
/** `attest verify --fetch`: the collateral the evidence lacks, all its downloads within `budgetMs`. */
export async function fetchForVerify(evidence: Uint8Array, givenCerts: readonly Uint8Array[], opts: CommonOptions & { budgetMs: number }, now?: Date) {
  const c = await import('../../collateral/index.ts');
  const { parseCertificateInputs } = await import('../../attestation/index.ts');
  const haveLeaf = givenCerts.some((bytes) => {
    try {
      return parseCertificateInputs([bytes]).some((cert) => /SEV-(VCEK|VLEK)/.test(cert.subject.text));
    } catch {
      return false;
    }
  });
  // Freshness is judged at the time the evidence is verified at: collateral valid then is what it needs.
  const service = await openService(opts, now, c.downloadBudget(opts.budgetMs, "this verification's"));
  try {
    return await c.collateralForEvidence(service, evidence, { haveLeaf });
  } catch (err) {
    if (err instanceof c.CollateralError) {
      throw new EnarxError(err.message, { exitCode: 2, hint: opts.offline ? 'fill the cache while online first' : 'check the network or the URLs' });
    }
    throw err;
  }
}
