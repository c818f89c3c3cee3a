import type { Command } from 'commander';

// Placeholder until the 'package' command lands; its owner replaces this file.
export function register(_program: Command): void {}
