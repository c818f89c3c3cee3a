/**
 * The Keep's TLS identity: the seam between the networking code (which only needs a key and a
 * chain) and where the certificate comes from. Today: a self-signed certificate made inside
 * the Keep, as Enarx does without a Steward. A Steward-backed provider (generate the key,
 * obtain evidence binding it, send a CSR, receive the chain) implements the same interface.
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier, AttributeTypeAndValue, AttributeValue, BasicConstraints, Certificate, ExtendedKeyUsage, Extension,
  Extensions, GeneralName, KeyUsage, KeyUsageFlags, Name, RelativeDistinguishedName, SubjectAlternativeName,
  SubjectKeyIdentifier, SubjectPublicKeyInfo, TBSCertificate, Validity, Version, id_ce_basicConstraints,
  id_ce_extKeyUsage, id_ce_keyUsage, id_ce_subjectAltName, id_ce_subjectKeyIdentifier, id_kp_clientAuth, id_kp_serverAuth,
} from '@peculiar/asn1-x509';

export interface KeepIdentity {
  /** PEM certificates, leaf first, as presented to TLS peers. */
  readonly certificateChain: readonly string[];
  /** The leaf's private key, PKCS#8 PEM. It never leaves the Keep. */
  readonly privateKey: string;
  /** How the chain was obtained, for logs and `platform info`: 'self-signed' or 'steward'. */
  readonly issuer: 'self-signed' | 'steward';
  /** CA certificates (PEM) that listen files with client authentication accept; empty: none. */
  readonly clientCAs: readonly string[];
}

export interface IdentityProvider {
  /** Returns the Keep's identity, creating it on first use; later calls return the same one. */
  identity(): Promise<KeepIdentity>;
}

export type KeyAlgorithm = 'P-256' | 'P-384';

/** Enarx's self-signed certificate: CN=localhost, one year, 16-byte random serial, server and client auth. */
export function createSelfSignedIdentity(options: { algorithm?: KeyAlgorithm; commonName?: string; now?: Date } = {}): KeepIdentity {
  const p384 = options.algorithm === 'P-384';
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: p384 ? 'secp384r1' : 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const notBefore = options.now ?? new Date();
  const notAfter = new Date(notBefore.getTime() + 365 * 24 * 3600 * 1000);
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // a positive INTEGER of exactly 16 bytes
  const cn = options.commonName ?? 'localhost';
  const name = new Name([new RelativeDistinguishedName([new AttributeTypeAndValue({ type: '2.5.4.3', value: new AttributeValue({ utf8String: cn }) })])]);
  const signatureAlgorithm = new AlgorithmIdentifier({ algorithm: p384 ? '1.2.840.10045.4.3.3' : '1.2.840.10045.4.3.2' });
  const extension = (extnID: string, critical: boolean, value: unknown) =>
    new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: toArrayBuffer(serial),
    signature: signatureAlgorithm,
    issuer: name,
    validity: new Validity({ notBefore, notAfter }),
    subject: name,
    subjectPublicKeyInfo: AsnConvert.parse(spki, SubjectPublicKeyInfo),
    extensions: new Extensions([
      extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })),
      extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment)),
      extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage([id_kp_serverAuth, id_kp_clientAuth])),
      // Modern TLS clients match names against the SAN only, so localhost is named there too.
      extension(id_ce_subjectAltName, false, new SubjectAlternativeName([
        new GeneralName({ dNSName: cn }),
        new GeneralName({ iPAddress: '127.0.0.1' }),
        new GeneralName({ iPAddress: '::1' }),
      ])),
      extension(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(toArrayBuffer(createHash('sha1').update(publicKeyBits(spki)).digest()))),
    ]),
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const signature = sign(p384 ? 'sha384' : 'sha256', tbsDer, { key: privateKey, dsaEncoding: 'der' });
  const cert = new Certificate({ tbsCertificate: tbs, signatureAlgorithm, signatureValue: toArrayBuffer(signature) });
  return {
    certificateChain: [toPem('CERTIFICATE', new Uint8Array(AsnConvert.serialize(cert)))],
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    issuer: 'self-signed',
    clientCAs: [],
  };
}

function publicKeyBits(spki: Uint8Array): Uint8Array {
  return new Uint8Array(AsnConvert.parse(spki, SubjectPublicKeyInfo).subjectPublicKey);
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** Makes the self-signed identity lazily, once: Keeps without TLS files never pay for it. */
export function selfSignedIdentityProvider(options: { algorithm?: KeyAlgorithm } = {}): IdentityProvider {
  let pending: Promise<KeepIdentity> | undefined;
  return { identity: () => (pending ??= Promise.resolve().then(() => createSelfSignedIdentity(options))) };
}

function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}
