import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { join as pathJoin } from 'node:path';
import { silentLogger } from '../../lib/logger.ts';
import { makeCsr, newKeyPair } from '../../lib/tls/keys.ts';
import { join } from '../../stormd/join.ts';
import { JOIN_PATH, parseToken } from '../../stormd/api/join.ts';
import { EventBus, type StormEvent } from '../events.ts';
import { testPki } from '../../test/helpers/pki.ts';
import { EnrollServer } from './enroll-server.ts';
import { Hosts, parseAddress, type HostRecord } from './hosts.ts';

async function setup(t: TestContext, opts: { startGraceMs?: number } = {}) {
  const { pki, store, dir } = await testPki(t);
  let url: string | undefined;
  const bus = new EventBus();
  const hosts = new Hosts({ store, pki, bus, log: silentLogger, tokenTtlSeconds: 600, pollSeconds: 3600, joinUrl: () => url, ...opts });
  t.after(() => hosts.stop());
  const server = await EnrollServer.start({ host: '127.0.0.1', port: 0, tls: () => pki.managerTls(), log: silentLogger, enroll: (tok, csr) => hosts.enroll(tok, csr) });
  t.after(() => server.close());
  url = `https://127.0.0.1:${server.port}`;
  return { pki, hosts, server, dir, url, store, bus };
}

function post(port: number, ca: string, body: string | Buffer, path = JOIN_PATH, headers: Record<string, string> = {}): Promise<{ status: number; json: any } | { error: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', ca, agent: false, checkServerIdentity: () => undefined, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(Buffer.concat(chunks).toString());
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('error', (e) => resolve({ error: e.message }));
    req.end(body);
  });
}

test('addresses: HOST or HOST:PORT, IPv6 in brackets', () => {
  assert.deepEqual(parseAddress('hv1:7000'), { host: 'hv1', port: 7000 });
  assert.deepEqual(parseAddress('10.0.0.2'), { host: '10.0.0.2', port: 7720 });
  assert.deepEqual(parseAddress('[::1]:9'), { host: '::1', port: 9 });
  assert.throws(() => parseAddress('a b'), /not HOST or HOST:PORT/);
});

test('host add validates, refuses duplicates, and its token enrols exactly once even when raced', async (t) => {
  const { hosts, url, dir, pki } = await setup(t);
  await assert.rejects(hosts.add('Bad_Name', '127.0.0.1:1'), (e: { code: string }) => e.code === 'invalid');
  await assert.rejects(hosts.add('hv1', '127.0.0.1:1', 0), /token lifetime/);
  const a = await hosts.add('hv1', '127.0.0.1:1');
  assert.equal(a.host.state, 'pending');
  assert.equal(parseToken(a.token).pin, pki.caPin);
  assert.match(a.joinCommand ?? '', /^stormd join --manager https:\/\/127\.0\.0\.1:\d+ --token stj1\./);
  await assert.rejects(hosts.add('hv1', '127.0.0.1:2'), (e: { code: string }) => e.code === 'conflict');
  const results = await Promise.allSettled([1, 2, 3].map((i) => join({ manager: url, token: a.token, state: pathJoin(dir, `s${i}`) })));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))));
  for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as { code: string }).code, 'unauthorized');
  const rec = (await hosts.list()).find((h) => h.name === 'hv1')!;
  assert.ok(rec.certSerial);
  assert.equal(rec.state === 'offline' || rec.state === 'untrusted', true, 'enrolled, not yet polled online');
  const removed = await hosts.remove('hv1');
  assert.equal(removed.revoked, rec.certSerial);
  assert.ok(pki.isRevoked(rec.certSerial!));
});

