import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The page's files: index.html, style.css and app.js (the verifier bundled for browsers). */
export interface WebPage {
  files: Map<string, { body: Uint8Array; type: string }>;
}

/**
 * Bundles src/web/app.ts, and with it the attestation library and the policy evaluator, into one
 * browser module with esbuild, and gathers the static files. Nothing is written to disk.
 */
export async function buildWebPage(options: { minify?: boolean } = {}): Promise<WebPage> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [join(HERE, 'app.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: options.minify ?? true,
    sourcemap: false,
    write: false,
    outfile: 'app.js',
    logLevel: 'silent',
    legalComments: 'eof',
  });
  const files = new Map<string, { body: Uint8Array; type: string }>();
  files.set('app.js', { body: result.outputFiles[0]!.contents, type: 'text/javascript; charset=utf-8' });
  files.set('index.html', { body: new Uint8Array(await readFile(join(HERE, 'index.html'))), type: 'text/html; charset=utf-8' });
  files.set('style.css', { body: new Uint8Array(await readFile(join(HERE, 'style.css'))), type: 'text/css; charset=utf-8' });
  return { files };
}
