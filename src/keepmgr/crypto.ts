/**
 * The cryptography shared by the Keep-side agent and the client: the report-data binding of the
 * Keep's key and the client's nonce, the provisioning JWE, and the sealed output channel.
 * WebCrypto, jose and cborg only, so it runs inside a Keep under the permission model.
 */
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader, importJWK, exportJWK } from 'jose';
import type { JWK } from 'jose';
import { encode, decode } from 'cborg';
import { createCipheriv } from 'node:crypto';
import { concatBytes, toHex } from '../attestation/bytes.ts';

export { toHex };

const subtle = globalThis.crypto.subtle;
const te = new TextEncoder();

export const PROTOCOL = 'enarx-keepmgr/v1';
export const KEY_CURVE = 'P-384';
export const NONCE_BYTES = 32;
/** Provisioned wasm is capped as Enarx caps it (100 MB); Enarx.toml at 1 MB. */
export const MAX_WASM_BYTES = 100 * 1024 * 1024;
export const MAX_CONFIG_BYTES = 1024 * 1024;
export const MAX_STDIN_BYTES = 16 * 1024 * 1024;
/** CA certificates for the Enarx.toml's `ca`/`client_ca` files: at most this many PEM bytes in all. */
export const MAX_CA_BYTES = 1024 * 1024;

export class ChannelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChannelError';
  }
}

// concatBytes allocates a fresh ArrayBuffer, which is what WebCrypto's BufferSource wants.
const concat = (...parts: Uint8Array[]) => concatBytes(...parts) as Uint8Array<ArrayBuffer>;

function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  return concat(u64(bytes.length), bytes);
}

/** Constant-time comparison, for values the host could probe. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

async function digest(alg: 'SHA-256' | 'SHA-384', data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle.digest(alg, concat(data)));
}

/**
 * The 64 bytes of report data a Keep asks its evidence to carry:
 * SHA-384(SPKI DER of the Keep key) ‖ SHA-256(PROTOCOL ‖ keepId ‖ nonce)[0..16].
 * The first half is Enarx's key hash for SNP, so the Steward's binding check reads it as usual;
 * the second half ties the evidence to this Keep and to the client's fresh challenge.
 */
export async function bindingReportData(spki: Uint8Array, keepId: string, nonce: Uint8Array): Promise<Uint8Array> {
  const keyHash = await digest('SHA-384', spki);
  const challenge = await digest('SHA-256', concat(te.encode(`${PROTOCOL} challenge`), lengthPrefixed(te.encode(keepId)), lengthPrefixed(nonce)));
  return concat(keyHash, challenge.subarray(0, 16));
}

export interface KeepKey {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  spki: Uint8Array;
}

/** The Keep's key: ECDH P-384, generated inside the Keep, its private half never exported. */
export async function generateKeepKey(): Promise<KeepKey> {
  const pair = (await subtle.generateKey({ name: 'ECDH', namedCurve: KEY_CURVE }, false, ['deriveBits', 'deriveKey'])) as CryptoKeyPair;
  const spki = new Uint8Array(await subtle.exportKey('spki', pair.publicKey));
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, spki };
}

export async function importKeepPublicKey(spki: Uint8Array): Promise<CryptoKey> {
  try {
    return await subtle.importKey('spki', concat(spki), { name: 'ECDH', namedCurve: KEY_CURVE }, true, []);
  } catch (err) {
    throw new ChannelError(`the Keep's public key is not an ECDH ${KEY_CURVE} SubjectPublicKeyInfo`);
  }
}

/** What the client provisions; encrypted to the Keep's attested key, so the host sees none of it. */
export interface Provision {
  keepId: string;
  nonce: Uint8Array;
  wasm: Uint8Array;
  /** Enarx.toml text, or null for the defaults (stdin, stdout, stderr). */
  config: string | null;
  /** Bytes the workload reads on stdin. */
  stdin: Uint8Array;
  /** The client's ephemeral ECDH public key for the output channel. */
  outputKey: JWK;
  /** The Steward the Keep gets its certificate from (overrides Enarx.toml's and the host's). */
  steward?: string | null;
  /** PEM certificates of the CA files the Enarx.toml names (`client_ca` of a listen file, `ca` of a connect file), by file name. */
  cas?: Record<string, string[]>;
}

