/**
 * Top-level Enarx.toml keys beyond Enarx 0.7's (steward, args, env, files). A component that
 * needs its own key (limits, TLS CA options...) adds a handler here: it receives the raw TOML
 * value and returns the parsed one, or throws an Error whose message says what is wrong (the
 * parser prefixes the file and key). The result is in EnarxConfig.extensions[name]. Any key
 * that is neither built in nor listed here is an error.
 */
import { parseLimitsTable } from '../keep/limits.ts';

export const EXTENSION_KEYS: Readonly<Record<string, (value: unknown) => unknown>> = {
  /** [limits] memory, rss, wall-time, descriptors (src/keep/limits.ts). */
  limits: parseLimitsTable,
};
