import { mkdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';

/**
 * The few file operations evidence collection performs. The kernel's configfs-tsm and Gramine's
 * /dev/attestation are pseudo-filesystems whose files act when written and read, so tests inject a
 * fake that behaves like them; production uses the real filesystem.
 */
export interface AttestationFs {
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
  /** Writes the whole buffer in one write(2), as configfs attributes require. */
  writeFile(path: string, data: Uint8Array): Promise<void>;
  /** 'dir', 'file' or null when the path does not exist. */
  kind(path: string): Promise<'dir' | 'file' | null>;
}

export const nodeFs: AttestationFs = {
  mkdir: (path) => mkdir(path),
  rmdir: (path) => rmdir(path),
  readFile: async (path) => new Uint8Array(await readFile(path)),
  writeFile: (path, data) => writeFile(path, data),
  async kind(path) {
    try {
      const s = await stat(path);
      return s.isDirectory() ? 'dir' : 'file';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
      throw err;
    }
  },
};

export function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Evidence could not be collected. The message says what is missing and what to do. */
export class CollectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CollectionError';
  }
}

export function checkReportData(reportData: Uint8Array): void {
  if (!(reportData instanceof Uint8Array) || reportData.length !== 64) {
    throw new CollectionError(`report data must be exactly 64 bytes, got ${reportData?.length ?? 'none'}`);
  }
}
