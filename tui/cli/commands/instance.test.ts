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
