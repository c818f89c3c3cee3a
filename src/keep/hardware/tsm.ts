import { bytesEqual } from '../../attestation/bytes.ts';
import { type AttestationFs, CollectionError, checkReportData, errnoOf, nodeFs } from './fs.ts';
// Linux configfs-tsm (kernel >= 6.7): one directory per request, see Documentation/ABI/testing/configfs-tsm-report.
import { TSM_REPORT_ROOT } from './paths.ts';

export type TsmKind = 'snp' | 'tdx';

/** The `provider` attribute names the outblob format. */
const PROVIDERS: Record<string, TsmKind> = { sev_guest: 'snp', tdx_guest: 'tdx' };

export interface TsmOptions {
  root?: string;
  fs?: AttestationFs;
  /** How many times to start over when another writer changed the entry meanwhile. */
  attempts?: number;
  /** SNP only: the VMPL to request the report at (`privlevel`). */
  privlevel?: number;
}

export interface TsmEvidence {
  kind: TsmKind;
  provider: string;
  /** SNP: the 1184-byte ATTESTATION_REPORT; TDX: the TD quote. */
  evidence: Uint8Array;
  /** SNP: the certificate table the host provisioned (VCEK/VLEK, ASK, ARK), or null when empty. */
  auxblob: Uint8Array | null;
  generation: number;
}

/** Where the report data sits in each provider's outblob, to check the evidence answers our request. */
function reportDataIn(kind: TsmKind, out: Uint8Array): Uint8Array | null {
  if (kind === 'snp') return out.length === 0x4a0 ? out.subarray(0x50, 0x90) : null;
  // TD quote v4: 48-byte header, report data at the end of the 584-byte TD report.
  // v5: a 6-byte body descriptor precedes the body; the TD report 1.5 keeps report data at the same body offset.
  const version = out.length >= 2 ? out[0]! | (out[1]! << 8) : 0;
  const at = version === 4 ? 48 + 520 : version === 5 ? 54 + 520 : -1;
  return at > 0 && out.length >= at + 64 ? out.subarray(at, at + 64) : null;
}

let counter = 0;

/**
 * Gets evidence through configfs-tsm: creates a report entry, writes the 64 bytes of report data to
 * `inblob`, reads `outblob` and `auxblob`, and removes the entry. The `generation` counter must have
 * advanced by exactly one write, or another process wrote to the entry meanwhile and the outblob may
 * answer its request instead of ours: then it starts over.
 */
export async function collectTsm(reportData: Uint8Array, options: TsmOptions = {}): Promise<TsmEvidence> {
  checkReportData(reportData);
  const fs = options.fs ?? nodeFs;
  const root = options.root ?? TSM_REPORT_ROOT;
  const attempts = options.attempts ?? 3;
  let lastRace = '';
  for (let attempt = 0; attempt < attempts; attempt++) {
    const entry = `${root}/enarx-${process.pid}-${Date.now().toString(36)}-${counter++}`;
    try {
      await fs.mkdir(entry);
    } catch (err) {
      throw explainMkdir(err, root);
    }
    try {
      const result = await requestOnce(fs, entry, reportData, options);
      if (typeof result !== 'string') return result;
      lastRace = result;
    } finally {
      await fs.rmdir(entry).catch(() => undefined);
    }
  }
  throw new CollectionError(`configfs-tsm: ${lastRace} on each of ${attempts} attempts; another process keeps writing to the report entries`);
}

async function requestOnce(fs: AttestationFs, entry: string, reportData: Uint8Array, options: TsmOptions): Promise<TsmEvidence | string> {
  const provider = new TextDecoder().decode(await fs.readFile(`${entry}/provider`)).trim();
  const kind = PROVIDERS[provider];
  if (!kind) {
    throw new CollectionError(`configfs-tsm provider '${provider}' is not supported (expected sev_guest or tdx_guest)`);
  }
  const before = await readGeneration(fs, entry);
  let writes = 1;
  if (options.privlevel !== undefined) {
    if (kind !== 'snp') throw new CollectionError('privlevel applies only to SEV-SNP guests');
    await fs.writeFile(`${entry}/privlevel`, new TextEncoder().encode(`${options.privlevel}\n`));
    writes++;
  }
  try {
    await fs.writeFile(`${entry}/inblob`, reportData);
  } catch (err) {
    throw new CollectionError(`configfs-tsm: writing inblob failed (${errnoOf(err) ?? (err as Error).message})`, { cause: err });
  }
  let evidence: Uint8Array;
  try {
    evidence = await fs.readFile(`${entry}/outblob`);
  } catch (err) {
    throw new CollectionError(
      `configfs-tsm: reading outblob failed (${errnoOf(err) ?? (err as Error).message}); the ${provider} driver could not get a report from the firmware`,
      { cause: err },
    );
  }
  const auxblob = kind === 'snp' ? await readOptional(fs, `${entry}/auxblob`) : null;
  const after = await readGeneration(fs, entry);
  if (after !== before + writes) return `generation moved from ${before} to ${after} during one request`;
  const bound = reportDataIn(kind, evidence);
  if (!bound) throw new CollectionError(`configfs-tsm: the ${provider} outblob (${evidence.length} bytes) is not a report this Keep understands`);
  if (!bytesEqual(bound, reportData)) {
    throw new CollectionError(`configfs-tsm: the ${provider} outblob does not carry the report data written to inblob`);
  }
  return { kind, provider, evidence, auxblob: auxblob && auxblob.length > 0 ? auxblob : null, generation: after };
}

async function readGeneration(fs: AttestationFs, entry: string): Promise<number> {
  const text = new TextDecoder().decode(await fs.readFile(`${entry}/generation`)).trim();
  if (!/^\d+$/.test(text)) throw new CollectionError(`configfs-tsm: unreadable generation '${text}'`);
  return Number(text);
}

async function readOptional(fs: AttestationFs, path: string): Promise<Uint8Array | null> {
  try {
    return await fs.readFile(path);
  } catch (err) {
    // Older kernels have no auxblob, and an SNP host that provisioned no certificates gives none.
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENODATA' || errnoOf(err) === 'EINVAL') return null;
    throw err;
  }
}

function explainMkdir(err: unknown, root: string): CollectionError {
  const code = errnoOf(err);
  if (code === 'ENOENT') {
    return new CollectionError(
      `configfs-tsm is not available: ${root} does not exist (needs Linux >= 6.7 with CONFIG_TSM_REPORTS, the sev-guest or tdx-guest driver, and configfs mounted at /sys/kernel/config)`,
      { cause: err },
    );
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new CollectionError(`configfs-tsm: no permission to create a report entry in ${root} (run as root, or grant this user write access to it)`, {
      cause: err,
    });
  }
  return new CollectionError(`configfs-tsm: cannot create a report entry in ${root} (${code ?? (err as Error).message})`, { cause: err });
}
