import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { digestBytes, MEDIA_TYPES, serializeDirectory, Store, type TreeEntry } from '../../src/drawbridge/index.ts';

function entry(bytes: Buffer, type: string): TreeEntry {
  return { digest: digestBytes(bytes), length: bytes.length, type };
}

async function withStore(fn: (store: Store, dir: string, clock: { now: number }) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-store-'));
  const clock = { now: 1_000_000 };
  const store = Store.open(dir, { pendingTtlMs: 60_000, now: () => clock.now });
  try {
    await fn(store, dir, clock);
  } finally {
    store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function setup(store: Store): void {
  store.createUser('alice', 'sub', { bytes: Buffer.from('{"subject":"sub"}'), type: 'application/json' });
  store.createRepo('alice', 'r', { public: true, allowDebugKeeps: false, allowSoftwareKeeps: false }, { bytes: Buffer.from('{"public":true}'), type: 'application/json' });
}

test('a tag turns complete only in the transaction that stores its last node', async () => {
  await withStore(async (store) => {
    setup(store);
    const file = Buffer.from('hello');
    const dir = Buffer.from(serializeDirectory({ 'a.txt': entry(file, 'text/plain'), 'b.txt': entry(file, 'text/plain') }));
    const root = entry(dir, MEDIA_TYPES.directory);
    assert.equal(store.putTag('alice', 'r', '1.0.0', { bytes: Buffer.from('{}'), type: MEDIA_TYPES.entry }, root), 'created');
    const tag = store.getTag('alice', 'r', '1.0.0')!;
    const { parseDirectory } = await import('../../src/drawbridge/index.ts');
    await store.commitNode(tag.id, '', await store.stage(dir, 1 << 20), parseDirectory(dir, 10));
    assert.deepEqual(store.missingNodes(tag.id), ['a.txt', 'b.txt']);
    assert.deepEqual(store.listTags('alice', 'r'), []);
    let r = await store.commitNode(tag.id, 'a.txt', await store.stage(Readable.from([file]), 100));
    assert.deepEqual(r, { outcome: 'created', completed: false });
    // Identical content is one blob on disk, referenced twice.
    r = await store.commitNode(tag.id, 'b.txt', await store.stage(file, 100));
    assert.deepEqual(r, { outcome: 'created', completed: true });
    assert.deepEqual(store.listTags('alice', 'r'), ['1.0.0']);
    assert.equal(store.diskUsage().blobs, 2);
    r = await store.commitNode(tag.id, 'b.txt', await store.stage(file, 100));
    assert.deepEqual(r, { outcome: 'exists', completed: false });
    assert.equal(store.diskUsage().tmp, 0);
  });
});

test('staging refuses bodies longer than allowed and leaves no temporary file', async () => {
  await withStore(async (store) => {
    await assert.rejects(store.stage(Readable.from([Buffer.alloc(60), Buffer.alloc(60)]), 100), /longer than 100 bytes/);
    const aborted = new Readable({ read() {} });
    const p = store.stage(aborted, 1000);
    aborted.push(Buffer.alloc(10));
    aborted.destroy();
    await assert.rejects(p, /closed the connection mid-body/);
    assert.equal(store.diskUsage().tmp, 0);
  });
});

test('an idle pending tag expires with its blobs; a touched one does not; shared blobs stay', async () => {
  await withStore(async (store, _dir, clock) => {
    setup(store);
    const shared = Buffer.from('shared bytes');
    const own = Buffer.from('only in the abandoned tag');
    const putFileTag = async (name: string, bytes: Buffer) => {
      store.putTag('alice', 'r', name, { bytes: Buffer.from(name), type: MEDIA_TYPES.entry }, entry(bytes, 'application/octet-stream'));
      const tag = store.getTag('alice', 'r', name)!;
      await store.commitNode(tag.id, '', await store.stage(bytes, 1000));
      return tag;
    };
    await putFileTag('1.0.0', shared);
    // A pending tag: a directory naming a file that never arrives; the directory blob is its own.
    const dir = Buffer.from(serializeDirectory({ f: entry(own, 'text/plain'), g: entry(shared, 'text/plain') }));
    store.putTag('alice', 'r', '2.0.0', { bytes: Buffer.from('2'), type: MEDIA_TYPES.entry }, entry(dir, MEDIA_TYPES.directory));
    const pending = store.getTag('alice', 'r', '2.0.0')!;
    const { parseDirectory } = await import('../../src/drawbridge/index.ts');
    await store.commitNode(pending.id, '', await store.stage(dir, 1000), parseDirectory(dir, 10));
    await store.commitNode(pending.id, 'g', await store.stage(shared, 1000));
    assert.equal(store.diskUsage().blobs, 2);

    clock.now += 59_000;
    assert.deepEqual(store.sweep(), { expiredTags: 0, removedBlobs: 0 });
    // Resuming (the same entry again) keeps it alive.
    assert.equal(store.putTag('alice', 'r', '2.0.0', { bytes: Buffer.from('2'), type: MEDIA_TYPES.entry }, entry(dir, MEDIA_TYPES.directory)), 'exists');
    clock.now += 59_000;
    assert.equal(store.sweep().expiredTags, 0);
    clock.now += 2_000;
    assert.deepEqual(store.sweep(), { expiredTags: 1, removedBlobs: 1 });
    assert.equal(store.getTag('alice', 'r', '2.0.0'), undefined);
    assert.deepEqual(store.listTags('alice', 'r'), ['1.0.0']);
    assert.equal(store.diskUsage().blobs, 1, 'the blob shared with 1.0.0 stays');
    // A complete tag never expires.
    clock.now += 10 * 60_000;
    assert.equal(store.sweep().expiredTags, 0);
  });
});

test('opening a store removes temporary files and unreferenced blobs left by a crash', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-store-'));
  try {
    Store.open(dir).close();
    await writeFile(join(dir, 'tmp', 'abc.part'), 'half an upload');
    await mkdir(join(dir, 'blobs', 'ab'), { recursive: true });
    await writeFile(join(dir, 'blobs', 'ab', 'ab'.padEnd(64, '0')), 'renamed but never indexed');
    const store = Store.open(dir);
    assert.deepEqual(await readdir(join(dir, 'tmp')), []);
    assert.equal(existsSync(join(dir, 'blobs', 'ab', 'ab'.padEnd(64, '0'))), false);
    store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
