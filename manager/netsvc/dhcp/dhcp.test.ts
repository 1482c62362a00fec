import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../lib/logger.ts';
import { Store } from '../../store/store.ts';
import { tempDir } from '../../../test/helpers/tmp.ts';
import { prng } from '../../../test/helpers/prng.ts';
import { DhcpService, type Lease } from './service.ts';
import { encodeRequest, ipNum, MSG, OPT, parseReply, parseRequest } from './wire.ts';
import type { TestContext } from 'node:test';

const SID = '10.77.0.1';
const ip = (s: string) => Buffer.from(s.split('.').map(Number));

async function fixture(t: TestContext, dir = tempDir(t)) {
  const store = await Store.open(dir + '/db');
  const svc = new DhcpService({
    store, log: silentLogger, interface: '', listen: { host: '0.0.0.0', port: 67 }, subnet: '10.77.0.0/16', domain: 'storm.internal',
    defaults: { start: '10.77.128.1', end: '10.77.128.10', router: '', dns: [], leaseTime: 600 }, serverIdOverride: SID,
  });
  await svc.start();
  t.after(async () => {
    await svc.stop();
    await store.close().catch(() => undefined);
  });
  const ask = async (type: number, mac: string, opts: { ciaddr?: string; requested?: string; serverId?: string; giaddr?: string } = {}) => {
    const options: [number, Buffer][] = [];
    if (opts.requested) options.push([OPT.REQUESTED_IP, ip(opts.requested)]);
    if (opts.serverId) options.push([OPT.SERVER_ID, ip(opts.serverId)]);
    const out = await svc.handle(encodeRequest({ type, xid: 42, mac, ...(opts.ciaddr ? { ciaddr: opts.ciaddr } : {}), ...(opts.giaddr ? { giaddr: opts.giaddr } : {}), options }));
    return out ? { ...parseReply(out.reply)!, to: out.to } : undefined;
  };
  const dora = async (mac: string) => {
    const offer = await ask(MSG.DISCOVER, mac);
    assert.equal(offer?.type, MSG.OFFER);
    const ack = await ask(MSG.REQUEST, mac, { requested: offer!.yiaddr, serverId: SID });
    assert.equal(ack?.type, MSG.ACK);
    return ack!.yiaddr;
  };
  return { svc, store, ask, dora, dir };
}

test('DORA, offers held briefly, renewal, NAK for a wrong address, release, decline, inform, relay', async (t) => {
  const { svc, ask, dora } = await fixture(t);
  const a = await dora('52:54:00:00:00:01');
  assert.equal(a, '10.77.128.1');
  // Same client again: same address.
  assert.equal(await dora('52:54:00:00:00:01'), a);
  // An offer is held for its client: a second client is offered another address.
  const o1 = await ask(MSG.DISCOVER, '52:54:00:00:00:02');
  const o2 = await ask(MSG.DISCOVER, '52:54:00:00:00:03');
  assert.notEqual(o1!.yiaddr, o2!.yiaddr);
  // ...and cannot take the other's offered address.
  assert.equal((await ask(MSG.REQUEST, '52:54:00:00:00:03', { requested: o1!.yiaddr, serverId: SID }))?.type, MSG.NAK);
  // Options: mask, router, dns, domain, lease time, server id.
  const ack = await ask(MSG.REQUEST, '52:54:00:00:00:02', { requested: o1!.yiaddr, serverId: SID });
  assert.equal(ack?.type, MSG.ACK);
  assert.deepEqual([...ack!.options.get(OPT.SUBNET_MASK)!], [255, 255, 0, 0]);
  assert.deepEqual([...ack!.options.get(OPT.ROUTER)!], [10, 77, 0, 1]);
  assert.deepEqual([...ack!.options.get(OPT.DNS)!], [10, 77, 0, 1]);
  assert.equal(ack!.options.get(OPT.DOMAIN)!.toString(), 'storm.internal');
  assert.equal(ack!.options.get(OPT.LEASE_TIME)!.readUInt32BE(0), 600);
  assert.deepEqual([...ack!.options.get(OPT.SERVER_ID)!], [10, 77, 0, 1]);
  assert.equal(ack!.to.address, '10.77.255.255', 'an unconfigured client gets a subnet broadcast');
  // Renewal: unicast to ciaddr.
  const renew = await ask(MSG.REQUEST, '52:54:00:00:00:01', { ciaddr: a });
  assert.equal(renew?.type, MSG.ACK);
  assert.deepEqual(renew!.to, { address: a, port: 68 });
  // INIT-REBOOT with someone else's address: NAK, broadcast.
  const nak = await ask(MSG.REQUEST, '52:54:00:00:00:09', { requested: a });
  assert.equal(nak?.type, MSG.NAK);
  // Request meant for another server: silence, and our offer is dropped.
  assert.equal(await ask(MSG.REQUEST, '52:54:00:00:00:03', { requested: o2!.yiaddr, serverId: '10.77.0.2' }), undefined);
  // Release: the lease stays on record as released.
  assert.equal(await ask(MSG.RELEASE, '52:54:00:00:00:01', { ciaddr: a, serverId: SID }), undefined);
  assert.equal((await svc.leases()).find((l) => l.ip === a)?.state, 'released');
  // Decline: the address is quarantined, the client gets another.
  const b = (await svc.leases()).find((l) => l.mac === '52:54:00:00:00:02')!.ip;
  await ask(MSG.DECLINE, '52:54:00:00:00:02', { requested: b, serverId: SID });
  assert.equal((await svc.leases()).find((l) => l.ip === b)?.state, 'declined');
  assert.notEqual(await dora('52:54:00:00:00:02'), b);
  // INFORM: options without a lease, unicast.
  const inf = await ask(MSG.INFORM, '52:54:00:00:00:07', { ciaddr: '10.77.5.5' });
  assert.equal(inf?.type, MSG.ACK);
  assert.equal(inf!.yiaddr, '0.0.0.0');
  assert.equal(inf!.options.has(OPT.LEASE_TIME), false);
  assert.deepEqual(inf!.to, { address: '10.77.5.5', port: 68 });
  // Through a relay: replies go to the relay's server port.
  const relayed = await ask(MSG.DISCOVER, '52:54:00:00:00:08', { giaddr: '10.77.0.2' });
  assert.deepEqual(relayed!.to, { address: '10.77.0.2', port: 67 });
});