export async function encryptProvision(keepSpki: Uint8Array, p: Provision): Promise<string> {
  const key = await importKeepPublicKey(keepSpki);
  const cas = p.cas !== undefined ? { cas: p.cas } : {};
  const body = encode({ v: 1, keepId: p.keepId, nonce: p.nonce, wasm: p.wasm, config: p.config, stdin: p.stdin, outputKey: p.outputKey, ...(p.steward ? { steward: p.steward } : {}), ...cas });
  return new CompactEncrypt(body)
    .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', cty: 'application/vnd.enarx.provision.v1+cbor', kid: p.keepId, 'enarx-nonce': Buffer.from(p.nonce).toString('base64url') })
    .encrypt(key);
}

/**
 * Opens a provisioning JWE inside the Keep, and checks it was made for this Keep and this
 * challenge: a host that swaps in another Keep's ciphertext, or replays an older one, is caught
 * here (the first fails to decrypt, the second names a stale nonce).
 */
export async function decryptProvision(jwe: string, key: CryptoKey, keepId: string, nonce: Uint8Array): Promise<Provision> {
  let header;
  try {
    header = decodeProtectedHeader(jwe);
  } catch {
    throw new ChannelError('provisioning message is not a compact JWE');
  }
  if (header.alg !== 'ECDH-ES+A256KW' || header.enc !== 'A256GCM') throw new ChannelError(`provisioning JWE uses ${header.alg}/${header.enc}, expected ECDH-ES+A256KW/A256GCM`);
  if (header.kid !== keepId) throw new ChannelError(`provisioning JWE is addressed to Keep ${String(header.kid)}, not to this Keep (${keepId})`);
  let plaintext: Uint8Array;
  try {
    plaintext = (await compactDecrypt(jwe, key, { keyManagementAlgorithms: ['ECDH-ES+A256KW'], contentEncryptionAlgorithms: ['A256GCM'] })).plaintext;
  } catch {
    throw new ChannelError('provisioning JWE does not decrypt with this Keep\'s key (swapped or corrupted ciphertext)');
  }
  let body: Record<string, unknown>;
  try {
    body = decode(plaintext) as Record<string, unknown>;
  } catch {
    throw new ChannelError('provisioning payload is not CBOR');
  }
  if (typeof body !== 'object' || body === null || body.v !== 1) throw new ChannelError('provisioning payload has an unknown version');
  if (body.keepId !== keepId) throw new ChannelError('provisioning payload names another Keep');
  if (!(body.nonce instanceof Uint8Array) || !equalBytes(body.nonce, nonce)) {
    throw new ChannelError('provisioning payload answers another challenge (replayed ciphertext)');
  }
  if (header['enarx-nonce'] !== Buffer.from(nonce).toString('base64url')) throw new ChannelError('provisioning header answers another challenge (replayed ciphertext)');
  if (!(body.wasm instanceof Uint8Array) || body.wasm.length === 0 || body.wasm.length > MAX_WASM_BYTES) throw new ChannelError('provisioning payload has no valid wasm');
  if (body.config !== null && (typeof body.config !== 'string' || body.config.length > MAX_CONFIG_BYTES)) throw new ChannelError('provisioning payload has an invalid Enarx.toml');
  if (!(body.stdin instanceof Uint8Array) || body.stdin.length > MAX_STDIN_BYTES) throw new ChannelError('provisioning payload has invalid stdin data');
  const ok = body.outputKey as JWK | undefined;
  if (typeof ok !== 'object' || ok === null || ok.kty !== 'EC' || ok.crv !== KEY_CURVE || typeof ok.x !== 'string' || typeof ok.y !== 'string' || 'd' in ok) {
    throw new ChannelError('provisioning payload has no valid output key');
  }
  const steward = body.steward ?? null;
  if (steward !== null && (typeof steward !== 'string' || steward.length > 2048 || !URL.canParse(steward))) throw new ChannelError('provisioning payload has an invalid Steward URL');
  const cas = body.cas === undefined ? undefined : provisionedCas(body.cas);
  return { keepId, nonce, wasm: body.wasm, config: body.config as string | null, stdin: body.stdin, outputKey: { kty: 'EC', crv: KEY_CURVE, x: ok.x, y: ok.y }, steward, ...(cas ? { cas } : {}) };
}

