/**
 * Whether a URL hostname names this machine: localhost, 127.0.0.0/8 or [::1]. Plain http is allowed
 * only there (Steward, registry, OIDC provider), since nothing on the path can rewrite it.
 * Dependency-free, so that Keeps, the CLI and browser-safe modules share it.
 */
const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK.test(hostname);
}
