import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnEnarx } from '../helpers/cli.ts';
import { REPO_ROOT } from '../helpers/paths.ts';

/** The process's children (/proc/PID/task/TID/children). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    } catch {
      // the thread ended
    }
  }
  return out;
}

// A descriptor enarx inherits without close-on-exec (a shell's `40<FILE`, a build tool's pipe)
// would pass on to the process Keep, where the permission model, which checks paths, would not
// stop the Keep's JavaScript from reading it. enarx closes such descriptors before it starts a Keep.
test('a process Keep does not inherit the descriptors or the environment of its host, and may read only its bundle', { skip: process.platform !== 'linux' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'enarx-inherit-'));
  const secret = join(dir, 'host-secret.txt');
  writeFileSync(secret, 'SECRET');
  const fd = openSync(secret, 'r');
  try {
    // Node marks some low-numbered inherited descriptors close-on-exec at start-up, not high ones.
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
    for (let i = 3; i < 40; i++) stdio.push('ignore');
    stdio.push(fd);
    const child = spawnEnarx(['run', '--backend', 'process', join(REPO_ROOT, 'examples', 'sleep.wasm'), '4000'], { stdio });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    let keep: number | undefined;
    for (let i = 0; i < 300 && keep === undefined && child.exitCode === null; i++) {
      keep = childrenOf(child.pid!).find((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--permission');
        } catch {
          return false;
        }
      });
      if (keep === undefined) await sleep(50);
    }
    assert.ok(keep !== undefined, `the Keep process was found: ${stderr}`);
    const held = readdirSync(`/proc/${keep}/fd`).map((n) => {
      try {
        return `${n} -> ${readlinkSync(`/proc/${keep}/fd/${n}`)}`;
      } catch {
        return `${n} -> ?`;
      }
    });
    assert.ok(held.some((l) => /^3 -> socket:/.test(l)), `positive control: the sallyport is fd 3: ${held.join(', ')}`);
    assert.ok(!held.some((l) => l.endsWith(secret)), `the Keep holds the host's file: ${held.join(', ')}`);
    // And nothing else of the host's: an empty environment (the host's has PATH, HOME, tokens...),
    // and the permission model granting reads of its bundle's directory only (no --dir here).
    assert.equal(readFileSync(`/proc/${keep}/environ`, 'utf8'), '', 'the Keep\'s environment is empty');
    const argv = readFileSync(`/proc/${keep}/cmdline`, 'utf8').split('\0');
    const bundle = argv.at(-2)!;
    assert.match(bundle, /\/keep\.mjs$/);
    assert.deepEqual(argv.filter((a) => a.startsWith('--allow')), [`--allow-fs-read=${dirname(bundle)}`]);
    child.kill('SIGTERM');
    await exited;
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});
