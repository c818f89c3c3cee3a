import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { EnarxError, UsageError } from '../errors.ts';
import { printJson } from '../output.ts';

const PRODUCTS = ['milan', 'genoa', 'turin'] as const;

/** `enarx platform test-root create`: a local test ARK/ASK/VCEK chain for software SNP evidence. */
export function registerTestRootCommands(platform: Command): void {
  const testRoot = platform.command('test-root').description('a local test SEV-SNP root for software evidence (development and CI; trusted only where you say so)');
  testRoot
    .command('create')
    .description('create a test ARK/ASK/VCEK chain; `enarx run --software-evidence DIR` signs reports with it')
    .option('--dir <dir>', 'where to write it', 'enarx-test-root')
    .option('--product <name>', 'milan, genoa or turin', 'milan')
    .option('--force', 'replace an existing test root in DIR')
    .option('--json', 'print one JSON document (files, product)')
    .action(async (opts: { dir: string; product: string; force?: boolean; json?: boolean }) => {
      const product = opts.product.toLowerCase();
      if (!(PRODUCTS as readonly string[]).includes(product)) throw new UsageError(`unknown product ${JSON.stringify(opts.product)}`, 'use --product milan, genoa or turin');
      const { createTestRoot, TEST_ROOT_FILES } = await import('../../keep/software-evidence.ts');
      if (!opts.force && existsSync(join(opts.dir, TEST_ROOT_FILES.vcekKey))) {
        throw new EnarxError(`${opts.dir} already holds a test root`, { hint: 'use it as it is, pick another --dir, or pass --force to replace it' });
      }
      const { trustFile } = await createTestRoot(opts.dir, { product: product as (typeof PRODUCTS)[number] });
      if (opts.json) {
        printJson({ dir: opts.dir, product, trust: trustFile, vcek: join(opts.dir, TEST_ROOT_FILES.vcek), key: join(opts.dir, TEST_ROOT_FILES.vcekKey) });
        return;
      }
      process.stdout.write(
        `created a ${product} test root in ${opts.dir} (VCEK key ${join(opts.dir, TEST_ROOT_FILES.vcekKey)}, mode 0600)\n` +
          `It is NOT an AMD root: Stewards accept its evidence only when told to, and mark what they issue.\n` +
          `  trust it:  enarx steward serve --trust-test-root ${trustFile}\n` +
          `  use it:    enarx run --steward URL --software-evidence ${opts.dir} MODULE\n`,
      );
    });
}
