import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { conflict } from '../../lib/errors.ts';
import { silentLogger } from '../../lib/logger.ts';
import { encodeCall } from '../../lib/xmlrpc/codec.ts';
import { StormdClient } from '../../manager/hosts/client.ts';
import { testPki } from '../../test/helpers/pki.ts';
import { rpcPost } from '../../test/helpers/tls.ts';
import { MethodTable } from './methods.ts';
import { RpcServer } from './server.ts';

const LIMIT = 8 * 1024;

async function setup(t: TestContext) {
  const { pki } = await testPki(t);
  const me = await pki.issueWithKey({ role: 'stormd', commonName: 'hv-test', san: { ip: ['127.0.0.1'] } });
  const methods = new MethodTable();
  methods.add({ name: 'test.echo', summary: 'echo', handler: async (p) => p });
  methods.add({ name: 'test.conflict', summary: 'fails', handler: async () => { throw conflict('domain web-1 already exists', { hint: 'pick another name', details: { name: 'web-1' } }); } });
  methods.add({ name: 'test.crash', summary: 'bug', handler: async () => { throw new TypeError('oops'); } });
  const server = await RpcServer.start({ host: '127.0.0.1', port: 0, tls: { key: me.key, cert: me.cert, ca: me.ca, crl: pki.crlPem }, methods, log: silentLogger, allow: ['manager'], maxBodyBytes: LIMIT });
  t.after(() => server.close());
  const port = server.address().port;
  const client = new StormdClient({ name: 'hv-test', host: '127.0.0.1', port, tls: () => pki.managerTls(), crlNumber: () => pki.crlNumber });
  t.after(() => client.reset());
  const creds = { key: pki.managerTls().key, cert: pki.managerTls().cert, ca: pki.caCertPem };
  return { pki, server, port, client, creds, me, methods };
}

test('calls round-trip; errors cross as faults and come back as StormErrors with their codes', async (t) => {
  const { client } = await setup(t);
  assert.deepEqual(await client.call('test.echo', { a: 'x', n: 3, big: 2 ** 40, nested: { list: [1, 'two', true] } }), { a: 'x', n: 3, big: 2 ** 40, nested: { list: [1, 'two', true] } });
  await assert.rejects(client.call('test.conflict'), (e: { code: string; hint: string; details: unknown; message: string }) => {
    assert.equal(e.code, 'conflict');
    assert.equal(e.message, 'domain web-1 already exists');
    assert.equal(e.hint, 'pick another name');
    assert.deepEqual(e.details, { name: 'web-1' });
    return true;
  });
  await assert.rejects(client.call('no.such'), (e: { code: string }) => e.code === 'not_found');
  await assert.rejects(client.call('test.crash'), (e: { code: string; message: string }) => e.code === 'internal' && /oops/.test(e.message));
  assert.deepEqual(await client.call('test.echo', {}), {});
});

test('bad arguments are faults with code invalid', async (t) => {
  const { port, creds } = await setup(t);
  for (const params of [[[1, 2]], [{}, {}], ['text'], [42]]) {
    const r = await rpcPost(port, creds, encodeCall('test.echo', params));
    assert.ok('status' in r && r.status === 200, JSON.stringify(r));
    assert.match(r.body, /<name>faultCode<\/name><value><int>400<\/int>/, r.body);
    assert.match(r.body, /&quot;code&quot;:&quot;invalid&quot;|"code":"invalid"/);
  }
});

