/**
 * Certificates for a Drawbridge that was given none: a local CA and a server certificate, kept in
 * the data directory (keys mode 0600) and reused on the next start. The same helpers issue client
 * certificates in tests.
 */
import { webcrypto, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import 'reflect-metadata'; // @peculiar/x509 needs it (tsyringe), before it loads
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 60 * 60 * 1000;

export interface Issuer {
  cert: x509.X509Certificate;
  privateKey: CryptoKey;
}

export interface IssuedPem {
  certPem: string;
  keyPem: string;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f; // positive
  return b.toString('hex');
}

function pem(cert: x509.X509Certificate): string {
  return `${cert.toString('pem')}\n`;
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey);
  return `${x509.PemConverter.encode(der, 'PRIVATE KEY')}\n`;
}

export async function createCertificateAuthority(name: string, days = 3650): Promise<Issuer & IssuedPem> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * DAY),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, privateKey: keys.privateKey, certPem: pem(cert), keyPem: await keyPem(keys.privateKey) };
}

export async function loadIssuer(certPem: string, privateKeyPem: string): Promise<Issuer> {
  const cert = new x509.X509Certificate(certPem);
  const der = x509.PemConverter.decodeFirst(privateKeyPem);
  const privateKey = (await webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, true, ['sign'])) as CryptoKey;
  return { cert, privateKey };
}

export interface LeafOptions {
  commonName: string;
  usage: 'server' | 'client';
  dnsNames?: string[];
  ipAddresses?: string[];
  days?: number;
  notBefore?: Date;
  notAfter?: Date;
  /** Extra extensions, e.g. a Steward's certificate origin marking in tests. */
  extensions?: x509.Extension[];
}

export async function issueCertificate(issuer: Issuer, options: LeafOptions): Promise<IssuedPem & { cert: x509.X509Certificate }> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const names: x509.JsonGeneralName[] = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(options.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([options.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.cert),
    ...(options.extensions ?? []),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${options.commonName}`,
    issuer: issuer.cert.subject,
    notBefore: options.notBefore ?? new Date(now - 60_000),
    notAfter: options.notAfter ?? new Date(now + (options.days ?? 825) * DAY),
    signingKey: issuer.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions,
  });
  return { cert, certPem: pem(cert), keyPem: await keyPem(keys.privateKey) };
}

export interface LocalTls {
  certPem: string;
  keyPem: string;
  caPath: string;
  created: boolean;
}

async function readIf(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Reuses `<dir>/tls/{ca,server}.{crt,key}` when present and not about to expire, and covering the
 * names asked for; otherwise makes them (the CA is kept, so clients that trust it go on working).
 */
export async function ensureLocalTls(dir: string, extraNames: string[] = []): Promise<LocalTls> {
  const tlsDir = join(dir, 'tls');
  await mkdir(tlsDir, { recursive: true, mode: 0o700 });
  const paths = { caCrt: join(tlsDir, 'ca.crt'), caKey: join(tlsDir, 'ca.key'), crt: join(tlsDir, 'server.crt'), key: join(tlsDir, 'server.key') };
  const wanted = new Set(['localhost', '127.0.0.1', '::1', hostname(), ...extraNames].filter((n) => n && n !== '0.0.0.0' && n !== '::'));
  const [caCrt, caKey, crt, key] = await Promise.all([readIf(paths.caCrt), readIf(paths.caKey), readIf(paths.crt), readIf(paths.key)]);
  if (caCrt && caKey && crt && key) {
    const leaf = new x509.X509Certificate(crt);
    const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
    const have = new Set((san?.names.items ?? []).map((n) => n.value));
    const fresh = leaf.notAfter.getTime() - Date.now() > 30 * DAY;
    if (fresh && [...wanted].every((n) => have.has(n))) return { certPem: crt, keyPem: key, caPath: paths.caCrt, created: false };
  }
  let ca: Issuer;
  if (caCrt && caKey) {
    ca = await loadIssuer(caCrt, caKey);
  } else {
    const made = await createCertificateAuthority('Enarx Drawbridge local CA');
    await writeSecret(paths.caKey, made.keyPem);
    await writeFile(paths.caCrt, made.certPem, { mode: 0o644 });
    ca = made;
  }
  const names = [...wanted];
  const leaf = await issueCertificate(ca, {
    commonName: 'localhost',
    usage: 'server',
    dnsNames: names.filter((n) => isIP(n) === 0),
    ipAddresses: names.filter((n) => isIP(n) !== 0),
    days: 397,
  });
  await writeSecret(paths.key, leaf.keyPem);
  await writeFile(paths.crt, leaf.certPem + pem(ca.cert), { mode: 0o644 });
  return { certPem: leaf.certPem + pem(ca.cert), keyPem: leaf.keyPem, caPath: paths.caCrt, created: true };
}

async function writeSecret(path: string, pem: string): Promise<void> {
  await writeFile(path, pem, { mode: 0o600 });
  await chmod(path, 0o600);
}
