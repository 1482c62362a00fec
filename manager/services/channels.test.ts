import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChannelService } from '../channels/catalog.ts';
import type { ImageService } from '../images/service.ts';
import { registerChannels, strandedInstances } from './channels.ts';
import { Registry } from './registry.ts';

test("strandedInstances: instances whose appliance (or deployment's appliance) only that channel serves", () => {
  const catalog = [
    { channel: 'example', id: 'wiki', version: '1.0' },
    { channel: 'example', id: 'blog', version: '1.0' },
    { channel: 'mirror', id: 'blog', version: '1.0' },
    { channel: 'mirror', id: 'mail', version: '2.1' },
  ];
  const deployments = [{ name: 'corp', appliance: 'wiki', applianceVersion: '1.0' }, { name: 'ops', appliance: 'mail', applianceVersion: '2.1' }];
  const instances = [
    { name: 'w1', appliance: 'wiki', version: '1.0' },
    { name: 'b1', appliance: 'blog', version: '1.0' }, // the mirror serves it too
    { name: 'c1', appliance: 'deployment:corp', version: '3' },
    { name: 'o1', appliance: 'deployment:ops', version: '1' },
    { name: 'x1', appliance: 'deployment:gone', version: '1' },
  ];
  assert.deepEqual(strandedInstances('example', catalog, deployments, instances), ['w1', 'c1']);
  assert.deepEqual(strandedInstances('mirror', catalog, deployments, instances), ['o1']);
  assert.deepEqual(strandedInstances('nosuch', catalog, deployments, instances), []);
});

test('channel.remove refuses while it is the only source of instances\' appliances (naming them), unless force', async () => {
  const reg = new Registry();
  const removed: string[] = [];
  const channels = { remove: async (name: string) => (removed.push(name), { name, removed: 3 }) } as unknown as ChannelService;
  registerChannels(reg, { channels, images: {} as ImageService, stranded: async (ch) => (ch === 'example' ? ['w1'] : []) });
  const ctx = { actor: 'test', readOnly: false };
  await assert.rejects(reg.call('channel.remove', { name: 'example' }, ctx), (e: { code?: string; message: string; hint?: string }) => e.code === 'conflict' && /1 instance: w1/.test(e.message) && /--force/.test(e.hint ?? ''));
  assert.deepEqual(removed, []);
  assert.deepEqual(await reg.call('channel.remove', { name: 'mirror' }, ctx), { name: 'mirror', removed: 3 });
  assert.deepEqual(await reg.call('channel.remove', { name: 'example', force: true }, ctx), { name: 'example', removed: 3 });
  assert.deepEqual(removed, ['mirror', 'example']);
});
