import type { Command } from 'commander';
import { VERSION } from '../main.ts';
import { registerCollateralCommands } from './platform-collateral.ts';
import { registerInfoCommand } from './platform-info.ts';
import { registerTestRootCommands } from './platform-test-root.ts';

// Components add their backend checks to `platform info` with registerPlatformSection (platform-info.ts).
export function register(program: Command): void {
  const platform = program.command('platform').description('inspect this platform and its collateral');
  registerInfoCommand(platform, VERSION);
  registerCollateralCommands(platform);
  registerTestRootCommands(platform);
}
