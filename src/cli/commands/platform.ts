import type { Command } from 'commander';

// Placeholder until the 'platform' command lands; its owner replaces this file.
export function register(_program: Command): void {}
