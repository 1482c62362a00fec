import { test } from 'node:test';
import { healthDetail } from './health.ts';
import assert from 'node:assert/strict';
import { cacheSummary, instanceAddresses, layerVersions, percent } from './resources.ts';

test('layerVersions: names and versions from the catalog entry, the digest alone when it does not list it', () => {
  const entry = { appliance: { layers: [{ role: 'substrate', name: 'jeos', version: '1.0', sha256: 'a'.repeat(64) }] } };
  assert.deepEqual(layerVersions({ substrate: 'a'.repeat(64), appliance: 'b'.repeat(64) }, entry), { substrate: `jeos 1.0 (${'a'.repeat(12)})`, appliance: 'b'.repeat(12) });
  assert.deepEqual(layerVersions(undefined, entry), {});
  assert.deepEqual(layerVersions({ substrate: 'x' }, 'not an entry'), { substrate: 'x' });
});

test('instanceAddresses: the bound lease of its MAC (case-blind), and DNS names it owns or that point at it', () => {
  const leases = [
    { ip: '10.0.0.9', mac: '52:54:00:00:00:01', state: 'released', active: false },
    { ip: '10.0.0.7', mac: '52:54:00:AA:00:01', state: 'bound', active: true },
  ];
  const dns = [
    { name: 'web1.storm.internal', type: 'A', value: '10.0.0.7', owner: 'instance:web1' },
    { name: 'www.storm.internal', type: 'A', value: '10.0.0.7', owner: 'admin' },
    { name: 'mail.storm.internal', type: 'A', value: '10.0.0.8', owner: 'admin' },
  ];
  assert.deepEqual(instanceAddresses('web1', '52:54:00:aa:00:01', leases, dns), { mac: '52:54:00:aa:00:01', ip: '10.0.0.7', dns: ['web1.storm.internal A', 'www.storm.internal A'] });
  assert.deepEqual(instanceAddresses('web2', '52:54:00:00:00:01', leases, [null, 42]), { mac: '52:54:00:00:00:01', ip: '(no lease)', dns: [] });
  assert.deepEqual(instanceAddresses('web3', undefined, [{ mac: '', state: 'bound', ip: '10.0.0.1' }], []), { mac: '', ip: '(no lease)', dns: [] });
});

test('percent reads a host record: stormd info (cpuPercent, memory and disk bytes) or direct figures', () => {
  const h = { info: { cpuPercent: 12.5, memoryBytes: 100, freeMemoryBytes: 25, diskTotalBytes: 10, diskFreeBytes: 10 } };
  assert.equal(percent(h, 'cpu'), 12.5);
  assert.equal(percent(h, 'mem'), 75);
  assert.equal(percent(h, 'disk'), 0);
  assert.equal(percent({ cpuPercent: 140 }, 'cpu'), 100);
  assert.equal(percent({}, 'cpu'), undefined);
});

test('cacheSummary: files, bytes stored, and what no appliance uses', () => {
  assert.equal(cacheSummary([{ size: 1024, usedBy: ['a'] }, { size: 2048, usedBy: [] }, { size: 'x', usedBy: 'y' }]), '3 files, 3.0K stored, 2.0K in 1 unreferenced');
  assert.equal(cacheSummary([]), '0 files, 0B stored');
  assert.equal(cacheSummary([{ size: 1, usedBy: ['a'] }]), '1 file, 1B stored');
});

test('healthDetail: the state and why, the fix, then each fact on its line', () => {
  assert.equal(healthDetail({ component: 'dns', status: 'healthy', reason: 'answering', facts: { queries: 3, upstream: null, zones: ['a', 'b'] } }), 'dns:      healthy: answering\nqueries:  3\nupstream: -\nzones:    ["a","b"]\n');
  assert.equal(healthDetail({ component: 'dhcp', status: 'undetected', reason: 'off', fix: 'set dhcpInterface' }), 'dhcp: undetected: off\nfix:  set dhcpInterface\n');
});
