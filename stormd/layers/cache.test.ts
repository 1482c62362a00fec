import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { StormError } from '../../lib/errors.ts';
import { run } from '../../lib/exec.ts';
import { freePort } from '../../test/helpers/ports.ts';
import { tempDir } from '../../test/helpers/tmp.ts';
import { LayerCache } from './cache.ts';

const data = randomBytes(3 * 1024 * 1024 + 17);
const sha = createHash('sha256').update(data).digest('hex');
const tampered = Buffer.from(data);
tampered[123_456] = tampered[123_456]! ^ 0x01;

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A layer server on 127.0.0.1 with the routes the tests need; counts hits per path. */
async function layerServer(t: TestContext, extra: Record<string, Handler> = {}, tls?: { key: string; cert: string }) {
  const hits = new Map<string, number>();
  const routes: Record<string, Handler> = {
    '/good': (_q, s) => {
      s.writeHead(200, { 'content-length': data.length });
      // Send in pieces so concurrent callers really overlap.
      let off = 0;
      const step = () => {
        if (off >= data.length) return s.end();
        const chunk = data.subarray(off, off + 256 * 1024);
        off += chunk.length;
        s.write(chunk, () => setTimeout(step, 2));
      };
      step();
    },
    '/tampered': (_q, s) => {
      s.writeHead(200, { 'content-length': tampered.length });
      s.end(tampered);
    },
    '/truncated': (_q, s) => {
      s.writeHead(200, { 'content-length': data.length });
      s.write(data.subarray(0, data.length >> 1), () => s.socket?.destroy());
    },
    '/short-chunked': (_q, s) => {
      s.writeHead(200);
      s.end(data.subarray(0, data.length - 1));
    },
    '/r1': (_q, s) => {
      s.writeHead(302, { location: '/r2' });
      s.end();
    },
    '/r2': (_q, s) => {
      s.writeHead(301, { location: '/good' });
      s.end();
    },
    '/loop': (_q, s) => {
      s.writeHead(302, { location: '/loop' });
      s.end();
    },
    '/to-ftp': (_q, s) => {
      s.writeHead(302, { location: 'ftp://127.0.0.1/x' });
      s.end();
    },
    '/stall': (_q, s) => {
      s.writeHead(200, { 'content-length': data.length });
      s.write(data.subarray(0, 1000)); // then nothing
    },
    '/huge': (_q, s) => {
      s.writeHead(200, { 'content-length': 10 * data.length });
      s.write(data.subarray(0, 1000), () => s.destroy());
    },
    '/boom': (_q, s) => {
      s.writeHead(500);
      s.end();
    },
    ...extra,
  };
  const handler: Handler = (req, res) => {
    const p = req.url ?? '';
    hits.set(p, (hits.get(p) ?? 0) + 1);
    const h = routes[p];
    if (h) h(req, res);
    else {
      res.writeHead(404);
      res.end();
    }
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  return { base: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, hits };
}

/** Names in the cache dir and its temp dir: the "no trace" check. */
function traces(dir: string): string[] {
  return [...readdirSync(dir).filter((f) => f !== '.tmp'), ...readdirSync(join(dir, '.tmp')).map((f) => `.tmp/${f}`)];
}

async function rejectsCode(p: Promise<unknown>, code: string): Promise<StormError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof StormError, String(e));
    assert.equal(e.code, code, e.message);
    return e;
  }
  return assert.fail(`expected ${code}`);
}

test('ensure fetches a layer, names it by digest, read-only, and reports progress', async (t) => {
  const { base, hits } = await layerServer(t);
  const dir = join(tempDir(t), 'layers');
  const cache = new LayerCache(dir, { progressEveryMs: 0 });
  const seen: number[] = [];
  const r = await cache.ensure(`${base}/good`, sha, { size: data.length, onProgress: (p) => seen.push(p.received) });
  assert.equal(r.downloaded, true);
  assert.equal(r.path, join(dir, sha));
  assert.ok(readFileSync(r.path).equals(data));
  assert.equal(statSync(r.path).mode & 0o777, 0o444);
  assert.equal(statSync(dir).mode & 0o777, 0o755);
  assert.equal(seen.at(-1), data.length);
  assert.ok(seen.length > 2, 'progress reported along the way');
  assert.deepEqual(traces(dir), [sha]);
  const again = await cache.ensure(`${base}/good`, sha);
  assert.equal(again.downloaded, false);
  assert.equal(hits.get('/good'), 1, 'a cached layer is not fetched again');
  assert.deepEqual(await cache.list(), [{ sha256: sha, size: data.length, path: r.path }]);
  assert.deepEqual(await cache.digests(), [sha]);
});

test('a tampered layer (one byte changed) is refused and leaves no trace', async (t) => {
  const { base } = await layerServer(t);
  const dir = join(tempDir(t), 'layers');
  const cache = new LayerCache(dir);
  const e = await rejectsCode(cache.ensure(`${base}/tampered`, sha, { size: data.length }), 'invalid');
  assert.match(e.message, /SHA-256/);
  assert.deepEqual(traces(dir), []);
  assert.deepEqual(await cache.list(), []);
  assert.deepEqual(await cache.digests(), [], 'no partial download counts');
  assert.equal(await cache.get(sha), undefined);
});

