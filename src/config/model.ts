/** The Enarx.toml model: Enarx 0.7's format, plus `[[files]] kind = "dir"`. */

export type Protocol = 'tcp' | 'tls';

export type FileSpec =
  | { readonly kind: 'null' | 'stdin' | 'stdout' | 'stderr'; readonly name: string }
  /** clientCaFile (Enarx.toml `client_ca`, our extension): TLS clients must present a certificate chaining to these PEM CAs. */
  | { readonly kind: 'listen'; readonly name: string; readonly prot: Protocol; readonly addr: string; readonly port: number; readonly clientCaFile?: string }
  /** caFile (Enarx.toml `ca`, our extension): PEM CAs trusted for the server, besides the system roots. */
  | { readonly kind: 'connect'; readonly name: string; readonly prot: Protocol; readonly host: string; readonly port: number; readonly caFile?: string }
  /** A host directory preopened for the guest at `name`; `path` is absolute once parsed. */
  | { readonly kind: 'dir'; readonly name: string; readonly path: string; readonly readonly: boolean };

export type FileKind = FileSpec['kind'];

export interface EnarxConfig {
  /** The Steward's URL; absent means a self-signed Keep certificate. */
  readonly steward?: string;
  readonly args: readonly string[];
  /** In file order. */
  readonly env: readonly (readonly [string, string])[];
  readonly files: readonly FileSpec[];
  /**
   * Keys added by other components (limits, TLS CA options...), parsed by the handlers
   * registered in schema.ts, keyed by top-level name.
   */
  readonly extensions: Readonly<Record<string, unknown>>;
}

/** Enarx's default when no Enarx.toml is given: stdin, stdout, stderr. */
export const DEFAULT_FILES: readonly FileSpec[] = [
  { kind: 'stdin', name: 'stdin' },
  { kind: 'stdout', name: 'stdout' },
  { kind: 'stderr', name: 'stderr' },
];

/** FD_COUNT and FD_NAMES, exactly as Enarx sets them (names joined by ':'). */
export function fdEnvironment(files: readonly FileSpec[]): [string, string][] {
  return [
    ['FD_COUNT', String(files.length)],
    ['FD_NAMES', files.map((f) => f.name).join(':')],
  ];
}

/** The CA file an entry names: `client_ca` of a listen file, `ca` of a connect file. */
export function caFileOf(f: FileSpec): string | undefined {
  return f.kind === 'listen' ? f.clientCaFile : f.kind === 'connect' ? f.caFile : undefined;
}

/** The PEM certificates in a CA file's text, one block each (newline-terminated), as a Keep's TLS takes them. */
export function pemCertificateBlocks(text: string): string[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((c) => `${c}\n`);
}
