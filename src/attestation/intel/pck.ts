// The PCK certificate's SGX extensions (OID 1.2.840.113741.1.13.1): a SEQUENCE of (OID, value)
// pairs, with the TCB nested once more. No X.509 library models it, so it is walked here.
import { toHex } from '../bytes.ts';
import { TAG, children, decodeBoolean, decodeOid, decodeSmallUint, expectTag, readWhole, type Tlv } from '../der.ts';
import { VerificationError } from '../types.ts';

export const SGX_EXTENSION_OID = '1.2.840.113741.1.13.1';
const O = SGX_EXTENSION_OID;

export interface PckExtensions {
  ppid: string;
  /** The 16 SGX TCB component SVNs the PCK certificate was issued for (what the TCB level is matched on). */
  tcbComponents: number[];
  pceSvn: number;
  cpuSvn: string;
  pceId: string;
  fmspc: string;
  /** 0 Standard, 1 Scalable, 2 Scalable with integrity. */
  sgxType: number;
  /** Platform CA certificates only. */
  platformInstanceId?: string;
  configuration?: { dynamicPlatform?: boolean; cachedKeys?: boolean; smtEnabled?: boolean };
}

/** SEQUENCE OF SEQUENCE { OID, value } as a map from OID to the value's TLV. */
function oidMap(seq: Tlv): Map<string, Tlv> {
  const map = new Map<string, Tlv>();
  for (const item of children(expectTag(seq, TAG.SEQUENCE))) {
    const parts = children(expectTag(item, TAG.SEQUENCE));
    if (parts.length !== 2) throw new Error('expected SEQUENCE { OID, value }');
    const oid = decodeOid(parts[0]!);
    if (map.has(oid)) throw new Error(`duplicate entry ${oid}`);
    map.set(oid, parts[1]!);
  }
  return map;
}

function need(map: Map<string, Tlv>, oid: string, what: string): Tlv {
  const tlv = map.get(oid);
  if (!tlv) throw new Error(`${what} (${oid}) is missing`);
  return tlv;
}

function octets(map: Map<string, Tlv>, oid: string, what: string, len: number): string {
  const v = expectTag(need(map, oid, what), TAG.OCTET_STRING).content;
  if (v.length !== len) throw new Error(`${what} must be ${len} bytes, not ${v.length}`);
  return toHex(v);
}

function svn(map: Map<string, Tlv>, oid: string, what: string, max: number): number {
  const v = decodeSmallUint(need(map, oid, what));
  if (v > max) throw new Error(`${what} ${v} exceeds ${max}`);
  return v;
}

/** Decodes the SGX extension's extnValue. Throws VerificationError('parse') with the reason. */
export function decodePckExtensions(extnValue: Uint8Array): PckExtensions {
  try {
    const top = oidMap(readWhole(extnValue));
    const tcb = oidMap(need(top, `${O}.2`, 'TCB'));
    const out: PckExtensions = {
      ppid: octets(top, `${O}.1`, 'PPID', 16),
      tcbComponents: Array.from({ length: 16 }, (_, i) => svn(tcb, `${O}.2.${i + 1}`, `TCB component ${i + 1}`, 255)),
      pceSvn: svn(tcb, `${O}.2.17`, 'PCESVN', 0xffff),
      cpuSvn: octets(tcb, `${O}.2.18`, 'CPUSVN', 16),
      pceId: octets(top, `${O}.3`, 'PCE-ID', 2),
      fmspc: octets(top, `${O}.4`, 'FMSPC', 6),
      sgxType: decodeSmallUint({ ...expectTag(need(top, `${O}.5`, 'SGX type'), TAG.ENUMERATED), tag: TAG.INTEGER }),
    };
    if (top.has(`${O}.6`)) out.platformInstanceId = octets(top, `${O}.6`, 'platform instance id', 16);
    const conf = top.get(`${O}.7`);
    if (conf) {
      const flags = oidMap(conf);
      const flag = (n: number) => {
        const v = flags.get(`${O}.7.${n}`);
        return v ? decodeBoolean(v) : undefined;
      };
      out.configuration = { dynamicPlatform: flag(1), cachedKeys: flag(2), smtEnabled: flag(3) };
    }
    return out;
  } catch (err) {
    throw new VerificationError('parse', `PCK certificate SGX extension: ${(err as Error).message}`, { cause: err });
  }
}
