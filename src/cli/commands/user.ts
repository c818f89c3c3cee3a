import type { Command } from 'commander';
import { EnarxError, UsageError } from '../errors.ts';
import { printJson } from '../output.ts';
import { withRegistryOptions } from '../registry.ts';

interface Flags {
  caBundle?: string;
  token?: string;
  json?: boolean;
}

interface LoginFlags {
  tokenFile?: string;
  oidcDomain?: string;
  oidcClientId?: string;
  oidcFlow?: string;
  oidcAudience?: string;
}

async function readTokenFile(file: string): Promise<string> {
  try {
    const { readFileSync } = await import('node:fs');
    return readFileSync(file === '-' ? 0 : file, 'utf8').trim();
  } catch (err) {
    throw new EnarxError(`cannot read --token-file ${file}: ${(err as Error).message}`);
  }
}

async function oidcToken(origin: string, o: LoginFlags, bundle: string | undefined): Promise<string> {
  const domain = o.oidcDomain ?? process.env.ENARX_OIDC_DOMAIN;
  const clientId = o.oidcClientId ?? process.env.ENARX_OIDC_CLIENT_ID;
  if (!domain) {
    throw new UsageError(
      'enarx user login needs --oidc-domain (with --oidc-client-id), --token or --token-file',
      'for a local Drawbridge: enarx drawbridge token --store DIR SUBJECT > token; enarx user login HOST --token-file token',
    );
  }
  if (!clientId) throw new UsageError('--oidc-domain needs --oidc-client-id (or ENARX_OIDC_CLIENT_ID)', "ask the registry's operator for enarx's client id");
  if (o.oidcFlow !== 'device' && o.oidcFlow !== 'client') throw new UsageError(`--oidc-flow must be device or client, not '${o.oidcFlow}'`);
  const { oidcLogin, OidcError } = await import('../oidc.ts');
  const { rootCertificates } = await import('node:tls');
  try {
    const token = await oidcLogin({
      domain,
      clientId,
      flow: o.oidcFlow,
      clientSecret: process.env.ENARX_OIDC_CLIENT_SECRET,
      audience: o.oidcAudience ?? `${origin}/`,
      // --ca-bundle adds to the system roots here: the provider is usually a public service.
      ca: bundle ? [...rootCertificates, bundle].join('\n') : undefined,
      onPrompt: (p) => {
        const open = p.verificationUriComplete ?? p.verificationUri;
        process.stderr.write(
          `To log in to ${origin}, open ${open}\nand confirm the code ${p.userCode} (valid for ${Math.round(p.expiresInSeconds / 60)} min). Waiting...\n`,
        );
      },
    });
    return token.accessToken;
  } catch (err) {
    if (err instanceof OidcError) {
      const hint = err.code === 'expired_token' || err.code === 'access_denied' ? 'run enarx user login again' : 'check --oidc-domain, --oidc-client-id and the network';
      throw new EnarxError(`login failed: ${err.message}`, { hint });
    }
    throw err;
  }
}

function subjectOf(token: string): string | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof claims.sub === 'string' ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}

