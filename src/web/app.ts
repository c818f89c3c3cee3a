/**
 * The verification page: classifies the files a user drops, verifies the evidence with the same
 * library the CLI and the Steward use, evaluates an optional policy, and shows the verdict and every
 * claim. Runs entirely in the browser.
 */
import { azureHclFromFile, detectEvidenceKind, evidenceBundleFromFile, parseAzureHcl, parseCertificateInputs, parseCrlInputs, verifyEvidence } from '../attestation/index.ts';
import { evaluatePolicy, parsePolicy, type Policy } from '../attestation/policy/index.ts';
import { looksLikeCertTable } from '../attestation/snp/certtable.ts';
import type { VtpmQuote } from '../attestation/tpm.ts';
import type { EvidenceKind, VerificationResult } from '../attestation/types.ts';
import { looksLikeText } from '../attestation/bytes.ts';

const TITLES: Record<EvidenceKind, string> = { snp: 'AMD SEV-SNP report', sgx: 'Intel SGX quote', tdx: 'Intel TDX quote' };

export type Role = 'evidence' | 'azure-hcl' | 'certificate' | 'crl' | 'collateral' | 'policy' | 'unknown';

export interface Classified {
  name: string;
  bytes: Uint8Array;
  role: Role;
  detail: string;
  /** Evidence inside a JSON document: the certificates and the Azure HCL report it carries beside it. */
  beside?: { certs: Array<Uint8Array | string>; azureHcl?: Uint8Array; vtpmQuote?: VtpmQuote };
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** What a dropped file is, from its content (the name only breaks ties for TOML). */
export function classify(name: string, bytes: Uint8Array): Classified {
  const bundle = evidenceBundleFromFile(bytes);
  const evidence = bundle.evidence;
  const kind = detectEvidenceKind(evidence);
  if (kind) {
    const inJson = bundle.field ? ` (field ${bundle.field} of a JSON document${bundle.certs.length ? `, with ${bundle.certs.length} certificate${bundle.certs.length === 1 ? '' : 's'}` : ''})` : '';
    const from = inJson || (evidence === bytes ? '' : looksLikeText(bytes) ? ' (decoded from text)' : ' (taken out of its SNP_GET_REPORT response)');
    const azure = parseAzureHcl(evidence) ? ' in an Azure HCL report (its runtime data is checked too)' : bundle.azureHcl ? ' with an Azure HCL report (its runtime data is checked too)' : '';
    const classified: Classified = { name, bytes: evidence, role: 'evidence', detail: `evidence: ${TITLES[kind]}${azure}${from}` };
    if (bundle.field) classified.beside = { certs: bundle.certs, ...(bundle.azureHcl ? { azureHcl: bundle.azureHcl } : {}), ...(bundle.vtpmQuote ? { vtpmQuote: bundle.vtpmQuote } : {}) };
    return classified;
  }
  const hcl = azureHclFromFile(bytes);
  if (hcl) return { name, bytes: hcl, role: 'azure-hcl', detail: 'Azure HCL report with a TDX TDREPORT: the TD quote must bind its runtime data' };
  if (looksLikeText(bytes)) {
    const t = text(bytes).replace(/\0+$/, '');
    const trimmed = t.trimStart();
    // JSON first: Intel collateral embeds PEM issuer chains.
    if (trimmed.startsWith('{')) return { name, bytes, role: 'collateral', detail: 'Intel collateral (JSON)' };
    if (t.includes('-----BEGIN X509 CRL-----')) return { name, bytes, role: 'crl', detail: 'CRL (PEM)' };
    if (t.includes('-----BEGIN CERTIFICATE-----')) {
      const n = safeCount(() => parseCertificateInputs([bytes]).length);
      return { name, bytes, role: 'certificate', detail: `${n} certificate${n === 1 ? '' : 's'} (PEM)` };
    }
    if (name.endsWith('.toml') || /^\s*(#.*\n\s*)*\[(snp|sgx|tdx)\]/.test(t) || trimmed === '') return { name, bytes, role: 'policy', detail: 'policy (TOML)' };
  }
  // DER, or DER written as text (hex, base64, URL-encoded PEM: what PCCS and PCS headers give).
  const form = looksLikeText(bytes) ? 'hex, base64 or URL-encoded' : looksLikeCertTable(bytes) ? 'SEV-SNP certificate table' : 'DER';
  if (safeCount(() => parseCrlInputs([bytes]).length) > 0) return { name, bytes, role: 'crl', detail: `CRL (${form})` };
  const certs = safeCount(() => parseCertificateInputs([bytes]).length);
  if (certs > 0) return { name, bytes, role: 'certificate', detail: `${certs} certificate${certs === 1 ? '' : 's'} (${form})` };
  return { name, bytes, role: 'unknown', detail: 'not recognised (ignored)' };
}

function safeCount(fn: () => number): number {
  try {
    return fn();
  } catch {
    return 0;
  }
}

export interface PageOutcome {
  result: VerificationResult | null;
  /** Set when the inputs cannot be verified at all (no evidence, two policies, a bad policy). */
  error: string | null;
}

/** Verifies what was dropped: exactly one evidence file, any certificates, CRLs and collateral, at most one policy. */
export async function verifyFiles(files: readonly Classified[], now: Date): Promise<PageOutcome> {
  const evidence = files.filter((f) => f.role === 'evidence');
  if (evidence.length === 0) return { result: null, error: 'Drop an evidence file: a raw SEV-SNP report or an SGX/TDX quote.' };
  if (evidence.length > 1) return { result: null, error: `Drop one evidence file at a time (got ${evidence.map((f) => f.name).join(', ')}).` };
  const beside = evidence[0]!.beside;
  const hcls = [...files.filter((f) => f.role === 'azure-hcl'), ...(beside?.azureHcl ? [{ name: evidence[0]!.name, bytes: beside.azureHcl }] : [])];
  if (hcls.length > 1) return { result: null, error: `Drop at most one Azure HCL report (got ${hcls.map((f) => f.name).join(', ')}).` };
  const policies = files.filter((f) => f.role === 'policy');
  if (policies.length > 1) return { result: null, error: `Drop at most one policy (got ${policies.map((f) => f.name).join(', ')}).` };
  let policy: Policy | null = null;
  if (policies[0]) {
    try {
      policy = parsePolicy(text(policies[0].bytes));
    } catch (err) {
      return { result: null, error: `Policy ${policies[0].name}: ${(err as Error).message}` };
    }
  }
  const result = await verifyEvidence({
    evidence: evidence[0]!.bytes,
    ...(hcls[0] ? { azureHcl: hcls[0].bytes } : {}),
    ...(beside?.vtpmQuote ? { vtpmQuote: beside.vtpmQuote } : {}),
    certs: [...files.filter((f) => f.role === 'certificate').map((f) => f.bytes), ...(beside?.certs ?? [])],
    crls: files.filter((f) => f.role === 'crl').map((f) => f.bytes),
    collateral: files.filter((f) => f.role === 'collateral').map((f) => ({ name: f.name, bytes: f.bytes })),
    now,
  });
  if (policy) result.policy = evaluatePolicy(policy, result);
  return { result, error: null };
}

/** "a.b: value" rows for every leaf of the claims. */
export function claimRows(value: Record<string, unknown>, prefix = ''): [string, string][] {
  return Object.entries(value).flatMap(([key, v]): [string, string][] => {
    const name = `${prefix}${key}`;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return claimRows(v as Record<string, unknown>, `${name}.`);
    return [[name, Array.isArray(v) ? v.join(', ') : String(v)]];
  });
}

// ---- the page ----

function el<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

function row(cells: string[]): HTMLTableRowElement {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    td.textContent = c;
    tr.append(td);
  }
  return tr;
}

function list(id: string, items: string[]): void {
  el(id).replaceChildren(
    ...items.map((t) => {
      const li = document.createElement('li');
      li.textContent = t;
      return li;
    }),
  );
}

function setText(id: string, value: string, cls: string): void {
  const node = el(id);
  node.textContent = value;
  node.className = cls;
}

function start(): void {
  const files = new Map<string, Classified>();
  const nowInput = el<HTMLInputElement>('now');
  nowInput.value = new Date().toISOString().slice(0, 19);
  let run = 0;

  const finished = () => {
    document.body.dataset.renders = String(Number(document.body.dataset.renders ?? '0') + 1);
  };
  const render = async () => {
    const mine = ++run;
    try {
      await show(mine);
    } finally {
      if (mine === run) finished();
    }
  };
  const show = async (mine: number) => {
    el('file-list').querySelector('tbody')!.replaceChildren(...[...files.values()].map((f) => row([f.name, f.detail])));
    const now = new Date(`${nowInput.value}Z`);
    setText('verdict', 'Verifying…', 'pending');
    setText('policy-verdict', '', '');
    list('reasons', []);
    list('warnings', []);
    el('claims').querySelector('tbody')!.replaceChildren();
    if (Number.isNaN(now.getTime())) {
      setText('verdict', 'Enter a valid date and time.', 'bad');
      return;
    }
    if (!globalThis.crypto?.subtle) {
      setText('verdict', 'This browser offers no WebCrypto here: open the page over https or from 127.0.0.1.', 'bad');
      return;
    }
    let outcome: PageOutcome;
    try {
      outcome = await verifyFiles([...files.values()], now);
    } catch (err) {
      // The verifier reports bad evidence as a result; reaching here is a bug worth showing plainly.
      setText('verdict', `Internal error: ${(err as Error).message}`, 'bad');
      return;
    }
    const { result, error } = outcome;
    if (mine !== run) return;
    if (error || !result) {
      setText('verdict', error ?? 'Nothing to verify.', files.size ? 'bad' : 'pending');
      return;
    }
    const title = TITLES[result.kind];
    if (result.verified) {
      setText('verdict', `VERIFIED: ${title}${result.tcbStatus ? `, TCB ${result.tcbStatus}` : ''}${result.trustAnchor ? ` (anchored at ${result.trustAnchor})` : ''}`, 'ok');
    } else {
      setText('verdict', `REJECTED at step '${result.failure?.step}': ${result.failure?.message}`, 'bad');
    }
    if (result.policy) {
      setText('policy-verdict', result.policy.accepted ? 'Policy: ACCEPTED' : 'Policy: REFUSED', result.policy.accepted ? 'ok' : 'bad');
      list('reasons', result.policy.reasons);
    }
    list('warnings', result.warnings);
    const top: Record<string, unknown> = {
      measurement: result.measurement,
      reportData: result.reportData,
      debug: result.debug,
      tcbStatus: result.tcbStatus,
      advisories: result.advisories,
      revocationChecked: result.revocationChecked,
    };
    el('claims').querySelector('tbody')!.replaceChildren(...claimRows({ ...top, ...result.claims }).map((r) => row(r)));
  };

  const add = async (list: FileList | null) => {
    for (const file of Array.from(list ?? [])) files.set(file.name, classify(file.name, new Uint8Array(await file.arrayBuffer())));
    await render();
  };

  const drop = el('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    void add(e.dataTransfer?.files ?? null);
  });
  el<HTMLInputElement>('files').addEventListener('change', (e) => void add((e.target as HTMLInputElement).files));
  nowInput.addEventListener('change', () => void render());
  el('clear').addEventListener('click', () => {
    files.clear();
    void render();
  });
  document.body.dataset.ready = 'true';
}

if (typeof document !== 'undefined') start();
