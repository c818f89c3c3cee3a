import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import { EnarxError, UsageError } from '../errors.ts';
import { log, printJson } from '../output.ts';
import { registerPageCommand } from './attest-page.ts';
import type { AzureRuntimeClaims, DecodedEvidence, EvidenceBundle, VtpmQuote } from '../../attestation/index.ts';
import type { EvidenceKind, VerificationResult } from '../../attestation/types.ts';

const KINDS: EvidenceKind[] = ['snp', 'sgx', 'tdx'];
const collect = (value: string, previous: string[]) => [...previous, value];

interface VerifyFlags {
  evidence: string;
  kind?: EvidenceKind;
  cert: string[];
  collateral: string[];
  crl: string[];
  now?: string;
  policy?: string;
  azureHcl?: string;
  vtpmQuote?: string;
  vtpmSignature?: string;
  vtpmPcrs?: string;
  trustTestRoot: string[];
  fetch?: boolean;
  offline?: boolean;
  cacheDir?: string;
  collateralBudget: string;
  json?: boolean;
}

export function register(program: Command): void {
  const attest = program.command('attest').description('decode and verify attestation evidence (SEV-SNP reports, SGX and TDX quotes)');

  attest
    .command('verify')
    .description('verify evidence offline against the built-in AMD and Intel roots; exit 0 verified, 1 rejected, 2 bad input or missing collateral')
    .requiredOption('--evidence <file>', 'the evidence: a raw 1184-byte SEV-SNP report or an SGX/TDX DCAP quote (raw, or as hex or base64 text)')
    .addOption(new Option('--kind <kind>', 'the evidence kind (detected when omitted)').choices(KINDS))
    .option('--cert <file>', 'certificates, PEM or DER: VCEK/VLEK, ASK/ASVK, ARK, or an issuer chain (repeatable)', collect, [])
    .option('--collateral <file>', 'Intel PCS TCB info or QE identity JSON, or a combined collateral.json (repeatable)', collect, [])
    .option('--crl <file>', 'a CRL, PEM or DER: AMD KDS CRLs, Intel PCK and Root CA CRLs (repeatable)', collect, [])
    .option('--now <time>', 'check validity at this RFC 3339 time instead of the current time')
    .option('--policy <file>', 'a policy (TOML, steward.toml-compatible; docs/policy.md): exit 0 only if it accepts the evidence')
    .option('--azure-hcl <file>', "an Azure HCL report (vTPM NV index 0x01400001) whose runtime data the TD quote's REPORTDATA must bind (an SNP one is given as --evidence itself)")
    .option('--vtpm-quote <file>', "an Azure vTPM quote, checked with the attestation key the HCL runtime data binds: JSON {message, signature, pcrs}, or tpm2_quote's -m file (with --vtpm-signature and --vtpm-pcrs)")
    .option('--vtpm-signature <file>', "with a tpm2_quote -m file as --vtpm-quote: its signature (tpm2_quote -s)")
    .option('--vtpm-pcrs <file>', 'with a tpm2_quote -m file as --vtpm-quote: the PCR values it quotes (tpm2_quote -F values -o)')
    .option('--trust-test-root <file>', 'also trust evidence chained to this local test root (enarx platform test-root; PEM/DER; repeatable); the result names it test:NAME', collect, [])
    .option('--fetch', 'get the collateral the evidence needs from the cache, or from AMD KDS / Intel PCS (docs/collateral.md)')
    .option('--offline', 'with --fetch: use only the collateral cache')
    .option('--cache-dir <dir>', 'with --fetch: the collateral cache (default: $ENARX_COLLATERAL_DIR or ~/.cache/enarx/collateral)')
    .option('--collateral-budget <seconds>', "with --fetch: how long the collateral downloads may take, all together; then what is missing is reported (exit 2)", '30')
    .option('--json', 'print one JSON object on stdout')
    .action(async (flags: VerifyFlags) => {
      const now = flags.now === undefined ? undefined : parseNow(flags.now);
      const policy = flags.policy === undefined ? null : await loadPolicy(flags.policy);
      const testRoots = flags.trustTestRoot.length ? (await import('../test-roots.ts')).readTestRoots(flags.trustTestRoot, { exitCode: 2 }) : undefined;
      const [bundle, givenHcl, givenQuote, certs, collateral, crls] = await Promise.all([
        readEvidence(flags.evidence),
        flags.azureHcl === undefined ? undefined : readAzureHcl(flags.azureHcl),
        readVtpmQuote(flags),
        Promise.all(flags.cert.map((f) => readCertificates(f))),
        Promise.all(flags.collateral.map(async (f) => ({ name: f, bytes: await readInput(f, 'collateral') }))),
        Promise.all(flags.crl.map((f) => readInput(f, 'CRL'))),
      ]);
      const { evidence } = bundle;
      if (bundle.azureHcl && givenHcl) throw new UsageError(`${flags.evidence} carries an Azure HCL report (${bundle.field ? 'beside ' + bundle.field : 'in it'}) and --azure-hcl gives another`, 'give one of them');
      const azureHcl = givenHcl ?? bundle.azureHcl;
      if (bundle.vtpmQuote && givenQuote) throw new UsageError(`${flags.evidence} carries a vTPM quote and --vtpm-quote gives another`, 'give one of them');
      const vtpmQuote = givenQuote ?? bundle.vtpmQuote;
      if (testRoots) certs.push({ der: testRoots.intermediates });
      // Certificates the evidence file carries (a VCEK beside the report) are used like --cert ones.
      if (bundle.certs.length > 0) certs.push({ der: bundle.certs.map((c) => (typeof c === 'string' ? new TextEncoder().encode(c) : c)) });
      crls.push(...bundle.crls);
      collateral.push(...bundle.collateral.map((text, i) => ({ name: `${flags.evidence} (collateral #${i + 1})`, bytes: new TextEncoder().encode(text) })));
      if (flags.fetch || flags.offline) {
        const { collateralBudgetMs, fetchForVerify } = await import('./platform-collateral.ts');
        const given = certs.flatMap((c) => ('der' in c ? c.der : []));
        const fetched = await fetchForVerify(evidence, given, { cacheDir: flags.cacheDir, offline: flags.offline, budgetMs: collateralBudgetMs(flags) }, now);
        certs.push({ der: fetched.certs });
        crls.push(...fetched.crls);
        collateral.push(...fetched.collateral);
      }
      const { rejectedResult, verifyEvidence } = await import('../../attestation/index.ts');
      const tableError = certs.find((c) => 'error' in c);
      const result =
        tableError && 'error' in tableError
          ? rejectedResult(evidence, { step: 'parse', message: tableError.error }, flags.kind)
          : await verifyEvidence({ evidence, azureHcl, ...(vtpmQuote ? { vtpmQuote } : {}), ...(testRoots ? { trustedTestRoots: testRoots.anchors } : {}), kind: flags.kind, certs: certs.flatMap((c) => ('der' in c ? c.der : [])), collateral, crls, now });
      await bundle.bind?.(result);
      if (policy) result.policy = (await import('../../attestation/policy/index.ts')).evaluatePolicy(policy, result);
      // The verifier's advice to give the vTPM quote, in this command's terms.
      for (const warning of result.warnings) log('warn', warning.replace('give the vTPM quote too,', 'give the vTPM quote too (--vtpm-quote),'));
      if (flags.json) printJson(jsonView(result));
      else process.stdout.write(humanView(result) + policyView(result));
      if (result.failure?.code === 'missing-collateral') {
        if (!flags.json) process.stderr.write(`enarx: ${result.failure.message}\n`);
        process.exitCode = 2;
      } else {
        process.exitCode = result.verified && (result.policy === null || result.policy.accepted) ? 0 : 1;
      }
    });

  registerPageCommand(attest);

  attest
    .command('decode')
    .description('print every field of some evidence without verifying it')
    .requiredOption('--evidence <file>', 'the evidence: a raw SEV-SNP report or an SGX/TDX DCAP quote (raw, or as hex or base64 text)')
    .addOption(new Option('--kind <kind>', 'the evidence kind (detected when omitted)').choices(KINDS))
    .option('--json', 'print one JSON object on stdout')
    .action(async (flags: { evidence: string; kind?: EvidenceKind; json?: boolean }) => {
      const { evidence } = await readEvidence(flags.evidence);
      const { decodeEvidence, VerificationError } = await import('../../attestation/index.ts');
      let decoded: DecodedEvidence;
      try {
        decoded = decodeEvidence(evidence, flags.kind);
      } catch (err) {
        if (err instanceof VerificationError) throw new EnarxError(`${flags.evidence}: ${err.message}`, { hint: 'pass a raw report or quote, or its hex or base64 text; --kind snp|sgx|tdx if detection fails' });
        throw err;
      }
      if (flags.json) printJson(decoded);
      else process.stdout.write(`${KIND_TITLE[decoded.kind]} (not verified)\n${fieldLines({ measurement: decoded.measurement, reportData: decoded.reportData, debug: decoded.debug, ...decoded.claims }).join('\n')}\n`);
    });
}

