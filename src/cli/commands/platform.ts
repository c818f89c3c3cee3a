import type { Command } from 'commander';
import { registerCollateralCommands } from './platform-collateral.ts';

// The 'info' subcommand's owner completes this file; collateral commands register themselves here.
export function register(program: Command): void {
  const platform = program.command('platform').description('inspect this platform and its collateral');
  registerCollateralCommands(platform);
}
