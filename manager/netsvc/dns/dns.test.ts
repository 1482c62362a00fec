import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../../lib/exec.ts';
import { silentLogger } from '../../../lib/logger.ts';
import { Store } from '../../store/store.ts';
import { tempDir } from '../../../test/helpers/tmp.ts';
import { freeTcpUdpPort } from '../../../test/helpers/ports.ts';
import { DnsService } from './service.ts';
import type { TestContext } from 'node:test';

async function dnsFixture(t: TestContext, opts: { upstream?: { host: string; port: number }; domain?: string } = {}) {
  const store = await Store.open(tempDir(t) + '/db');
  const port = await freeTcpUdpPort();
  const svc = new DnsService({ store, log: silentLogger, domain: opts.domain ?? 'storm.internal', managerAddress: '10.77.0.1', reverseZones: ['77.10.in-addr.arpa'], ttl: 60, listen: { host: '127.0.0.1', port }, upstream: opts.upstream });
  await svc.start();
  t.after(async () => {
    await svc.stop();
    await store.close();
  });
  const dig = async (...args: string[]) => {
    const r = await run('dig', ['@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', ...args]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    return r.stdout;
  };
  return { svc, store, port, dig };
}

const short = (out: string) => out.trim().split('\n').filter(Boolean).sort();

for (const transport of ['+notcp', '+tcp']) {
  test(`dig over ${transport === '+tcp' ? 'TCP' : 'UDP'}: A, PTR, MX, SOA, NS, NXDOMAIN vs NODATA`, async (t) => {
    const { svc, dig } = await dnsFixture(t);
    await svc.setHost('web1', '10.77.1.5');
    await svc.addRecord({ name: 'mail', type: 'A', value: '10.77.1.9' });
    await svc.addRecord({ name: '@', type: 'MX', value: 'mail', priority: 5 });
    await svc.addRecord({ name: 'deep.sub', type: 'TXT', value: 'hello world' });

    assert.deepEqual(short(await dig(transport, '+short', 'storm.local', 'A')), ['10.77.0.1']);
    assert.deepEqual(short(await dig(transport, '+short', 'web1.storm.internal', 'A')), ['10.77.1.5']);
    assert.deepEqual(short(await dig(transport, '+short', 'WeB1.Storm.Internal', 'A')), ['10.77.1.5'], 'names are case-insensitive');
    // The cached answer is patched with the question as asked: its case comes back (0x20).
    await dig(transport, 'web1.storm.internal', 'A');
    assert.match(await dig(transport, 'wEb1.sToRm.iNtErNaL', 'A'), /ANSWER SECTION:\nwEb1\.sToRm\.iNtErNaL\.\s+60\s+IN\s+A\s+10\.77\.1\.5/);
    assert.deepEqual(short(await dig(transport, '+short', '-x', '10.77.1.5')), ['web1.storm.internal.']);
    assert.deepEqual(short(await dig(transport, '+short', 'storm.internal', 'MX')), ['5 mail.storm.internal.']);
    assert.match(short(await dig(transport, '+short', 'storm.internal', 'SOA'))[0]!, /^ns\.storm\.internal\. hostmaster\.storm\.internal\. \d+ 3600 600 86400 60$/);
    assert.deepEqual(short(await dig(transport, '+short', 'storm.internal', 'NS')), ['ns.storm.internal.']);
    assert.deepEqual(short(await dig(transport, '+short', 'deep.sub.storm.internal', 'TXT')), ['"hello world"']);

    // MX answer carries the exchange's address as additional data.
    const mx = await dig(transport, 'storm.internal', 'MX');
    assert.match(mx, /ADDITIONAL SECTION:\nmail\.storm\.internal\.\s+60\s+IN\s+A\s+10\.77\.1\.9/);
    assert.match(mx, /flags: qr aa rd;/);

    // NXDOMAIN: the name does not exist; SOA in authority.
    const nx = await dig(transport, 'nope.storm.internal', 'A');
    assert.match(nx, /status: NXDOMAIN/);
    assert.match(nx, /AUTHORITY SECTION:\nstorm\.internal\.\s+60\s+IN\s+SOA/);
    // NODATA: the name exists (or is an empty non-terminal), not with that type.
    for (const [name, type] of [['web1.storm.internal', 'MX'], ['sub.storm.internal', 'A']]) {
      const nd = await dig(transport, name!, type!);
      assert.match(nd, /status: NOERROR/, `${name} ${type}`);
      assert.match(nd, /ANSWER: 0, AUTHORITY: 1/);
      assert.match(nd, /AUTHORITY SECTION:\nstorm\.internal\.\s+60\s+IN\s+SOA/);
    }
    assert.match(await dig(transport, '-x', '10.77.9.9'), /status: NXDOMAIN/);
    // Not ours, no upstream: REFUSED.
    assert.match(await dig(transport, 'example.com', 'A'), /status: REFUSED/);

    // Instances come and go; cached answers follow.
    await svc.removeHost('web1');
    assert.match(await dig(transport, 'web1.storm.internal', 'A'), /status: NXDOMAIN/);
    assert.match(await dig(transport, '-x', '10.77.1.5'), /status: NXDOMAIN/);
  });
}

test('EDNS: OPT echoed with our UDP size, BADVERS for version 1, none without EDNS', async (t) => {
  const { dig } = await dnsFixture(t);
  const withEdns = await dig('+edns=0', '+bufsize=4096', 'storm.local', 'A');
  assert.match(withEdns, /OPT PSEUDOSECTION:\n; EDNS: version: 0, flags:; udp: 1232/);
  assert.doesNotMatch(await dig('+noedns', 'storm.local', 'A'), /OPT PSEUDOSECTION/);
  const v1 = await dig('+edns=1', '+noednsneg', 'storm.local', 'A');
  assert.match(v1, /status: BADVERS/);
});

test('large answers: TC over UDP without EDNS, whole over TCP and with a big EDNS buffer', async (t) => {
  const { svc, dig } = await dnsFixture(t);
  for (let i = 1; i <= 60; i++) await svc.addRecord({ name: 'big', type: 'A', value: `10.77.2.${i}` });
  const udp = await dig('+noedns', '+ignore', 'big.storm.internal', 'A');
  assert.match(udp, /flags: qr aa tc rd;/);
  assert.match(udp, /ANSWER: 0,/);
  // dig retries a truncated answer over TCP by itself.
  assert.equal(short(await dig('+noedns', '+short', 'big.storm.internal', 'A')).length, 60);
  assert.equal(short(await dig('+tcp', '+short', 'big.storm.internal', 'A')).length, 60);
  const edns = await dig('+bufsize=4096', '+ignore', 'big.storm.internal', 'A');
  assert.match(edns, /ANSWER: 60,/);
  assert.doesNotMatch(edns, /flags: [a-z ]*tc/);
  const small = await dig('+bufsize=512', '+ignore', 'big.storm.internal', 'A');
  assert.match(small, /flags: qr aa tc rd;/);
});

test('forwarding: names outside our zones go to the upstream and come back', async (t) => {
  const up = await dnsFixture(t, { domain: 'example.test' });
  await up.svc.addRecord({ name: 'www', type: 'A', value: '192.0.2.7' });
  const { dig } = await dnsFixture(t, { upstream: { host: '127.0.0.1', port: up.port } });
  assert.deepEqual(short(await dig('+short', 'www.example.test', 'A')), ['192.0.2.7']);
  assert.deepEqual(short(await dig('+tcp', '+short', 'www.example.test', 'A')), ['192.0.2.7']);
  const ours = await dig('storm.local', 'A');
  assert.match(ours, /flags: qr aa rd ra;/);
});

test('records persist in the store and are validated', async (t) => {
  const dir = tempDir(t);
  let store = await Store.open(dir + '/db');
  const mk = () => new DnsService({ store, log: silentLogger, domain: 'storm.internal', managerAddress: '10.77.0.1', reverseZones: ['77.10.in-addr.arpa'], ttl: 60 });
  let svc = mk();
  await svc.start();
  await svc.addRecord({ name: 'app', type: 'MX', value: 'mx1.example.org.', priority: 20, owner: 'instance:app' });
  await svc.setHost('db', '10.77.3.3');
  await assert.rejects(svc.addRecord({ name: 'app', type: 'MX', value: 'mx1.example.org.', priority: 20 }), { code: 'conflict' });
  // ensureRecord: the very same record is no change; the same name and value with another owner or priority still conflicts.
  assert.equal((await svc.ensureRecord({ name: 'app', type: 'MX', value: 'mx1.example.org.', priority: 20, owner: 'instance:app' })).added, false);
  await assert.rejects(svc.ensureRecord({ name: 'app', type: 'MX', value: 'mx1.example.org.', priority: 30, owner: 'instance:app' }), { code: 'conflict' });
  await assert.rejects(svc.ensureRecord({ name: 'app', type: 'MX', value: 'mx1.example.org.', priority: 20 }), { code: 'conflict' });
  await assert.rejects(svc.addRecord({ name: 'x', type: 'A', value: '300.1.1.1' }), { code: 'invalid' });
  await assert.rejects(svc.addRecord({ name: 'www.example.com.', type: 'A', value: '1.2.3.4' }), { code: 'invalid' });
  await assert.rejects(svc.addRecord({ name: 'bad_-', type: 'SRV', value: 'x' }), { code: 'invalid' });
  await svc.stop();
  await store.close();
  store = await Store.open(dir + '/db');
  svc = mk();
  await svc.start();
  assert.deepEqual(await svc.listRecords(), [{ name: 'app.storm.internal', type: 'MX', value: 'mx1.example.org', priority: 20, owner: 'instance:app' }]);
  assert.deepEqual(await svc.listHosts(), [{ name: 'db', ip: '10.77.3.3' }]);
  await assert.rejects(svc.removeRecord({ name: 'app', type: 'A' }), { code: 'not_found' });
  assert.equal((await svc.removeRecord({ name: 'app', type: 'MX' })).length, 1);
  await svc.stop();
  await store.close();
});
