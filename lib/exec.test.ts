import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import test from 'node:test';
import { run, stopChild } from './exec.ts';

test('run: a missing program is data (127 + spawnError), never a throw; input reaches stdin', async () => {
  const missing = await run('/nonexistent/storm-no-such-program', []);
  assert.equal(missing.code, 127);
  assert.equal(missing.spawnError?.code, 'ENOENT');
  const cat = await run('cat', [], { input: 'hello' });
  assert.deepEqual([cat.code, cat.stdout], [0, 'hello']);
});

test('stopChild: SIGTERM ends a child; one that ignores it is killed after the grace; an exited child resolves at once', async () => {
  const polite = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await new Promise((r) => polite.once('spawn', r));
  await stopChild(polite, 5000);
  assert.equal(polite.signalCode, 'SIGTERM');
  const stubborn = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000)"], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise((r) => stubborn.stdout!.once('data', r));
  await stopChild(stubborn, 200);
  assert.equal(stubborn.signalCode, 'SIGKILL');
  await stopChild(stubborn, 200);
});