/** Reads and parses a policy file before any verification, so a bad policy is a usage error (exit 2). */
async function loadPolicy(path: string) {
  const text = new TextDecoder().decode(await readInput(path, 'policy'));
  const { parsePolicy, PolicyError } = await import('../../attestation/policy/index.ts');
  try {
    return parsePolicy(text);
  } catch (err) {
    if (err instanceof PolicyError) throw new UsageError(`policy ${path}: ${err.message}`, 'docs/policy.md lists every key');
    throw err;
  }
}

function policyView(result: VerificationResult): string {
  if (!result.policy) return '';
  if (result.policy.accepted) return 'policy: ACCEPTED\n';
  return `policy: REFUSED\n${result.policy.reasons.map((r) => `  - ${r}\n`).join('')}`;
}

function parseNow(text: string): Date {
  const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
  const date = new Date(text);
  if (!rfc3339.test(text) || Number.isNaN(date.getTime())) {
    throw new UsageError(`--now '${text}' is not an RFC 3339 time`, 'write it like 2025-12-06T00:00:00Z');
  }
  return date;
}

/** What --evidence names: the evidence and what came with it (a JSON document's certificates, a Keep CSR's collateral and binding). */
interface EvidenceFile extends EvidenceBundle {
  crls: Uint8Array[];
  collateral: string[];
  bind?: (result: VerificationResult) => Promise<void>;
}

