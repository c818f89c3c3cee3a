import { readFileSync } from 'node:fs';

/**
 * True while the process exists and has not exited. An orphaned Keep that has exited stays a
 * zombie until init reaps it, which a loaded host (or a container whose init reaps lazily) may
 * put off for seconds; kill(pid, 0) still succeeds on a zombie, so its state is read instead.
 */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}
