import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StormApi } from '../../../manager/api.ts';
import { runCli } from '../cli.ts';

test('storm snapshot take|restore|delete: one line saying what was done; -o json the answer; restore and delete need --yes', async () => {
  const calls: string[] = [];
  const api: StormApi = { call: async <R>(method: string, p: Record<string, unknown> = {}) => (calls.push(method), { instance: p.name, snapshot: p.snapshot } as R), subscribe: () => () => {}, close: () => {} };
  const run = async (argv: string[]) => {
    let out = '';
    const code = await runCli(argv, { stdout: (s) => (out += s), stderr: (s) => (out += s), stdinIsTty: false, env: {} }, { api: async () => api });
    return { code, out };
  };
  assert.deepEqual(await run(['snapshot', 'take', 'w2', 's1']), { code: 0, out: 'w2: snapshot s1 taken\n' });
  assert.deepEqual(JSON.parse((await run(['snapshot', 'take', 'w2', 's1', '-o', 'json'])).out), { instance: 'w2', snapshot: 's1' });
  assert.equal((await run(['snapshot', 'restore', 'w2', 's1'])).code, 8);
  assert.deepEqual(await run(['snapshot', 'restore', 'w2', 's1', '--yes']), { code: 0, out: 'w2: snapshot s1 restored\n' });
  assert.deepEqual(await run(['snapshot', 'delete', 'w2', 's1', '--yes']), { code: 0, out: 'w2: snapshot s1 deleted\n' });
  assert.deepEqual(calls, ['instance.snapshot.take', 'instance.snapshot.take', 'instance.snapshot.restore', 'instance.snapshot.delete']);
});

test('storm instance create --param: KEY=VALUE, KEY=@FILE and KEY=@- (stdin, one trailing newline dropped); over SSH a local file is refused', async (t) => {
  const { tempDir } = await import('../../../test/helpers/tmp.ts');
  const { writeFileSync } = await import('node:fs');
  const dir = tempDir(t);
  writeFileSync(`${dir}/pw`, 'from-file\n');
  const sent: Record<string, unknown>[] = [];
  const api: StormApi = { call: async <R>(method: string, p: Record<string, unknown> = {}) => (method === 'instance.create' && sent.push(p), { name: 'db1', host: 'h1', state: 'running', params: {} } as R), subscribe: () => () => {}, close: () => {} };
  const run = async (argv: string[], o: { stdin?: string; remote?: boolean } = {}) => {
    let err = '';
    const code = await runCli(argv, { stdout: () => {}, stderr: (s) => (err += s), stdinIsTty: false, env: {}, ...(o.stdin !== undefined ? { readStdin: async () => o.stdin! } : {}) }, { api: async () => api, ...(o.remote ? { remote: true } : {}) });
    return { code, err };
  };
  assert.equal((await run(['instance', 'create', 'db1', '-a', 'db', '--no-wait', '--param', 'user=app', '--param', `password=@${dir}/pw`])).code, 0);
  assert.equal((await run(['instance', 'create', 'db1', '-a', 'db', '--no-wait', '--param', 'password=@-'], { stdin: 'from-stdin\n' })).code, 0);
  assert.deepEqual(sent.map((p) => p.params), [{ user: 'app', password: 'from-file' }, { password: 'from-stdin' }]);
  const twice = await run(['instance', 'create', 'db1', '-a', 'db', '--param', 'a=@-', '--param', 'b=@-'], { stdin: 'x' });
  assert.equal(twice.code, 2);
  assert.match(twice.err, /--param b=@-: stdin is already read for another value/);
  const ssh = await run(['instance', 'create', 'db1', '-a', 'db', '--param', `password=@${dir}/pw`], { remote: true });
  assert.equal(ssh.code, 6);
  assert.match(ssh.err, /over SSH the file would be read on the manager's machine[\s\S]*--param password=@- < FILE/);
  assert.equal(sent.length, 2);
});

test('storm instance console -f: the end, then each new piece from where the last ended; a log started again is said; ends when the reader goes', async () => {
  const log = ['boot 1\n', 'ready\n'];
  const asked: unknown[] = [];
  let close!: () => void;
  const closed = new Promise<void>((r) => (close = r));
  const answers = [
    { text: 'boot 1\n', from: 0, next: 7 },
    { text: '', from: 7, next: 7 },
    { text: log[1]!, from: 7, next: 13 },
    { text: 'boot 2\n', from: 0, next: 7 }, // stopped and started: the log is new
  ];
  const api: StormApi = {
    call: async <R>(_m: string, p: Record<string, unknown> = {}) => {
      asked.push(p.from);
      const a = answers.shift();
      if (!a) close();
      return { instance: 'w1', host: 'h1', ...(a ?? { text: '', from: 7, next: 7 }) } as R;
    },
    subscribe: () => () => {},
    close: () => {},
  };
  let out = '';
  const code = await runCli(['instance', 'console', 'w1', '-f'], { stdout: (s) => (out += s), stderr: (s) => (out += s), stdinIsTty: false, env: {}, closed }, { api: async () => api });
  assert.equal(code, 0, out);
  assert.equal(out, 'boot 1\nready\n\n-- w1: the console log started again --\nboot 2\n');
  assert.deepEqual(asked.slice(0, 5), [undefined, 7, 7, 13, 7]);
});
