import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHARED_ROOT = resolve(REPO_ROOT, '..', 'shared');

/** A path inside ../shared/testdata; fails loudly (never skips) when the folder is missing. */
export function testdata(...parts: string[]): string {
  const path = join(SHARED_ROOT, 'testdata', ...parts);
  if (!existsSync(path)) {
    throw new Error(`test data not found at ${path}: the shared/ folder is expected beside the checkout, at ${SHARED_ROOT}`);
  }
  return path;
}

/** The CLI entry point, for tests that run `enarx` as a user would. */
export const ENARX_BIN = join(REPO_ROOT, 'bin', 'enarx.js');
/** The shell launcher (package.json's bin), which starts a plain run's Keep before ENARX_BIN's Node. */
export const ENARX_SHELL_BIN = join(REPO_ROOT, 'bin', 'enarx');
