import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ALGORITHMS,
  compareSemver,
  DigestError,
  digestBytes,
  DocumentError,
  formatContentDigest,
  NameError,
  parseContentDigest,
  parseDirectory,
  parsePackageReference,
  parseEntryName,
  parseRepositoryName,
  parseRoute,
  parseSlug,
  parseTagEntry,
  parseTagName,
  parseTreePath,
  parseUserName,
  MEDIA_TYPES,
} from '../../src/drawbridge/index.ts';
import { HttpError } from '../../src/drawbridge/server.ts';

const SIZES = { 'sha-224': 28, 'sha-256': 32, 'sha-384': 48, 'sha-512': 64 } as const;

// From Enarx's drawbridge-type tests: the four digests of "foo".
const FOO =
  'sha-224=:CAj2TmDViXn8tnbJbsk4Jw3qQkRa7vzTpOb42w==:,sha-256=:LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=:,sha-384=:mMEf/f3VQGdrGhN8saIrKnA1DJpEFx1rEYDGvly7LuP3nVMsih3Z7y6OCOdSo7q7:,sha-512=:9/u6bgY2+JDlb7vzKD5STG+jIErimDgtYkdB0NxmODJuKCxBvl5CVNiCB3LFUYosWowMf37aGVlKfrU5RT4e1w==:';

test('Content-Digest: Enarx\'s vector parses, prints back identically and matches the bytes', () => {
  const parsed = parseContentDigest(FOO);
  assert.deepEqual(parsed, digestBytes(Buffer.from('foo')));
  assert.equal(formatContentDigest(parsed), FOO);
});

const digestSet = fc
  .subarray([...ALGORITHMS], { minLength: 1 })
  .chain((algs) => fc.tuple(...algs.map((a) => fc.uint8Array({ minLength: SIZES[a], maxLength: SIZES[a] }).map((b) => [a, Buffer.from(b).toString('base64')] as const))))
  .map((pairs) => Object.fromEntries(pairs));

test('Content-Digest: format then parse is the identity, whatever the subset and order', () => {
  fc.assert(
    fc.property(digestSet, fc.boolean(), fc.boolean(), (digests, spaces, shuffle) => {
      let members = formatContentDigest(digests).split(',');
      if (shuffle) members = members.reverse();
      const header = members.join(spaces ? ' ,\t' : ',');
      assert.deepEqual(parseContentDigest(header), digests);
    }),
  );
});

test('Content-Digest: RFC 9530 leniencies (unknown algorithms, parameters, missing padding, key case)', () => {
  const d = digestBytes(Buffer.from('foo'));
  const s256 = d['sha-256'] as string;
  assert.deepEqual(parseContentDigest(`md5=:rL0Y20zC+Fzt72VPzMSk2A==:, sha-256=:${s256}:`), { 'sha-256': s256 });
  assert.deepEqual(parseContentDigest(`sha-256=:${s256}:;note=1`), { 'sha-256': s256 });
  assert.deepEqual(parseContentDigest(`sha-256=:${s256.replace(/=+$/, '')}:`), { 'sha-256': s256 });
  assert.deepEqual(parseContentDigest(`SHA-256=:${s256}:`), { 'sha-256': s256 });
  assert.deepEqual(parseContentDigest(`sha-512=:${d['sha-512']}:,unixsum=30637`), { 'sha-512': d['sha-512'] });
});

test('Content-Digest: malformed values are one-line DigestErrors', () => {
  const s256 = digestBytes(Buffer.from('foo'))['sha-256'] as string;
  const bad: [string, RegExp][] = [
    ['', /empty member/],
    [`sha-256=:${s256}:,`, /empty member/],
    [`sha-256=${s256}`, /byte sequence/],
    [`sha-256=:${s256}`, /byte sequence/],
    ['sha-256=:AAAA:', /has 3 bytes, expected 32/],
    [`sha-224=:${s256}:`, /has 32 bytes, expected 28/],
    [`sha-256=:${s256.replace('L', '-')}:`, /not standard base64/],
    ['sha-256', /no '='/],
    ['md5=:AAAA:', /names none of/],
    ['Sha 256=:AAAA:', /not a valid structured-field key/],
    ['x'.repeat(5000), /longer than 4096/],
  ];
  for (const [header, message] of bad) assert.throws(() => parseContentDigest(header), (e: Error) => e instanceof DigestError && message.test(e.message) && !e.message.includes('\n'), header);
});

