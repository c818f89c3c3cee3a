import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLoopbackHost } from '../../src/net/loopback.ts';

test('loopback hosts: localhost, 127.0.0.0/8 and [::1], nothing that merely starts like them', () => {
  for (const h of ['localhost', 'LOCALHOST', '127.0.0.1', '127.1.2.3', '[::1]']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['localhost.example', '127.0.0.1.nip.io', '128.0.0.1', '[::2]', '::1', '10.0.0.1', '']) assert.ok(!isLoopbackHost(h), h);
});
