/**
 * Untrusted text made safe to print. Browser-safe, and stateless: the Keep's bundle gives its entry
 * a copy of its own (src/keep/process/launch.ts).
 */

const LINE_BREAKING = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const MAX_MESSAGE = 1000;

/**
 * Messages quote untrusted text (certificate names, collateral JSON strings, what a Keep or a
 * guest says): control characters are escaped and the length bounded, so a message or warning is
 * always one readable line, and cannot drive a terminal.
 */
export function oneLine(text: string): string {
  const flat = text.replace(LINE_BREAKING, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return flat.length > MAX_MESSAGE ? `${flat.slice(0, MAX_MESSAGE - 3)}...` : flat;
}
