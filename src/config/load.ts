import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { EnarxConfig } from './model.ts';
import { ConfigError, MAX_CONFIG_BYTES, parseConfig } from './parse.ts';

/** Reads and parses an Enarx.toml from disk. Every failure is a one-line ConfigError naming the file. */
export function loadConfig(path: string): EnarxConfig {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : String(code ?? err);
    throw new ConfigError(path, undefined, `cannot read it: ${why}`, { unreadable: true });
  }
  if (bytes.length > MAX_CONFIG_BYTES) throw new ConfigError(path, undefined, `is larger than ${MAX_CONFIG_BYTES} bytes`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError(path, undefined, 'is not UTF-8 text');
  }
  return parseConfig(text, path, dirname(resolve(path)));
}
