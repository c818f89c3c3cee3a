import { release, type as osType, machine } from 'node:os';
import type { Command } from 'commander';
import { printJson } from '../output.ts';

/** One check of `enarx platform info`: what it looked at, whether it passed, and what to do if not. */
export interface PlatformCheck {
  name: string;
  pass: boolean;
  info?: string;
  mesg?: string;
  /** Finer checks under this one, printed as a tree. */
  data?: PlatformCheck[];
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

/** The hardware Keeps' checks: configfs-tsm for SEV-SNP (sev) and TDX guests, Gramine for SGX. */
function hardwareSections(): PlatformSection[] {
  const load = () => import('../../keep/hardware/backend.ts');
  return (['sev', 'tdx', 'sgx'] as const).map((backend) => ({
    backend,
    checks: async () => {
      const hw = await load();
      return hw.backendChecks(backend, await hw.detectOnce());
    },
  }));
}

/** The software Keeps: nil (in-process) and process (a permission-model Node process behind the sallyport). */
function softwareSections(): PlatformSection[] {
  const load = () => import('../../keep/process/platform.ts');
  return [
    { backend: 'process', checks: async () => (await load()).processChecks() },
    { backend: 'nil', checks: async () => (await load()).nilChecks() },
  ];
}

/** Enarx 0.7's JSON datum: absent info/mesg are the string "null", children under `data`. */
function enarxDatum(c: PlatformCheck): unknown {
  return { name: c.name, pass: c.pass, info: c.info ?? 'null', mesg: c.mesg ?? 'null', data: (c.data ?? []).map(enarxDatum) };
}

function treeLines(c: PlatformCheck, depth: number, lines: string[]): void {
  const pad = '  '.repeat(depth);
  lines.push(`${pad}${c.pass ? '✔' : '✗'} ${c.name}${c.info ? `: ${c.info}` : ''}`);
  if (!c.pass && c.mesg) lines.push(`${pad}    ${c.mesg}`);
  for (const child of c.data ?? []) treeLines(child, depth + 1, lines);
}

export function registerInfoCommand(platform: Command, version: string): void {
  for (const s of hardwareSections()) registerPlatformSection(s);
  for (const s of softwareSections()) registerPlatformSection(s);
  platform
    .command('info')
    .description('check what this platform offers each Keep backend, and what is missing')
    .option('-j, --json', 'print one JSON document on stdout')
    .action(async (opts: { json?: boolean }) => {
      const backends = [];
      for (const s of sections) backends.push({ backend: s.backend, data: await s.checks() });
      const system = { os: osType(), release: release(), machine: machine() };
      if (opts.json) {
        printJson({ version, system_info: system, backends: backends.map((b) => ({ backend: b.backend, data: b.data.map(enarxDatum) })) });
        return;
      }
      const lines = [`enarx ${version} on ${system.os} ${system.release} (${system.machine})`];
      for (const b of backends) {
        lines.push('', `${b.backend}:`);
        for (const c of b.data) treeLines(c, 1, lines);
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
