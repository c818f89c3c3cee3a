/**
 * What software SNP evidence reports as MEASUREMENT for the process Keep: SHA-384 over the Keep's
 * bundled code (every file of the bundle, by name and content, in name order), so a Steward policy
 * can pin the runtime with `[snp] hash = ["…"]`. `enarx platform info` shows it (keep-measurement).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { keepBundle } from './launch.ts';

export async function keepMeasurement(): Promise<Uint8Array> {
  const dir = dirname(await keepBundle());
  const hash = createHash('sha384');
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.mjs')).sort()) {
    const bytes = readFileSync(join(dir, name));
    hash.update(`${name}\0${bytes.length}\0`).update(bytes);
  }
  return new Uint8Array(hash.digest());
}