test('a truncated download is refused and leaves no trace', async (t) => {
  const { base } = await layerServer(t);
  const dir = join(tempDir(t), 'layers');
  const cache = new LayerCache(dir);
  await rejectsCode(cache.ensure(`${base}/truncated`, sha), 'unreachable');
  assert.deepEqual(traces(dir), []);
  // Without Content-Length the short body fails the size check, or the digest when no size is given.
  await rejectsCode(cache.ensure(`${base}/short-chunked`, sha, { size: data.length }), 'invalid');
  await rejectsCode(cache.ensure(`${base}/short-chunked`, sha), 'invalid');
  await rejectsCode(cache.ensure(`${base}/good`, sha, { size: 1000 }), 'invalid');
  assert.deepEqual(traces(dir), []);
});

test('a stalled server times out, an oversized one is refused up front; no trace either way', async (t) => {
  const { base } = await layerServer(t);
  const dir = join(tempDir(t), 'layers');
  const cache = new LayerCache(dir, { idleTimeoutMs: 300 });
  await rejectsCode(cache.ensure(`${base}/stall`, sha), 'timeout');
  await rejectsCode(cache.ensure(`${base}/huge`, sha, { size: data.length }), 'invalid');
  assert.deepEqual(traces(dir), []);
  assert.deepEqual(cache.downloads(), []);
});

test('concurrent ensure of one digest downloads once', async (t) => {
  const { base, hits } = await layerServer(t);
  const dir = join(tempDir(t), 'layers');
  const cache = new LayerCache(dir);
  const progress = [0, 0, 0, 0, 0];
  const pending = Promise.all(progress.map((_, i) => cache.ensure(`${base}/good`, sha, { onProgress: () => progress[i]!++ })));
  await new Promise((r) => setTimeout(r, 20));
  const polled = cache.downloads();
  assert.equal(polled.length, 1, 'one download in flight, visible to pollers');
  assert.equal(polled[0]!.sha256, sha);
  const all = await pending;
  assert.deepEqual(cache.downloads(), []);
  assert.equal(hits.get('/good'), 1);
  assert.equal(all.filter((r) => r.downloaded).length, 1);
  assert.ok(all.every((r) => r.path === join(dir, sha)));
  assert.ok(progress.every((n) => n > 0), 'every caller hears progress');
  assert.deepEqual(traces(dir), [sha]);
});

test('redirects are followed up to a bound, to http(s) only; HTTP errors carry codes', async (t) => {
  const { base, hits } = await layerServer(t);
  const dir = join(tempDir(t), 'layers');
  const cache = new LayerCache(dir, { maxRedirects: 3 });
  assert.equal((await cache.ensure(`${base}/r1`, sha)).downloaded, true);
  assert.equal(hits.get('/good'), 1);
  const other = createHash('sha256').update('other').digest('hex');
  await rejectsCode(cache.ensure(`${base}/loop`, other), 'invalid');
  assert.equal(hits.get('/loop'), 4, 'one request plus three redirects, then stop');
  await rejectsCode(cache.ensure(`${base}/to-ftp`, other), 'invalid');
  await rejectsCode(cache.ensure(`${base}/missing`, other), 'not_found');
  await rejectsCode(cache.ensure(`${base}/boom`, other), 'unreachable');
  await rejectsCode(cache.ensure(`file:///etc/passwd`, other), 'invalid');
  await rejectsCode(cache.ensure(`http://user:pw@127.0.0.1/x`, other), 'invalid');
  await rejectsCode(cache.ensure(`${base}/good`, 'NOT-A-DIGEST'), 'invalid');
  await rejectsCode(cache.ensure(`http://127.0.0.1:${await freePort()}/x`, other), 'unreachable');
  assert.deepEqual(traces(dir), [sha]);
});

test('remove unreferenced keeps referenced layers; verify catches a corrupted file', async (t) => {
  const { base } = await layerServer(t);
  const dir = join(tempDir(t), 'layers');
  const cache = new LayerCache(dir);
  await cache.ensure(`${base}/good`, sha);
  const small = Buffer.from('small layer');
  const smallSha = createHash('sha256').update(small).digest('hex');
  const s2 = await layerServer(t, {
    '/small': (_q, s) => {
      s.end(small);
    },
  });
  await cache.ensure(`${s2.base}/small`, smallSha);
  assert.deepEqual((await cache.list()).map((l) => l.sha256).sort(), [sha, smallSha].sort());
  assert.deepEqual(await cache.digests(), [sha, smallSha].sort(), 'the same digests, from one directory read');
  const r = await cache.removeUnreferenced([sha]);
  assert.deepEqual(r, { removed: [smallSha], freedBytes: small.length });
  assert.deepEqual((await cache.list()).map((l) => l.sha256), [sha]);
  assert.equal(await cache.verify(sha), true);
  // Corrupt the cached file behind the cache's back: verify removes it.
  const p = cache.path(sha);
  const { chmodSync } = await import('node:fs');
  chmodSync(p, 0o644);
  writeFileSync(p, tampered);
  assert.equal(await cache.verify(sha), false);
  assert.deepEqual(await cache.list(), []);
});

test('https with a private CA', async (t) => {
  const tmp = tempDir(t);
  const key = join(tmp, 'key.pem');
  const cert = join(tmp, 'cert.pem');
  const r = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  assert.equal(r.code, 0, r.stderr);
  const tls = { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
  const { base } = await layerServer(t, {}, tls);
  const dir = join(tmp, 'layers');
  await rejectsCode(new LayerCache(dir).ensure(`${base}/good`, sha), 'unreachable');
  assert.deepEqual(traces(dir), [], 'an untrusted server gets nothing into the cache');
  const ok = await new LayerCache(dir, { tls: { ca: tls.cert } }).ensure(`${base}/good`, sha);
  assert.equal(ok.downloaded, true);
});
