import { test } from 'node:test';
import assert from 'node:assert/strict';
import { notFound } from '../../lib/errors.ts';
import { silentLogger } from '../../lib/logger.ts';
import { testPki } from '../../test/helpers/pki.ts';
import { EventBus } from '../events.ts';
import type { InstanceRecord } from '../instances/model.ts';
import type { DnsRecord } from '../netsvc/dns/zone.ts';
import { ApplianceApi } from './api.ts';

test('at start the API forgets what instances destroyed while its event was lost still hold; live ones keep theirs', async (t) => {
  const { pki, store } = await testPki(t);
  const live = [{ id: 'i-live', name: 'web1' }] as InstanceRecord[];
  const get = async (ref: string) => live.find((i) => i.id === ref || i.name === ref) ?? Promise.reject(notFound(`instance ${ref}`));
  let records: DnsRecord[] = [
    { name: 'web1', type: 'MX', value: 'mail.web1', owner: 'instance:web1' },
    { name: 'old', type: 'MX', value: 'mail.old', owner: 'instance:gone' },
    { name: 'www', type: 'A', value: '10.0.0.1', owner: 'admin' },
  ];
  const dns = {
    ensureRecord: async () => Promise.reject(new Error('unused')),
    listRecords: async () => records,
    removeRecord: async (r: { name: string; owner?: string }) => {
      const out = records.filter((x) => `${x.name}.` === r.name && x.owner === r.owner);
      records = records.filter((x) => !out.includes(x));
      return out;
    },
  };
  const open = () =>
    ApplianceApi.open({
      store, bus: new EventBus(), log: silentLogger, pki, dns, domain: 'storm.internal', managerAddress: '127.0.0.1', createLimit: 4, listen: undefined, apiUrl: '', dnsListen: undefined,
      instances: { get, list: async () => live, create: async () => Promise.reject(new Error('unused')), provision: async () => Promise.reject(new Error('unused')) },
    });

  // Before the crash: both had credentials and grants; "gone" was destroyed, its event never handled.
  const before = await open();
  const kept = await before.creds.ensure({ id: 'i-live', name: 'web1' });
  const lost = await before.creds.ensure({ id: 'i-gone', name: 'gone' });
  await before.grants.add('web1', 'wiki', 'admin');
  await before.grants.add('gone', 'wiki', 'admin');
  await before.grants.add('ghost', '@mx', 'admin');

  const api = await open();
  t.after(() => api.stop());
  api.follow();
  await api.idle();
  assert.deepEqual((await api.creds.list()).map((c) => c.id), ['i-live']);
  assert.ok(pki.isRevoked(lost.serial), "the gone instance's certificate is revoked");
  assert.ok(!pki.isRevoked(kept.serial));
  assert.deepEqual((await api.grants.list()).map((g) => `${g.instance}/${g.appliance}`), ['web1/wiki']);
  assert.deepEqual(records.map((r) => r.owner), ['instance:web1', 'admin']);
});
