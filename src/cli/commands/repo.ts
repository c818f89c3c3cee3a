import type { Command } from 'commander';
import { EnarxError, UsageError } from '../errors.ts';
import { printJson } from '../output.ts';
import { withRegistryOptions } from '../registry.ts';

interface Flags {
  caBundle?: string;
  token?: string;
  json?: boolean;
}

async function repoSpec(spec: string): Promise<{ origin: string; user: string; repo: string }> {
  const reg = await import('../registry.ts');
  const { parseSlug } = await import('../../drawbridge/index.ts');
  let slug;
  try {
    slug = parseSlug(spec, { tag: 'forbidden' });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (!slug.host) throw new UsageError(`'${spec}' names no registry host (expected host[:port]/user/repo; there is no default host)`);
  return { origin: reg.registryOrigin(slug.host), user: slug.user, repo: slug.repo };
}

export function register(program: Command): void {
  const cmd = program.command('repo').description('Drawbridge repositories');
  const common = (c: Command) => withRegistryOptions(c);

  common(
    cmd
      .command('register')
      .description('create a repository (private unless --public)')
      .argument('<spec>', 'host[:port]/user/repo')
      .option('--public', 'anyone may read it')
      .option('--allow-software-keeps', 'a private repository: also serve Keeps whose certificate says software evidence')
      .option('--allow-debug-keeps', 'a private repository: also serve Keeps marked debug'),
  ).action(async (spec: string, o: Flags & { public?: boolean; allowSoftwareKeeps?: boolean; allowDebugKeeps?: boolean }) => {
    const reg = await import('../registry.ts');
    const { origin, user, repo } = await repoSpec(spec);
    const config = { public: o.public === true, ...(o.allowSoftwareKeeps ? { allow_software_keeps: true } : {}), ...(o.allowDebugKeeps ? { allow_debug_keeps: true } : {}) };
    const client = await reg.openClient(origin, o);
    try {
      const status = await client.putRepository(user, repo, config);
      if (o.json) printJson({ origin, user, repo, ...config, status });
      else process.stderr.write(`repository ${user}/${repo} (${config.public ? 'public' : 'private'}) ${status === 'created' ? 'registered' : 'already exists'} at ${origin}\n`);
    } catch (err) {
      throw reg.registryError(err, origin);
    } finally {
      client.close();
    }
  });

  common(cmd.command('info').description("show a repository's settings and tags").argument('<spec>', 'host[:port]/user/repo')).action(async (spec: string, o: Flags) => {
    const reg = await import('../registry.ts');
    const { origin, user, repo } = await repoSpec(spec);
    const client = await reg.openClient(origin, o);
    try {
      const config = await client.getRepository(user, repo);
      if (!config) throw new EnarxError(`repository ${user}/${repo} not found at ${origin}`, { hint: 'check the name, or log in if it is private' });
      const tags = await client.listTags(user, repo);
      if (o.json) printJson({ origin, user, repo, ...config, tags });
      else process.stdout.write(`repository ${user}/${repo} at ${origin}\nvisibility: ${config.public ? 'public' : 'private'}\ntags: ${tags.length ? tags.join(', ') : '(none)'}\n`);
    } catch (err) {
      throw reg.registryError(err, origin);
    } finally {
      client.close();
    }
  });
}
