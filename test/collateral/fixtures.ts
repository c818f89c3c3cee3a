import { readFileSync } from 'node:fs';
import { decodeIntelQuote } from '../../src/attestation/intel/index.ts';
import { parseCertificates, parsePem } from '../../src/attestation/x509.ts';
import { testdata } from '../helpers/paths.ts';
import type { Route } from './server.ts';

// The recorded AMD KDS and Intel PCS answers in ../shared/testdata, keyed by the path a client asks
// for. PEM files are served as DER where KDS and PCS serve DER.
const read = (...p: string[]) => new Uint8Array(readFileSync(testdata(...p)));
const text = (...p: string[]) => readFileSync(testdata(...p), 'utf8');
const pemDer = (pem: string, label: string) => parsePem(pem).find((b) => b.label === label)!.der;
const toPem = (der: Uint8Array) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;

export const SNP = 'sev-snp';
export const milanV2Report = read('attestation', SNP, 'milan-v2-gosevguest', 'report.bin');
export const milanV2Vcek = read('attestation', SNP, 'milan-v2-gosevguest', 'vcek.der');
export const genoaReport = read('attestation', SNP, 'genoa-v3-azure-trustee', 'report.bin');
export const genoaVcek = parseCertificates(text('attestation', SNP, 'genoa-v3-azure-trustee', 'vcek.pem'))[0]!.der;
export const milanCrl = pemDer(text('attestation', SNP, 'amd-roots', 'crl_vcek_milan.pem'), 'X509 CRL');
export const genoaCrl = pemDer(text('attestation', SNP, 'amd-roots', 'crl_vcek_genoa.pem'), 'X509 CRL');
export const milanChain = text('attestation', SNP, 'amd-roots', 'ask_ark_milan.pem');
export const genoaChain = text('attestation', SNP, 'amd-roots', 'ask_ark_genoa.pem');

const MILAN_V2_CHIP =
  '3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d';
const GENOA_CHIP =
  '0506ffba875e939c2729d20c74eb72b4c5ba6bf7ea1faaa640141f12c6d64782fb487f68ce69dcd021e914cc0d9244327bc121f0242d6470903ad1d4aaea4ad1';
// The KDS URLs the shared README gives for these VCEKs.
export const MILAN_V2_VCEK_PATH = `/vcek/v1/Milan/${MILAN_V2_CHIP}?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68`;
export const GENOA_VCEK_PATH = `/vcek/v1/Genoa/${GENOA_CHIP}?blSPL=10&teeSPL=0&snpSPL=23&ucodeSPL=84`;

export function amdRoutes(): Record<string, Route> {
  return {
    [MILAN_V2_VCEK_PATH]: { body: milanV2Vcek },
    [GENOA_VCEK_PATH]: { body: genoaVcek },
    '/vcek/v1/Milan/cert_chain': { body: milanChain },
    '/vcek/v1/Genoa/cert_chain': { body: genoaChain },
    '/vcek/v1/Milan/crl': { body: milanCrl },
    '/vcek/v1/Genoa/crl': { body: genoaCrl },
  };
}

const MC = ['attestation', 'sgx', 'mobilecoin-sgx-v3'];
export const root = read('attestation', 'sgx', 'intel_sgx_root_ca.der');
const mcQuoteChain = parseCertificates(decodeIntelQuote(read(...MC, 'quote.bin')).certificationData);
export const processorCa = mcQuoteChain[1]!.der;
export const MOBILECOIN_FMSPC = '00906ED50000';
export const mcTcbInfo = read(...MC, 'tcb_info_fmspc_00906ED50000.json');
export const mcQeIdentity = read(...MC, 'qe_identity.json');
export const mcPckCrl = read(...MC, 'pck_crl_processor.der');
export const mcRootCrl = read(...MC, 'root_ca_crl.der');
const tcbChain = encodeURIComponent(text(...MC, 'tcb_signing_cert.pem') + toPem(root));
const pckCrlChain = encodeURIComponent(toPem(processorCa) + toPem(root));

