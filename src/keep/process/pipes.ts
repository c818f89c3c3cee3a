import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { SallyportPipe } from '../../sallyport/index.ts';

const { Socket: NetSocket } = process.getBuiltinModule('node:net');

/**
 * The sallyport over two pipes (bin/enarx cannot make a socket pair): `input` reads fd `from`,
 * `output` writes fd `to`. They end like the socket they stand for (not half-open): once the peer
 * has closed its end, ours is ended too.
 */
export function pipePair(from: number, to: number): { input: Socket; output: Socket } {
  const input = new NetSocket({ fd: from, readable: true, writable: false });
  const output = new NetSocket({ fd: to, readable: false, writable: true });
  input.once('end', () => output.end());
  return { input, output };
}

/** The streams a sallyport pipe is made of: a socket, or both pipes of a pair. */
export function pipeSides(pipe: SallyportPipe): (Readable | Writable)[] {
  return 'input' in pipe ? [pipe.input, pipe.output] : [pipe];
}

/** Resolves once the sallyport pipe is closed: a socket, or both pipes of a pair. */
export function pipeClosed(pipe: SallyportPipe): Promise<void> {
  return Promise.all(pipeSides(pipe).map((s) => (s.closed ? Promise.resolve() : new Promise<void>((resolve) => s.once('close', () => resolve()))))).then(() => {});
}
