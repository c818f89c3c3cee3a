import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FlattenedSign, generateKeyPair } from 'jose';
import * as x509 from '@peculiar/x509';
import {
  buildTree,
  createCertificateAuthority,
  DrawbridgeClient,
  DrawbridgeError,
  MEDIA_TYPES,
  issueCertificate,
  serializeTreeEntry,
  type TreeEntry,
} from '../../src/drawbridge/index.ts';
import { type CertificateOrigin, certificateOriginExtension } from '../../src/pki/index.ts';
import { keepCertificate, type Registry, startRegistry } from './helpers.ts';
import { putHeaders, raw } from './raw.ts';

async function makePackage(files: Record<string, string | Buffer>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-pkg-'));
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  return dir;
}

async function readTree(dir: string, prefix = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) Object.assign(out, await readTree(join(dir, e.name), rel));
    else out[rel] = (await readFile(join(dir, e.name))).toString('hex');
  }
  return out;
}

const WASM = Buffer.concat([Buffer.from('\0asm\x01\0\0\0'), randomBytes(300_000)]);
const FILES = { 'main.wasm': WASM, 'Enarx.toml': '[[files]]\nkind = "stdio"\n', 'data/words.txt': 'alpha\nbeta\n' };

describe('drawbridge API', () => {
  let reg: Registry;
  let alice: DrawbridgeClient;
  let aliceToken: string;
  let pkg: string;
  const pub = { user: 'alice', repo: 'hello', tag: '1.0.0' };
  const priv = { user: 'alice', repo: 'secret', tag: '0.1.0' };

  before(async () => {
    reg = await startRegistry();
    aliceToken = await reg.oidc.token({ sub: 'auth0|alice' });
    alice = reg.client({ token: aliceToken });
    pkg = await makePackage(FILES);
  });
  after(async () => {
    await reg.close();
    await rm(pkg, { recursive: true, force: true });
  });

  test('/health answers 200 to anyone', async () => {
    await reg.client().health();
  });

  test('a user registers with an OIDC token whose subject matches the record', async () => {
    assert.equal(await alice.putUser('alice', { subject: 'auth0|alice' }), 'created');
    assert.equal(await alice.putUser('alice', { subject: 'auth0|alice' }), 'exists');
    assert.deepEqual(await alice.getUser('alice'), { subject: 'auth0|alice' });
    await assert.rejects(alice.putUser('mallory', { subject: 'auth0|mallory' }), { status: 401, message: 'OpenID Connect subject mismatch' });
    const bob = reg.client({ token: await reg.oidc.token({ sub: 'auth0|bob' }) });
    await assert.rejects(bob.getUser('alice'), { status: 401, message: /logged in as `auth0\|bob`, and not authorized for user `alice`/ });
    await assert.rejects(reg.client().getUser('alice'), { status: 401, message: 'Bearer token header missing' });
  });

  test('a public repository: publish, pending until complete, then readable by anyone', async () => {
    assert.equal(await alice.putRepository('alice', 'hello', { public: true }), 'created');
    assert.deepEqual(await alice.getRepository('alice', 'hello'), { public: true });
    await assert.rejects(alice.putRepository('alice', 'hello', { public: false }), { status: 409 });

    const tree = await buildTree(pkg);
    const anonymous = reg.client();
    // Enarx's client PUTs the tag first; until its tree is stored, nobody but the owner sees it.
    assert.equal(await alice.putTag(pub, tree.root), 'created');
    assert.equal(await anonymous.getTag(pub), undefined);
    assert.deepEqual(await anonymous.listTags('alice', 'hello'), []);
    const pending = await alice.getTag(pub);
    assert.equal(pending?.pending, true);
    assert.equal(await anonymous.headNode(pub, []), undefined);

    const result = await alice.publish(pub, tree);
    assert.deepEqual(result, { tag: 'exists', uploaded: tree.nodes.length, skipped: 0 });
    assert.deepEqual(await anonymous.listTags('alice', 'hello'), ['1.0.0']);
    const tag = await anonymous.getTag(pub);
    assert.equal(tag?.pending, false);
    assert.equal(tag?.mediaType, MEDIA_TYPES.entry);
    assert.deepEqual(tag?.entry.root, tree.root);
    assert.equal(tag?.bytes.toString(), serializeTreeEntry(tree.root));

    const dest = join(reg.dir, 'fetched-public');
    const fetched = await anonymous.fetchTree(pub, dest);
    assert.equal(fetched.files, 3);
    assert.deepEqual(await readTree(dest), await readTree(pkg));

    // Every GET carries all four digests.
    const r = await raw(reg.url, reg.serverCa, 'GET', '/api/v0.1.0/alice/hello/_tag/1.0.0/tree/main.wasm');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/wasm');
    assert.equal(Number(r.headers['content-length']), WASM.length);
    assert.match(String(r.headers['content-digest']), /^sha-224=:[^:]+:,sha-256=:[^:]+:,sha-384=:[^:]+:,sha-512=:[^:]+:$/);
    assert.deepEqual(r.body, WASM);
    const dir = await raw(reg.url, reg.serverCa, 'GET', '/api/v0.1.0/alice/hello/_tag/1.0.0/tree/');
    assert.equal(dir.headers['content-type'], MEDIA_TYPES.directory);
    assert.deepEqual(Object.keys(JSON.parse(dir.body.toString())), ['Enarx.toml', 'data', 'main.wasm']);
  });

  test('a published tag is immutable; the same publish again is a no-op', async () => {
    const tree = await buildTree(pkg);
    assert.deepEqual(await alice.publish(pub, tree), { tag: 'exists', uploaded: 0, skipped: tree.nodes.length });
    const other = await buildTree(await makePackage({ 'main.wasm': 'different' }));
    await assert.rejects(alice.putTag(pub, other.root), { status: 409 });
    await assert.rejects(alice.deletePendingTag(pub), { status: 409, message: /immutable/ });
  });

  test('a private repository: owner, trusted Keep certificate; not anonymous, other users or untrusted certificates', async () => {
    await alice.putRepository('alice', 'secret', { public: false });
    await alice.publish(priv, await buildTree(pkg));
    const bob = reg.client({ token: await reg.oidc.token({ sub: 'auth0|bob' }) });
    for (const c of [reg.client(), bob]) {
      await assert.rejects(c.getTag(priv), { status: 401 });
      await assert.rejects(c.listTags('alice', 'secret'), { status: 401 });
      await assert.rejects(c.headNode(priv, ['main.wasm']), { status: 401 });
    }
    assert.deepEqual(await alice.listTags('alice', 'secret'), ['0.1.0']);

    const keep = reg.client({ cert: await keepCertificate(reg.steward) });
    const dest = join(reg.dir, 'fetched-private');
    await keep.fetchTree(priv, dest);
    assert.deepEqual(await readTree(dest), await readTree(pkg));
    assert.deepEqual(await keep.listTags('alice', 'secret'), ['0.1.0']);
    // A certificate reads; it does not write.
    await assert.rejects(keep.putTag({ ...priv, tag: '0.2.0' }, (await buildTree(pkg)).root), { status: 401, message: 'Bearer token header missing' });

    const rogueCa = await createCertificateAuthority('Rogue CA');
    const rogue = reg.client({ cert: await keepCertificate(rogueCa) });
    await assert.rejects(rogue.getTag(priv), { status: 401, message: /client certificate is not trusted/ });
    await assert.rejects(rogue.getTag(pub), { status: 401, message: /client certificate is not trusted/ });
    const expired = await x509Expired(reg);
    await assert.rejects(reg.client({ cert: expired }).getTag(priv), { status: 401, message: /CERT_HAS_EXPIRED|expired/i });
  });

  test('Keeps whose certificate the Steward marked debug or software are refused unless the repository allows them', async () => {
    const marked = (origin: Partial<CertificateOrigin>) => {
      const ext = certificateOriginExtension({ tee: 'snp', stewardDebug: false, teeDebug: false, testRoot: false, trustAnchor: 'amd-milan', measurement: new Uint8Array(48), ...origin });
      return issueCertificate(reg.steward, { commonName: 'keep', usage: 'client', extensions: [new x509.Extension(ext.oid, ext.critical, new Uint8Array(ext.value))] });
    };
    const debugSteward = reg.client({ cert: await marked({ stewardDebug: true }) });
    const debugTee = reg.client({ cert: await marked({ teeDebug: true }) });
    const software = reg.client({ cert: await marked({ tee: 'software', trustAnchor: 'none', measurement: new Uint8Array(0) }) });
    const testRoot = reg.client({ cert: await marked({ testRoot: true, trustAnchor: 'test:local' }) });
    const tee = reg.client({ cert: await marked({}) });
    await assert.rejects(debugSteward.getTag(priv), { status: 403, message: /marked debug \(debug Steward\).*allow_debug_keeps/ });
    await assert.rejects(debugTee.fetchTree(priv, join(reg.dir, 'never')), { status: 403, message: /marked debug \(debug snp guest\)/ });
    await assert.rejects(software.getTag(priv), { status: 403, message: /marked software \(software Keep\).*allow_software_keeps/ });
    await assert.rejects(testRoot.getTag(priv), { status: 403, message: /marked debug \(test root test:local\)/ });
    assert.ok(await tee.getTag(priv));
    // Public repositories do not ask.
    assert.ok(await software.getTag(pub));
    // A marking that cannot be read is refused (fail closed).
    const bad = await issueCertificate(reg.steward, { commonName: 'bad', usage: 'client', extensions: [new x509.Extension('2.5.29.9', false, new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]))] });
    await assert.rejects(reg.client({ cert: bad }).getTag(priv), { status: 403, message: /marked debug \(unreadable certificate origin/ });

    await alice.putRepository('alice', 'lab', { public: false, allow_debug_keeps: true, allow_software_keeps: true });
    const lab = { user: 'alice', repo: 'lab', tag: '1.0.0' };
    await alice.publish(lab, await buildTree(pkg));
    for (const keep of [debugSteward, debugTee, software, testRoot, tee]) assert.ok(await keep.getTag(lab));
    // Software Keeps exist only under a debug Steward; allowing software Keeps is enough for them.
    await alice.putRepository('alice', 'halfway', { public: false, allow_software_keeps: true });
    const halfway = { user: 'alice', repo: 'halfway', tag: '1.0.0' };
    await alice.publish(halfway, await buildTree(pkg));
    assert.ok(await reg.client({ cert: await marked({ tee: 'software', stewardDebug: true }) }).getTag(halfway));
    await assert.rejects(debugSteward.getTag(halfway), { status: 403, message: /marked debug/ });
  });

  test("tokens from the server's own issuer work like OIDC ones", async () => {
    const token = await reg.local.issue({ subject: 'local|carol' });
    const carol = reg.client({ token });
    await carol.putUser('carol', { subject: 'local|carol' });
    await carol.putRepository('carol', 'tools', { public: false });
    await carol.publish({ user: 'carol', repo: 'tools', tag: '2.0.0-rc.1' }, await buildTree(join(pkg, 'main.wasm')));
    assert.deepEqual(await carol.listTags('carol', 'tools'), ['2.0.0-rc.1']);
  });

  test('bad tokens: expired, wrong audience, wrong issuer, foreign key, missing scope', async () => {
    const now = Math.floor(Date.now() / 1000);
    const { privateKey } = await generateKeyPair('RS256');
    const cases: [string, Promise<string>, RegExp][] = [
      ['expired', reg.oidc.token({ exp: now - 60, iat: now - 120 }), /Invalid token provided: .*exp/],
      ['wrong audience', reg.oidc.token({ aud: 'https://elsewhere/' }), /Invalid token provided: .*aud/],
      ['unknown issuer', reg.oidc.token({ iss: 'https://evil.example/' }), /issuer https:\/\/evil\.example\/ is not trusted/],
      ['foreign key', reg.oidc.token({}, privateKey), /Invalid token provided: signature verification failed/],
      ['no scope claim', reg.oidc.token({ scope: '' }), /Invalid token provided: .*scope/],
      ['a local token from another store', (async () => (await startRegistry().then(async (r) => { const t = await r.local.issue({ subject: 'auth0|alice' }); await r.close(); return t; })))(), /is not trusted/],
    ];
    for (const [name, token, message] of cases) {
      const r = await raw(reg.url, reg.serverCa, 'GET', '/api/v0.1.0/alice', { token: await token });
      assert.equal(r.status, 401, name);
      assert.match(r.body.toString(), message, name);
      assert.match(String(r.headers['www-authenticate']), /^Bearer /, name);
    }
    const readOnly = reg.client({ token: await reg.oidc.token({ scope: 'read:drawbridge_repositories read:drawbridge_tags' }) });
    await assert.rejects(readOnly.putTag({ ...pub, tag: '9.9.9' }, (await buildTree(pkg)).root), {
      status: 401,
      message: 'Token is missing a scope for level write, context drawbridge_tags',
    });
    await assert.rejects(readOnly.getUser('alice'), { status: 401, message: /missing a scope for level read, context drawbridge_users/ });
    assert.deepEqual(await readOnly.listTags('alice', 'secret'), ['0.1.0']);
    const r = await raw(reg.url, reg.serverCa, 'GET', '/api/v0.1.0/alice', { headers: { authorization: 'Basic YWxpY2U6eA==' } });
    assert.equal(r.status, 401);
  });

  test('names and routes: Enarx rules and status codes', async () => {
    const cases: [string, string, number, RegExp][] = [
      ['GET', '/api/v0.1.0/al.ice', 400, /Failed to parse user: invalid characters in user name/],
      ['GET', '/api/v0.1.0/alice/he_llo', 400, /Failed to parse repository/],
      ['GET', '/api/v0.1.0/alice/hello/_tag/v1.0.0', 400, /Failed to parse tag/],
      ['GET', '/api/v0.1.0/alice/hello/_tag/01.0.0', 400, /Failed to parse tag/],
      ['GET', '/api/v0.1.0/alice/hello/_tag/1.0.0/tree/../../secret', 400, /leave its tree/],
      ['GET', '/api/v0.1.0/alice/hello/_tag/1.0.0/tree/data/..', 400, /leave its tree/],
      ['GET', '/api/v0.1.0/alice/hello/_tag/1.0.0/tree/%2e%2e/x', 400, /invalid characters in entry name/],
      ['GET', '/api/v0.1.0/alice/hello/_tag/1.0.0/tree/a//b', 400, /empty entry name/],
      ['GET', '/api/v0.1.0/alice/hello/_tag/1.0.0/blob', 404, /Route not found/],
      ['GET', '/api/v0.1.0/alice/hello/_nope', 404, /Route not found/],
      ['GET', '/api/v9.0.0/alice', 501, /Unsupported API version/],
      ['GET', '/api/vx/alice', 400, /SemVer/],
      ['GET', '/nothing', 404, /not found/],
      ['DELETE', '/api/v0.1.0/alice', 405, /Method not allowed for user endpoint/],
      ['POST', '/api/v0.1.0/alice/hello/_tag', 405, /Method not allowed/],
      ['GET', '/api/v0.1.0/alice/nosuch/_tag', 404, /Not found/],
      ['GET', '/api/v0.1.0/alice/hello/_tag/7.7.7', 404, /Not found/],
      ['GET', '/api/v0.1.0/alice/hello/_tag/1.0.0/tree/nope', 404, /Not found/],
      ['GET', `/api/v0.1.0/${'a'.repeat(65)}`, 400, /longer than 64/],
    ];
    for (const [method, path, status, message] of cases) {
      const r = await raw(reg.url, reg.serverCa, method, path, { token: aliceToken });
      assert.equal(r.status, status, `${method} ${path}: ${r.body}`);
      assert.match(r.body.toString(), message, path);
    }
  });

  test('uploads: digest mismatch, wrong length, wrong type, missing digest, bad JSON, names that escape', async () => {
    const at = { user: 'alice', repo: 'hello', tag: '3.0.0' };
    const file = Buffer.from('the real content');
    const fileEntry: TreeEntry = { digest: (await import('../../src/drawbridge/index.ts')).digestBytes(file), length: file.length, type: 'application/octet-stream' };
    const dirBytes = Buffer.from(`{"f":${serializeTreeEntry(fileEntry)}}`);
    const root: TreeEntry = { digest: (await import('../../src/drawbridge/index.ts')).digestBytes(dirBytes), length: dirBytes.length, type: MEDIA_TYPES.directory };
    await alice.putTag(at, root);
    const tree = '/api/v0.1.0/alice/hello/_tag/3.0.0/tree';
    const put = (path: string, body: Buffer | string, headers: Record<string, string | number>) => raw(reg.url, reg.serverCa, 'PUT', `${tree}${path}`, { token: aliceToken, body, headers });

    // Child before its parent directory.
    let r = await put('/f', file, putHeaders(file, 'application/octet-stream'));
    assert.equal(r.status, 409);
    assert.match(r.body.toString(), /PUT its parent directory first/);
    assert.equal((await put('/', dirBytes, putHeaders(dirBytes, MEDIA_TYPES.directory))).status, 201);

    const tampered = Buffer.from('the fake content');
    r = await put('/f', tampered, putHeaders(file, 'application/octet-stream'));
    assert.equal(r.status, 400);
    assert.equal(r.body.toString().trim(), 'Content digest mismatch');
    r = await put('/f', tampered, putHeaders(tampered, 'application/octet-stream'));
    assert.equal(r.status, 400, 'honest digest of the wrong bytes');
    assert.equal(r.body.toString().trim(), 'Content digest mismatch');
    r = await put('/f', 'short', { ...putHeaders(file, 'application/octet-stream'), 'content-length': 5 });
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /Content length mismatch, expected: 16, got 5/);
    r = await put('/f', file, putHeaders(file, 'text/plain'));
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /Content type mismatch/);
    const noDigest = putHeaders(file, 'application/octet-stream');
    delete noDigest['content-digest'];
    r = await put('/f', file, noDigest);
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /At least one content digest value must be specified/);
    r = await put('/f', file, { ...putHeaders(file, 'application/octet-stream'), 'content-digest': 'sha-256=:AAAA:' });
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /sha-256 digest has 3 bytes, expected 32/);
    // Nothing of the above was kept: the tag is still pending, and no temporary file is left.
    assert.equal((await alice.getTag(at))?.pending, true);
    assert.equal(reg.store.diskUsage().tmp, 0);
    r = await put('/f', file, putHeaders(file, 'application/octet-stream'));
    assert.equal(r.status, 201);
    assert.equal((await alice.getTag(at))?.pending, false);

    // Directories whose names would leave the tree, and tag entries that are not entries.
    const evil = { user: 'alice', repo: 'hello', tag: '3.0.1' };
    for (const name of ['..', '.', 'a/b', '']) {
      const bytes = Buffer.from(JSON.stringify({ [name]: JSON.parse(serializeTreeEntry(fileEntry)) }));
      const evilRoot: TreeEntry = { digest: (await import('../../src/drawbridge/index.ts')).digestBytes(bytes), length: bytes.length, type: MEDIA_TYPES.directory };
      await alice.putTag(evil, evilRoot);
      r = await raw(reg.url, reg.serverCa, 'PUT', '/api/v0.1.0/alice/hello/_tag/3.0.1/tree', { token: aliceToken, body: bytes, headers: putHeaders(bytes, MEDIA_TYPES.directory) });
      assert.equal(r.status, 400, `entry name '${name}'`);
      assert.match(r.body.toString(), /directory entry/);
      await alice.deletePendingTag(evil);
    }
    for (const [type, body, message] of [
      [MEDIA_TYPES.entry, '{"digest":{},"length":1,"type":"a/b"}', /names no algorithm/],
      [MEDIA_TYPES.entry, '{"digest":{"md5":"AAAA"},"length":1,"type":"a/b"}', /unknown algorithm/],
      [MEDIA_TYPES.entry, '[1,2]', /must be a JSON object/],
      [MEDIA_TYPES.entry, '{not json', /not valid UTF-8 JSON/],
      [MEDIA_TYPES.jws, '{"payload":"e30","protected":"eyJhbGciOiJub25lIn0","signature":""}', /other than "none"/],
      ['text/plain', '{}', /Invalid content type/],
    ] as const) {
      r = await raw(reg.url, reg.serverCa, 'PUT', '/api/v0.1.0/alice/hello/_tag/4.0.0', { token: aliceToken, body, headers: putHeaders(body, type) });
      assert.equal(r.status, 400, body);
      assert.match(r.body.toString(), message);
    }
    const user = '{"subject":"auth0|alice","admin":true}';
    r = await raw(reg.url, reg.serverCa, 'PUT', '/api/v0.1.0/alice2', { token: aliceToken, body: user, headers: putHeaders(user, 'application/json') });
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /unknown field 'admin'/);
    r = await raw(reg.url, reg.serverCa, 'PUT', '/api/v0.1.0/alice2', { token: aliceToken, body: '{}', headers: putHeaders('{}', 'text/plain') });
    assert.equal(r.status, 415);
  });

  test('signed tags are stored and served as application/jose+json; their names must match', async () => {
    const tree = await buildTree(pkg);
    const { privateKey } = await generateKeyPair('ES256');
    const sign = async (names: Record<string, string>) => {
      const payload = new TextEncoder().encode(JSON.stringify({ ...tree.root, ...names }));
      return new FlattenedSign(payload).setProtectedHeader({ alg: 'ES256' }).sign(privateKey) as Promise<{ protected: string; payload: string; signature: string }>;
    };
    const at = { user: 'alice', repo: 'hello', tag: '5.0.0' };
    await assert.rejects(alice.putTag(at, await sign({ user: 'alice', repo: 'hello', tag: '4.9.9' })), { status: 400, message: /names tag '4\.9\.9', not '5\.0\.0'/ });
    const jws = await sign({ user: 'alice', repo: 'hello', tag: '5.0.0' });
    await alice.publish(at, tree, { sign: async () => jws });
    const got = await reg.client().getTag(at);
    assert.equal(got?.mediaType, MEDIA_TYPES.jws);
    assert.equal(got?.entry.kind, 'signed');
    assert.deepEqual(JSON.parse(got?.bytes.toString() ?? ''), jws);
    const r = await raw(reg.url, reg.serverCa, 'HEAD', '/api/v0.1.0/alice/hello/_tag/5.0.0');
    assert.equal(r.headers['content-type'], MEDIA_TYPES.jws);
  });

  test('an interrupted publish resumes: stored nodes are skipped', async () => {
    const big = await makePackage({ 'main.wasm': randomBytes(200_000), 'Enarx.toml': 'x = 1\n', 'lib/a.bin': randomBytes(1000) });
    const tree = await buildTree(big);
    const at = { user: 'alice', repo: 'hello', tag: '6.0.0' };
    await alice.putTag(at, tree.root);
    for (const node of tree.nodes.slice(0, 2)) await alice.putNode(at, node.path, node.entry, node.bytes ?? (await readFile(node.file as string)));
    assert.equal(await reg.client().getTag(at), undefined);
    const result = await alice.publish(at, tree);
    assert.deepEqual(result, { tag: 'exists', uploaded: tree.nodes.length - 2, skipped: 2 });
    assert.equal((await reg.client().getTag(at))?.pending, false);
  });

  test('parallel publishes of one tag: exactly one wins and its bytes are served intact', async () => {
    const at = { user: 'alice', repo: 'hello', tag: '7.0.0' };
    const packages = await Promise.all([0, 1, 2, 3, 4].map((i) => makePackage({ 'main.wasm': randomBytes(100_000 + i), 'Enarx.toml': `n = ${i}\n` })));
    const trees = await Promise.all(packages.map((p) => buildTree(p)));
    const clients = packages.map(() => reg.client({ token: aliceToken }));
    const results = await Promise.allSettled(trees.map((t, i) => (clients[i] as DrawbridgeClient).publish(at, t)));
    const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    assert.equal(winners.length, 1, JSON.stringify(results.map((r) => r.status)));
    for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof DrawbridgeError && r.reason.status === 409, String(r.reason));
    const winner = winners[0] as number;
    const dest = join(reg.dir, 'fetched-race');
    await reg.client().fetchTree(at, dest);
    assert.deepEqual(await readTree(dest), await readTree(packages[winner] as string));

    // The same tree published concurrently by several clients converges on one complete tag.
    const same = { ...at, tag: '7.0.1' };
    const all = await Promise.all(clients.map((c) => c.publish(same, trees[0]!)));
    assert.equal(all.filter((r) => r.tag === 'created').length, 1);
    assert.deepEqual(await readTree(await reg.client().fetchTree(same, join(reg.dir, 'same')).then(() => join(reg.dir, 'same'))), await readTree(packages[0] as string));
  });

  test('oversized bodies are refused before they are read', async () => {
    const small = await startRegistry({ limits: { maxNodeBytes: 1024, maxDocumentBytes: 1024 } });
    try {
      const token = await small.oidc.token({ sub: 'auth0|alice' });
      const c = small.client({ token });
      await c.putUser('alice', { subject: 'auth0|alice' });
      await c.putRepository('alice', 'r', { public: true });
      const tree = await buildTree(await makePackage({ 'main.wasm': randomBytes(4096) }));
      await assert.rejects(c.putTag({ user: 'alice', repo: 'r', tag: '1.0.0' }, { ...tree.root, length: 2 * 1024 * 1024 }), { status: 413 });
      const big = `{"subject":"${'x'.repeat(2000)}"}`;
      const r = await raw(small.url, small.serverCa, 'PUT', '/api/v0.1.0/bob', { token, body: big, headers: putHeaders(big, 'application/json') });
      assert.equal(r.status, 413);
      await c.putTag({ user: 'alice', repo: 'r', tag: '1.0.0' }, tree.root);
      await assert.rejects(c.publish({ user: 'alice', repo: 'r', tag: '1.0.0' }, tree), { status: 413, message: /exceeds the limit of 1024 bytes/ });
    } finally {
      await small.close();
    }
  });

});

async function x509Expired(reg: Registry): Promise<{ certPem: string; keyPem: string }> {
  const { issueCertificate } = await import('../../src/drawbridge/index.ts');
  const day = 86_400_000;
  return issueCertificate(reg.steward, { commonName: 'old keep', usage: 'client', notBefore: new Date(Date.now() - 3 * day), notAfter: new Date(Date.now() - day) });
}
