import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conflict } from '../../lib/errors.ts';
import { LocalApi } from '../api.ts';
import { EventBus, type StormEvent } from '../events.ts';
import { logOperations } from './operations.ts';
import { Registry } from './registry.ts';

test('every state-changing call that ran is logged as an operation, with who, what and how it ended', async () => {
  const reg = new Registry();
  const bus = new EventBus();
  const seen: StormEvent[] = [];
  bus.subscribe((e) => seen.push(e));
  reg.add({ name: 'thing.list', mutates: false, summary: '', handler: async () => [] });
  // A service that emits nothing of its own: the log still shows it, so other sessions refresh.
  reg.add({ name: 'thing.set', mutates: true, summary: '', handler: async () => ({ ok: true }) });
  reg.add({ name: 'thing.remove', mutates: true, summary: '', handler: async (p) => { throw conflict(`thing ${String(p.name)} is in use`); } });
  const off = logOperations(reg, bus);
  const admin = new LocalApi(reg, bus, { actor: 'ssh:admin (alice@laptop)', readOnly: false });
  const auditor = new LocalApi(reg, bus, { actor: 'ssh:admin (auditor@desk)', readOnly: true });

  await admin.call('thing.list');
  assert.deepEqual(await admin.call('thing.set', { name: 'web1', password: 'hunter2' }), { ok: true });
  await assert.rejects(admin.call('thing.remove', { name: 'web1' }), /in use/);
  await assert.rejects(auditor.call('thing.set', { name: 'web1' }), (e: { code?: string }) => e.code === 'unauthorized');
  await admin.call('thing.set', { ref: 'wiki@1.0' });

  assert.deepEqual(seen.map((e) => [e.kind, e.object, e.level, e.message]), [
    ['operation', 'web1', undefined, 'ssh:admin (alice@laptop): thing.set web1'],
    ['operation.failed', 'web1', 'warn', 'ssh:admin (alice@laptop): thing.remove web1 failed (conflict): thing web1 is in use'],
    ['operation', 'wiki@1.0', undefined, 'ssh:admin (alice@laptop): thing.set wiki@1.0'],
  ]);
  assert.deepEqual(seen[1]!.data, { method: 'thing.remove', actor: 'ssh:admin (alice@laptop)', code: 'conflict' });
  assert.doesNotMatch(JSON.stringify(seen), /hunter2/, 'no parameter but the name is copied');

  // An observer that throws does not fail the call; unsubscribed, nothing more is logged.
  reg.onOperation(() => {
    throw new Error('observer broke');
  });
  off();
  assert.deepEqual(await admin.call('thing.set', { name: 'x' }), { ok: true });
  assert.equal(seen.length, 3);
});