/** Checks the payload's CA certificates: a map from file name to a list of PEM certificate blocks. */
function provisionedCas(value: unknown): Record<string, string[]> {
  const invalid = (why: string) => new ChannelError(`provisioning payload has invalid CA certificates: ${why}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) throw invalid('not a map');
  const out: Record<string, string[]> = {};
  let bytes = 0;
  for (const [name, certs] of Object.entries(value)) {
    if (!Array.isArray(certs) || certs.length === 0) throw invalid(`'${name}' is not a list of certificates`);
    for (const c of certs) {
      if (typeof c !== 'string' || !/^-----BEGIN CERTIFICATE-----\n?[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\n$/.test(c)) throw invalid(`'${name}' holds something other than a PEM certificate`);
      bytes += c.length;
    }
    if (bytes > MAX_CA_BYTES) throw invalid(`more than ${MAX_CA_BYTES} bytes`);
    out[name] = certs as string[];
  }
  return out;
}

/** The client's half of the output channel: an ephemeral ECDH key pair. */
export async function generateOutputKeyPair(): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const pair = (await subtle.generateKey({ name: 'ECDH', namedCurve: KEY_CURVE }, true, ['deriveBits'])) as CryptoKeyPair;
  const privateJwk = await exportJWK(pair.privateKey);
  const publicJwk = await exportJWK(pair.publicKey);
  return { privateJwk, publicJwk };
}

/**
 * AES-256-GCM key for the output channel: HKDF-SHA-256 over the ECDH secret of the Keep key and
 * the client's output key, salted with the challenge nonce and bound to the Keep id.
 */
export async function deriveOutputKeyBytes(privateKey: CryptoKey, peerPublic: CryptoKey, keepId: string, nonce: Uint8Array): Promise<Uint8Array> {
  const secret = await subtle.deriveBits({ name: 'ECDH', public: peerPublic }, privateKey, 384);
  const ikm = await subtle.importKey('raw', secret, 'HKDF', false, ['deriveBits']);
  const bits = await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: concat(nonce), info: concat(te.encode(`${PROTOCOL} output `), te.encode(keepId)) }, ikm, 256);
  return new Uint8Array(bits);
}

export async function deriveOutputKey(privateKey: CryptoKey, peerPublic: CryptoKey, keepId: string, nonce: Uint8Array): Promise<CryptoKey> {
  const raw = await deriveOutputKeyBytes(privateKey, peerPublic, keepId, nonce);
  return subtle.importKey('raw', concat(raw), { name: 'AES-GCM', length: 256 }, false, ['decrypt']);
}

/** Keep side: imports the client's output key (a public JWK) for the ECDH. */
export async function importOutputPeer(jwk: JWK): Promise<CryptoKey> {
  return (await importJWK({ ...jwk, alg: 'ECDH-ES' }, 'ECDH-ES')) as CryptoKey;
}

/** Client side: its output private key, from the JWK it kept. */
export async function importOutputPrivate(jwk: JWK): Promise<CryptoKey> {
  return subtle.importKey('jwk', { ...jwk, key_ops: undefined, ext: undefined } as JsonWebKey, { name: 'ECDH', namedCurve: KEY_CURVE }, false, ['deriveBits']);
}

/** One plaintext record of the output channel. `exit` is the Keep's own sealed word on how the workload ended. */
export type OutputPayload =
  | { stream: 'stdout' | 'stderr' | 'log'; data: Uint8Array }
  | { stream: 'exit'; code: number; reason: string | null };

/** A sealed record as the host stores and relays it: the sequence number in clear, everything else sealed. */
export interface SealedRecord {
  seq: number;
  ct: Uint8Array;
}

function recordIv(seq: number): Uint8Array<ArrayBuffer> {
  return concat(new Uint8Array(4), u64(seq));
}

function recordAad(keepId: string, seq: number): Uint8Array<ArrayBuffer> {
  return concat(te.encode(`${PROTOCOL} record `), lengthPrefixed(te.encode(keepId)), u64(seq));
}

/**
 * Seals one record synchronously: the Keep seals output while its workload holds the thread, so
 * that a long-running workload's output leaves the Keep as it is written.
 */
export function sealRecord(key: Uint8Array, keepId: string, seq: number, payload: OutputPayload): SealedRecord {
  const body = payload.stream === 'exit' ? { s: 'exit', code: payload.code, reason: payload.reason } : { s: payload.stream, d: payload.data };
  const cipher = createCipheriv('aes-256-gcm', key, recordIv(seq));
  cipher.setAAD(recordAad(keepId, seq));
  const ct = Buffer.concat([cipher.update(encode(body)), cipher.final(), cipher.getAuthTag()]);
  return { seq, ct: new Uint8Array(ct) };
}

/**
 * Client side of the output channel: accepts records only in order, each exactly once, and
 * only when they authenticate. Anything else means the host dropped, reordered, replayed or
 * altered output, and ends the stream with a ChannelError.
 */
export class OutputReader {
  #next = 0;
  #ended = false;
  #broken: string | undefined;
  readonly #key: CryptoKey;
  readonly #keepId: string;

  constructor(key: CryptoKey, keepId: string) {
    this.#key = key;
    this.#keepId = keepId;
  }

  get nextSeq(): number {
    return this.#next;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Opens one record. Safe to call without awaiting the previous call: order is checked on entry. */
  async open(record: SealedRecord): Promise<OutputPayload> {
    if (this.#broken) throw new ChannelError(this.#broken);
    if (this.#ended) throw this.#fail(`output record ${record.seq} arrived after the sealed exit record (replayed or injected)`);
    if (record.seq !== this.#next) {
      throw this.#fail(
        record.seq < this.#next
          ? `output record ${record.seq} arrived again (replayed by the host)`
          : `output record ${record.seq} arrived where ${this.#next} was expected (the host dropped or reordered output)`,
      );
    }
    this.#next++;
    let plain: ArrayBuffer;
    try {
      plain = await subtle.decrypt({ name: 'AES-GCM', iv: recordIv(record.seq), additionalData: recordAad(this.#keepId, record.seq) }, this.#key, concat(record.ct));
    } catch {
      throw this.#fail(`output record ${record.seq} failed authentication (altered or not from this Keep)`);
    }
    let body: Record<string, unknown>;
    try {
      body = decode(new Uint8Array(plain)) as Record<string, unknown>;
    } catch {
      throw this.#fail(`output record ${record.seq} is not CBOR`);
    }
    if (body.s === 'exit') {
      this.#ended = true;
      return { stream: 'exit', code: Number(body.code), reason: typeof body.reason === 'string' ? body.reason : null };
    }
    if ((body.s === 'stdout' || body.s === 'stderr' || body.s === 'log') && body.d instanceof Uint8Array) return { stream: body.s, data: body.d };
    throw this.#fail(`output record ${record.seq} has an unknown shape`);
  }

  #fail(message: string): ChannelError {
    this.#broken ??= message;
    return new ChannelError(message);
  }
}
