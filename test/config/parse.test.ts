import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigError, parseConfig, CONFIG_TEMPLATE, fdEnvironment } from '../../src/config/index.ts';

const parse = (text: string) => parseConfig(text, 'Enarx.toml', '/base');

function rejects(text: string, pattern: RegExp): void {
  assert.throws(() => parse(text), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    assert.match(err.message, /^Enarx\.toml: /);
    assert.doesNotMatch(err.message, /\n/);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('Enarx.toml: the Enarx 0.7 format', () => {
  test("the reference example: fds, defaults and FD_NAMES as Enarx computes them", () => {
    const c = parse(`steward = "https://attest.example"
args = ["--flag"]
[env]
VAR1 = "x"
[[files]]
kind = "stdin"
[[files]]
kind = "stdout"
[[files]]
kind = "stderr"
[[files]]
name = "ingest"
kind = "listen"
prot = "tls"
port = 8443
[[files]]
kind = "connect"
prot = "tcp"
host = "127.0.0.1"
port = 23456
`);
    assert.equal(c.steward, 'https://attest.example');
    assert.deepEqual(c.args, ['--flag']);
    assert.deepEqual(c.env, [['VAR1', 'x']]);
    assert.deepEqual(c.files[3], { kind: 'listen', name: 'ingest', prot: 'tls', addr: '::', port: 8443 });
    assert.deepEqual(c.files[4], { kind: 'connect', name: '127.0.0.1', prot: 'tcp', host: '127.0.0.1', port: 23456 });
    assert.deepEqual(fdEnvironment(c.files), [['FD_COUNT', '5'], ['FD_NAMES', 'stdin:stdout:stderr:ingest:127.0.0.1']]);
  });
  test('defaults: prot tls, port 443 for tls and 80 for tcp; names default to the kind', () => {
    const c = parse(`[[files]]\nkind = "null"\n[[files]]\nkind = "listen"\nname = "a"\n[[files]]\nkind = "listen"\nname = "b"\nprot = "tcp"\n[[files]]\nkind = "connect"\nhost = "example.com"\n[[files]]\nkind = "connect"\nhost = "h"\nprot = "tcp"\nname = "db"\n`);
    assert.deepEqual(c.files.map((f) => f.name), ['null', 'a', 'b', 'example.com', 'db']);
    assert.deepEqual(c.files.map((f) => ('port' in f ? f.port : null)), [null, 443, 80, 443, 80]);
  });
  test('an empty file means no args, no env and stdio', () => {
    const c = parse('');
    assert.deepEqual(c.args, []);
    assert.deepEqual(c.env, []);
    assert.deepEqual(c.files.map((f) => f.kind), ['stdin', 'stdout', 'stderr']);
    assert.equal(c.steward, undefined);
  });
  test('dir entries: guest name, host path relative to the file, readonly', () => {
    const c = parse(`[[files]]\nkind = "dir"\nname = "/data"\npath = "data"\nreadonly = true\n[[files]]\nkind = "dir"\nname = "."\npath = "/abs"\n`);
    assert.deepEqual(c.files, [
      { kind: 'dir', name: '/data', path: '/base/data', readonly: true },
      { kind: 'dir', name: '.', path: '/abs', readonly: false },
    ]);
  });
  test('the template parses', () => {
    const c = parse(CONFIG_TEMPLATE);
    assert.deepEqual(c.files.map((f) => f.kind), ['stdin', 'stdout', 'stderr']);
  });
});

describe('Enarx.toml: errors name the file and the key', () => {
  test('unknown keys anywhere', () => {
    rejects('stewart = "x"\n', /: stewart: unknown key/);
    rejects('[[files]]\nkind = "stdin"\nport = 1\n', /files\[0\]\.port: unknown key/);
    rejects('[[files]]\nkind = "dir"\nname = "d"\npath = "p"\nprot = "tcp"\n', /files\[0\]\.prot: unknown key/);
    rejects('[[files]]\nkind = "connect"\nhost = "h"\naddr = "::"\n', /files\[0\]\.addr: unknown key/);
  });
  test('wrong types and values', () => {
    rejects('args = "x"\n', /args: expected an array of strings/);
    rejects('args = ["a", 2]\n', /args\[1\]: expected a string/);
    rejects('env = 1\n', /env: expected a table/);
    rejects('[env]\nX = 1\n', /env\.X: expected a string/);
    rejects('[env]\nFD_COUNT = "9"\n', /env\.FD_COUNT: is set by the Keep/);
    rejects('steward = "not a url"\n', /steward: expected a URL/);
    rejects('files = 3\n', /files: expected an array of tables/);
    rejects('files = [1]\n', /files\[0\]: expected a table/);
    rejects('[[files]]\nname = "x"\n', /files\[0\]\.kind: is required/);
    rejects('[[files]]\nkind = "pipe"\n', /files\[0\]\.kind: expected one of null, stdin/);
    rejects('[[files]]\nkind = "listen"\n', /files\[0\]\.name: is required/);
    rejects('[[files]]\nkind = "listen"\nname = "a:b"\n', /files\[0\]\.name: must not contain ':'/);
    rejects('[[files]]\nkind = "listen"\nname = "a"\nprot = "udp"\n', /files\[0\]\.prot: expected "tls" or "tcp"/);
    rejects('[[files]]\nkind = "listen"\nname = "a"\nport = 70000\n', /files\[0\]\.port: expected a port number/);
    rejects('[[files]]\nkind = "listen"\nname = "a"\nport = 1.5\n', /files\[0\]\.port/);
    rejects('[[files]]\nkind = "listen"\nname = "a"\naddr = "localhost"\n', /files\[0\]\.addr: expected an IP address/);
    rejects('[[files]]\nkind = "connect"\n', /files\[0\]\.host: is required/);
    rejects('[[files]]\nkind = "connect"\nhost = "h"\nport = 0\n', /files\[0\]\.port/);
    rejects('[[files]]\nkind = "dir"\nname = "/d"\n', /files\[0\]\.path: is required/);
    rejects('[[files]]\nkind = "dir"\nname = "/d"\npath = "p"\nreadonly = "yes"\n', /files\[0\]\.readonly: expected true or false/);
    rejects('[[files]]\nkind = "stdin"\nname = 3\n', /files\[0\]\.name: expected a string/);
  });
  test('TOML syntax errors give line and column on one line', () => {
    rejects('args = [\n', /invalid TOML at line \d+, column \d+/);
    rejects('a = 1\na = 2\n', /invalid TOML at line 2/);
  });
  test('a file too large is refused', () => {
    rejects(`# ${'x'.repeat(1 << 20)}\n`, /larger than/);
  });
  test('property: any text either parses or fails with one ConfigError line', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          parse(text);
        } catch (err) {
          assert.ok(err instanceof ConfigError);
          assert.doesNotMatch(err.message, /\n/);
        }
      }),
      { numRuns: 500 },
    );
  });
  test('property: structured documents with random keys and values never crash the parser', () => {
    const value = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }));
    const entry = fc.dictionary(fc.constantFrom('kind', 'name', 'prot', 'port', 'host', 'addr', 'path', 'readonly', 'extra'), value);
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 4 }), (entries) => {
        const text = entries
          .map((e) => `[[files]]\n${Object.entries(e).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join('\n')}\n`)
          .join('');
        try {
          const c = parse(text);
          for (const f of c.files) assert.ok(!f.name.includes(':'));
        } catch (err) {
          assert.ok(err instanceof ConfigError, String(err));
          assert.match(err.message, /^Enarx\.toml: /);
        }
      }),
      { numRuns: 300 },
    );
  });
});
