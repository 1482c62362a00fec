import assert from 'node:assert/strict';
import { test } from 'node:test';
import { run } from './exec.ts';
import { ShellRunner, shQuote } from './shell-runner.ts';

test('shell runner: same answers as run() for output, exit codes and hostile arguments', async (t) => {
  const sh = new ShellRunner({ max: 2 });
  t.after(() => sh.close());
  const hostile = [`it's`, '$(touch /tmp/pwned)', '`id`', 'a; rm -rf /', 'new\nline', '', '--', '"q"', '\\', '*'];
  for (const args of [['printf', '%s|', ...hostile], ['sh', '-c', 'echo out; echo err >&2; exit 3'], ['false']]) {
    const [ours, theirs] = await Promise.all([sh.run(args[0]!, args.slice(1)), run(args[0]!, args.slice(1))]);
    assert.deepEqual({ code: ours.code, stdout: ours.stdout, stderr: ours.stderr }, { code: theirs.code, stdout: theirs.stdout, stderr: theirs.stderr }, args.join(' '));
  }
  const missing = await sh.run('no-such-program-storm', ['x']);
  assert.equal(missing.code, 127);
  assert.equal(missing.spawnError?.code, 'ENOENT');
  assert.equal(shQuote(`a'b`), `'a'\\''b'`);
});

test('shell runner: programs run side by side up to max, a timeout stops the program, a closed runner refuses', async () => {
  const sh = new ShellRunner({ max: 3 });
  const t0 = performance.now();
  const r = await Promise.all([1, 2, 3].map(() => sh.run('sleep', ['0.5'])));
  assert.ok(r.every((x) => x.code === 0));
  // One after another would take 1.5 s; the rest is room for a loaded machine.
  assert.ok(performance.now() - t0 < 1400, 'three sleeps ran at once');
  const slow = await sh.run('sleep', ['30'], { timeoutMs: 200 });
  assert.equal(slow.code, 1);
  assert.match(slow.stderr, /stopped after 200 ms/);
  assert.equal((await sh.run('echo', ['still', 'works'])).stdout, 'still works\n', 'a new shell after the timeout');
  // A killed shell exits a little later; the next job must never be handed to it meanwhile.
  for (let i = 0; i < 5; i++) {
    assert.equal((await sh.run('sleep', ['30'], { timeoutMs: 30 })).code, 1);
    assert.equal((await sh.run('echo', [`again ${i}`])).stdout, `again ${i}\n`, `a job right after timeout ${i}`);
  }
  const died = await sh.run('sh', ['-c', 'kill -9 $PPID; sleep 1']);
  assert.equal(died.code, 1);
  assert.match(died.stderr, /its shell exited/);
  assert.equal((await sh.run('echo', ['after'])).stdout, 'after\n');
  await sh.close();
  assert.equal((await sh.run('true', [])).spawnError?.code, 'ECLOSED');
});
