import { concatBytes } from '../attestation/bytes.ts';
import { encodeTlv, TAG } from '../attestation/der.ts';

/**
 * The DER files Enarx's host cache holds (/var/cache/amd-sev/crls.der, /var/cache/intel-sgx/crls.der
 * and tcb.der), which Enarx Keeps embed in their SNP and SGX evidence for the Steward:
 *
 *   CrlList ::= SEQUENCE { crls SEQUENCE OF SEQUENCE { url UTF8String, crl CertificateList } }
 *   TcbPackage ::= SEQUENCE { crts SEQUENCE OF Certificate, report OCTET STRING }
 *
 * The Steward looks CRLs up by URL, so each is stored under the URL Enarx used for it.
 */
export function encodeCrlList(crls: readonly { url: string; der: Uint8Array }[]): Uint8Array {
  const items = crls.map((c) => encodeTlv(TAG.SEQUENCE, concatBytes(encodeTlv(TAG.UTF8_STRING, new TextEncoder().encode(c.url)), c.der)));
  return encodeTlv(TAG.SEQUENCE, encodeTlv(TAG.SEQUENCE, concatBytes(...items)));
}

export function encodeTcbPackage(certs: readonly Uint8Array[], tcbInfoJson: Uint8Array): Uint8Array {
  return encodeTlv(TAG.SEQUENCE, concatBytes(encodeTlv(TAG.SEQUENCE, concatBytes(...certs)), encodeTlv(TAG.OCTET_STRING, tcbInfoJson)));
}

/** The URLs Enarx's Steward expects CRLs under (the CRL distribution points of the certificates). */
export const ENARX_CRL_URLS = {
  amd: (product: string, key: 'vcek' | 'vlek' = 'vcek') => `https://kdsintf.amd.com/${key}/v1/${product}/crl`,
  intelRoot: 'https://certificates.trustedservices.intel.com/IntelSGXRootCA.der',
  intelPck: (ca: 'processor' | 'platform') => `https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=${ca}&encoding=der`,
} as const;
