/** Enarx.toml: model, parser and template. */
export { parseConfig, ConfigError, MAX_CONFIG_BYTES } from './parse.ts';
export { loadConfig } from './load.ts';
export { DEFAULT_FILES, fdEnvironment, caFileOf, pemCertificateBlocks, type EnarxConfig, type FileSpec, type FileKind, type Protocol } from './model.ts';
export { CONFIG_TEMPLATE } from './template.ts';
