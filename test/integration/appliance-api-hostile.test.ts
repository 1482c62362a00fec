/**
 * Hostile input at the appliance API, from a caller holding a valid instance
 * certificate (the worst case): malformed and truncated XML, oversized and
 * deeply nested bodies, entity tricks, wrong types, odd method names, random
 * mutations of valid calls. Every request gets a fault, an HTTP error or a
 * closed connection; the manager keeps answering and nothing is stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { encodeCall } from '../../lib/xmlrpc/codec.ts';
import { rpcPost } from '../helpers/tls.ts';
import { prng } from '../helpers/prng.ts';
import { startApiLab } from '../helpers/appliance-api.ts';

const SEED = 0xa9_1c0de;

const call = (method: string, inner: string) => `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params><param><value>${inner}</value></param></params></methodCall>`;
const member = (name: string, value: string) => `<member><name>${name}</name><value>${value}</value></member>`;

test(`hostile requests (seed ${SEED}) get faults or closed connections, never a crash, and store nothing`, async (t) => {
  const lab = await startApiLab(t);
  const web1 = await lab.create('web1');
  const etc = lab.etc(web1);
  const port = lab.m.applianceApi.port!;
  const creds = { ca: readFileSync(join(etc, 'tls', 'ca.crt'), 'utf8'), cert: readFileSync(join(etc, 'tls', 'instance.crt'), 'utf8'), key: readFileSync(join(etc, 'tls', 'instance.key'), 'utf8') };
  const admin = lab.m.api({ actor: 'test', readOnly: false });
  const snapshot = async () => JSON.stringify({
    instances: (await admin.call<{ name: string; state: string }[]>('instance.list')).map((i) => [i.name, i.state]).sort(),
    records: (await admin.call<{ records: unknown[] }>('dns.record.list')).records,
    reports: await admin.call('api.reports'),
    grants: await admin.call('grant.list'),
  });
  const before = await snapshot();
  const events: { kind: string; message: string }[] = [];
  t.after(lab.m.bus.subscribe((e) => events.push(e)));
  const post = (body: string | Buffer) => rpcPost(port, creds, body as string);
  /** A fault (XML with faultCode), an HTTP error status, or a closed connection: anything but a result or a hang. */
  const refusedOrFault = (r: Awaited<ReturnType<typeof rpcPost>>, what: string) => {
    if ('error' in r) return;
    if (r.status !== 200) return assert.ok(r.status >= 400, `${what}: status ${r.status}`);
    assert.match(r.body, /<name>faultCode<\/name>/, `${what}: expected a fault, got ${r.body.slice(0, 300)}`);
  };

  const cases: [string, string | Buffer][] = [
    ['empty', ''],
    ['not xml', 'hello'],
    ['open tag', '<'],
    ['no method name', '<methodCall></methodCall>'],
    ['truncated', encodeCall('config.get', [{}]).slice(0, 60)],
    ['binary', Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37) & 0xff))],
    ['member without value', call('status.report', `<struct><member><name>status</name></member></struct>`)],
    ['bad int', call('mx.register', `<struct>${member('priority', '<int>abc</int>')}</struct>`)],
    ['huge int', call('mx.register', `<struct>${member('priority', '<int>99999999999999999999999</int>')}</struct>`)],
    ['double as priority', call('mx.register', `<struct>${member('priority', '<double>1e308</double>')}</struct>`)],
    ['unknown type', call('config.get', '<struct><member><name>a</name><value><foo>1</foo></value></member></struct>')],
    ['bad date', call('status.report', `<struct>${member('status', '<dateTime.iso8601>yesterday</dateTime.iso8601>')}</struct>`)],
    ['bad base64', call('status.report', `<struct>${member('status', '<base64>!!!*</base64>')}</struct>`)],
    ['billion laughs', `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>${call('status.report', `<struct>${member('status', '<string>ok</string>')}${member('message', '<string>&lol3;</string>')}</struct>`).replace('<?xml version="1.0"?>', '')}`],
    ['external entity', `<?xml version="1.0"?><!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>${call('status.report', `<struct>${member('status', '<string>ok</string>')}${member('message', '<string>&xxe;</string>')}</struct>`).replace('<?xml version="1.0"?>', '')}`],
    ['unknown entity', call('status.report', `<struct>${member('status', '<string>&nope;</string>')}</struct>`)],
    ['nul char ref', call('status.report', `<struct>${member('status', '<string>ok&#0;</string>')}</struct>`)],
    ['control chars', call('status.report', `<struct>${member('status', '<string>ok</string>')}${member('message', '<string>a&#27;[2Jb</string>')}</struct>`)],
    ['__proto__ member', call('status.report', `<struct>${member('__proto__', `<struct>${member('status', '<string>hacked</string>')}</struct>`)}</struct>`)],
    ['constructor member', call('instance.create', `<struct>${member('name', '<string>x1</string>')}${member('appliance', '<string>wiki</string>')}${member('parameters', `<struct>${member('__proto__', '<struct></struct>')}</struct>`)}</struct>`)],
    ['array param', call('config.get', '<array><data><value><int>1</int></value></data></array>')],
    ['string param', call('config.get', '<string>web2</string>')],
    ['two params', encodeCall('config.get', [{}, {}])],
    ['forged id', encodeCall('config.get', [{ id: 'other' }])],
    ['status as int', encodeCall('status.report', [{ status: 5 }])],
    ['status with spaces', encodeCall('status.report', [{ status: 'all good' }])],
    ['status too long', encodeCall('status.report', [{ status: 'a'.repeat(33) }])],
    ['message too long', encodeCall('status.report', [{ status: 'ok', message: 'm'.repeat(1025) }])],
    ['mx name as struct', encodeCall('mx.register', [{ name: { a: 1 } }])],
    ['mx priority as string', encodeCall('mx.register', [{ priority: '10' }])],
    ['mx for another name', encodeCall('mx.register', [{ name: 'storm.local' }])],
    ['mx for the reverse zone', encodeCall('mx.register', [{ name: '1.77.10.in-addr.arpa' }])],
    ['mx exchanger elsewhere', encodeCall('mx.register', [{ exchange: 'web1.storm.internal.evil.com' }])],
    ['create without grant', encodeCall('instance.create', [{ name: 'x2', appliance: 'wiki' }])],
    ['create with array parameters', encodeCall('instance.create', [{ name: 'x3', appliance: 'wiki', parameters: ['a'] }])],
    ['create with int parameter', encodeCall('instance.create', [{ name: 'x4', appliance: 'wiki', parameters: { a: 1 } }])],
    ['create as createdBy someone', encodeCall('instance.create', [{ name: 'x5', appliance: 'wiki', createdBy: 'admin' }])],
    ['unknown method', encodeCall('system.listMethods', [])],
    ['proto method', encodeCall('__proto__', [])],
    ['constructor method', encodeCall('constructor', [])],
    ['escapes in the method name', '<?xml version="1.0"?><methodCall><methodName>x&#27;[2J\u009b31m</methodName><params></params></methodCall>'],
    ['escapes in a status message', encodeCall('status.report', [{ status: 'ok', message: 'a\u009b2Jb' }])],
    ['long method name', encodeCall('a.' + 'b'.repeat(60_000), [])],
  ];
  for (const [what, body] of cases) refusedOrFault(await post(body), what);

  // Deep nesting within the size limit: a fault, not a stack overflow.
  const depth = 1200;
  const deepArray = call('config.get', '<array><data><value>'.repeat(depth) + '<int>1</int>' + '</value></data></array>'.repeat(depth));
  assert.ok(deepArray.length < 64 * 1024);
  refusedOrFault(await post(deepArray), 'deep array');
  const deepStruct = call('status.report', '<struct><member><name>a</name><value>'.repeat(depth) + '<int>1</int>' + '</value></member></struct>'.repeat(depth));
  refusedOrFault(await post(deepStruct.slice(0, 64 * 1024 - 1)), 'deep struct (cut to the limit)');

  // Oversized: refused with 413 (declared) or the connection closed (streamed).
  const big = call('status.report', `<struct>${member('status', '<string>ok</string>')}${member('message', `<string>${'x'.repeat(70 * 1024)}</string>`)}</struct>`);
  const r413 = await post(big);
  assert.ok('error' in r413 || r413.status === 413, JSON.stringify(r413).slice(0, 200));

  // Plain HTTP and garbage at the TLS port: closed.
  for (const junk of ['POST /RPC2 HTTP/1.1\r\nHost: x\r\n\r\n', '\x16\x03\x01\x00\x05hello', 'x'.repeat(10_000)]) {
    await new Promise<void>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.end(junk));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
    });
  }

  // Random mutations of valid calls.
  const r = prng(SEED);
  const valid = [
    encodeCall('config.get', [{}]),
    encodeCall('status.report', [{ status: 'ready', message: 'fine' }]),
    encodeCall('mx.list', [{}]),
    encodeCall('instance.create', [{ name: 'fuzz1', appliance: 'wiki', parameters: { a: 'b' } }]),
  ];
  for (let i = 0; i < 150; i++) {
    const body = r.mutate(Buffer.from(r.pick(valid)));
    const res = await post(body);
    if (!('error' in res) && res.status === 200 && !/faultCode/.test(res.body)) {
      // A mutation that still decodes to a read-only valid call is fine; anything that stored something is not.
      assert.doesNotMatch(res.body, /fuzz1|hacked/, `mutation ${i} did something: ${body.toString('latin1').slice(0, 200)}`);
    }
  }

  // Still answering, and nothing changed (the one valid status.report in the mutations aside).
  const after = JSON.parse(await snapshot());
  const was = JSON.parse(before);
  assert.deepEqual(after.instances, was.instances);
  assert.deepEqual(after.records, was.records);
  assert.deepEqual(after.grants, was.grants);
  for (const rep of after.reports as { status: string; message: string }[]) {
    assert.ok(['ready', 'ok'].includes(rep.status) || /^[a-z][a-z0-9-]*$/.test(rep.status), JSON.stringify(rep));
    assert.doesNotMatch(rep.message, /root:|lol|\u001b|hacked/);
  }
  // Events (what the console shows) never carry the caller's control characters.
  const audit = events.filter((e) => e.kind.startsWith('api.') || e.kind === 'instance.report');
  assert.ok(audit.length > cases.length, `expected an event per request, got ${audit.length}`);
  for (const e of audit) assert.doesNotMatch(e.message, /[\u0000-\u001f\u007f-\u009f]/, e.message);
  assert.ok(audit.some((e) => e.message.includes('"x?[2J?31m"')), audit.map((e) => e.message).join('\n').slice(0, 2000));
  const ok = await post(encodeCall('config.get', [{}]));
  assert.ok(!('error' in ok) && ok.status === 200 && /web1\.storm\.internal/.test(ok.body), JSON.stringify(ok));
});