test('Content-Digest: arbitrary input never crashes the parser', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.stringMatching(/^[a-z0-9=:,;+/ -]{0,200}$/)), (header) => {
      try {
        const d = parseContentDigest(header);
        for (const [alg, value] of Object.entries(d)) assert.equal(Buffer.from(value, 'base64').length, SIZES[alg as keyof typeof SIZES]);
      } catch (err) {
        assert.ok(err instanceof DigestError, String(err));
      }
    }),
    { numRuns: 2000 },
  );
});

test('names: Enarx\'s alphabets are exactly what is accepted', () => {
  const cases: [(s: string) => string, RegExp, number][] = [
    [parseUserName, /^[A-Za-z0-9]+$/, 64],
    [parseRepositoryName, /^[A-Za-z0-9-]+$/, 128],
    [parseEntryName, /^[A-Za-z0-9._:-]+$/, 255],
  ];
  for (const [parse, alphabet, max] of cases) {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 70 }), fc.stringMatching(/^[A-Za-z0-9._:\-/%]{1,70}$/)), (s) => {
        const ok = alphabet.test(s) && s.length <= max && s !== '.' && s !== '..';
        if (ok) assert.equal(parse(s), s);
        else assert.throws(() => parse(s), NameError);
      }),
      { numRuns: 1000 },
    );
  }
});

test('tree paths: no segment can be empty, a dot segment or contain a slash', () => {
  assert.deepEqual(parseTreePath(''), []);
  assert.deepEqual(parseTreePath('/'), []);
  assert.deepEqual(parseTreePath('/foo/'), ['foo']);
  assert.deepEqual(parseTreePath('foo/bar'), ['foo', 'bar']);
  for (const bad of ['..', '/../x', 'a/./b', 'a//b', 'a/%2e%2e', 'a\\..\\b', '/'.repeat(3)]) {
    if (bad === '///') assert.deepEqual(parseTreePath(bad), []);
    else assert.throws(() => parseTreePath(bad), NameError, bad);
  }
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z./%\\-]{0,40}$/), (s) => {
      try {
        for (const seg of parseTreePath(s)) {
          assert.ok(seg !== '' && seg !== '.' && seg !== '..' && !seg.includes('/') && !seg.includes('\\'), seg);
        }
      } catch (err) {
        assert.ok(err instanceof NameError);
      }
    }),
    { numRuns: 2000 },
  );
  assert.throws(() => parseTreePath(Array(33).fill('a').join('/')), /deeper than 32/);
});

const semver = fc
  .tuple(fc.nat(999), fc.nat(999), fc.nat(999), fc.option(fc.stringMatching(/^(0|[1-9]\d{0,3}|[a-z][a-z0-9-]{0,5})(\.(0|[1-9]\d{0,3}|[a-z][a-z0-9-]{0,5})){0,2}$/)))
  .map(([a, b, c, pre]) => `${a}.${b}.${c}${pre ? `-${pre}` : ''}`);

test('tags: SemVer 2.0.0 versions, ordered by precedence', () => {
  fc.assert(fc.property(semver, (v) => assert.equal(parseTagName(v), v)));
  for (const bad of ['', 'v1.2.3', '1.2', '01.2.3', '1.2.3-', '1.2.3-01', '1.2.3+', '=', '1.2.3/4', '99999999999999999999.0.0']) assert.throws(() => parseTagName(bad), NameError, bad);
  // semver.org's example of precedence.
  const ordered = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '2.0.0', '2.1.0', '2.1.1'];
  assert.deepEqual([...ordered].reverse().sort(compareSemver), ordered);
  fc.assert(
    fc.property(semver, semver, (a, b) => {
      assert.equal(Math.sign(compareSemver(a, b)), -Math.sign(compareSemver(b, a)));
      if (a === b) assert.equal(compareSemver(a, b), 0);
    }),
  );
});

