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

/**
 * The nil Keep's MEASUREMENT for software evidence: it runs the same runtime code, in the enarx
 * process without the process Keep's walls, so it reports a value of its own, SHA-384 over a
 * label and the process Keep's measurement: a policy that pins the process Keep refuses it.
 */
export async function nilKeepMeasurement(): Promise<Uint8Array> {
  return new Uint8Array(createHash('sha384').update('enarx-ts nil Keep\0').update(await keepMeasurement()).digest());
}
