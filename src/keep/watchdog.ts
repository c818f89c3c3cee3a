/**
 * The nil Keep's wall-time limit for a guest that never lets go: the guest runs on enarx's own
 * thread, and its event loop (where the limit's timer runs) turns only while the guest waits, so a
 * guest computing without waiting would run past its limit. A worker thread keeps its own clock:
 * if the run is still going `graceMs` after the limit, it says so on stderr and ends the whole
 * enarx process with SIGKILL (exit status 137, as the process Keep's host ends a Keep). Whoever
 * can still run the timer on the main thread disarms it first and stops the guest the usual way.
 */
const WATCHDOG = `
const { workerData } = require('node:worker_threads');
setTimeout(() => {
  require('node:fs').writeSync(2, workerData.message);
  process.kill(process.pid, 'SIGKILL');
}, workerData.ms);
`;

/** Arms the watchdog; the returned function disarms it. */
export function armWatchdog(ms: number, message: string): () => void {
  const { Worker } = process.getBuiltinModule('node:worker_threads');
  const worker = new Worker(WATCHDOG, { eval: true, workerData: { ms, message: `enarx: ${message}\n` }, stdout: false, stderr: false });
  worker.unref();
  let armed = true;
  return () => {
    if (!armed) return;
    armed = false;
    void worker.terminate();
  };
}
