import type { Command } from 'commander';
import { common, updateCache } from './platform-collateral.ts';

/** Enarx's `update-cache`: `platform snp cache-crl`, `platform sgx cache-crl` and `cache-tcb` at once. */
export function register(program: Command): void {
  common(
    program
      .command('update-cache')
      .description('refresh the cached AMD and Intel CRLs and the SGX TCB info')
      .option('--products <list>', 'which AMD products, comma-separated', 'Milan,Genoa,Turin'),
  ).action(async (opts) =>
    updateCache(opts),
  );
}
