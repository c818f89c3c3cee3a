import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, stat, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runEnarx } from '../helpers/cli.ts';
import { REPO_ROOT } from '../helpers/paths.ts';
import { type Registry, startRegistry } from '../drawbridge/helpers.ts';
import { buildTree } from '../../src/drawbridge/index.ts';

describe('enarx user/repo/package/key against a local Drawbridge', { timeout: 120_000 }, () => {
  let reg: Registry;
  let home: string;
  let env: NodeJS.ProcessEnv;
  let host: string;
  let pkg: string;
  let token: string;

  before(async () => {
    reg = await startRegistry();
    home = await mkdtemp(join(tmpdir(), 'enarx-deploy-cli-'));
    await writeFile(join(home, 'ca.pem'), reg.serverCa);
    env = { XDG_CONFIG_HOME: join(home, 'config'), ENARX_CA_BUNDLE: join(home, 'ca.pem'), ENARX_INSECURE_AUTH_TOKEN: '' };
    host = new URL(reg.url).host;
    token = await reg.local.issue({ subject: 'alice-sub', scopes: ['manage:drawbridge_users', 'manage:drawbridge_repositories', 'manage:drawbridge_tags'], ttlSeconds: 600 });
    pkg = join(home, 'pkg');
    await mkdir(join(pkg, 'data'), { recursive: true });
    await copyFile(join(REPO_ROOT, 'examples/hello.wasm'), join(pkg, 'main.wasm'));
    await writeFile(join(pkg, 'Enarx.toml'), '');
    await writeFile(join(pkg, 'data', 'greeting.txt'), 'hello from a data file\n');
  });
  after(async () => {
    await reg.close();
  });

  const enarx = (args: string[], extra: NodeJS.ProcessEnv = {}) => runEnarx(args, { env: { ...env, ...extra }, cwd: home });

  test('login stores the token in a 0600 file; user, repo, publish, info, fetch', async () => {
    let r = await enarx(['user', 'login', host, '--token', token, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const login = JSON.parse(r.stdout) as { subject: string; stored: string };
    assert.equal(login.subject, 'alice-sub');
    assert.equal((await stat(login.stored)).mode & 0o777, 0o600);
    assert.equal(JSON.parse(await readFile(login.stored, 'utf8'))[`https://${host}`], token);

    r = await enarx(['user', 'register', `${host}/alice`, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).status, 'created');
    r = await enarx(['user', 'info', `${host}/alice`, '--json']);
    assert.equal(JSON.parse(r.stdout).subject, 'alice-sub');

    r = await enarx(['repo', 'register', `${host}/alice/app`, '--public', '--json']);
    assert.equal(r.code, 0, r.stderr);

    r = await enarx(['key', 'create', join(home, 'signer.jwk'), '--alg', 'EdDSA', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const key = JSON.parse(r.stdout) as { kid: string; public: string };
    assert.equal((await stat(join(home, 'signer.jwk'))).mode & 0o777, 0o600);
    r = await enarx(['key', 'create', join(home, 'signer.jwk')]);
    assert.equal(r.code, 1, 'an existing key is never overwritten');

    r = await enarx(['package', 'publish', `${host}/alice/app:1.0.0`, pkg, '--sign-key', join(home, 'signer.jwk'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const pub = JSON.parse(r.stdout) as { signedBy: string; uploaded: number };
    assert.equal(pub.signedBy, key.kid);
    assert.equal(pub.uploaded, 5, 'root, main.wasm, Enarx.toml, data/, data/greeting.txt');

    r = await enarx(['package', 'info', `${host}/alice/app:1.0.0`, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).kid, key.kid);

    r = await enarx(['repo', 'info', `${host}/alice/app`, '--json']);
    assert.deepEqual(JSON.parse(r.stdout).tags, ['1.0.0']);

    // Not trusted yet: refused, nothing written.
    r = await enarx(['package', 'fetch', `${host}/alice/app:1.0.0`, '-o', join(home, 'out0')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refused .*not trusted|no trusted|untrusted|kid/i);
    await assert.rejects(stat(join(home, 'out0')));

    r = await enarx(['key', 'trust', key.public, '--json']);
    assert.equal(r.code, 0, r.stderr);
    r = await enarx(['key', 'list', '--json']);
    assert.equal(JSON.parse(r.stdout).keys[0].kid, key.kid);

    r = await enarx(['package', 'fetch', `${host}/alice/app:1.0.0`, '-o', join(home, 'out1'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).signedBy, key.kid);
    assert.equal(await readFile(join(home, 'out1/data/greeting.txt'), 'utf8'), 'hello from a data file\n');

    // '--': a kid is base64url and may start with '-' (which would otherwise read as an option).
    r = await enarx(['key', 'untrust', '--', key.kid]);
    assert.equal(r.code, 0, r.stderr);
    r = await enarx(['package', 'fetch', `${host}/alice/app:1.0.0`, '-o', join(home, 'out2')]);
    assert.equal(r.code, 1);

    r = await enarx(['user', 'logout', host]);
    assert.equal(r.code, 0, r.stderr);
    r = await enarx(['repo', 'register', `${host}/alice/other`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /log in|401|unauth/i);
  });

  test('an unsigned tag is refused unless --allow-unsigned; ENARX_INSECURE_AUTH_TOKEN works', async () => {
    const auth = { ENARX_INSECURE_AUTH_TOKEN: token };
    await enarx(['user', 'register', `${host}/alice`], auth);
    let r = await enarx(['repo', 'register', `${host}/alice/plain`, '--public'], auth);
    assert.equal(r.code, 0, r.stderr);
    r = await enarx(['package', 'publish', `${host}/alice/plain:0.1.0`, pkg, '--no-progress'], auth);
    assert.equal(r.code, 0, r.stderr);
    r = await enarx(['package', 'fetch', `${host}/alice/plain:0.1.0`, '-o', join(home, 'u1')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not signed/);
    r = await enarx(['package', 'fetch', `${host}/alice/plain:0.1.0`, '-o', join(home, 'u2'), '--allow-unsigned']);
    assert.equal(r.code, 0, r.stderr);
  });

  test('publish resumes an interrupted upload', async () => {
    const auth = { ENARX_INSECURE_AUTH_TOKEN: token };
    await enarx(['user', 'register', `${host}/alice`], auth);
    await enarx(['repo', 'register', `${host}/alice/resume`, '--public'], auth);
    // Interrupted: the tag and its root directory went up, the files did not.
    const tree = await buildTree(pkg);
    const c = reg.client({ token });
    const at = { user: 'alice', repo: 'resume', tag: '2.0.0' };
    await c.putTag(at, tree.root);
    const root = tree.nodes[0]!;
    await c.putNode(at, root.path, root.entry, root.bytes!);
    let r = await enarx(['package', 'info', `${host}/alice/resume:2.0.0`, '--json'], auth);
    assert.equal(JSON.parse(r.stdout).pending, true);
    r = await enarx(['package', 'publish', `${host}/alice/resume:2.0.0`, pkg, '--json'], auth);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { tagStatus: string; uploaded: number; skipped: number };
    assert.equal(out.tagStatus, 'exists');
    assert.equal(out.skipped, 1);
    assert.equal(out.uploaded, 4);
    r = await enarx(['package', 'fetch', `${host}/alice/resume:2.0.0`, '-o', join(home, 'r1'), '--allow-unsigned', '--json']);
    assert.equal(r.code, 0, r.stderr);
  });

  test('bad input: no host, plain http to a remote host, unreadable key, bad token', async () => {
    let r = await enarx(['package', 'fetch', 'alice/app:1.0.0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no registry host/);
    r = await enarx(['package', 'fetch', 'http://example.com/api/v0.1.0/alice/app/_tag/1.0.0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /plain http/);
    r = await enarx(['user', 'login', host, '--token', 'not a jwt']);
    assert.equal(r.code, 2);
    r = await enarx(['key', 'trust', join(home, 'nope.jwk')]);
    assert.equal(r.code, 1);
    r = await enarx(['key', 'create', join(home, 'k2'), '--alg', 'RS256']);
    assert.equal(r.code, 2);
    assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, 'no stack trace');
  });
});
