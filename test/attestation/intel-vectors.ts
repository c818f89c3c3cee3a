// The shared SGX/TDX vectors with the collateral and `now` their README documents.
import { readFileSync } from 'node:fs';
import { testdata } from '../helpers/paths.ts';
import { loadIntelCollateral, type IntelVerifyOptions } from '../../src/attestation/intel/index.ts';

export const read = (...parts: string[]): Uint8Array => new Uint8Array(readFileSync(testdata(...parts)));
export const readText = (...parts: string[]): string => readFileSync(testdata(...parts), 'utf8');

export function collateralFrom(...paths: string[][]) {
  return loadIntelCollateral(paths.map((p) => ({ name: p.join('/'), bytes: read(...p) })));
}

export interface Vector {
  quote: Uint8Array;
  options: IntelVerifyOptions;
}

export function phalaSgx(now = '2025-07-01T00:00:00Z'): Vector {
  return {
    quote: read('attestation', 'sgx', 'phala-sgx-v3', 'quote.bin'),
    options: { collateral: collateralFrom(['attestation', 'sgx', 'phala-sgx-v3', 'collateral.json']), now: new Date(now) },
  };
}

export function phalaTdx(now = '2025-07-01T00:00:00Z'): Vector {
  return {
    quote: read('attestation', 'tdx', 'phala-tdx-v4', 'quote.bin'),
    options: { collateral: collateralFrom(['attestation', 'tdx', 'phala-tdx-v4', 'collateral.json']), now: new Date(now) },
  };
}

export function phalaTdxV5(now = '2026-03-01T00:00:00Z'): Vector {
  const dir = ['attestation', 'tdx', 'phala-tdx-v5-tcb-not-supported'];
  return { quote: read(...dir, 'quote.bin'), options: { collateral: collateralFrom([...dir, 'collateral.json']), now: new Date(now) } };
}

/** MobileCoin's raw PCS collateral; `withPckCrl: false` leaves out the (expired) PCK CRL. */
export function mobilecoin(withPckCrl = true, now = '2023-07-20T00:00:00Z'): Vector {
  const dir = ['attestation', 'sgx', 'mobilecoin-sgx-v3'];
  const files = [
    [...dir, 'tcb_info_fmspc_00906ED50000.json'],
    [...dir, 'qe_identity.json'],
    [...dir, 'tcb_signing_cert.pem'],
    [...dir, 'root_ca_crl.der'],
    ...(withPckCrl ? [[...dir, 'pck_crl_processor.der']] : []),
  ];
  return { quote: read(...dir, 'quote.bin'), options: { collateral: collateralFrom(...files), now: new Date(now) } };
}

/** The SGX evidence of a real Enarx Keep (Ice Lake), extracted from its CSR: quote, CRLs, TCB info, signing cert. */
export function icelake(which: 'i5' | 'xeon', now = '2023-02-01T00:00:00Z'): Vector {
  const dir = ['enarx-steward', 'extracted', `icelake-${which}`];
  const files = ['tcb-info.json', 'tcb-signing.der', 'crl-root.der', 'crl-pck-processor.der', 'crl-pck-platform.der'].map((f) => [...dir, f]);
  return { quote: read(...dir, 'quote.bin'), options: { collateral: collateralFrom(...files), now: new Date(now) } };
}
