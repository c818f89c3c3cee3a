/**
 * The workload identity a Keep asks the Steward to certify, and its binding into report data.
 *
 *   id-enarx-workloadIdentity OBJECT IDENTIFIER ::= { 2.25.46740769646162043182522345630166459416 1 1 }
 *
 *   WorkloadIdentity ::= SEQUENCE {
 *     digestAlgorithm  OBJECT IDENTIFIER,            -- id-sha256, id-sha384 or id-sha512
 *     digest           OCTET STRING,                 -- the workload's digest, of that algorithm's size
 *     package          [0] EXPLICIT PackageIdentity OPTIONAL }
 *
 *   PackageIdentity ::= SEQUENCE {
 *     slug             UTF8String (SIZE (1..255)),   -- Drawbridge [host/]user/repo:tag
 *     signer           SubjectPublicKeyInfo }        -- the key that signed the package
 *
 * It travels in the CSR as a PKCS#10 attribute of that type with exactly one value. The report data
 * binds it: after the key hash (48 bytes for SNP, 32 for SGX/TDX) come the first 16 (SNP) or 32
 * (SGX/TDX) bytes of SHA-256 over the attribute value's DER. All zeros there means "no identity",
 * which is what Enarx 0.7 Keeps send.
 */
import { AsnPropTypes } from '@peculiar/asn1-schema';
import { buffer, bytes, decode, encode, fields, requireSequence, toHex } from './asn1.ts';
import { DerError } from './der.ts';
import { OID_SHA256, OID_SHA384, OID_SHA512 } from './oids.ts';

export type DigestAlgorithm = 'sha-256' | 'sha-384' | 'sha-512';

export interface PackageIdentity {
  /** Drawbridge slug: [host/]user/repo:tag. */
  slug: string;
  /** DER SubjectPublicKeyInfo of the package signing key. */
  signer: Uint8Array;
}

export interface WorkloadIdentity {
  digest: { algorithm: DigestAlgorithm; value: Uint8Array };
  package?: PackageIdentity;
}

const DIGESTS: Record<DigestAlgorithm, { oid: string; length: number }> = {
  'sha-256': { oid: OID_SHA256, length: 32 },
  'sha-384': { oid: OID_SHA384, length: 48 },
  'sha-512': { oid: OID_SHA512, length: 64 },
};

/** Characters a slug may use: RFC 3986 pchar without percent-escapes, so it goes into a URI as is. */
const SLUG = /^[A-Za-z0-9._~:@/+-]{1,255}$/;

class PackageIdentityAsn {
  slug = '';
  signer = new ArrayBuffer(0);
}
fields(PackageIdentityAsn, { slug: { type: AsnPropTypes.Utf8String }, signer: { type: AsnPropTypes.Any } });

class WorkloadIdentityAsn {
  digestAlgorithm = '';
  digest = new ArrayBuffer(0);
  package?: PackageIdentityAsn;
}
fields(WorkloadIdentityAsn, {
  digestAlgorithm: { type: AsnPropTypes.ObjectIdentifier },
  digest: { type: AsnPropTypes.OctetString },
  package: { type: PackageIdentityAsn, context: 0, optional: true },
});
export { WorkloadIdentityAsn };

function check(identity: WorkloadIdentity): void {
  const spec = DIGESTS[identity.digest.algorithm];
  if (!spec) throw new DerError(`unsupported workload digest algorithm ${String(identity.digest.algorithm)}`);
  if (identity.digest.value.length !== spec.length) {
    throw new DerError(`a ${identity.digest.algorithm} workload digest has ${spec.length} bytes, not ${identity.digest.value.length}`);
  }
  if (identity.package) {
    if (!SLUG.test(identity.package.slug)) throw new DerError(`invalid package slug ${JSON.stringify(identity.package.slug.slice(0, 80))}`);
    requireSequence(identity.package.signer, 'the package signer key');
  }
}

export function toIdentityAsn(identity: WorkloadIdentity): WorkloadIdentityAsn {
  check(identity);
  const asn = Object.assign(new WorkloadIdentityAsn(), {
    digestAlgorithm: DIGESTS[identity.digest.algorithm].oid,
    digest: buffer(identity.digest.value),
  });
  if (identity.package) {
    asn.package = Object.assign(new PackageIdentityAsn(), { slug: identity.package.slug, signer: buffer(identity.package.signer) });
  }
  return asn;
}

export function fromIdentityAsn(asn: WorkloadIdentityAsn): WorkloadIdentity {
  const algorithm = (Object.keys(DIGESTS) as DigestAlgorithm[]).find((k) => DIGESTS[k].oid === asn.digestAlgorithm);
  if (!algorithm) throw new DerError(`unsupported workload digest algorithm ${asn.digestAlgorithm}`);
  const identity: WorkloadIdentity = { digest: { algorithm, value: bytes(asn.digest) } };
  if (asn.package) identity.package = { slug: asn.package.slug, signer: bytes(asn.package.signer) };
  check(identity);
  return identity;
}

export function encodeWorkloadIdentity(identity: WorkloadIdentity): Uint8Array {
  return encode(toIdentityAsn(identity));
}

export function decodeWorkloadIdentity(der: Uint8Array): WorkloadIdentity {
  return fromIdentityAsn(decode(der, WorkloadIdentityAsn, 'WorkloadIdentity'));
}

/** The TEE families and how many report-data bytes their key hash takes. */
export type BindingKind = 'snp' | 'sgx' | 'tdx';
export const KEY_HASH: Record<BindingKind, { hash: 'SHA-384' | 'SHA-256'; length: 48 | 32 }> = {
  snp: { hash: 'SHA-384', length: 48 },
  sgx: { hash: 'SHA-256', length: 32 },
  tdx: { hash: 'SHA-256', length: 32 },
};

async function digest(hash: 'SHA-256' | 'SHA-384', data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest(hash, buffer(data)));
}

/**
 * The 64 bytes of report data a Keep must request: hash(SPKI DER) (SHA-384 for SNP, SHA-256 for
 * SGX/TDX, exactly as Enarx), then the truncated SHA-256 of the identity's DER, or zeros.
 */
export async function reportDataFor(kind: BindingKind, spkiDer: Uint8Array, identityDer?: Uint8Array): Promise<Uint8Array> {
  const { hash, length } = KEY_HASH[kind];
  const out = new Uint8Array(64);
  out.set(await digest(hash, spkiDer), 0);
  if (identityDer) out.set((await digest('SHA-256', identityDer)).subarray(0, 64 - length), length);
  return out;
}

/** SAN URIs naming a verified identity: `urn:enarx:workload:<alg>:<hex>` and `urn:enarx:package:<slug>`. */
export function workloadSanUris(identity: WorkloadIdentity): string[] {
  const uris = [`urn:enarx:workload:${identity.digest.algorithm}:${toHex(identity.digest.value)}`];
  if (identity.package) uris.push(`urn:enarx:package:${identity.package.slug}`);
  return uris;
}
