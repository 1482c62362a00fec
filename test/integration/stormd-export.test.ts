// Instance layers between hypervisors: stormd A serves an exported instance
// layer on its mutual-TLS server (GET /export/<id>/<sha256>); stormd B pulls
// it with its own certificate, verifying the digest while streaming. Peers
// without a certificate from the cloud CA, or with the wrong role, are
// refused; a tampered or truncated transfer leaves nothing behind on B.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { StormError } from '../../lib/errors.ts';
import { silentLogger } from '../../lib/logger.ts';
import { MethodTable } from '../../stormd/server/methods.ts';
import { RpcServer } from '../../stormd/server/server.ts';
import { LibvirtDriver } from '../../stormd/hypervisor/libvirt/libvirt-driver.ts';
import { LocalHostAgent } from '../../stormd/host-agent.ts';
import { EXPORT_PREFIX, exportBaseUrl, exportRoute, parseRange } from '../../stormd/layers/export-route.ts';
import { testPki } from '../helpers/pki.ts';
import { tempDir } from '../helpers/tmp.ts';

type Creds = { key?: string; cert?: string; ca: string };

/** One GET over TLS; resolves with status, headers and body, or the connection error. */
function get(url: string, creds: Creds, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer } | { error: string }> {
  return new Promise((resolve) => {
    const req = https.request(url, { method, ...creds, agent: false, headers, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', (e) => resolve({ error: e.message }));
    });
    req.on('error', (e) => resolve({ error: `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}` }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** What an import may leave on B: nothing but empty directories after a failure. */
function leftovers(state: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) e.isDirectory() ? walk(join(d, e.name)) : out.push(join(d, e.name));
  };
  walk(join(state, 'instances'));
  walk(join(state, 'imports'));
  return out;
}

async function setup(t: TestContext) {
  const dir = tempDir(t, 'storm-export-');
  const { pki } = await testPki(t, { dir: join(dir, 'ca') });
  const san = { ip: ['127.0.0.1'] };
  const a = await pki.issueWithKey({ role: 'stormd', commonName: 'hv-a', san });
  const b = await pki.issueWithKey({ role: 'stormd', commonName: 'hv-b', san });
  const driver = new LibvirtDriver({ uri: 'test:///default' });
  t.after(() => driver.close());
  const agentA = new LocalHostAgent({ host: 'hv-a', stateDir: join(dir, 'a'), driver });
  const agentB = new LocalHostAgent({ host: 'hv-b', stateDir: join(dir, 'b'), driver, peerTls: () => ({ key: b.key, cert: b.cert, ca: b.ca }) });
  const server = await RpcServer.start({
    host: '127.0.0.1', port: 0, tls: { key: a.key, cert: a.cert, ca: a.ca, crl: pki.crlPem }, methods: new MethodTable(), log: silentLogger, allow: ['manager'],
    files: exportRoute((id, sha) => agentA.exportedFile(id, sha)),
  });
  t.after(() => server.close());
  const port = server.address().port;
  agentA.serveExportsAt(exportBaseUrl('127.0.0.1', port, 'unused'));
  await agentA.createInstanceLayer('web-1', { hostname: 'web-1', domain: 'cloud.storm', files: { '/etc/motd': 'hello\n' }, sizeMiB: 32 });
  const ref = await agentA.exportInstanceLayer('web-1');
  const bytes = readFileSync(agentA.instances.path('web-1'));
  return { dir, pki, a, b, agentA, agentB, port, ref, bytes };
}

test('export URL: the listen address over HTTPS; a wildcard listen uses the hostname', () => {
  assert.equal(exportBaseUrl('127.0.0.1', 7720, 'hv1'), 'https://127.0.0.1:7720/export');
  assert.equal(exportBaseUrl('0.0.0.0', 7720, 'hv1.example'), 'https://hv1.example:7720/export');
  assert.equal(exportBaseUrl('::1', 7720, 'hv1'), 'https://[::1]:7720/export');
  assert.equal(EXPORT_PREFIX, '/export/');
});

test('Range parsing: one range, suffix, open end; unsatisfiable is null; malformed or several means the whole file', () => {
  assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
  assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=50-1000', 100), { start: 50, end: 99 });
  assert.equal(parseRange('bytes=100-', 100), null);
  assert.equal(parseRange('bytes=9-3', 100), null);
  assert.equal(parseRange('bytes=-0', 100), null);
  for (const h of ['bytes=0-1,5-6', 'items=0-1', 'bytes=-', 'bytes=1e3-', `bytes=${'9'.repeat(40)}-`, '']) assert.equal(parseRange(h, 100), undefined, h);
  assert.equal(parseRange(undefined, 100), undefined);
});

test('stormd B pulls an exported instance layer from stormd A over mutual TLS, verified by digest', async (t) => {
  const { agentB, ref, bytes, b, port } = await setup(t);
  assert.match(ref.url, new RegExp(`^https://127\\.0\\.0\\.1:${port}/export/web-1/[0-9a-f]{64}$`));
  assert.equal(ref.size, bytes.length);
  assert.equal(ref.sha256, createHash('sha256').update(bytes).digest('hex'));

  // Direct GETs with B's certificate: whole file with Content-Length, HEAD, one range, an unsatisfiable one.
  const creds = { key: b.key, cert: b.cert, ca: b.ca };
  const whole = await get(ref.url, creds);
  assert.ok('status' in whole && whole.status === 200, JSON.stringify(whole).slice(0, 200));
  assert.equal(whole.headers['content-length'], String(bytes.length));
  assert.ok(whole.body.equals(bytes));
  const head = await get(ref.url, creds, {}, 'HEAD');
  assert.ok('status' in head && head.status === 200 && head.headers['content-length'] === String(bytes.length) && head.body.length === 0);
  const part = await get(ref.url, creds, { range: 'bytes=512-1023' });
  assert.ok('status' in part && part.status === 206, JSON.stringify(part).slice(0, 200));
  assert.equal(part.headers['content-range'], `bytes 512-1023/${bytes.length}`);
  assert.ok(part.body.equals(bytes.subarray(512, 1024)));
  const beyond = await get(ref.url, creds, { range: `bytes=${bytes.length}-` });
  assert.ok('status' in beyond && beyond.status === 416 && beyond.headers['content-range'] === `bytes */${bytes.length}`);
  // A digest the layer no longer has, or a path that is not an export: 404, never another file.
  const stale = await get(ref.url.replace(/[0-9a-f]{64}$/, '0'.repeat(64)), creds);
  assert.ok('status' in stale && stale.status === 404);
  for (const p of ['/export/../instances/web-1/instance.qcow2', '/export/web-1', '/export/WEB/' + ref.sha256]) {
    const r = await get(`https://127.0.0.1:${port}${p}`, creds);
    // (The client normalises `..` away: outside the export prefix a stormd peer gets 403.)
    assert.ok('status' in r && [403, 404].includes(r.status), `${p}: ${JSON.stringify(r).slice(0, 120)}`);
  }
  // A stormd certificate may pull but not command: the RPC path answers 403.
  const rpc = await new Promise<number>((resolve) => {
    const req = https.request(`https://127.0.0.1:${port}/RPC2`, { method: 'POST', ...creds, agent: false }, (res) => (res.resume(), resolve(res.statusCode ?? 0)));
    req.on('error', () => resolve(-1));
    req.end('<methodCall><methodName>system.listMethods</methodName></methodCall>');
  });
  assert.equal(rpc, 403);

  await agentB.importInstanceLayer('web-1', ref);
  assert.ok(readFileSync(agentB.instances.path('web-1')).equals(bytes), 'B holds the same bytes');
  await agentB.importInstanceLayer('web-1', ref); // idempotent
});

test('no client certificate, another CA, or an instance certificate: refused, and a pull without our certificate leaves nothing', async (t) => {
  const { dir, pki, agentA, ref, b } = await setup(t);
  const none = await get(ref.url, { ca: b.ca });
  assert.ok('error' in none, `no certificate must be refused; got ${JSON.stringify(none).slice(0, 200)}`);
  const inst = await pki.issueWithKey({ role: 'instance', commonName: 'web-9' });
  const asInstance = await get(ref.url, { key: inst.key, cert: inst.cert, ca: b.ca });
  assert.ok('error' in asInstance, `an instance certificate must be refused; got ${JSON.stringify(asInstance).slice(0, 200)}`);
  const other = await testPki(t, { dir: join(dir, 'other-ca') });
  const foreign = await other.pki.issueWithKey({ role: 'stormd', commonName: 'hv-b' });
  const asForeign = await get(ref.url, { key: foreign.key, cert: foreign.cert, ca: b.ca });
  assert.ok('error' in asForeign, `another CA's stormd must be refused; got ${JSON.stringify(asForeign).slice(0, 200)}`);
  // A revoked stormd is refused too, once the CRL says so.
  await pki.revoke(b.serial);
  const d2 = new LibvirtDriver({ uri: 'test:///default' });
  t.after(() => d2.close());
  const c = new LocalHostAgent({ host: 'hv-c', stateDir: join(dir, 'c'), driver: d2 });
  await assert.rejects(c.importInstanceLayer('web-1', ref), (e: unknown) => e instanceof StormError && e.code === 'unreachable');
  assert.deepEqual(leftovers(join(dir, 'c')), []);
  void agentA;
});

test('a tampered or truncated transfer is refused and leaves nothing on the puller', async (t) => {
  const { dir, a, b, bytes, ref } = await setup(t);
  // A peer with a valid stormd certificate that lies: flipped bytes, short bodies, too many bytes.
  const modes = ['flip', 'short-declared', 'short-cut', 'long'] as const;
  const server = https.createServer({ key: a.key, cert: a.cert, ca: a.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const mode = (req.url ?? '').split('/')[1] as (typeof modes)[number];
    if (mode === 'flip') {
      const x = Buffer.from(bytes);
      x[x.length >> 1] = x[x.length >> 1]! ^ 1;
      res.writeHead(200, { 'content-length': x.length }).end(x);
    } else if (mode === 'short-declared') res.writeHead(200, { 'content-length': bytes.length - 1 }).end(bytes.subarray(0, -1));
    else if (mode === 'short-cut') {
      res.writeHead(200, { 'content-length': bytes.length });
      res.write(bytes.subarray(0, bytes.length >> 1), () => res.destroy());
    } else res.writeHead(200).end(Buffer.concat([bytes, Buffer.alloc(10)]));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  const port = (server.address() as { port: number }).port;
  const driver = new LibvirtDriver({ uri: 'test:///default' });
  t.after(() => driver.close());
  const c = new LocalHostAgent({ host: 'hv-c', stateDir: join(dir, 'c'), driver, peerTls: () => ({ key: b.key, cert: b.cert, ca: b.ca }) });
  for (const mode of modes) {
    await assert.rejects(
      c.importInstanceLayer('web-1', { ...ref, url: `https://127.0.0.1:${port}/${mode}/web-1/${ref.sha256}` }),
      (e: unknown) => e instanceof StormError && ['invalid', 'unreachable'].includes(e.code),
      mode,
    );
    assert.deepEqual(leftovers(join(dir, 'c')), [], `${mode}: nothing half-written`);
    await assert.rejects(c.snapshots('web-1'), (e: unknown) => e instanceof StormError && e.code === 'not_found');
  }
});
