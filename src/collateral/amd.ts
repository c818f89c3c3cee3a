import { toHex } from '../attestation/bytes.ts';
import { KDS_PRODUCT_NAMES, productOfCpu } from '../attestation/snp/report.ts';
import { parseCertificate, parseCertificates, parseCrl } from '../attestation/x509.ts';
import { CollateralError, type CollateralService, type Document } from './service.ts';

/** KDS product path components. Genoa also covers Bergamo and Siena. */
export const AMD_PRODUCTS = Object.values(KDS_PRODUCT_NAMES);
export type AmdProduct = (typeof AMD_PRODUCTS)[number];
export type AmdKeyKind = 'vcek' | 'vlek';

/** The SPLs of REPORTED_TCB, the TCB a VCEK is derived for. `fmc` exists on Turin only. */
export interface SnpTcb {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  fmc?: number;
}

export function parseProduct(text: string): AmdProduct {
  const found = AMD_PRODUCTS.find((p) => p.toLowerCase() === text.toLowerCase());
  if (!found) throw new CollateralError(`unknown AMD product '${text}' (expected ${AMD_PRODUCTS.join(', ')})`);
  return found;
}

/** The hwid path component: CHIP_ID in hex, only its first 8 bytes on Turin. */
export function hwid(product: AmdProduct, chipId: Uint8Array): string {
  if (chipId.length !== 64) throw new CollateralError(`a chip id is 64 bytes, got ${chipId.length}`);
  if (chipId.every((b) => b === 0)) throw new CollateralError('the chip id is all zero (masked by the host, or a VLEK report): no VCEK can be fetched for it');
  return toHex(product === 'Turin' ? chipId.subarray(0, 8) : chipId);
}

export function vcekUrl(base: string, product: AmdProduct, chipId: Uint8Array, tcb: SnpTcb): string {
  const spl = (n: number, name: string) => {
    if (!Number.isInteger(n) || n < 0 || n > 255) throw new CollateralError(`${name} must be 0..255, got ${n}`);
    return String(n);
  };
  const fmc = product === 'Turin' ? `fmcSPL=${spl(tcb.fmc ?? -1, 'fmcSPL')}&` : '';
  return (
    `${base}/vcek/v1/${product}/${hwid(product, chipId)}?${fmc}blSPL=${spl(tcb.bootloader, 'blSPL')}` +
    `&teeSPL=${spl(tcb.tee, 'teeSPL')}&snpSPL=${spl(tcb.snp, 'snpSPL')}&ucodeSPL=${spl(tcb.microcode, 'ucodeSPL')}`
  );
}

/** Reads CHIP_ID, REPORTED_TCB and (for v3+) the product from an SNP attestation report. */
export function reportIdentity(report: Uint8Array, product?: AmdProduct): { product: AmdProduct; chipId: Uint8Array; tcb: SnpTcb } {
  if (report.length !== 0x4a0) throw new CollateralError(`an SNP report is 1184 bytes, got ${report.length}`);
  const version = report[0]! | (report[1]! << 8);
  const cpu = version >= 3 ? productOfCpu(report[0x188]!, report[0x189]!) : undefined;
  const detected: AmdProduct | undefined = cpu && KDS_PRODUCT_NAMES[cpu];
  const chosen = product ?? detected;
  if (!chosen) throw new CollateralError(`cannot tell the AMD product of a version ${version} report; give --product (${AMD_PRODUCTS.join(', ')})`);
  if (product && detected && product !== detected) throw new CollateralError(`the report is from a ${detected} CPU, not ${product}`);
  return { product: chosen, chipId: report.slice(0x1a0, 0x1e0), tcb: snpTcb(chosen, report.subarray(0x180, 0x188)) };
}

/** The SPLs of an 8-byte TCB_VERSION, whose layout Turin changed (it added the FMC's). */
export function snpTcb(product: AmdProduct, raw: Uint8Array): SnpTcb {
  if (raw.length !== 8) throw new CollateralError(`a TCB version is 8 bytes, got ${raw.length}`);
  return product === 'Turin'
    ? { fmc: raw[0]!, bootloader: raw[1]!, tee: raw[2]!, snp: raw[3]!, microcode: raw[7]! }
    : { bootloader: raw[0]!, tee: raw[1]!, snp: raw[6]!, microcode: raw[7]! };
}

/** The VCEK for one chip at one TCB (DER), cached until it expires (KDS issues them for 7 years). */
export function fetchVcek(service: CollateralService, product: AmdProduct, chipId: Uint8Array, tcb: SnpTcb): Promise<Document> {
  const id = hwid(product, chipId);
  const tcbPart = `${tcb.fmc !== undefined && product === 'Turin' ? `${tcb.fmc}-` : ''}${tcb.bootloader}-${tcb.tee}-${tcb.snp}-${tcb.microcode}`;
  return service.get({
    key: `amd/${product}/vcek-${id}-${tcbPart}.der`,
    url: vcekUrl(service.options.amdBaseUrl, product, chipId, tcb),
    what: `the ${product} VCEK for chip ${id.slice(0, 16)}… at TCB ${tcbPart}`,
    validate: (body) => {
      const cert = parseCertificate(body);
      if (!/SEV-VCEK/.test(cert.subject.text)) throw new Error(`its subject is '${cert.subject.text}', not SEV-VCEK`);
      return { expiresAt: cert.notAfter };
    },
  });
}

/** ASK (or ASVK for VLEK) then ARK, PEM, as KDS serves them. */
export function fetchCertChain(service: CollateralService, product: AmdProduct, kind: AmdKeyKind = 'vcek'): Promise<Document> {
  return service.get({
    key: `amd/${product}/${kind}-cert_chain.pem`,
    url: `${service.options.amdBaseUrl}/${kind}/v1/${product}/cert_chain`,
    what: `the ${product} ${kind.toUpperCase()} certificate chain`,
    validate: (body) => {
      const certs = parseCertificates(body);
      if (certs.length !== 2) throw new Error(`expected 2 certificates (ASK, ARK), got ${certs.length}`);
      const ark = certs[1]!;
      if (ark.subject.text !== ark.issuer.text) throw new Error('the second certificate is not a self-signed ARK');
      return { expiresAt: new Date(Math.min(...certs.map((c) => c.notAfter.getTime()))) };
    },
  });
}

/** The ARK's CRL (DER), which revokes ASKs; cached until its nextUpdate. */
export function fetchAmdCrl(service: CollateralService, product: AmdProduct, kind: AmdKeyKind = 'vcek'): Promise<Document> {
  return service.get({
    key: `amd/${product}/${kind}-crl.der`,
    url: `${service.options.amdBaseUrl}/${kind}/v1/${product}/crl`,
    what: `the ${product} ${kind.toUpperCase()} CRL`,
    validate: (body) => crlExpiry(body, `ARK-${product}`),
  });
}

export function crlExpiry(body: Uint8Array, issuerCn?: string): { expiresAt: Date } {
  const crl = parseCrl(body);
  if (issuerCn && !crl.issuer.text.includes(issuerCn)) throw new Error(`the CRL is issued by '${crl.issuer.text}', not ${issuerCn}`);
  if (!crl.nextUpdate) throw new Error('the CRL has no nextUpdate');
  return { expiresAt: crl.nextUpdate };
}
