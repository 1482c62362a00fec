import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../lib/logger.ts';
import { Store } from '../store/store.ts';
import { tempDir } from '../../test/helpers/tmp.ts';
import { DhcpService } from './dhcp/service.ts';
import { DnsService } from './dns/service.ts';
import { InstanceNetwork } from './instance-network.ts';
import { encodeQuery, TYPE } from './dns/wire.ts';
import { encodeRequest, MSG, parseReply } from './dhcp/wire.ts';

test('an instance gets a reservation outside the pool and its A/PTR; both go with it; idempotent', async (t) => {
  const store = await Store.open(tempDir(t) + '/db');
  const dns = new DnsService({ store, log: silentLogger, domain: 'storm.internal', managerAddress: '10.77.0.1', reverseZones: ['77.10.in-addr.arpa'], ttl: 60 });
  const dhcp = new DhcpService({ store, log: silentLogger, interface: '', listen: { host: '0.0.0.0', port: 67 }, subnet: '10.77.0.0/16', domain: 'storm.internal', defaults: { start: '10.77.128.1', end: '10.77.255.254', router: '', dns: [], leaseTime: 600 }, serverIdOverride: '10.77.0.1' });
  await dns.start();
  await dhcp.start();
  t.after(async () => {
    await dhcp.stop();
    await dns.stop();
    await store.close();
  });
  const net = new InstanceNetwork({ dns, dhcp, domain: 'storm.internal' });
  const a = await net.attach('Web1', '52:54:00:00:00:0A');
  assert.deepEqual(a, { name: 'web1', mac: '52:54:00:00:00:0a', ip: '10.77.0.2', fqdn: 'web1.storm.internal' });
  assert.deepEqual(await net.attach('web1', '52:54:00:00:00:0a'), a, 'attaching twice changes nothing');
  const b = await net.attach('db', '52:54:00:00:00:0b');
  assert.equal(b.ip, '10.77.0.3');
  // DHCP gives the instance its address, DNS answers for its name.
  const offer = await dhcp.handle(encodeRequest({ type: MSG.DISCOVER, xid: 1, mac: a.mac }));
  assert.equal(parseReply(offer!.reply)!.yiaddr, '10.77.0.2');
  assert.deepEqual(await dns.listHosts(), [{ name: 'db', ip: '10.77.0.3' }, { name: 'web1', ip: '10.77.0.2' }]);
  await net.detach('web1', a.mac);
  await net.detach('web1', a.mac);
  assert.deepEqual((await dhcp.reservations()).map((r) => r.mac), ['52:54:00:00:00:0b']);
  assert.deepEqual(await dns.listHosts(), [{ name: 'db', ip: '10.77.0.3' }]);
  assert.ok(encodeQuery(1, 'web1.storm.internal', TYPE.A));
  // The freed address is the next one handed out.
  assert.equal((await net.attach('web2', '52:54:00:00:00:0c')).ip, '10.77.0.2');
});

test('followInstances: created → reservation and records; destroyed → gone; failures become events', async (t) => {
  const { EventBus } = await import('../events.ts');
  const store = await Store.open(tempDir(t) + '/db');
  const dns = new DnsService({ store, log: silentLogger, domain: 'storm.internal', managerAddress: '10.77.0.1', reverseZones: [], ttl: 60 });
  const dhcp = new DhcpService({ store, log: silentLogger, interface: '', listen: { host: '0.0.0.0', port: 67 }, subnet: '10.77.0.0/16', domain: 'storm.internal', defaults: { start: '10.77.128.1', end: '10.77.255.254', router: '', dns: [], leaseTime: 600 }, exclude: ['10.77.0.1'] });
  await dns.start();
  await dhcp.start();
  t.after(async () => {
    await dhcp.stop();
    await dns.stop();
    await store.close();
  });
  const { followInstances } = await import('./instance-network.ts');
  const bus = new EventBus();
  const known: Record<string, { name: string; mac: string }> = { web: { name: 'web', mac: '52:54:00:00:01:01' } };
  const f = followInstances({ bus, instances: { get: async (n) => known[n] ?? Promise.reject(new Error(`no instance ${n}`)) }, network: new InstanceNetwork({ dns, dhcp, domain: 'storm.internal' }), reservations: () => dhcp.reservations() });
  t.after(() => f.unsubscribe());
  bus.emit({ kind: 'instance.created', object: 'instance/web', message: 'web created' });
  await f.idle();
  assert.deepEqual(await dhcp.reservations(), [{ mac: '52:54:00:00:01:01', ip: '10.77.0.2', hostname: 'web' }]);
  assert.deepEqual(await dns.listHosts(), [{ name: 'web', ip: '10.77.0.2' }]);
  assert.ok(bus.recent().some((e) => e.kind === 'instance.network' && /web\.storm\.internal at 10\.77\.0\.2/.test(e.message)));
  bus.emit({ kind: 'instance.created', object: 'instance/ghost', message: 'ghost created' });
  await f.idle();
  assert.ok(bus.recent().some((e) => e.kind === 'instance.network.failed' && e.object === 'instance/ghost'));
  bus.emit({ kind: 'instance.destroyed', object: 'instance/web', message: 'web destroyed' });
  await f.idle();
  assert.deepEqual(await dhcp.reservations(), []);
  assert.deepEqual(await dns.listHosts(), []);
});