/** The --evidence file: raw, hex/base64 text of the raw bytes, a JSON document carrying them (evidenceBundleFromFile), or a Keep's CSR. */
async function readEvidence(path: string): Promise<EvidenceFile> {
  const bytes = await readInput(path, 'evidence');
  const [{ evidenceBundleFromFile, detectEvidenceKind, TEXT_EVIDENCE_MAX_BYTES }, { looksLikeText }] = await Promise.all([
    import('../../attestation/index.ts'),
    import('../../attestation/bytes.ts'),
  ]);
  const bundle = evidenceBundleFromFile(bytes);
  if (!detectEvidenceKind(bundle.evidence)) {
    const csr = await (await import('./attest-csr.ts')).evidenceFromCsr(bytes, path);
    if (csr) return { evidence: csr.evidence, certs: csr.certs, crls: csr.crls, collateral: csr.collateral, bind: csr.bind, field: '' };
    if (bundle.evidence === bytes && bytes.length > TEXT_EVIDENCE_MAX_BYTES && looksLikeText(bytes)) {
      throw new EnarxError(`${path}: ${bytes.length} bytes of text; evidence written as hex or base64 text is decoded only up to 1 MiB (a report or quote is a few KiB)`, {
        hint: 'pass the raw report or quote, or a file holding only its hex or base64 text',
      });
    }
  }
  return { ...bundle, crls: [], collateral: [] };
}

