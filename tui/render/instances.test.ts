import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InstanceRecord } from '../../manager/instances/model.ts';
import { boundLeases } from './resources.ts';
import { instanceDetail, instanceRows, instanceRowsWith, migrationText } from './instances.ts';
import { toCells } from './table.ts';

test('instance show: one fact per line, secrets as the service shows them, the error with its code, the version a rollback returns to', () => {
  const now = Date.parse('2026-11-26T12:10:00.000Z');
  const i: InstanceRecord = {
    id: 'e05166ca8b9b', name: 'w1', appliance: 'deployment:corp', version: '2', host: 'local', state: 'failed',
    layers: { substrate: 'a'.repeat(64), deployment: 'b'.repeat(64) }, mac: '52:54:00:e0:51:66', memoryMiB: 128, vcpus: 1,
    params: { title: 'Our wiki', 'db-password': '(secret)' }, secretParams: ['db-password'],
    createdAt: '2026-11-26T12:00:00.000Z', updatedAt: '2026-11-26T12:09:00.000Z', error: 'update failed: host unreachable', errorCode: 'unreachable',
    previous: { version: '1', layers: {} },
  };
  assert.equal(instanceDetail(i, now), [
    'name:       w1',
    'state:      failed',
    'appliance:  deployment:corp@2 (before: 1; storm update rollback w1 returns to it)',
    'host:       local',
    'id:         e05166ca8b9b',
    'mac:        52:54:00:e0:51:66',
    'resources:  128 MiB, 1 vCPU',
    'parameters: title=Our wiki db-password=(secret)',
    `layers:     substrate ${'a'.repeat(12)}, deployment ${'b'.repeat(12)}`,
    'created:    2026-11-26 12:00:00 (10m ago) by admin',
    'updated:    2026-11-26 12:09:00 (60s ago)',
    'error:      update failed: host unreachable (unreachable)',
    '',
  ].join('\n'));
  // With its address and the guest's own last report.
  const more = instanceDetail(i, now, { ip: '10.0.0.7', dns: ['w1.storm.internal A'] }, { instance: 'w1', id: i.id, status: 'degraded', message: 'failed to start: 50-wiki', at: '2026-11-26T12:08:00.000Z' });
  assert.match(more, /^mac: +52:54:00:e0:51:66\naddress: +10\.0\.0\.7 \(w1\.storm\.internal A\)\nreported: +degraded: failed to start: 50-wiki \(2m ago\)\nresources:/m);
});

test('instance show: the address line, when the leases were asked', () => {
  const i = { id: 'x', name: 'w1', appliance: 'wiki', version: '1.0', host: 'h', state: 'running', layers: {}, mac: 'm', memoryMiB: 1, vcpus: 2, params: {}, createdAt: '2026-11-26T12:00:00.000Z', updatedAt: '2026-11-26T12:00:00.000Z' } as InstanceRecord;
  const text = instanceDetail(i, Date.parse('2026-11-26T12:00:00.000Z'), { ip: '10.77.0.5', dns: ['w1.storm.internal A'] });
  assert.match(text, /\nmac:\s+m\naddress:\s+10\.77\.0\.5 \(w1\.storm\.internal A\)\nresources:\s+1 MiB, 2 vCPUs\n/);
  assert.doesNotMatch(instanceDetail(i), /address:/);
});

test('instance list -o wide: the address of each instance from one lease map, blank without a lease; no ADDRESS column without leases', () => {
  const rec = (name: string, mac: string) => ({ id: name, name, appliance: 'wiki', version: '1.0', host: 'local', state: 'running', layers: {}, mac, memoryMiB: 128, vcpus: 1, params: {}, createdAt: '2026-11-26T12:00:00.000Z', updatedAt: '2026-11-26T12:00:00.000Z' }) as InstanceRecord;
  const rows = [rec('w1', '52:54:00:AA:00:01'), rec('w2', '52:54:00:aa:00:02')];
  const wide = toCells(instanceRowsWith(boundLeases([{ mac: '52:54:00:aa:00:01', ip: '10.0.0.7', state: 'bound' }, { mac: '52:54:00:aa:00:02', ip: '10.0.0.8', state: 'released' }])), rows, true);
  const col = wide[0]!.indexOf('ADDRESS');
  assert.equal(col, 5, 'after AGE, before MAC');
  assert.deepEqual(wide.slice(1).map((r) => r[col]), ['10.0.0.7', '']);
  assert.equal(toCells(instanceRowsWith(new Map()), rows, false)[0]!.includes('ADDRESS'), false, 'wide only');
  assert.equal(toCells(instanceRows, rows, true)[0]!.includes('ADDRESS'), false);
});

test('instance migrate: where it went and what travelled', () => {
  assert.equal(migrationText({ instance: 'w1', from: 'hv1', to: 'hv2', instanceLayerBytes: 4 * 1024 ** 2, layerBytes: 0, bytesMoved: 4 * 1024 ** 2 }), 'w1: moved from hv1 to hv2; 4.0 MiB travelled: its instance layer 4.0 MiB (hv2 held every shared layer)\n');
  assert.equal(migrationText({ instance: 'w1', from: 'hv1', to: 'hv2', instanceLayerBytes: 1024 ** 2, layerBytes: 3 * 1024 ** 2, bytesMoved: 4 * 1024 ** 2 }), 'w1: moved from hv1 to hv2; 4.0 MiB travelled: its instance layer 1.0 MiB, and 3.0 MiB of shared layers hv2 lacked\n');
});
