// Writes the verification page to dist/web (index.html, style.css, app.js): `npm run build:web`.
// Any static host can serve the folder; `enarx attest page` serves it without this step.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildWebPage } from '../src/web/build.ts';

const out = join(import.meta.dirname, '..', 'dist', 'web');
const page = await buildWebPage();
await mkdir(out, { recursive: true });
for (const [name, file] of page.files) await writeFile(join(out, name), file.body);
process.stderr.write(`wrote ${[...page.files.keys()].join(', ')} to ${out}\n`);