async function userSpec(spec: string): Promise<{ origin: string; user: string }> {
  const reg = await import('../registry.ts');
  const i = spec.lastIndexOf('/');
  if (i <= 0) throw new UsageError(`'${spec}' is not host[:port]/user (there is no default host)`);
  const { parseUserName } = await import('../../drawbridge/index.ts');
  let user: string;
  try {
    user = parseUserName(spec.slice(i + 1));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { origin: reg.registryOrigin(spec.slice(0, i)), user };
}

export function register(program: Command): void {
  const cmd = program.command('user').description('Drawbridge user accounts and login');
  const common = (c: Command) => withRegistryOptions(c, { token: false });

  common(
    cmd
      .command('login')
      .description('log in to a registry: OAuth device flow at an OIDC provider, or a given token; stored in a 0600 file in the enarx config dir')
      .argument('<host>', 'registry host[:port] or URL')
      .option('--token <jwt>', "store this token, e.g. from 'enarx drawbridge token'")
      .option('--token-file <file>', "read the token from a file ('-' reads stdin)")
      .option('--oidc-domain <url>', 'the OIDC provider that issues registry tokens (env ENARX_OIDC_DOMAIN)')
      .option('--oidc-client-id <id>', "the provider's client id for enarx (env ENARX_OIDC_CLIENT_ID)")
      .option('--oidc-flow <flow>', 'device (a person confirms a code in a browser) or client (client credentials from ENARX_OIDC_CLIENT_SECRET)', 'device')
      .option('--oidc-audience <aud>', 'the token audience (default https://HOST/, as Enarx asks)'),
  ).action(async (host: string, o: Flags & LoginFlags) => {
    const reg = await import('../registry.ts');
    const origin = reg.registryOrigin(host);
    const token = o.token ?? (o.tokenFile ? await readTokenFile(o.tokenFile) : await oidcToken(origin, o, await reg.caBundle(o)));
    if (!/^[\w-]+\.[\w-]+\.[\w-]*$/.test(token)) throw new UsageError('that token is not a JWT (three base64url parts)');
    const creds = await reg.loadCredentials();
    creds[origin] = token;
    await reg.saveCredentials(creds);
    const out = { origin, subject: subjectOf(token) ?? null, stored: reg.credentialsPath() };
    if (o.json) printJson(out);
    else process.stderr.write(`logged in to ${origin}${out.subject ? ` as ${out.subject}` : ''} (token in ${out.stored})\n`);
  });

  common(cmd.command('logout').description('forget the stored token for a registry').argument('<host>', 'registry host[:port] or URL')).action(async (host: string, o: Flags) => {
    const reg = await import('../registry.ts');
    const origin = reg.registryOrigin(host);
    const creds = await reg.loadCredentials();
    const had = origin in creds;
    delete creds[origin];
    await reg.saveCredentials(creds);
    if (o.json) printJson({ origin, removed: had });
    else process.stderr.write(had ? `logged out of ${origin}\n` : `no token stored for ${origin}\n`);
  });

  common(
    cmd
      .command('register')
      .description('create a user record owned by the logged-in subject')
      .argument('<spec>', 'host[:port]/user')
      .option('--subject <sub>', "the owner's token subject (default: the stored token's 'sub')")
      .option('--token <jwt>', 'use this token instead of the stored one'),
  ).action(async (spec: string, o: Flags & { subject?: string }) => {
    const reg = await import('../registry.ts');
    const { origin, user } = await userSpec(spec);
    const token = await reg.tokenFor(origin, o);
    const subject = o.subject ?? (token ? subjectOf(token) : undefined);
    if (!subject) throw new EnarxError(`no subject for ${user}`, { hint: `log in first: enarx user login ${origin} --token ...` });
    const client = await reg.openClient(origin, o);
    try {
      const status = await client.putUser(user, { subject });
      if (o.json) printJson({ origin, user, subject, status });
      else process.stderr.write(`user ${user} ${status === 'created' ? 'registered' : 'already exists'} at ${origin}\n`);
    } catch (err) {
      throw reg.registryError(err, origin);
    } finally {
      client.close();
    }
  });

  common(cmd.command('info').description('show a user record').argument('<spec>', 'host[:port]/user').option('--token <jwt>', 'use this token')).action(
    async (spec: string, o: Flags) => {
      const reg = await import('../registry.ts');
      const { origin, user } = await userSpec(spec);
      const client = await reg.openClient(origin, o);
      try {
        const record = await client.getUser(user);
        if (!record) throw new EnarxError(`user ${user} not found at ${origin}`, { hint: `register it with 'enarx user register ${spec}'` });
        if (o.json) printJson({ origin, user, ...record });
        else process.stdout.write(`user ${user} at ${origin}\nsubject: ${record.subject}\n`);
      } catch (err) {
        throw reg.registryError(err, origin);
      } finally {
        client.close();
      }
    },
  );
}
