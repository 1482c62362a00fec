import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import type { ServerResponse } from 'node:http';
import { testPki } from '../../test/helpers/pki.ts';
import { StormdClient } from './client.ts';

test('the stormd client bounds and checks what comes back: garbage, huge, foreign faults, HTTP errors, silence', async (t) => {
  const { pki } = await testPki(t);
  const me = await pki.issueWithKey({ role: 'stormd', commonName: 'hv-x' });
  let answer: (res: ServerResponse) => void = () => {};
  const server = createServer({ key: me.key, cert: me.cert, ca: me.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    req.resume();
    req.on('end', () => answer(res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => (server.closeAllConnections(), server.close()));
  const port = (server.address() as { port: number }).port;
  const client = new StormdClient({ name: 'hv-x', host: '127.0.0.1', port, tls: () => pki.managerTls(), crlNumber: () => pki.crlNumber });
  t.after(() => client.reset());

  answer = (res) => res.writeHead(200).end('<methodResponse><params><param><value><struct><member><name>a');
  await assert.rejects(client.call('x.y'), (e: { code: string }) => e.code === 'invalid');
  answer = (res) => res.writeHead(200).end('this is not xml at all');
  await assert.rejects(client.call('x.y'), (e: { code: string }) => e.code === 'invalid');
  answer = (res) => {
    res.writeHead(200);
    const chunk = Buffer.alloc(1 << 20, 0x20);
    let n = 0;
    const pump = () => {
      while (n++ < 40) if (!res.write(chunk)) return void res.once('drain', pump);
      res.end();
    };
    pump();
  };
  await assert.rejects(client.call('x.y'), (e: { code: string; message: string }) => e.code === 'invalid' && /larger than/.test(e.message));
  answer = (res) => res.writeHead(200).end('<?xml version="1.0"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><int>4</int></value></member><member><name>faultString</name><value><string>boom</string></value></member></struct></value></fault></methodResponse>');
  await assert.rejects(client.call('x.y'), (e: { code: string; message: string }) => e.code === 'internal' && e.message === 'boom');
  answer = (res) => res.writeHead(500).end();
  await assert.rejects(client.call('x.y'), (e: { code: string }) => e.code === 'internal');
  answer = () => {}; // never answers
  await assert.rejects(client.call('x.y', {}, { timeoutMs: 300 }), (e: { code: string }) => e.code === 'timeout');
  answer = (res) => res.writeHead(200).end('<?xml version="1.0"?><methodResponse><params><param><value><string>fine</string></value></param></params></methodResponse>');
  assert.equal(await client.call('x.y'), 'fine');

  // The peer must be the host we asked for.
  const wrong = new StormdClient({ name: 'hv-other', host: '127.0.0.1', port, tls: () => pki.managerTls(), crlNumber: () => pki.crlNumber });
  t.after(() => wrong.reset());
  await assert.rejects(wrong.call('x.y'), (e: { code: string; message: string; details: { trust?: boolean } }) => e.code === 'unauthorized' && e.details.trust === true && /expected hv-other/.test(e.message));
  // A revoked stormd certificate is refused by the client's TLS (CRL in the context).
  await pki.revoke(me.serial);
  client.reset();
  await assert.rejects(client.call('x.y'), (e: { code: string; message: string }) => e.code === 'unauthorized' && /revoked/i.test(e.message));
});

test('reset (the CRL or our certificate changed) lets calls in flight finish; new calls connect afresh', async (t) => {
  const { pki } = await testPki(t);
  const me = await pki.issueWithKey({ role: 'stormd', commonName: 'hv-x' });
  const ok = '<?xml version="1.0"?><methodResponse><params><param><value><string>fine</string></value></param></params></methodResponse>';
  const held: ServerResponse[] = [];
  const sockets = new Set<unknown>();
  const server = createServer({ key: me.key, cert: me.cert, ca: me.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    sockets.add(req.socket);
    req.resume();
    req.on('end', () => (req.url === '/RPC2' && held.length === 0 ? held.push(res) : res.writeHead(200).end(ok)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => (server.closeAllConnections(), server.close()));
  const port = (server.address() as { port: number }).port;
  const client = new StormdClient({ name: 'hv-x', host: '127.0.0.1', port, tls: () => pki.managerTls(), crlNumber: () => pki.crlNumber });
  t.after(() => client.reset());
  const slow = client.call('x.slow');
  while (held.length === 0) await new Promise((r) => setTimeout(r, 10));
  client.reset();
  assert.equal(await client.call('x.quick'), 'fine', 'a new call after the reset works');
  held[0]!.writeHead(200).end(ok);
  assert.equal(await slow, 'fine', 'the call in flight was not cut');
  assert.equal(sockets.size, 2, 'the new call used a new connection');
});