/** The --azure-hcl file: raw, or hex/base64 text. Anything else is a usage error (exit 2). */
/** --vtpm-quote: a JSON quote, or tpm2_quote's message file with --vtpm-signature and --vtpm-pcrs. */
async function readVtpmQuote(flags: VerifyFlags): Promise<VtpmQuote | undefined> {
  const parts = flags.vtpmSignature !== undefined || flags.vtpmPcrs !== undefined;
  if (flags.vtpmQuote === undefined) {
    if (parts) throw new UsageError('--vtpm-signature and --vtpm-pcrs go with --vtpm-quote', "give tpm2_quote's -m file as --vtpm-quote");
    return undefined;
  }
  const { vtpmQuoteFromJson, vtpmQuoteFromTpm2Tools, VerificationError } = await import('../../attestation/index.ts');
  const bytes = await readInput(flags.vtpmQuote, 'vTPM quote');
  const json = vtpmQuoteFromJson(bytes);
  if (json) {
    if ('error' in json) throw new UsageError(`${flags.vtpmQuote}: ${json.error}`, "give Azure's {message, signature, pcrs} JSON, or tpm2_quote's -m, -s and -o files");
    if (parts) throw new UsageError(`${flags.vtpmQuote} is a whole vTPM quote (JSON); --vtpm-signature and --vtpm-pcrs are for tpm2_quote's -m file`, 'drop them');
    return json.quote;
  }
  if (flags.vtpmSignature === undefined || flags.vtpmPcrs === undefined) {
    throw new UsageError(`${flags.vtpmQuote} is not a JSON vTPM quote, so it needs --vtpm-signature and --vtpm-pcrs`, 'tpm2_quote -m MSG -s SIG -F values -o PCRS writes the three files');
  }
  const [signature, pcrs] = await Promise.all([readInput(flags.vtpmSignature, 'vTPM signature'), readInput(flags.vtpmPcrs, 'PCR values')]);
  try {
    return vtpmQuoteFromTpm2Tools(bytes, signature, pcrs);
  } catch (err) {
    if (err instanceof VerificationError) throw new UsageError(`${flags.vtpmQuote}: ${err.message}`, 'give the -m, -s and -o files of one tpm2_quote run (-F values)');
    throw err;
  }
}

async function readAzureHcl(path: string): Promise<Uint8Array> {
  const { azureHclFromFile } = await import('../../attestation/index.ts');
  const hcl = azureHclFromFile(await readInput(path, 'Azure HCL report'));
  if (!hcl) throw new UsageError(`${path} is not an Azure HCL report (no "HCLA" header with a known report type, hash type and runtime data size)`, 'read it from the vTPM: tpm2_nvread -C o 0x01400001');
  return hcl;
}

async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new EnarxError(`cannot read ${what} file '${path}': ${reason}`, { exitCode: 2, hint: 'check the path and its permissions' });
  }
}

/**
 * A --cert file: PEM or DER as it is, or an SEV-SNP certificate table (the configfs-tsm auxblob a
 * Keep collects), checked here so that a malformed one is named by its path (the verifier reads
 * its VCEK/VLEK, ASK and ARK entries).
 */
async function readCertificates(path: string): Promise<{ der: Uint8Array[] } | { error: string }> {
  const bytes = await readInput(path, 'certificate');
  const { looksLikeCertTable, parseCertTable } = await import('../../attestation/snp/certtable.ts');
  if (!looksLikeCertTable(bytes)) return { der: [bytes] };
  try {
    parseCertTable(bytes);
    return { der: [bytes] };
  } catch (err) {
    return { error: `${path}: ${(err as Error).message}` };
  }
}

const KIND_TITLE: Record<EvidenceKind, string> = { snp: 'AMD SEV-SNP report', sgx: 'Intel SGX quote', tdx: 'Intel TDX quote' };

