import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { silentLogger } from '../../../lib/logger.ts';
import { run } from '../../../lib/exec.ts';
import { Store } from '../../store/store.ts';
import { tempDir } from '../../../test/helpers/tmp.ts';
import { freeTcpUdpPort } from '../../../test/helpers/ports.ts';
import { prng } from '../../../test/helpers/prng.ts';
import { DnsService } from './service.ts';
import { encodeQuery, parseQuery, TYPE } from './wire.ts';

const SEED = 0x5eed_d115;

const NAMES = ['storm.local', 'web1.storm.internal', 'storm.internal', 'nope.storm.internal', 'sub.storm.internal', '5.1.77.10.in-addr.arpa', 'example.com', 'big.storm.internal'];
const TYPES = [TYPE.A, TYPE.MX, TYPE.SOA, TYPE.NS, TYPE.PTR, TYPE.TXT, TYPE.AAAA, TYPE.ANY, 99];

test(`DNS parser and server: thousands of hostile packets (seed ${SEED}) are answered or dropped, never crash, never change the data`, async (t) => {
  const r = prng(SEED);
  const store = await Store.open(tempDir(t) + '/db');
  const port = await freeTcpUdpPort();
  const svc = new DnsService({ store, log: silentLogger, domain: 'storm.internal', managerAddress: '10.77.0.1', reverseZones: ['77.10.in-addr.arpa'], ttl: 60, listen: { host: '127.0.0.1', port } });
  await svc.start();
  t.after(async () => {
    await svc.stop();
    await store.close();
  });
  await svc.setHost('web1', '10.77.1.5');
  await svc.addRecord({ name: 'x.sub', type: 'MX', value: 'web1', priority: 1 });
  for (let i = 1; i <= 40; i++) await svc.addRecord({ name: 'big', type: 'A', value: `10.77.2.${i}` });

  const valid = () => encodeQuery(r.int(65536), r.pick(NAMES), r.pick(TYPES), r.next() < 0.5 ? { edns: 512 + r.int(4000) } : {});
  // What every name answers now (ID zeroed), to compare after the storm.
  const server = svc.server!;
  const snapshot = () => NAMES.flatMap((n) => TYPES.map((ty) => [false, true].map((edns) => {
    const out = server.respond(encodeQuery(0, n, ty, edns ? { edns: 1232 } : {}), 'tcp') as Buffer;
    return out.toString('hex');
  }))).flat();
  const before = snapshot();
  const records = JSON.stringify(await svc.listRecords());

  // 1. The parser and the slow path, directly.
  for (let i = 0; i < 5000; i++) {
    const pkt = r.next() < 0.1 ? valid() : r.mutate(valid());
    parseQuery(pkt); // must not throw
    const out = await server.respond(pkt, r.next() < 0.5 ? 'udp' : 'tcp');
    if (out) {
      assert.ok(out.length >= 12 && (out[2]! & 0x80) !== 0, `reply to packet ${i} is a response`);
      assert.equal(out.readUInt16BE(0), pkt.readUInt16BE(0), 'reply keeps the query ID');
      assert.ok(out.length <= 65535);
    }
  }

  // 2. Over the wire, UDP (fast path included): the server keeps answering.
  const udp = createSocket('udp4');
  await new Promise<void>((res) => udp.bind(0, '127.0.0.1', () => res()));
  for (let i = 0; i < 3000; i++) {
    await new Promise((res) => udp.send(r.next() < 0.2 ? valid() : r.mutate(valid()), port, '127.0.0.1', res));
    // Same event loop as the server: let it drain its socket now and then.
    if (i % 20 === 0) await new Promise((res) => setTimeout(res, 1));
  }
  udp.close();
  // 3. TCP: garbage frames, short frames, oversized length prefixes, abrupt closes.
  for (let i = 0; i < 50; i++) {
    await new Promise<void>((res) => {
      const s = connect(port, '127.0.0.1', () => {
        const q = r.mutate(valid());
        const len = Buffer.alloc(2);
        len.writeUInt16BE(r.next() < 0.5 ? q.length : r.int(65536));
        s.end(Buffer.concat([len, q, r.bytes(r.int(100))]));
      });
      s.on('data', () => undefined);
      s.on('error', () => res());
      s.on('close', () => res());
      setTimeout(() => (s.destroy(), res()), 500);
    });
  }

  const d = await run('dig', ['@127.0.0.1', '-p', String(port), '+short', '+time=2', '+tries=2', 'web1.storm.internal']);
  assert.equal(d.stdout.trim(), '10.77.1.5', 'still answering after the fuzz');
  assert.deepEqual(snapshot(), before, 'every answer is what it was');
  assert.equal(JSON.stringify(await svc.listRecords()), records, 'records unchanged');
  assert.ok(server.stats.queries > 2500, `the server saw the storm (${server.stats.queries} queries)`);
});

test('DNS parser: compression loops, long names, bad labels and counts are refused', () => {
  const q = (hex: string) => Buffer.from(hex.replace(/\s/g, ''), 'hex');
  // Header: id 1234, RD, 1 question.
  const hdr = '1234 0100 0001 0000 0000 0000';
  assert.equal(parseQuery(q(hdr + 'c00c 0001 0001')).kind, 'error', 'pointer in the question');
  assert.equal(parseQuery(q(hdr + '40' + '61'.repeat(64) + '00 0001 0001')).kind, 'error', 'label > 63');
  const long = Array.from({ length: 5 }, () => '3f' + '61'.repeat(63)).join('');
  assert.equal(parseQuery(q(hdr + long + '00 0001 0001')).kind, 'error', 'name > 255');
  assert.equal(parseQuery(q(hdr + '0161 00 0001')).kind, 'error', 'question cut short');
  assert.equal(parseQuery(q('1234 8100 0001 0000 0000 0000 0161 00 0001 0001')).kind, 'drop', 'a response is never answered');
  assert.equal(parseQuery(q('1234')).kind, 'drop', 'runt');
  const two = parseQuery(q('1234 0100 0002 0000 0000 0000 0161 00 0001 0001'));
  assert.equal(two.kind === 'error' && two.rcode, 1, 'qdcount 2 is FORMERR');
  const upd = parseQuery(q('1234 2800 0001 0000 0000 0000 0161 00 0001 0001'));
  assert.equal(upd.kind === 'error' && upd.rcode, 4, 'UPDATE is NOTIMP');
  // Additional RR with a self-pointing name.
  assert.equal(parseQuery(q('1234 0100 0001 0000 0000 0001 0161 00 0001 0001 c013 0029 1000 00000000 0000')).kind, 'error');
  // Two OPTs.
  const opt = '00 0029 1000 00000000 0000';
  assert.equal(parseQuery(q('1234 0100 0001 0000 0000 0002 0161 00 0001 0001' + opt + opt)).kind, 'error');
  const ok = parseQuery(q('1234 0100 0001 0000 0000 0001 0141 00 0001 0001' + opt));
  assert.equal(ok.kind, 'query');
  assert.equal(ok.kind === 'query' && ok.q.qname, 'a');
  assert.equal(ok.kind === 'query' && ok.q.edns?.udpSize, 4096);
});
