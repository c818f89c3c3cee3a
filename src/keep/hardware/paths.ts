/**
 * Where the attestation interfaces are, kept apart from the code that uses them so that backend
 * selection can look for them without loading it.
 */
/** configfs-tsm's report directory (Linux 6.7+, SEV-SNP and TDX guests). */
export const TSM_REPORT_ROOT = '/sys/kernel/config/tsm/report';
/** Gramine's attestation pseudo-files inside an SGX enclave. */
export const GRAMINE_ROOT = '/dev/attestation';

/**
 * The interfaces' paths. The defaults are the kernel's and Gramine's; the ENARX_TSM_REPORT_ROOT,
 * ENARX_GRAMINE_ROOT and ENARX_GUEST_DEV_ROOT variables move them, for tests and unusual mounts
 * only. Moving them cannot forge anything: whatever is read there is evidence the Steward
 * verifies against the vendors' roots, and which must bind the Keep's fresh key.
 */
export function hardwarePaths(env: NodeJS.ProcessEnv = process.env): { tsmRoot: string; gramineRoot: string; devRoot: string } {
  const { resolve } = process.getBuiltinModule('node:path');
  return {
    tsmRoot: resolve(env.ENARX_TSM_REPORT_ROOT || TSM_REPORT_ROOT),
    gramineRoot: resolve(env.ENARX_GRAMINE_ROOT || GRAMINE_ROOT),
    devRoot: resolve(env.ENARX_GUEST_DEV_ROOT || '/dev'),
  };
}

/**
 * False when neither interface exists, so that no hardware backend can be available: two stats,
 * where the full detection (src/keep/hardware/detect.ts) costs every `enarx run` milliseconds.
 */
export function mayAttest(env: NodeJS.ProcessEnv = process.env): boolean {
  const { existsSync } = process.getBuiltinModule('node:fs');
  const { tsmRoot, gramineRoot } = hardwarePaths(env);
  return existsSync(tsmRoot) || existsSync(gramineRoot);
}