test('the admin releases a bound lease: kept on record as released, persisted; anything else is not_found', async (t) => {
  const dir = tempDir(t);
  const { svc, dora } = await fixture(t, dir);
  const a = await dora('52:54:00:00:00:31');
  const r = await svc.releaseLease(a);
  assert.deepEqual([r.ip, r.mac, r.state], [a, '52:54:00:00:00:31', 'released']);
  const l = (await svc.leases()).find((x) => x.ip === a)!;
  assert.equal(l.state, 'released');
  assert.equal(l.active, false);
  await assert.rejects(svc.releaseLease(a), (e: { code?: string }) => e.code === 'not_found');
  await assert.rejects(svc.releaseLease('10.77.9.9'), (e: { code?: string }) => e.code === 'not_found');
  await assert.rejects(svc.releaseLease('not an address'), (e: { code?: string }) => e.code === 'not_found');
  // On disk too: a reload reads it back released.
  await svc.reload();
  assert.equal((await svc.leases()).find((x) => x.ip === a)?.state, 'released');
  // The client asks again and is served.
  assert.ok(await dora('52:54:00:00:00:31'));
});

test('reservations win; the pool is exhausted cleanly; leases and settings persist', async (t) => {
  const dir = tempDir(t);
  let f = await fixture(t, dir);
  await f.svc.addReservation({ mac: '52:54:00:AA:00:01', ip: '10.77.1.10', hostname: 'web' });
  const ack = await f.ask(MSG.REQUEST, '52:54:00:aa:00:01', { requested: (await f.ask(MSG.DISCOVER, '52:54:00:aa:00:01'))!.yiaddr, serverId: SID });
  assert.equal(ack!.yiaddr, '10.77.1.10');
  assert.equal(ack!.options.get(OPT.HOSTNAME)!.toString(), 'web');
  // A reserved MAC asking for another address is refused.
  assert.equal((await f.ask(MSG.REQUEST, '52:54:00:aa:00:01', { requested: '10.77.128.5' }))?.type, MSG.NAK);
  // Nobody else gets the reserved address.
  assert.equal((await f.ask(MSG.REQUEST, '52:54:00:aa:00:02', { requested: '10.77.1.10' }))?.type, MSG.NAK);
  for (let i = 0; i < 10; i++) await f.dora(`52:54:00:bb:00:${String(i).padStart(2, '0')}`);
  assert.equal(await f.ask(MSG.DISCOVER, '52:54:00:cc:00:01'), undefined, 'pool of 10 is full: no offer');
  await assert.rejects(f.svc.setSettings({ start: '10.77.130.1', end: '10.77.129.1' }), { code: 'invalid' });
  await f.svc.setSettings({ end: '10.77.128.20', leaseTime: 900 });
  const before = JSON.stringify(await f.svc.leases());
  await f.svc.stop();
  await f.store.close();
  f = await fixture(t, dir);
  assert.equal(JSON.stringify(await f.svc.leases()), before);
  assert.equal(f.svc.settings().end, '10.77.128.20');
  assert.equal(f.svc.settings().leaseTime, 900);
  assert.equal(await f.dora('52:54:00:bb:00:03'), '10.77.128.4', 'same client, same address after a restart');
  assert.equal((await f.svc.reservations())[0]!.mac, '52:54:00:aa:00:01');
});

const SEED = 0xd4c9_2026;