/** The documented --json shape: exactly these keys, whatever the outcome; verifier metadata goes under claims.verification. */
export function jsonView(result: VerificationResult): Record<string, unknown> {
  return {
    kind: result.kind,
    verified: result.verified,
    tcbStatus: result.tcbStatus,
    advisories: result.advisories,
    debug: result.debug,
    measurement: result.measurement,
    reportData: result.reportData,
    claims: {
      ...result.claims,
      verification: {
        trustAnchor: result.trustAnchor,
        revocationChecked: result.revocationChecked,
        warnings: result.warnings,
        ...(result.trailingBytes !== undefined ? { trailingBytes: result.trailingBytes } : {}),
      },
    },
    failure: result.failure ? { step: result.failure.step, message: result.failure.message } : null,
    policy: result.policy,
  };
}

function humanView(result: VerificationResult): string {
  const verdict = result.verified ? 'VERIFIED' : `REJECTED at step '${result.failure?.step}': ${result.failure?.message}`;
  const rows: Array<[string, string]> = [];
  if (result.trustAnchor) rows.push(['trust anchor', result.trustAnchor]);
  const claims = result.claims as Record<string, unknown>;
  if (claims.product) rows.push(['product', `${claims.product}${claims.signingKey ? ` (${String(claims.signingKey).toUpperCase()})` : ''}`]);
  if (result.tcbStatus) rows.push(['TCB status', result.tcbStatus]);
  if (result.advisories.length) rows.push(['advisories', result.advisories.join(', ')]);
  if (result.measurement) rows.push(['measurement', result.measurement]);
  if (result.reportData) rows.push(['report data', result.reportData]);
  if (result.measurement) rows.push(['debug', result.debug ? 'yes (a production policy should refuse it)' : 'no']);
  if (result.trustAnchor) rows.push(['revocation', result.revocationChecked ? 'checked' : 'not checked (no CRL given)']);
  if (result.trailingBytes) rows.push(['trailing bytes', `${result.trailingBytes} (ignored)`]);
  rows.push(...azureRows(claims.azure as AzureRuntimeClaims | undefined));
  const width = Math.max(0, ...rows.map(([k]) => k.length));
  return `${KIND_TITLE[result.kind]}: ${verdict}\n${rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}\n`).join('')}`;
}

/** What the Azure HCL runtime data said, once bound to the report data (its strings come escaped from the verifier). */
function azureRows(azure: AzureRuntimeClaims | undefined): Array<[string, string]> {
  if (!azure) return [];
  const rows: Array<[string, string]> = [['Azure runtime data', `bound to the report data (${azure.runtimeDataHash})`]];
  const key = azure.akPub;
  const quote = azure.vtpmQuote;
  rows.push(['vTPM AK', key ? `${key.kty ?? '?'} ${String(key.n ?? key.x ?? '').slice(0, 24)}... (claims.azure.akPub${quote ? '' : '; no vTPM quote was given'})` : 'none in the runtime data']);
  if (quote) rows.push(['vTPM quote', `verified: ${quote.pcrBank} PCRs ${Object.keys(quote.pcrs).join(',')}, nonce ${quote.nonce || '(none)'}`]);
  if (azure.vmConfiguration) rows.push(['VM configuration', Object.entries(azure.vmConfiguration).map(([k, v]) => `${k}=${v}`).join(', ')]);
  if (azure.userData !== null) rows.push(['Azure user data', azure.userData]);
  return rows;
}

/** "a.b.c: value" lines for every leaf field, in order. */
function fieldLines(value: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(value).flatMap(([key, v]) => {
    const name = `${prefix}${key}`;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return fieldLines(v as Record<string, unknown>, `${name}.`);
    const text = Array.isArray(v) ? JSON.stringify(v) : String(v);
    // Multi-line values (a PEM chain inside a quote) stay readable, indented under their name.
    return [text.includes('\n') ? `  ${name}:\n${text.trimEnd().replace(/^/gm, '      ')}` : `  ${name}: ${text}`];
  });
}