test('request bodies are bounded: declared or streamed, too big is refused and the server lives on', async (t) => {
  const { port, creds, client } = await setup(t);
  const big = encodeCall('test.echo', [{ blob: 'x'.repeat(LIMIT * 4) }]);
  const r = await rpcPost(port, creds, big);
  assert.ok(('status' in r && r.status === 413) || 'error' in r, JSON.stringify(r).slice(0, 200));
  // Chunked, no Content-Length: the limit applies while streaming.
  const chunked = await new Promise<string>((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/RPC2', method: 'POST', ...creds, agent: false, checkServerIdentity: () => undefined, headers: { 'content-type': 'text/xml', 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.statusCode)));
    });
    req.on('error', (e) => resolve(`error ${e.message}`));
    let sent = 0;
    const pump = () => {
      while (sent < LIMIT * 64) {
        sent += 1024;
        if (!req.write('<'.repeat(1024))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  assert.match(chunked, /^(413|error )/);
  assert.deepEqual(await client.call('test.echo', { still: 'alive' }), { still: 'alive' });
});

test('hostile and malformed XML-RPC gets a fault or a closed connection, never a crash', async (t) => {
  const { port, creds, client } = await setup(t);
  const call = (inner: string) => `<?xml version="1.0"?><methodCall><methodName>test.echo</methodName><params><param><value>${inner}</value></param></params></methodCall>`;
  const hostile = [
    '',
    'garbage',
    '<methodCall>',
    '<methodCall><methodName>test.echo</methodName><params><param><value><struct><member>',
    '<?xml version="1.0"?><methodResponse><params><param><value><int>1</int></value></param></params></methodResponse>',
    '<?xml version="1.0"?><methodCall><params/></methodCall>',
    call('<dateTime.iso8601>not a date</dateTime.iso8601>'),
    call('<int>99999999999999999999999</int>'),
    call('<int>abc</int>'),
    call('<double>NaN-ish</double>'),
    call('<base64>!!!not base64!!!</base64>'),
    call('<boolean>7</boolean>'),
    call('<struct><member><value><int>1</int></value></member></struct>'),
    call('<array><data>' + '<value><array><data>'.repeat(1000)),
    call('<array><data>' + '<value><array><data>'.repeat(300) + '</data></array></value>'.repeat(300) + '</data></array>'),
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><methodCall><methodName>test.echo</methodName><params><param><value><string>&b;</string></value></param></params></methodCall>',
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><methodCall><methodName>test.echo</methodName><params><param><value><string>&e;</string></value></param></params></methodCall>',
    Buffer.from([0xff, 0xfe, 0x00, 0x3c, 0x80, 0x81]).toString('latin1'),
    '<methodCall><methodName>' + 'a'.repeat(LIMIT - 100) + '</methodName></methodCall>',
  ];
  // A few hundred seeded random mutations of a valid call.
  const valid = encodeCall('test.echo', [{ a: 1, b: ['x', { c: true }] }]);
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let i = 0; i < 200; i++) {
    const chars = [...valid];
    for (let k = 0; k < 1 + Math.floor(rnd() * 6); k++) chars[Math.floor(rnd() * chars.length)] = String.fromCharCode(Math.floor(rnd() * 128));
    hostile.push(chars.join(''));
  }
  for (const body of hostile) {
    const r = await rpcPost(port, creds, body);
    if ('error' in r) continue; // a closed connection is an acceptable answer
    assert.ok(r.status === 200 || r.status === 413, `status ${r.status} for ${body.slice(0, 80)}`);
    if (r.status === 200) assert.match(r.body, /<methodResponse>/);
    assert.doesNotMatch(r.body, /root:x:0:0/, 'no external entity is ever read');
  }
  assert.deepEqual(await client.call('test.echo', { after: 'fuzz' }), { after: 'fuzz' });
});

test('non-POST and other paths are refused without reaching a method', async (t) => {
  const { port, creds } = await setup(t);
  const get = await new Promise<number>((resolve) => {
    request({ host: '127.0.0.1', port, path: '/RPC2', method: 'GET', ...creds, agent: false, checkServerIdentity: () => undefined }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).end();
  });
  assert.equal(get, 405);
  const r = await rpcPost(port, creds, encodeCall('test.echo', [{}]), '/other');
  assert.ok('status' in r && r.status === 404);
});

test('a pushed CRL is installed only when signed by our CA and newer; revoked peers are cut off', async (t) => {
  const { pki, server, port, client } = await setup(t);
  const old = pki.crlPem;
  const caller = await pki.issueWithKey({ role: 'manager', commonName: 'other-manager' });
  const callerCreds = { key: caller.key, cert: caller.cert, ca: pki.caCertPem };
  assert.ok('status' in (await rpcPost(port, callerCreds)));
  await pki.revoke(caller.serial);
  assert.equal(server.updateCrl(pki.crlPem).number, pki.crlNumber);
  assert.ok('error' in (await rpcPost(port, callerCreds)), 'revoked caller refused');
  assert.throws(() => server.updateCrl(old), (e: { code: string }) => e.code === 'conflict');
  assert.throws(() => server.updateCrl('-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n'), (e: { code: string }) => e.code === 'invalid');
  // The manager's client still works with its own (unrevoked) certificate.
  assert.deepEqual(await client.call('test.echo', { ok: 1 }), { ok: 1 });
});

test('a taken port is a clear conflict, not a crash', async (t) => {
  const { pki, port, me, methods } = await setup(t);
  await assert.rejects(
    RpcServer.start({ host: '127.0.0.1', port, tls: { key: me.key, cert: me.cert, ca: me.ca, crl: pki.crlPem }, methods, log: silentLogger, allow: ['manager'] }),
    (e: { code: string; message: string }) => e.code === 'conflict' && /EADDRINUSE/.test(e.message),
  );
});
