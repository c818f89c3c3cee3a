// The launchers (bin/enarx, bin/enarx.js) read `enarx run`'s flags before any module loads, to
// start the Keep early and to pick the wasm tier; they must know which flags take no value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { register } from '../../src/cli/commands/run.ts';
import { REPO_ROOT } from '../helpers/paths.ts';

test("the launchers know every switch of `enarx run` (a flag that takes no value)", () => {
  const program = new Command();
  register(program);
  const run = program.commands.find((c) => c.name() === 'run')!;
  const switches = run.options.filter((o) => !o.required && !o.optional).map((o) => o.long!);
  assert.ok(switches.includes('--no-fetch-collateral'));
  const js = readFileSync(join(REPO_ROOT, 'bin', 'enarx.js'), 'utf8');
  const listed = JSON.parse(/const RUN_SWITCHES = (\[[^\]]*\]);/.exec(js)![1]!.replaceAll("'", '"')) as string[];
  assert.deepEqual([...listed].sort(), [...switches].sort(), 'bin/enarx.js RUN_SWITCHES');
  const sh = readFileSync(join(REPO_ROOT, 'bin', 'enarx'), 'utf8');
  const cased = /^\s*((?:--[\w-]+ \| )*--[\w-]+)\) ;; # its switches/m.exec(sh)![1]!.split(' | ');
  assert.deepEqual([...cased].sort(), [...switches].sort(), 'bin/enarx plain_run');
});
