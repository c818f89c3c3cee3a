/**
 * The Keep process bin/enarx (the shell launcher) started before this host's Node, seen through
 * the part of ChildProcess the host uses. The launcher made three pipes and became this process
 * (exec), so the Keep is this process's child, and its ends are fixed descriptors: the sallyport
 * from the Keep on fd 3 and to it on fd 4, the Keep's stderr on fd 5.
 *
 * Node did not spawn it, so Node never reaps it: when it exits it stays a zombie until this process
 * exits, its pid cannot be reused meanwhile (kill is safe), and /proc/PID/stat keeps its wait status.
 */
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { pipePair, SALLYPORT_READ_BYTES } from './pipes.ts';

const { EventEmitter } = process.getBuiltinModule('node:events');
const { closeSync, constants: fsConstants, fstatSync, openSync, readFileSync, writevSync } = process.getBuiltinModule('node:fs');
const { constants } = process.getBuiltinModule('node:os');

const FROM_KEEP_FD = 3;
const TO_KEEP_FD = 4;
const KEEP_STDERR_FD = 5;

/** The spawn options bin/enarx.js reports for such a Keep: a run adopts it only if they are these. */
export const SHELL_KEEP_LAYOUT = { launcher: 'bin/enarx', fds: [FROM_KEEP_FD, TO_KEEP_FD, KEEP_STDERR_FD], env: {} } as const;

/** How often the host looks for the Keep's exit status once both of its pipes have closed. */
const EXIT_POLL_MS = 2;

/** The Keep bin/enarx started as process `pid`, with its pipes on this process's fds 3, 4 and 5. */
export function adoptKeep(pid: number): ChildProcess {
  return new AdoptedKeep(pid) as unknown as ChildProcess;
}

/**
 * Writes `frames` to an adopted Keep's sallyport before its streams exist, as much as its pipe
 * takes now without waiting; returns how many bytes it wrote (0 for any other Keep, or once the
 * streams exist: the endpoint then writes). The host hands over the workload this way first, and
 * loads node:net and sets up its streams (milliseconds) while the Keep compiles and runs it.
 */
export function writeBeforeStreams(child: ChildProcess, frames: readonly Uint8Array[]): number {
  return (child as unknown) instanceof AdoptedKeep ? (child as unknown as AdoptedKeep).writeBeforeStreams(frames) : 0;
}

type Streams = { stderr: Socket; stdio: [null, null, Socket, ReturnType<typeof pipePair> & { outputFd: number }] };

class AdoptedKeep extends EventEmitter {
  readonly pid: number;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  #streams: Streams | undefined;

  constructor(pid: number) {
    super();
    this.pid = pid;
  }

  // Made at their first use: node:net and the sockets cost milliseconds, which a run spends after
  // it has handed over its workload (writeBeforeStreams).
  get stderr(): Socket {
    return this.#open().stderr;
  }

  get stdio(): Streams['stdio'] {
    return this.#open().stdio;
  }

  #open(): Streams {
    if (this.#streams) return this.#streams;
    // The sallyport writes its frames straight to the descriptor while nothing is queued (endpoint.ts).
    const pipe = { ...pipePair(FROM_KEEP_FD, TO_KEEP_FD, SALLYPORT_READ_BYTES), outputFd: TO_KEEP_FD };
    const fromKeep = pipe.input;
    const { Socket: NetSocket } = process.getBuiltinModule('node:net');
    const stderr = new NetSocket({ fd: KEEP_STDERR_FD, readable: true, writable: false });
    this.#streams = { stderr, stdio: [null, null, stderr, pipe] };
    // The Keep holds the other ends until it exits: once both are closed, its status follows.
    let open = 2;
    const closed = () => {
      if (--open === 0) this.#awaitExit();
    };
    fromKeep.once('close', closed);
    stderr.once('close', closed);
    return this.#streams;
  }

  /** See writeBeforeStreams. */
  writeBeforeStreams(frames: readonly Uint8Array[]): number {
    if (this.#streams || frames.length === 0) return 0;
    // fd 4 blocks (bash opened it), and the Keep might not be reading: the same pipe, opened again
    // without blocking, takes what fits now. Opening it fails (ENXIO) once the Keep is gone. Only a
    // pipe: what else a descriptor may be, opened again, is not the same (a file's offset).
    let fd: number;
    try {
      if (!fstatSync(TO_KEEP_FD).isFIFO()) return 0;
      fd = openSync(`/proc/self/fd/${TO_KEEP_FD}`, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    } catch {
      return 0;
    }
    try {
      return writevSync(fd, frames as Uint8Array[]);
    } catch {
      return 0; // full (EAGAIN) or closed (EPIPE): the endpoint writes, and meets the same state
    } finally {
      closeSync(fd);
    }
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    if (this.exitCode !== null || this.signalCode !== null) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  // A ChildProcess's; this one never holds the event loop by itself (its pipes do, while open).
  ref(): void {}
  unref(): void {}

  #awaitExit(): void {
    const fields = statFields(this.pid);
    if (fields === undefined) return this.#exited(null, null); // gone: reaped by someone else
    if (fields[0] !== 'Z') return void setTimeout(() => this.#awaitExit(), EXIT_POLL_MS);
    // Field 52 of /proc/PID/stat (Linux 3.5+): the wait status.
    const status = Number(fields[49]);
    const signal = status & 0x7f;
    if (signal === 0) return this.#exited((status >> 8) & 0xff, null);
    const name = Object.entries(constants.signals).find(([, n]) => n === signal)?.[0] as NodeJS.Signals | undefined;
    this.#exited(null, name ?? 'SIGKILL');
  }

  #exited(code: number | null, signal: NodeJS.Signals | null): void {
    this.exitCode = code;
    this.signalCode = signal;
    this.emit('exit', code, signal);
  }
}

/** The fields of /proc/PID/stat after the command name (state first, then ppid), or undefined. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}
