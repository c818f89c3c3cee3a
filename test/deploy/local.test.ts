/**
 * `enarx deploy DIR|FILE` in a local process Keep, and the target parser's refusals: every bad
 * target is one line on stderr, exit 2, and no Keep starts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runEnarx } from '../helpers/cli.ts';
import { REPO_ROOT } from '../helpers/paths.ts';

const CATPKG = join(REPO_ROOT, 'examples', 'catpkg.wasm');

describe('enarx deploy of a local package', { timeout: 120_000 }, () => {
  let dir: string;
  let pkg: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'enarx-deploy-local-'));
    pkg = join(dir, 'pkg');
    await mkdir(join(pkg, 'data'), { recursive: true });
    await copyFile(CATPKG, join(pkg, 'main.wasm'));
    await writeFile(join(pkg, 'Enarx.toml'), 'args = ["data/greeting.txt"]\n');
    await writeFile(join(pkg, 'data', 'greeting.txt'), 'hello from a data file\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('a package directory runs main.wasm with its Enarx.toml; its files are at /package, read-only', async () => {
    const r = await runEnarx(['deploy', pkg, 'Enarx.toml']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'catpkg: started\nhello from a data file\nargs = ["data/greeting.txt"]\ncatpkg: /package is read-only (Read-only file system)\n');
    assert.equal(existsSync(join(pkg, 'written-by-guest')), false);
  });

  test('--json prints one document with the digest, exit status and the guest output', async () => {
    const r = await runEnarx(['deploy', '--json', pkg]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(doc.kind, 'dir');
    assert.equal(doc.exit, 0);
    assert.equal(doc.digest, `sha-384:${createHash('sha384').update(readFileSync(CATPKG)).digest('hex')}`);
    assert.match(String(doc.stdout), /^catpkg: started\nhello from a data file\n/);
  });

  test('a .wasm file runs as is (no package preopen)', async () => {
    const r = await runEnarx(['deploy', join(REPO_ROOT, 'examples', 'hello.wasm')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Hello, world!\n');
  });

  test('flags after TARGET are the guest\'s; one that looks like ours is warned about', async () => {
    const r = await runEnarx(['deploy', pkg, '--json', 'Enarx.toml']);
    assert.equal(r.code, 1, r.stderr); // catpkg cannot open /package/--json
    assert.match(r.stderr, /warning: --json after .* goes to the guest, not to enarx deploy \(put enarx's flags before TARGET\)/);
    assert.match(r.stdout, /^catpkg: started\n/);
  });

  test('bad targets and flags: one line, exit 2, nothing runs', async () => {
    await mkdir(join(dir, 'empty'), { recursive: true });
    const cases: [string[], RegExp][] = [
      [['deploy', ''], /the deploy target is empty/],
      [['deploy', join(dir, 'empty')], /has no main\.wasm/],
      [['deploy', './no-such-dir'], /no such package directory or file/],
      [['deploy', 'alice/hello:1.0.0'], /names no registry host .*no default host/],
      [['deploy', 'registry.example/alice/hello'], /tag/i],
      [['deploy', 'registry.example/alice/hello:'], /tag/i],
      [['deploy', 'registry.example/Alice!/hello:1.0.0'], /user|name/i],
      [['deploy', 'registry.example/alice/../hello:1.0.0'], /invalid characters/],
      [['deploy', 'http://registry.example/api/v0.1.0/alice/hello/_tag/1.0.0'], /plain http is refused except to localhost/],
      [['deploy', 'http://10.0.0.1:8080/api/v0.1.0/alice/hello/_tag/1.0.0'], /plain http is refused except to localhost/],
      [['deploy', 'ftp://registry.example/api/v0.1.0/alice/hello/_tag/1.0.0'], /only https/],
      [['deploy', 'https://registry.example/api/v0.1.0/alice/hello/_tag/1.0.0?x=1'], /no credentials, query or fragment/],
      [['deploy', 'https://user:pw@registry.example/api/v0.1.0/alice/hello/_tag/1.0.0'], /no credentials/],
      [['deploy', 'https://registry.example/alice/hello'], /not a tag URL/],
      [['deploy', '--trust-key', 'x', pkg], /apply to registry packages/],
    ];
    for (const [args, pattern] of cases) {
      const r = await runEnarx(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line: ${r.stderr}`);
      assert.doesNotMatch(r.stdout, /catpkg: started/);
    }
  });

  test('a plain-http Steward off loopback is refused before any Keep starts', async () => {
    const r = await runEnarx(['deploy', '--steward', 'http://steward.example/', pkg]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /refusing plain-http Steward/);
    assert.doesNotMatch(r.stdout, /catpkg: started/);
  });
});

describe('the deploy target parser', () => {
  test('any string is a target or a one-line UsageError, never a crash', async () => {
    const fc = (await import('fast-check')).default;
    const { parseDeployTarget } = await import('../../src/cli/run/deploy.ts');
    const { UsageError } = await import('../../src/cli/errors.ts');
    const piece = fc.constantFrom('https://', 'http://', 'ftp://', 'localhost', '127.0.0.1:8443', '[::1]:1', 'host.example', '/', ':', '@', '?', '#', '..', '.', 'alice', 'repo', '1.0.0', '_tag', 'api', 'v0.1.0', '%2F', ' ', '\0', 'é');
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 80 }), fc.array(piece, { maxLength: 12 }).map((a) => a.join(''))), async (input) => {
        try {
          const t = await parseDeployTarget(input);
          if (t.kind === 'registry') {
            const url = new URL(t.origin);
            assert.ok(url.protocol === 'https:' || ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname), `plain http to ${t.origin}`);
          }
        } catch (err) {
          assert.ok(err instanceof UsageError, `${JSON.stringify(input)}: ${(err as Error).stack}`);
          assert.doesNotMatch((err as Error).message, /\n/);
        }
      }),
      { numRuns: 500 },
    );
  });
});