test(`DHCP parser and server: thousands of hostile packets (seed ${SEED}) are answered or dropped and never corrupt a lease`, async (t) => {
  const r = prng(SEED);
  const { svc, store, dora, dir } = await fixture(t);
  await svc.setSettings({ start: '10.77.128.1', end: '10.77.131.254' });
  await svc.addReservation({ mac: '52:54:00:ff:00:01', ip: '10.77.1.1' });
  // A protected client whose lease nothing in the storm may touch (its MAC is never generated).
  const protectedIp = await dora('02:aa:aa:aa:aa:aa');
  const protectedLease = (await svc.leases()).find((l) => l.ip === protectedIp);
  const macs = Array.from({ length: 40 }, (_, i) => `52:54:00:ff:00:${i.toString(16).padStart(2, '0')}`);
  const valid = () => {
    const type = r.pick([MSG.DISCOVER, MSG.REQUEST, MSG.RELEASE, MSG.DECLINE, MSG.INFORM, MSG.REQUEST]);
    const options: [number, Buffer][] = [];
    if (r.next() < 0.6) options.push([OPT.REQUESTED_IP, ip(`10.77.${r.pick([1, 128, 129, 200])}.${r.int(256)}`)]);
    if (r.next() < 0.5) options.push([OPT.SERVER_ID, ip(r.next() < 0.8 ? SID : '10.77.0.9')]);
    if (r.next() < 0.3) options.push([OPT.HOSTNAME, Buffer.from(r.pick(['guest', 'a'.repeat(63), 'bad name', '']))]);
    return encodeRequest({ type, xid: r.int(2 ** 32), mac: r.pick(macs), ...(r.next() < 0.4 ? { ciaddr: `10.77.128.${r.int(256)}` } : {}), options });
  };
  for (let i = 0; i < 6000; i++) {
    const pkt = r.next() < 0.3 ? valid() : r.mutate(valid());
    parseRequest(pkt); // must not throw
    const out = await svc.handle(pkt);
    if (out) {
      const rep = parseReply(out.reply);
      assert.ok(rep, `reply to packet ${i} parses`);
      assert.ok([MSG.OFFER, MSG.ACK, MSG.NAK].includes(rep!.type as 2 | 5 | 6));
    }
  }
  const leases = await svc.leases();
  const now = Date.now();
  // Invariants: every lease is well-formed and inside the subnet; one active lease per MAC;
  // the reserved address only ever went to its MAC; the protected lease is untouched.
  for (const l of leases) {
    assert.ok(svc.inSubnet(l.ip), `lease ${l.ip} inside the subnet`);
    assert.ok(l.state === 'declined' ? l.mac === '' : /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(l.mac), `lease ${l.ip} mac ${l.mac}`);
    assert.ok(['bound', 'released', 'declined'].includes(l.state));
  }
  const active = leases.filter((l) => l.state === 'bound' && l.expires > now);
  assert.equal(new Set(active.map((l) => l.mac)).size, active.length, 'one active lease per MAC');
  const onReserved = leases.find((l) => l.ip === '10.77.1.1');
  assert.ok(!onReserved || onReserved.mac === '52:54:00:ff:00:01' || onReserved.state === 'declined');
  assert.deepEqual(leases.find((l) => l.ip === protectedIp), protectedLease);
  // What is in memory is what is in the store.
  const fresh = new DhcpService({ store, log: silentLogger, interface: '', listen: { host: '0.0.0.0', port: 67 }, subnet: '10.77.0.0/16', domain: 'x', defaults: svc.settings(), serverIdOverride: SID });
  await fresh.start();
  assert.deepEqual(await fresh.leases(), leases);
  assert.ok(dir);
  assert.ok(leases.every((l: Lease) => ipNum(l.ip) > 0));
});

test('serveRelayed: a service without its own socket answers for the relay with its server id, and status says so', async (t) => {
  const store = await Store.open(tempDir(t) + '/db');
  const svc = new DhcpService({
    store, log: silentLogger, interface: '', listen: { host: '0.0.0.0', port: 67 }, subnet: '10.77.0.0/16', domain: 'storm.internal',
    defaults: { start: '10.77.128.1', end: '10.77.128.10', router: '', dns: [], leaseTime: 600 },
  });
  await svc.start();
  t.after(async () => {
    await svc.stop();
    await store.close().catch(() => undefined);
  });
  const discover = encodeRequest({ type: MSG.DISCOVER, xid: 7, mac: '52:54:00:00:00:09', options: [] });
  assert.equal(await svc.handle(discover), undefined, 'no server id: nothing is answered');
  assert.equal(svc.status().status, 'undetected');
  svc.serveRelayed(SID, 'br0 via lab');
  const out = await svc.handle(discover);
  const offer = parseReply(out!.reply)!;
  assert.equal(offer.type, MSG.OFFER);
  assert.deepEqual([...offer.options.get(OPT.SERVER_ID)!], [10, 77, 0, 1]);
  assert.deepEqual(out!.to, { address: '10.77.255.255', port: 68 });
  assert.equal(svc.status().status, 'healthy');
  assert.match(svc.status().reason, /br0 via lab \(10\.77\.0\.1\)/);
});
