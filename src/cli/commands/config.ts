import type { Command } from 'commander';

export function register(program: Command): void {
  const config = program.command('config').description('Enarx.toml helpers');
  config
    .command('init')
    .description('write a commented Enarx.toml template (refuses to overwrite)')
    .argument('[file]', 'where to write it', 'Enarx.toml')
    .action(async (file: string) => {
      const { initConfig } = await import('../run/config-init.ts');
      initConfig(file);
    });
  config
    .command('check')
    .description('validate an Enarx.toml and show the descriptors it gives the guest')
    .argument('<file>', 'the Enarx.toml to check')
    .option('--json', 'print the parsed configuration as one JSON document')
    .action(async (file: string, options: { json?: boolean }) => {
      const { checkConfig } = await import('../run/config-init.ts');
      checkConfig(file, options.json === true);
    });
}
