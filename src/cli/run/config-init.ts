import { writeFileSync } from 'node:fs';
import { CONFIG_TEMPLATE, ConfigError, loadConfig } from '../../config/index.ts';
import { fdEnvironment } from '../../config/model.ts';
import { EnarxError } from '../errors.ts';
import { printJson } from '../output.ts';

/** `enarx config init [FILE]`: writes the template, never over an existing file. */
export function initConfig(file: string): void {
  try {
    writeFileSync(file, CONFIG_TEMPLATE, { flag: 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new EnarxError(`${file} already exists`, { hint: 'remove it first, or give another file name' });
    throw new EnarxError(`cannot write ${file}: ${code ?? err}`, { hint: 'check the directory exists and is writable' });
  }
  process.stderr.write(`wrote ${file}; run it with: enarx run --wasmcfgfile ${file} MODULE\n`);
}

/** `enarx config check FILE`: validates and lists the descriptors. */
export function checkConfig(file: string, json: boolean): void {
  let config;
  try {
    config = loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new EnarxError(err.message, { hint: err.unreadable ? 'check the path' : err.key ? `fix ${err.key}` : 'fix the file' });
    }
    throw err;
  }
  if (json) {
    printJson({ ...config, env: Object.fromEntries([...fdEnvironment(config.files), ...config.env]) });
    return;
  }
  const lines = [`${file}: valid`];
  if (config.steward) lines.push(`steward: ${config.steward}`);
  config.files.forEach((f, fd) => {
    const detail =
      f.kind === 'listen' ? ` ${f.prot} ${f.addr} port ${f.port}` :
      f.kind === 'connect' ? ` ${f.prot} ${f.host} port ${f.port}` :
      f.kind === 'dir' ? ` ${f.path}${f.readonly ? ' (read-only)' : ''}` : '';
    lines.push(`fd ${fd}: ${f.kind} '${f.name}'${detail}`);
  });
  process.stdout.write(`${lines.join('\n')}\n`);
}
