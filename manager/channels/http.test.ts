import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { StormError } from '../../lib/errors.ts';
import { fetchSmall, httpUrl, netError } from './http.ts';

test('kept-alive sockets the server drops as they are reused: the request is asked again once, on a connection of its own; a refused one is an error', async (t) => {
  let phase = 1;
  let fresh = 0;
  const sockets = new Set<Socket>();
  // Raw HTTP, kept alive. From phase 2 on, a request on a phase-1 connection is dropped unanswered
  // (the server closed it while it sat idle in our pool).
  const srv = createServer((s) => {
    const born = phase;
    if (born === 2) fresh++;
    sockets.add(s);
    s.on('data', () => {
      if (born === 1 && phase === 2) return void s.destroy();
      s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    if (srv.listening) srv.close();
  });
  const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/feed.xml`;
  // Three at once leave three idle sockets in the pool.
  const first = await Promise.all([1, 2, 3].map(() => fetchSmall(url, 100)));
  assert.deepEqual(first.map((r) => r.body.toString()), ['ok', 'ok', 'ok']);
  phase = 2;
  assert.equal((await fetchSmall(url, 100)).body.toString(), 'ok', 'the dropped request was asked again');
  assert.equal(fresh, 1, 'on one new connection, not on another stale one');
  for (const s of sockets) s.destroy();
  await new Promise((r) => srv.close(r));
  await assert.rejects(fetchSmall(url, 100), (e: Error & { code?: string }) => e.code === 'unreachable' && /ECONNREFUSED/.test(e.message));
});

test('network failures read as words, naming the URL and the code once', () => {
  const e = (code: string, message: string) => Object.assign(new Error(message), { code });
  assert.equal(netError('http://x/feed.xml', e('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1')).message, 'http://x/feed.xml: connection refused (connect ECONNREFUSED 127.0.0.1:1)');
  assert.equal(netError('http://x/feed.xml', e('ENOTFOUND', 'getaddrinfo ENOTFOUND x')).message, 'http://x/feed.xml: no such host (getaddrinfo ENOTFOUND x)');
  assert.equal(netError('http://x/feed.xml', e('EWHATEVER', 'odd failure')).message, 'http://x/feed.xml: EWHATEVER (odd failure)');
  assert.equal(netError('http://x/feed.xml', new Error('socket hang up')).message, 'http://x/feed.xml: socket hang up');
  assert.equal(netError('http://x/feed.xml', e('ECONNREFUSED', 'x')).code, 'unreachable');
});

test('httpUrl: what is not a URL says so and what to give; other schemes and credentials are refused', () => {
  assert.throws(() => httpUrl('not-a-url', 'channel URL'), (e: StormError) => e.code === 'invalid' && e.message === 'channel URL: "not-a-url" is not a URL' && /https:\/\//.test(e.hint ?? ''));
  assert.throws(() => httpUrl('ftp://x/feed.xml', 'channel URL'), (e: StormError) => e.code === 'invalid' && /uses the ftp scheme/.test(e.message));
  assert.throws(() => httpUrl('https://u:p@x/feed.xml', 'channel URL'), (e: StormError) => e.code === 'invalid' && /credentials/.test(e.message) && !/u:p/.test(e.message));
  assert.equal(httpUrl('https://x/feed.xml', 'channel URL').host, 'x');
});
