import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { fetchSmall } from './http.ts';

test('a kept-alive socket the server drops as it is reused is retried once on a new connection; a refused one is an error', async (t) => {
  let conns = 0;
  const sockets = new Set<Socket>();
  // Raw HTTP: the first connection answers once (keep-alive) and drops the second request unanswered.
  const srv = createServer((s) => {
    const n = ++conns;
    sockets.add(s);
    let reqs = 0;
    s.on('data', () => {
      reqs++;
      if (n === 1 && reqs === 2) return void s.destroy();
      s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    if (srv.listening) srv.close();
  });
  const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/feed.xml`;
  assert.equal((await fetchSmall(url, 100)).body.toString(), 'ok');
  assert.equal((await fetchSmall(url, 100)).body.toString(), 'ok', 'the dropped request was asked again');
  assert.equal(conns, 2);
  for (const s of sockets) s.destroy();
  await new Promise((r) => srv.close(r));
  await assert.rejects(fetchSmall(url, 100), (e: Error & { code?: string }) => e.code === 'unreachable' && /ECONNREFUSED/.test(e.message));
});
