import { release, type as osType, machine } from 'node:os';
import type { Command } from 'commander';
import { printJson } from '../output.ts';

/** One check of `enarx platform info`: what it looked at, whether it passed, and what to do if not. */
export interface PlatformCheck {
  name: string;
  pass: boolean;
  info?: string;
  mesg?: string;
}

/** A backend's section: its name and the checks that tell whether it can run here. */
export interface PlatformSection {
  backend: string;
  checks: () => Promise<PlatformCheck[]>;
}

const sections: PlatformSection[] = [];

/** Adds a backend's checks to `enarx platform info`; components call this from their registration. */
export function registerPlatformSection(section: PlatformSection): void {
  if (!sections.some((s) => s.backend === section.backend)) sections.push(section);
}

/** The hardware Keeps' checks: configfs-tsm for SEV-SNP and TDX guests, Gramine for SGX. */
function hardwareSections(): PlatformSection[] {
  const detect = async () => (await import('../../keep/hardware/index.ts')).detectHardware();
  let pending: ReturnType<typeof detect> | undefined;
  const once = () => (pending ??= detect());
  return [
    {
      backend: 'sev-snp, tdx (configfs-tsm)',
      checks: async () => (await once()).checks.filter((c) => !c.name.startsWith('Gramine')),
    },
    { backend: 'sgx (gramine)', checks: async () => (await once()).checks.filter((c) => c.name.startsWith('Gramine')) },
  ];
}

export function registerInfoCommand(platform: Command, version: string): void {
  for (const s of hardwareSections()) registerPlatformSection(s);
  platform
    .command('info')
    .description('check what this platform offers each Keep backend, and what is missing')
    .option('-j, --json', 'print one JSON document on stdout')
    .action(async (opts: { json?: boolean }) => {
      const backends = [];
      for (const s of sections) backends.push({ backend: s.backend, data: await s.checks() });
      const system = { os: osType(), release: release(), machine: machine() };
      if (opts.json) {
        printJson({ version, system_info: system, backends });
        return;
      }
      const lines = [`enarx ${version} on ${system.os} ${system.release} (${system.machine})`];
      for (const b of backends) {
        lines.push('', `${b.backend}:`);
        for (const c of b.data) {
          lines.push(`  ${c.pass ? '✔' : '✗'} ${c.name}${c.info ? `: ${c.info}` : ''}`);
          if (!c.pass && c.mesg) lines.push(`      ${c.mesg}`);
        }
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
