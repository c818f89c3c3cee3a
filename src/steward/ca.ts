/**
 * The Steward's CA material on disk (Node side): loading a key and chain given on the command
 * line, and the embedded default, a debug CA created once in a data directory and reused.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ownBytes } from '../attestation/bytes.ts';
import { parseCertificates, toPem } from '../attestation/x509.ts';
import { ecdsaRawToDer } from '../pki/index.ts';
import { encodeAnyOid, TAG, tlv } from '../pki/der.ts';
import { signingKey } from './certificate.ts';

export interface CaMaterial {
  key: CryptoKey;
  /** Issuing CA certificate first, then its issuers. */
  chain: Uint8Array[];
}

/** Thrown when CA files are missing or unusable; the message says which file and why. */
export class CaError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CaError';
  }
}

function importPkcs8(key: KeyObject, algorithm: EcKeyImportParams | RsaHashedImportParams, extractable = false): Promise<CryptoKey> {
  const der = new Uint8Array(key.export({ format: 'der', type: 'pkcs8' }));
  return crypto.subtle.importKey('pkcs8', der, algorithm, extractable, ['sign']);
}

async function toCryptoKey(key: KeyObject, path: string): Promise<CryptoKey> {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    const curve = details.namedCurve === 'prime256v1' ? 'P-256' : details.namedCurve === 'secp384r1' ? 'P-384' : null;
    if (!curve) throw new CaError(`${path}: unsupported EC curve ${details.namedCurve}; use P-256 or P-384`);
    return importPkcs8(key, { name: 'ECDSA', namedCurve: curve });
  }
  if (key.asymmetricKeyType === 'rsa') return importPkcs8(key, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' });
  throw new CaError(`${path}: unsupported key type ${key.asymmetricKeyType}; use ECDSA P-256/P-384 or RSA`);
}

/** Loads a PEM private key (PKCS#8 as Enarx writes it, or SEC1/PKCS#1) and a PEM/DER certificate chain. */
export async function loadCa(keyPath: string, crtPath: string): Promise<CaMaterial> {
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(readFileSync(keyPath));
  } catch (err) {
    throw new CaError(`cannot read the CA key ${keyPath}: ${(err as Error).message}`, { cause: err });
  }
  let chain: Uint8Array[];
  try {
    chain = parseCertificates(new Uint8Array(readFileSync(crtPath))).map((c) => c.der);
  } catch (err) {
    throw new CaError(`cannot read the CA certificate ${crtPath}: ${(err as Error).message}`, { cause: err });
  }
  if (chain.length === 0) throw new CaError(`${crtPath} holds no certificate`);
  return { key: await toCryptoKey(keyObject, keyPath), chain };
}

/** Where the embedded default keeps its CA: $XDG_DATA_HOME/enarx/steward or ~/.local/share/enarx/steward. */
export function defaultDataDir(): string {
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'enarx', 'steward');
}

/** Writes a file atomically (temp file, fsync, rename), so a crash never leaves half a key. */
function writeAtomically(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** A self-signed P-256 CA certificate (cA, pathLen 0, keyCertSign + cRLSign), as Enarx's --host generates. */
export async function createSelfSignedCa(keys: CryptoKeyPair, commonName: string, now: Date, days: number): Promise<Uint8Array> {
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', keys.publicKey));
  const name = tlv(TAG.SEQUENCE, tlv(TAG.SET, tlv(TAG.SEQUENCE, encodeAnyOid('2.5.4.3'), tlv(TAG.UTF8_STRING, new TextEncoder().encode(commonName)))));
  const time = (d: Date) => tlv(TAG.GENERALIZED_TIME, new TextEncoder().encode(`${d.toISOString().slice(0, 19).replace(/[-:T]/g, '')}Z`));
  const bits = spki.subarray(spki.length - 65);
  const ski = new Uint8Array(await crypto.subtle.digest('SHA-1', ownBytes(bits)));
  const ext = (oid: string, critical: boolean, value: Uint8Array) =>
    tlv(TAG.SEQUENCE, encodeAnyOid(oid), critical ? Uint8Array.of(TAG.BOOLEAN, 1, 0xff) : new Uint8Array(0), tlv(TAG.OCTET_STRING, value));
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  const signing = signingKey(keys.privateKey);
  const tbs = tlv(
    TAG.SEQUENCE,
    Uint8Array.of(0xa0, 3, TAG.INTEGER, 1, 2),
    tlv(TAG.INTEGER, serial),
    signing.algorithm,
    name,
    tlv(TAG.SEQUENCE, time(new Date(now.getTime() - 60_000)), time(new Date(now.getTime() + days * 86_400_000))),
    name,
    spki,
    tlv(
      0xa3,
      tlv(
        TAG.SEQUENCE,
        ext('2.5.29.19', true, Uint8Array.of(TAG.SEQUENCE, 6, TAG.BOOLEAN, 1, 0xff, TAG.INTEGER, 1, 0)),
        ext('2.5.29.15', true, Uint8Array.of(TAG.BIT_STRING, 2, 1, 0x06)),
        ext('2.5.29.14', false, tlv(TAG.OCTET_STRING, ski)),
      ),
    ),
  );
  const raw = new Uint8Array(await crypto.subtle.sign(signing.params, keys.privateKey, ownBytes(tbs)));
  return tlv(TAG.SEQUENCE, tbs, signing.algorithm, tlv(TAG.BIT_STRING, Uint8Array.of(0), ecdsaRawToDer(raw)));
}

export interface DefaultCa extends CaMaterial {
  keyPath: string;
  crtPath: string;
  created: boolean;
}

/**
 * The embedded default: a debug CA in `dir` (ca.key mode 0600, ca.crt), created on first use and
 * reused afterwards. An expired certificate is renewed with the same key, so clients that pinned
 * the key keep working; a key without a certificate is never overwritten.
 */
export async function loadOrCreateDefaultCa(dir: string, commonName: string, now: Date = new Date()): Promise<DefaultCa> {
  const keyPath = join(dir, 'ca.key');
  const crtPath = join(dir, 'ca.crt');
  if (existsSync(keyPath) && existsSync(crtPath)) {
    const ca = await loadCa(keyPath, crtPath);
    const [cert] = parseCertificates(ca.chain[0]!);
    if (cert && cert.notAfter.getTime() > now.getTime()) return { ...ca, keyPath, crtPath, created: false };
    const keyObject = createPrivateKey(readFileSync(keyPath));
    const spki = new Uint8Array(createPublicKey(keyObject).export({ format: 'der', type: 'spki' }));
    const keys: CryptoKeyPair = {
      privateKey: ca.key,
      publicKey: await crypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']),
    };
    const der = await createSelfSignedCa(keys, commonName, now, 365);
    writeAtomically(crtPath, toPem('CERTIFICATE', der), 0o644);
    return { key: keys.privateKey, chain: [der], keyPath, crtPath, created: true };
  }
  if (existsSync(keyPath) || existsSync(crtPath)) {
    throw new CaError(`${dir} holds only one of ca.key and ca.crt; restore the other, or remove both to create a new CA`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const der = await createSelfSignedCa(keys, commonName, now, 365);
  writeAtomically(keyPath, toPem('PRIVATE KEY', pkcs8), 0o600);
  writeAtomically(crtPath, toPem('CERTIFICATE', der), 0o644);
  return { key: keys.privateKey, chain: [der], keyPath, crtPath, created: true };
}
