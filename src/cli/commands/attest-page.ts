import type { Command } from 'commander';
import { UsageError } from '../errors.ts';

/** `enarx attest page`: serves the in-browser verification page (src/web) on this machine. */
export function registerPageCommand(attest: Command): void {
  attest
    .command('page')
    .description('serve the verification page: drop evidence, collateral and a policy, and verify in the browser')
    .option('--port <port>', 'TCP port (0 picks a free one)', '8080')
    .option('--host <addr>', 'address to listen on; browsers offer WebCrypto only on localhost or https', '127.0.0.1')
    .action(async (opts: { port: string; host: string }) => {
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0 to 65535, got '${opts.port}'`);
      const { buildWebPage } = await import('../../web/build.ts');
      const { servePage } = await import('../../web/server.ts');
      const page = await buildWebPage();
      let url: string;
      try {
        ({ url } = await servePage(page, { host: opts.host, port }));
      } catch (err) {
        const { EnarxError } = await import('../errors.ts');
        throw new EnarxError(`cannot listen on ${opts.host}:${port} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, {
          hint: 'pick another --port, or --port 0 for any free one',
        });
      }
      process.stderr.write(`verification page at ${url} (Ctrl-C to stop)\n`);
      process.stdout.write(`${url}\n`);
    });
}