test('slugs: [host/]user/repo[:tag] as Enarx reads them', () => {
  assert.deepEqual(parseSlug('store.example:8443/alice/hello:1.0.0'), { host: 'store.example:8443', user: 'alice', repo: 'hello', tag: '1.0.0' });
  assert.deepEqual(parseSlug('alice/hello'), { host: undefined, user: 'alice', repo: 'hello', tag: undefined });
  assert.throws(() => parseSlug('alice/hello', { tag: 'required' }), /names no tag/);
  assert.throws(() => parseSlug('hello:1.0.0'), /not \[host\/\]user\/repo/);
  assert.throws(() => parseSlug('/alice/hello'), /empty host/);
});

test('package references: host/user/repo:tag or an https tag URL; no default host; http only to localhost', () => {
  assert.deepEqual(parsePackageReference('registry.example:8443/alice/hello:1.0.0'), { origin: 'https://registry.example:8443', user: 'alice', repo: 'hello', tag: '1.0.0' });
  assert.deepEqual(parsePackageReference('https://registry.example/api/v0.1.0/alice/hello/_tag/1.0.0-rc.1'), { origin: 'https://registry.example', user: 'alice', repo: 'hello', tag: '1.0.0-rc.1' });
  assert.deepEqual(parsePackageReference('http://127.0.0.1:8080/api/v0.1.0/alice/hello/_tag/1.0.0').origin, 'http://127.0.0.1:8080');
  const bad: [string, RegExp][] = [
    ['alice/hello:1.0.0', /no registry host .* no default host/],
    ['registry.example/alice/hello', /names no tag/],
    ['http://registry.example/api/v0.1.0/alice/hello/_tag/1.0.0', /plain http is refused except to localhost/],
    ['ftp://registry.example/x', /only https/],
    ['https://registry.example/alice/hello:1.0.0', /not a tag URL/],
    ['https://user:pw@registry.example/api/v0.1.0/alice/hello/_tag/1.0.0', /no credentials/],
    ['https://registry.example/api/v0.1.0/alice/hello/_tag/../1.0.0', /not a tag URL|SemVer/],
    ['reg istry/alice/hello:1.0.0', /not a host/],
  ];
  for (const [ref, message] of bad) assert.throws(() => parsePackageReference(ref), (e: Error) => e instanceof NameError && message.test(e.message), ref);
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), (ref) => {
      try {
        const r = parsePackageReference(ref);
        assert.ok(r.origin.startsWith('https://') || /^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(r.origin), r.origin);
      } catch (err) {
        assert.ok(err instanceof NameError, String(err));
      }
    }),
    { numRuns: 2000 },
  );
});

test('routes: any path either routes or is a one-line HTTP error', () => {
  assert.deepEqual(parseRoute('/api/v0.1.0/alice/hello/_tag/1.0.0/tree/a/b'), { user: 'alice', repo: 'hello', tag: '1.0.0', tree: ['a', 'b'] });
  assert.deepEqual(parseRoute('/api/v0.1.0/alice/hello/_tag'), { user: 'alice', repo: 'hello', tagList: true });
  assert.deepEqual(parseRoute('/api/v0.4.3/alice/'), { user: 'alice' });
  fc.assert(
    fc.property(fc.stringMatching(/^(\/api\/v0\.1\.0\/)?[a-z0-9._/%-]{0,60}$/), (path) => {
      try {
        const r = parseRoute(path);
        assert.match(r.user, /^[A-Za-z0-9]+$/);
      } catch (err) {
        assert.ok(err instanceof HttpError && [400, 404, 501].includes(err.status) && !err.message.includes('\n'), String(err));
      }
    }),
    { numRuns: 3000 },
  );
});

test('documents: arbitrary bytes as a tag entry or directory are DocumentErrors, never crashes', () => {
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.json().map((j) => new TextEncoder().encode(j))), fc.constantFrom(MEDIA_TYPES.entry, MEDIA_TYPES.jws), (bytes, type) => {
      for (const parse of [() => parseTagEntry(type, bytes), () => parseDirectory(bytes, 100)]) {
        try {
          parse();
        } catch (err) {
          assert.ok(err instanceof DocumentError, String(err));
        }
      }
    }),
    { numRuns: 2000 },
  );
});
