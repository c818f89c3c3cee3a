import { type AttestationFs, errnoOf, nodeFs } from './fs.ts';
import { readAttestationType } from './gramine.ts';
import { GRAMINE_ROOT, TSM_REPORT_ROOT } from './paths.ts';

/** One line of `enarx platform info`: what was checked, whether it passed, and what to do if not. */
export interface HardwareCheck {
  name: string;
  pass: boolean;
  info?: string;
  /** What is missing and how to fix it (only when pass is false). */
  mesg?: string;
}

export interface HardwareReport {
  /** 'snp' or 'tdx' when configfs-tsm works and names a provider; 'sgx' inside Gramine with DCAP. */
  kinds: ('snp' | 'tdx' | 'sgx')[];
  checks: HardwareCheck[];
}

export interface DetectOptions {
  tsmRoot?: string;
  gramineRoot?: string;
  /** Where the guest device nodes live; default /dev. */
  devRoot?: string;
  /** Kernel release file; default /proc/sys/kernel/osrelease. */
  osRelease?: string;
  fs?: AttestationFs;
}

const PROVIDER_KIND: Record<string, 'snp' | 'tdx'> = { sev_guest: 'snp', tdx_guest: 'tdx' };

/**
 * Looks at this machine's attestation interfaces without asking the hardware for a report: whether
 * configfs-tsm exists and which provider backs it, and whether this process runs inside Gramine.
 */
export async function detectHardware(options: DetectOptions = {}): Promise<HardwareReport> {
  const fs = options.fs ?? nodeFs;
  const tsmRoot = options.tsmRoot ?? TSM_REPORT_ROOT;
  const gramineRoot = options.gramineRoot ?? GRAMINE_ROOT;
  const devRoot = options.devRoot ?? '/dev';
  const checks: HardwareCheck[] = [];
  const kinds: HardwareReport['kinds'] = [];

  const devices = [];
  for (const [node, kind] of [['sev-guest', 'SEV-SNP'], ['tdx_guest', 'TDX']] as const) {
    if ((await fs.kind(`${devRoot}/${node}`)) !== null) devices.push(`${devRoot}/${node} (${kind})`);
  }
  checks.push(
    devices.length > 0
      ? { name: 'confidential VM guest device', pass: true, info: devices.join(', ') }
      : {
          name: 'confidential VM guest device',
          pass: false,
          mesg: `neither ${devRoot}/sev-guest nor ${devRoot}/tdx_guest exists: this is not an SEV-SNP or TDX guest, or its guest driver (sev-guest, tdx-guest) is not loaded`,
        },
  );

  if ((await fs.kind(tsmRoot)) === 'dir') {
    checks.push({ name: 'configfs-tsm report interface', pass: true, info: tsmRoot });
    checks.push(await probeProvider(fs, tsmRoot, kinds));
  } else {
    const release = await readText(fs, options.osRelease ?? '/proc/sys/kernel/osrelease');
    const old = release && kernelBefore(release, 6, 7);
    checks.push({
      name: 'configfs-tsm report interface',
      pass: false,
      info: release ? `Linux ${release}` : undefined,
      mesg: old
        ? `${tsmRoot} is missing: Linux ${release} is older than 6.7, which introduced configfs-tsm; upgrade the guest kernel`
        : `${tsmRoot} is missing: build the kernel with CONFIG_TSM_REPORTS, load the sev-guest or tdx-guest module, and mount configfs (mount -t configfs none /sys/kernel/config)`,
    });
  }

  try {
    const type = await readAttestationType(fs, gramineRoot);
    if (type === 'dcap') {
      kinds.push('sgx');
      checks.push({ name: 'Gramine SGX attestation', pass: true, info: `${gramineRoot} (dcap)` });
    } else {
      checks.push({
        name: 'Gramine SGX attestation',
        pass: false,
        info: `${gramineRoot} (${type})`,
        mesg: 'Gramine runs without DCAP attestation: set sgx.remote_attestation = "dcap" in the manifest',
      });
    }
  } catch {
    checks.push({
      name: 'Gramine SGX attestation',
      pass: false,
      mesg: `${gramineRoot} does not exist: SGX Keeps run inside a Gramine enclave with sgx.remote_attestation = "dcap"`,
    });
  }
  return { kinds, checks };
}

/** Creates and removes one report entry to read its provider; needs write access to the directory. */
async function probeProvider(fs: AttestationFs, root: string, kinds: HardwareReport['kinds']): Promise<HardwareCheck> {
  const entry = `${root}/enarx-probe-${process.pid}`;
  try {
    await fs.mkdir(entry);
  } catch (err) {
    const code = errnoOf(err);
    return {
      name: 'configfs-tsm provider',
      pass: false,
      mesg:
        code === 'EACCES' || code === 'EPERM'
          ? `cannot create a report entry in ${root}: run as root, or grant this user write access to it`
          : `cannot create a report entry in ${root} (${code ?? (err as Error).message})`,
    };
  }
  try {
    const provider = (await readText(fs, `${entry}/provider`)) ?? '';
    const kind = PROVIDER_KIND[provider];
    if (!kind) {
      return { name: 'configfs-tsm provider', pass: false, info: provider, mesg: `provider '${provider}' is not supported (expected sev_guest or tdx_guest)` };
    }
    kinds.push(kind);
    return { name: 'configfs-tsm provider', pass: true, info: `${provider} (${kind === 'snp' ? 'SEV-SNP' : 'TDX'})` };
  } finally {
    await fs.rmdir(entry).catch(() => undefined);
  }
}

async function readText(fs: AttestationFs, path: string): Promise<string | null> {
  try {
    return new TextDecoder().decode(await fs.readFile(path)).trim();
  } catch {
    return null;
  }
}

function kernelBefore(release: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  return Number(m[1]) < major || (Number(m[1]) === major && Number(m[2]) < minor);
}
