import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { tempDir } from '../../test/helpers/tmp.ts';
import { ChannelServer, parseRange } from './server.ts';

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('parseRange handles the single-range forms and refuses the unsatisfiable', () => {
  assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
  assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=95-200', 100), { start: 95, end: 99 });
  assert.equal(parseRange('bytes=100-', 100), 'unsatisfiable');
  assert.equal(parseRange('bytes=-0', 100), 'unsatisfiable');
  assert.equal(parseRange('bytes=0-1,5-6', 100), undefined, 'multi-range: whole file');
  assert.equal(parseRange('items=0-1', 100), undefined);
  assert.equal(parseRange('bytes=9-1', 100), undefined);
});

test('the channel server answers HEAD, ranges, ETag and content types, and never leaves its folder', async (t) => {
  const root = tempDir(t);
  const outside = tempDir(t);
  const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
  mkdirSync(join(root, 'layers'));
  writeFileSync(join(root, 'layers', 'a.img'), data);
  writeFileSync(join(root, 'feed.xml'), '<rss/>');
  writeFileSync(join(root, 'feed.xml.sig'), 'c2ln\n');
  writeFileSync(join(root, '.hidden'), 'no');
  writeFileSync(join(outside, 'secret'), 'top secret');
  symlinkSync(join(outside, 'secret'), join(root, 'link'));
  const s = new ChannelServer({ root });
  const { url } = await s.listen('127.0.0.1', 0);
  t.after(() => s.close());

  const full = await get(url + 'layers/a.img');
  assert.equal(full.status, 200);
  assert.equal(full.headers['content-type'], 'application/octet-stream');
  assert.equal(full.headers['accept-ranges'], 'bytes');
  assert.deepEqual(full.body, data);
  const etag = full.headers.etag as string;
  assert.match(etag, /^"[0-9a-f-]+"$/);

  const head = await get(url + 'layers/a.img', {}, 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], '1000');
  assert.equal(head.body.length, 0);

  const part = await get(url + 'layers/a.img', { Range: 'bytes=100-199' });
  assert.equal(part.status, 206);
  assert.equal(part.headers['content-range'], 'bytes 100-199/1000');
  assert.equal(part.headers['content-length'], '100');
  assert.deepEqual(part.body, data.subarray(100, 200));
  const tail = await get(url + 'layers/a.img', { Range: 'bytes=-10' });
  assert.deepEqual(tail.body, data.subarray(990));
  const bad = await get(url + 'layers/a.img', { Range: 'bytes=1000-' });
  assert.equal(bad.status, 416);
  assert.equal(bad.headers['content-range'], 'bytes */1000');
  const multi = await get(url + 'layers/a.img', { Range: 'bytes=0-1,5-6' });
  assert.equal(multi.status, 200, 'multi-range answered with the whole file');
  assert.equal(multi.body.length, 1000);

  assert.equal((await get(url + 'layers/a.img', { 'If-None-Match': etag })).status, 304);
  const stale = await get(url + 'layers/a.img', { Range: 'bytes=0-9', 'If-Range': '"other"' });
  assert.equal(stale.status, 200, 'If-Range mismatch sends the whole file');

  assert.equal((await get(url + 'feed.xml')).headers['content-type'], 'application/rss+xml; charset=utf-8');
  assert.equal((await get(url + 'feed.xml.sig')).headers['content-type'], 'text/plain; charset=utf-8');

  for (const p of ['../' + 'secret', '%2e%2e/secret', 'layers/%2e%2e/%2e%2e/secret', 'link', '.hidden', 'layers', 'nope', 'layers/a.img%00']) {
    const r = await get(url + p);
    assert.equal(r.status, 404, p);
    assert.doesNotMatch(r.body.toString(), /top secret/);
  }
  assert.equal((await get(url + 'feed.xml', {}, 'DELETE')).status, 405);
  // Raw request lines that a URL library would have normalised away.
  const port = new URL(url).port;
  for (const raw of ['/../secret', '/layers/../../secret', '/..%2fsecret', '/%2e%2e%2f%2e%2e%2fsecret']) {
    const reply = await new Promise<string>((resolve) => {
      const c = connect(Number(port), '127.0.0.1');
      let buf = '';
      c.on('data', (d) => (buf += d));
      c.on('end', () => resolve(buf));
      c.write(`GET ${raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
    assert.match(reply, /^HTTP\/1\.1 404/, raw);
    assert.doesNotMatch(reply, /top secret/);
  }
});

test('the channel server sends big files whole to slow readers, and a client that leaves mid-body costs nothing', async (t) => {
  const root = tempDir(t);
  const data = Buffer.alloc(9 << 20 | 12345);
  for (let i = 0; i + 4 <= data.length; i += 4) data.writeUInt32LE(i, i);
  writeFileSync(join(root, 'big.img'), data);
  let served = 0;
  const s = new ChannelServer({ root, onServed: (_p, _s, n) => (served = n) });
  const { url } = await s.listen('127.0.0.1', 0);
  t.after(() => s.close());
  const fds = () => readdirSync('/proc/self/fd').length;
  const before = fds();
  // A reader that pauses often: backpressure all the way to the file reads.
  const slow = await new Promise<Buffer>((resolve, reject) => {
    request(url + 'big.img', { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        res.pause();
        setTimeout(() => res.resume(), 1);
      });
      res.on('end', () => resolve(Buffer.concat(chunks)));
    })
      .on('error', reject)
      .end();
  });
  assert.ok(slow.equals(data));
  // One that leaves after the first bytes.
  await new Promise<void>((resolve) => {
    const req = request(url + 'big.img', { agent: false }, (res) => res.once('data', () => (req.destroy(), resolve())));
    req.on('error', () => {});
    req.end();
  });
  const ranged = await get(url + 'big.img', { Range: `bytes=${data.length - 3_000_000}-` });
  assert.ok(ranged.body.equals(data.subarray(data.length - 3_000_000)));
  assert.equal(served, 3_000_000);
  // Every file handle is closed again, the abandoned response's included (it closes when the server sees the client go).
  for (let i = 0; i < 200 && fds() > before; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(fds(), before);
});
