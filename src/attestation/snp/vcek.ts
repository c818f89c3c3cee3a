/**
 * AMD's X.509 extensions in VCEK and VLEK certificates (OID arc 1.3.6.1.4.1.3704.1): the TCB the key
 * was derived for, the chip it belongs to (VCEK) or the cloud provider it was issued to (VLEK).
 */
import { DerError, TAG, decodeSmallUint, decodeString, readWhole } from '../der.ts';
import { VerificationError } from '../types.ts';
import type { Certificate } from '../x509.ts';
import type { SnpProduct } from '../roots.ts';

export const AMD_OID = {
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSpl: '1.3.6.1.4.1.3704.1.3.1',
  teeSpl: '1.3.6.1.4.1.3704.1.3.2',
  snpSpl: '1.3.6.1.4.1.3704.1.3.3',
  ucodeSpl: '1.3.6.1.4.1.3704.1.3.8',
  fmcSpl: '1.3.6.1.4.1.3704.1.3.9',
  hwId: '1.3.6.1.4.1.3704.1.4',
  cspId: '1.3.6.1.4.1.3704.1.5',
} as const;

export interface AmdKeyExtensions {
  structVersion: number | undefined;
  /** e.g. "Milan-B0", "Genoa", "Turin", "Milan" (the stepping suffix is not reliable). */
  productName: string | undefined;
  tcb: { bootloader: number | undefined; tee: number | undefined; snp: number | undefined; microcode: number | undefined; fmc: number | undefined };
  /** VCEK: CHIP_ID (64 bytes; 8 on Turin). Absent on a VLEK. */
  hwId: Uint8Array | undefined;
  /** VLEK: the cloud provider it was issued to. */
  cspId: string | undefined;
}

function read<T>(cert: Certificate, oid: string, decode: (value: Uint8Array) => T): T | undefined {
  const ext = cert.extension(oid);
  if (!ext) return undefined;
  try {
    return decode(ext.value);
  } catch (err) {
    const why = err instanceof DerError ? err.message : String(err);
    throw new VerificationError('parse', `certificate ${cert.label}: malformed AMD extension ${oid}: ${why}`);
  }
}

const integer = (v: Uint8Array) => decodeSmallUint(readWhole(v, TAG.INTEGER));
const ia5 = (v: Uint8Array) => decodeString(readWhole(v, TAG.IA5_STRING));

/**
 * Real VCEKs carry the raw chip id (64 bytes; 8 on Turin). Some tools wrap it in an OCTET STRING;
 * accept that only when the wrapping is exact, since a raw id may itself begin with 0x04.
 */
function unwrapHwId(v: Uint8Array): Uint8Array {
  const wrapped = v.length >= 2 && v[0] === TAG.OCTET_STRING && v[1] === v.length - 2 && (v[1] === 64 || v[1] === 8);
  return wrapped ? v.subarray(2) : v;
}

export function amdKeyExtensions(cert: Certificate): AmdKeyExtensions {
  return {
    structVersion: read(cert, AMD_OID.structVersion, integer),
    productName: read(cert, AMD_OID.productName, ia5),
    tcb: {
      bootloader: read(cert, AMD_OID.blSpl, integer),
      tee: read(cert, AMD_OID.teeSpl, integer),
      snp: read(cert, AMD_OID.snpSpl, integer),
      microcode: read(cert, AMD_OID.ucodeSpl, integer),
      fmc: read(cert, AMD_OID.fmcSpl, integer),
    },
    hwId: read(cert, AMD_OID.hwId, unwrapHwId),
    cspId: read(cert, AMD_OID.cspId, ia5),
  };
}

/** The product a productName names ("Milan-B0" -> milan), or undefined. */
export function productFromName(name: string | undefined): SnpProduct | undefined {
  const base = name?.split('-')[0]?.toLowerCase();
  return base === 'milan' || base === 'genoa' || base === 'turin' ? base : undefined;
}

/** The AMD KDS URL the VCEK for this chip and TCB is served from (for "fetch it here" hints). */
export function kdsVcekUrl(product: SnpProduct, chipId: Uint8Array, tcb: { bootloader: number; tee: number; snp: number; microcode: number; fmc?: number }): string {
  const name = product[0]!.toUpperCase() + product.slice(1);
  const hwid = Array.from(product === 'turin' ? chipId.subarray(0, 8) : chipId, (b) => b.toString(16).padStart(2, '0')).join('');
  const fmc = product === 'turin' ? `fmcSPL=${tcb.fmc ?? 0}&` : '';
  return `https://kdsintf.amd.com/vcek/v1/${name}/${hwid}?${fmc}blSPL=${tcb.bootloader}&teeSPL=${tcb.tee}&snpSPL=${tcb.snp}&ucodeSPL=${tcb.microcode}`;
}