const TDX = ['attestation', 'tdx', 'phala-tdx-v4'];
const tdx = JSON.parse(text(...TDX, 'collateral.json')) as Record<string, string>;
export const TDX_FMSPC = 'B0C06F000000';
export const tdxTcbInfo = `{"tcbInfo":${tdx.tcb_info},"signature":"${tdx.tcb_info_signature}"}`;
export const tdxQeIdentity = `{"enclaveIdentity":${tdx.qe_identity},"signature":"${tdx.qe_identity_signature}"}`;

export function intelRoutes(): Record<string, Route> {
  return {
    [`/sgx/certification/v4/tcb?fmspc=${MOBILECOIN_FMSPC}`]: { body: mcTcbInfo, headers: { 'TCB-Info-Issuer-Chain': tcbChain } },
    '/sgx/certification/v4/qe/identity': { body: mcQeIdentity, headers: { 'SGX-Enclave-Identity-Issuer-Chain': tcbChain } },
    '/sgx/certification/v4/pckcrl?ca=processor&encoding=der': { body: mcPckCrl, headers: { 'SGX-PCK-CRL-Issuer-Chain': pckCrlChain } },
    '/IntelSGXRootCA.der': { body: mcRootCrl },
    [`/tdx/certification/v4/tcb?fmspc=${TDX_FMSPC}`]: {
      body: tdxTcbInfo,
      headers: { 'TCB-Info-Issuer-Chain': encodeURIComponent(tdx.tcb_info_issuer_chain!) },
    },
    '/tdx/certification/v4/qe/identity': {
      body: tdxQeIdentity,
      headers: { 'SGX-Enclave-Identity-Issuer-Chain': encodeURIComponent(tdx.qe_identity_issuer_chain!) },
    },
  };
}

/** Phala's TDX collateral as PCS would serve it (TCB info, TD_QE identity, Platform CA CRL, Root CA CRL). */
export function phalaTdxRoutes(): Record<string, Route> {
  const routes = intelRoutes();
  return {
    [`/tdx/certification/v4/tcb?fmspc=${TDX_FMSPC}`]: routes[`/tdx/certification/v4/tcb?fmspc=${TDX_FMSPC}`]!,
    '/tdx/certification/v4/qe/identity': routes['/tdx/certification/v4/qe/identity']!,
    '/sgx/certification/v4/pckcrl?ca=platform&encoding=der': {
      body: Buffer.from(tdx.pck_crl!, 'hex'),
      headers: { 'SGX-PCK-CRL-Issuer-Chain': encodeURIComponent(tdx.pck_crl_issuer_chain!) },
    },
    '/IntelSGXRootCA.der': { body: Buffer.from(tdx.root_ca_crl!, 'hex') },
  };
}

/** The Ice Lake i5's PCK certificate (from its quote), as PCS answers a pckcert request. */
const i5Chain = parseCertificates(decodeIntelQuote(new Uint8Array(readFileSync(testdata('enarx-steward', 'extracted', 'icelake-i5', 'quote.bin')))).certificationData);
export const I5_PCKID = 'aa'.repeat(384) + ',0000,090effffffff04000000000000000000,0a00,' + 'bb'.repeat(16);
export const I5_PCKCERT_PATH = `/sgx/certification/v4/pckcert?encrypted_ppid=${'aa'.repeat(384)}&cpusvn=090effffffff04000000000000000000&pcesvn=0a00&pceid=0000`;
export function pckCertRoute(): Route {
  return {
    body: toPem(i5Chain[0]!.der),
    headers: { 'SGX-PCK-Certificate-Issuer-Chain': encodeURIComponent(toPem(i5Chain[1]!.der) + toPem(i5Chain[2]!.der)), 'SGX-FMSPC': '00706E470000' },
  };
}