test('the enrolment endpoint bounds and checks its input', async (t) => {
  const { server, pki } = await setup(t);
  const ca = pki.caCertPem;
  const big = await post(server.port, ca, JSON.stringify({ token: 'x'.repeat(200_000), csr: '' }));
  assert.ok(('status' in big && big.status === 413) || 'error' in big);
  const notJson = await post(server.port, ca, '{not json');
  assert.ok('status' in notJson && notJson.status === 400 && notJson.json.error.code === 'invalid');
  const missing = await post(server.port, ca, JSON.stringify({ token: 1 }));
  assert.ok('status' in missing && missing.status === 400);
  const csr = makeCsr(newKeyPair(), 'x');
  const badToken = await post(server.port, ca, JSON.stringify({ token: 'stj1.nope', csr }));
  assert.ok('status' in badToken && badToken.status === 403 && /malformed join token/.test(badToken.json.error.message));
  const unknown = await post(server.port, ca, JSON.stringify({ token: `stj1.0123456789abcdef.${'A'.repeat(43)}.${pki.caPin}`, csr }));
  assert.ok('status' in unknown && unknown.status === 403 && /unknown join token/.test(unknown.json.error.message));
  const path = await post(server.port, ca, '{}', '/v1/other');
  assert.ok('status' in path && path.status === 404);
  const binary = await post(server.port, ca, Buffer.from([0, 1, 2, 0xff, 0xfe]));
  assert.ok('status' in binary && binary.status === 400);
});

test('a bad CSR is refused, issues nothing, and leaves the token usable', async (t) => {
  const { hosts, server, pki, url, dir } = await setup(t);
  const a = await hosts.add('hv2', '127.0.0.1:1');
  const r = await post(server.port, pki.caCertPem, JSON.stringify({ token: a.token, csr: 'not a csr' }));
  assert.ok('status' in r && r.status === 400 && r.json.error.code === 'invalid', JSON.stringify(r));
  assert.equal((await pki.list()).filter((c) => c.role === 'stormd').length, 0);
  assert.equal((await hosts.list())[0]!.certSerial, undefined);
  assert.equal((await join({ manager: url, token: a.token, state: pathJoin(dir, 'ok') })).name, 'hv2');
});

test('firstPolls resolves once every host enrolled at start has been polled, reachable or not', async (t) => {
  const { hosts, url, dir } = await setup(t);
  const added = await hosts.add('hv9', '127.0.0.1:9'); // nothing listens there: its poll fails (offline)
  await join({ manager: url, token: added.token, state: pathJoin(dir, 'hv9') });
  await hosts.start();
  await hosts.firstPolls();
  const rec = (await hosts.list()).find((h) => h.name === 'hv9')!;
  assert.equal(rec.state, 'offline');
  assert.equal(rec.lastError?.code, 'unreachable');
});

test('a host online before the start is not reported offline while its stormd may still be starting; an explicit poll tells the truth', async (t) => {
  const { hosts, url, dir, store, bus } = await setup(t, { startGraceMs: 400 });
  const added = await hosts.add('hv9', '127.0.0.1:9');
  await join({ manager: url, token: added.token, state: pathJoin(dir, 'hv9') });
  await hosts.poll('hv9'); // the enrolment's own poll, done
  const c = store.collection<HostRecord>('hosts');
  await c.put('hv9', { ...(await c.get('hv9'))!, state: 'online' }); // as the last run left it
  const events: string[] = [];
  bus.subscribe((e: StormEvent) => e.kind === 'host.state' && events.push(e.message.split(':')[0]!));
  await hosts.start();
  await hosts.firstPolls();
  let rec = (await hosts.list()).find((h) => h.name === 'hv9')!;
  assert.equal(rec.state, 'online', 'still in its grace');
  assert.equal(rec.lastError?.code, 'unreachable', 'the failure is kept as data');
  assert.deepEqual(events, []);
  // The grace ends: the next scheduled poll (1 s backoff) reports it.
  const t0 = Date.now();
  while ((rec = (await hosts.list()).find((h) => h.name === 'hv9')!).state === 'online' && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
  assert.equal(rec.state, 'offline');
  assert.deepEqual(events, ['host hv9 is offline']);
});

test('an explicit poll of a host in its start grace reports it offline at once', async (t) => {
  const { hosts, url, dir, store } = await setup(t);
  const added = await hosts.add('hv9', '127.0.0.1:9');
  await join({ manager: url, token: added.token, state: pathJoin(dir, 'hv9') });
  await hosts.poll('hv9');
  const c = store.collection<HostRecord>('hosts');
  await c.put('hv9', { ...(await c.get('hv9'))!, state: 'online' });
  await hosts.start();
  assert.equal((await hosts.poll('hv9')).state, 'offline');
});
