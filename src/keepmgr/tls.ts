/**
 * The daemon's TLS identity. When none is given it makes, once, a small CA and a server
 * certificate for localhost/127.0.0.1/::1 (and any --san names) in its data directory; clients
 * then trust that CA explicitly (`enarx keep --ca DATA_DIR/ca.pem`).
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier, AttributeTypeAndValue, AttributeValue, AuthorityKeyIdentifier, BasicConstraints, Certificate, ExtendedKeyUsage, Extension,
  Extensions, GeneralName, KeyIdentifier, KeyUsage, KeyUsageFlags, Name, RelativeDistinguishedName, SubjectAlternativeName, SubjectKeyIdentifier,
  SubjectPublicKeyInfo, TBSCertificate, Validity, Version, id_ce_authorityKeyIdentifier, id_ce_basicConstraints, id_ce_extKeyUsage, id_ce_keyUsage,
  id_ce_subjectAltName, id_ce_subjectKeyIdentifier, id_kp_serverAuth,
} from '@peculiar/asn1-x509';
import { toPem } from '../attestation/x509.ts';

export interface TlsMaterial {
  cert: string;
  key: string;
  ca: string;
  caPath: string;
}

const ECDSA_SHA256 = '1.2.840.10045.4.3.2';

function ab(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}


function cn(text: string): Name {
  return new Name([new RelativeDistinguishedName([new AttributeTypeAndValue({ type: '2.5.4.3', value: new AttributeValue({ utf8String: text }) })])]);
}

function keyId(spki: Uint8Array): ArrayBuffer {
  const bits = new Uint8Array(AsnConvert.parse(spki, SubjectPublicKeyInfo).subjectPublicKey);
  return ab(createHash('sha1').update(bits).digest());
}

function issue(o: { subject: string; issuer: string; spki: Uint8Array; issuerSpki: Uint8Array; signer: KeyObject; ca: boolean; days: number; sans?: string[] }): Uint8Array {
  const ext = (id: string, critical: boolean, value: unknown) => new Extension({ extnID: id, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const notBefore = new Date(Date.now() - 60_000);
  const extensions = [
    ext(id_ce_basicConstraints, true, new BasicConstraints(o.ca ? { cA: true, pathLenConstraint: 0 } : { cA: false })),
    ext(id_ce_keyUsage, true, new KeyUsage(o.ca ? KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign : KeyUsageFlags.digitalSignature)),
    ext(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyId(o.spki))),
    ext(id_ce_authorityKeyIdentifier, false, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(keyId(o.issuerSpki)) })),
  ];
  if (!o.ca) {
    extensions.push(ext(id_ce_extKeyUsage, false, new ExtendedKeyUsage([id_kp_serverAuth])));
    extensions.push(ext(id_ce_subjectAltName, false, new SubjectAlternativeName((o.sans ?? []).map((s) => new GeneralName(isIP(s) ? { iPAddress: s } : { dNSName: s })))));
  }
  const alg = new AlgorithmIdentifier({ algorithm: ECDSA_SHA256 });
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: ab(serial),
    signature: alg,
    issuer: cn(o.issuer),
    validity: new Validity({ notBefore, notAfter: new Date(notBefore.getTime() + o.days * 86_400_000) }),
    subject: cn(o.subject),
    subjectPublicKeyInfo: AsnConvert.parse(o.spki, SubjectPublicKeyInfo),
    extensions: new Extensions(extensions),
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const signature = sign('sha256', tbsDer, { key: o.signer, dsaEncoding: 'der' });
  return new Uint8Array(AsnConvert.serialize(new Certificate({ tbsCertificate: tbs, signatureAlgorithm: alg, signatureValue: ab(signature) })));
}

export async function ensureTls(dataDir: string, sans: string[] = []): Promise<TlsMaterial> {
  const caPath = join(dataDir, 'ca.pem');
  const certPath = join(dataDir, 'server.pem');
  const keyPath = join(dataDir, 'server.key');
  if (existsSync(caPath) && existsSync(certPath) && existsSync(keyPath)) {
    return { ca: readFileSync(caPath, 'utf8'), cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), caPath };
  }
  const caKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const serverKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const caSpki = new Uint8Array(caKey.publicKey.export({ type: 'spki', format: 'der' }));
  const serverSpki = new Uint8Array(serverKey.publicKey.export({ type: 'spki', format: 'der' }));
  const caName = 'enarx keep manager CA';
  const ca = issue({ subject: caName, issuer: caName, spki: caSpki, issuerSpki: caSpki, signer: caKey.privateKey, ca: true, days: 5 * 365 });
  const server = issue({
    subject: 'enarx keep manager', issuer: caName, spki: serverSpki, issuerSpki: caSpki, signer: caKey.privateKey, ca: false, days: 365,
    sans: ['localhost', '127.0.0.1', '::1', ...sans],
  });
  const material = { ca: toPem('CERTIFICATE', ca), cert: toPem('CERTIFICATE', server), key: serverKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, caPath };
  // The CA's key is not kept: the daemon only ever needs the one server certificate.
  writeFileSync(keyPath, material.key, { mode: 0o600 });
  writeFileSync(certPath, material.cert, { mode: 0o644 });
  writeFileSync(caPath, material.ca, { mode: 0o644 });
  return material;
}
