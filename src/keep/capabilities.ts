import type { FileSpec } from '../config/index.ts';
import type { DescriptorCapability, InputStream, NetworkProvider, OutputStream } from '../wasi/io.ts';

/** What a Keep supplies to open a workload's [[files]]: its stdio and, if any, its network. */
export interface KeepIo {
  stdin(): InputStream;
  stdout(): OutputStream;
  stderr(): OutputStream;
  /** Absent when the Keep offers no networking: listen/connect entries then fail to open. */
  network?: NetworkProvider;
}

export class KeepSetupError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'KeepSetupError';
    this.hint = hint;
  }
}

/**
 * Opens every file entry, in order (fd i is files[i]). Sockets are opened before the
 * workload starts, as in Enarx; if one fails, those already open are closed.
 */
export async function openDescriptors(files: readonly FileSpec[], io: KeepIo): Promise<DescriptorCapability[]> {
  const out: DescriptorCapability[] = [];
  try {
    for (const f of files) {
      switch (f.kind) {
        case 'null': out.push({ kind: 'null', name: f.name }); break;
        case 'stdin': out.push({ kind: 'input', name: f.name, stream: io.stdin() }); break;
        case 'stdout': out.push({ kind: 'output', name: f.name, stream: io.stdout() }); break;
        case 'stderr': out.push({ kind: 'output', name: f.name, stream: io.stderr() }); break;
        case 'dir': out.push({ kind: 'dir', name: f.name, dir: { hostPath: f.path, guestPath: f.name, readonly: f.readonly } }); break;
        case 'listen':
        case 'connect': {
          const net = io.network;
          if (!net) throw new KeepSetupError(`cannot open '${f.name}': this Keep has no networking`, 'use a backend with networking');
          try {
            if (f.kind === 'listen') {
              out.push({ kind: 'listener', name: f.name, listener: await net.listen(f) });
            } else {
              out.push({ kind: 'connection', name: f.name, connection: await net.connect(f) });
            }
          } catch (err) {
            if (err instanceof KeepSetupError) throw err;
            const where = f.kind === 'listen' ? `${f.addr} port ${f.port}` : `${f.host} port ${f.port}`;
            throw new KeepSetupError(`cannot ${f.kind} on ${where} for '${f.name}': ${(err as Error).message ?? err}`);
          }
          break;
        }
      }
    }
    return out;
  } catch (err) {
    for (const d of out) closeCapability(d);
    throw err;
  }
}

function closeCapability(d: DescriptorCapability): void {
  try {
    if (d.kind === 'listener') d.listener.close();
    else if (d.kind === 'connection') d.connection.close();
  } catch {
    // Best effort while unwinding a failed start.
  }
}
