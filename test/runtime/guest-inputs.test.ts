// enarx run bounds the guest's argv and environment the same way in every Keep, within what the
// process Keep's sallyport `hello` can carry; beyond, one clear line and exit 1 (cli.test.ts
// checks the refusal in both Keeps).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeMessage, MAX_FRAME_BYTES } from '../../src/sallyport/index.ts';
import { MAX_LIST_ITEMS, MAX_TEXT_BYTES } from '../../src/sallyport/messages.ts';
import { GUEST_INPUT_LIMITS } from '../../src/cli/run/run.ts';

test("the guest-input limits fit the sallyport's", () => {
  assert.ok(GUEST_INPUT_LIMITS.items <= MAX_LIST_ITEMS);
  assert.ok(GUEST_INPUT_LIMITS.itemBytes <= MAX_TEXT_BYTES);
  // The largest allowed argv and env, with room to spare for the files, encode into one frame.
  const each = Math.floor(GUEST_INPUT_LIMITS.totalBytes / 2 / GUEST_INPUT_LIMITS.items);
  const argv = Array.from({ length: GUEST_INPUT_LIMITS.items }, () => 'a'.repeat(each));
  const env = Array.from({ length: GUEST_INPUT_LIMITS.items }, (_, i): [string, string] => [`K${i}`, 'v'.repeat(Math.max(0, each - 6))]);
  const hello = encodeMessage({
    t: 'hello', version: 1,
    init: { moduleSize: 8, argv, env, files: [], limits: { memory: null, descriptors: null }, logLevel: 'warn', steward: null },
  });
  assert.ok(hello.length < MAX_FRAME_BYTES - 256 * 1024, `${hello.length} bytes`);
});
