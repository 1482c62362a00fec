import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '../../lib/logger.ts';
import { testPki } from '../../test/helpers/pki.ts';
import { LayerServer } from './layer-server.ts';

type Creds = { ca: string; cert?: string; key?: string };
function get(port: number, path: string, creds: Creds, method = 'GET'): Promise<{ status: number; body: Buffer } | { error: string }> {
  return new Promise((resolve) => {
    const req = https.request({ host: '127.0.0.1', port, path, method, ca: creds.ca, cert: creds.cert, key: creds.key, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
    });
    req.on('error', (e) => resolve({ error: e.message }));
    req.end();
  });
}

test('layer server: only unrevoked stormd certificates of our CA get layers, by digest', async (t) => {
  const { pki, dir } = await testPki(t);
  const body = Buffer.from('a deployment layer with the site configuration');
  const sha = createHash('sha256').update(body).digest('hex');
  writeFileSync(join(dir, sha), body);
  const { server, port } = await LayerServer.start({ host: '127.0.0.1', port: 0, tls: () => pki.managerTls(), check: (pem) => pki.check(pem, 'stormd'), path: (s) => join(dir, s), log: silentLogger });
  t.after(() => server.close());
  const hv = await pki.issueWithKey({ role: 'stormd', commonName: 'hv1' });
  const inst = await pki.issueWithKey({ role: 'instance', commonName: 'web1' });
  const ca = pki.caCertPem;

  const ok = await get(port, `/${sha}`, { ca, cert: hv.cert, key: hv.key });
  assert.ok('status' in ok && ok.status === 200 && ok.body.equals(body));
  const head = await get(port, `/${sha}`, { ca, cert: hv.cert, key: hv.key }, 'HEAD');
  assert.ok('status' in head && head.status === 200 && head.body.length === 0);
  for (const [path, status] of [[`/${'0'.repeat(64)}`, 404], ['/../pki/ca.key', 404], [`/${sha}/x`, 404], ['/', 404]] as const) {
    const r = await get(port, path, { ca, cert: hv.cert, key: hv.key });
    assert.ok('status' in r && r.status === status, `${path}: ${JSON.stringify(r)}`);
  }
  const post = await get(port, `/${sha}`, { ca, cert: hv.cert, key: hv.key }, 'POST');
  assert.ok('status' in post && post.status === 405);

  const asInstance = await get(port, `/${sha}`, { ca, cert: inst.cert, key: inst.key });
  assert.ok('status' in asInstance && asInstance.status === 403, 'an instance certificate is not a hypervisor');
  assert.ok('error' in (await get(port, `/${sha}`, { ca })), 'no client certificate: refused in the handshake');

  await pki.revoke(hv.serial);
  server.reload();
  const revoked = await get(port, `/${sha}`, { ca, cert: hv.cert, key: hv.key });
  assert.ok('error' in revoked || revoked.status === 403, `a revoked hypervisor gets nothing: ${JSON.stringify(revoked)}`);
  assert.equal(server.bytesServed, body.length);
});
