import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Hosts } from '../hosts/hosts.ts';
import { registerHosts } from './hosts.ts';
import { Registry } from './registry.ts';

test('host.remove refuses while instances are on the host (naming them), unless force', async () => {
  const reg = new Registry();
  const removed: string[] = [];
  const hosts = { remove: async (name: string) => (removed.push(name), { name }) } as unknown as Hosts;
  const on: Record<string, string[]> = { hv1: ['web1', 'web2'], hv2: [] };
  registerHosts(reg, hosts, async (h) => on[h] ?? []);
  const ctx = { actor: 'test', readOnly: false };
  await assert.rejects(reg.call('host.remove', { name: 'hv1' }, ctx), (e: { code?: string; message: string; hint?: string }) => e.code === 'conflict' && /2 instances: web1, web2/.test(e.message) && /--force/.test(e.hint ?? ''));
  assert.deepEqual(removed, []);
  assert.deepEqual(await reg.call('host.remove', { name: 'hv2' }, ctx), { name: 'hv2' });
  assert.deepEqual(await reg.call('host.remove', { name: 'hv1', force: true }, ctx), { name: 'hv1' });
  assert.deepEqual(removed, ['hv2', 'hv1']);
});
