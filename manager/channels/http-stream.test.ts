import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { MAX_HEAD_BYTES, openStream, ResponseParser, type StreamResponse } from './http-stream.ts';

/** Feed `bytes` to a parser `step` bytes at a time; returns status, headers and the body it framed. */
function parse(bytes: Buffer | string, step = 1): { p: ResponseParser; body: Buffer; state: string } {
  const b = Buffer.from(bytes);
  const p = new ResponseParser('http://t/x');
  const out: Buffer[] = [];
  let state = 'head';
  for (let i = 0; i < b.length && state !== 'done'; i += step) {
    let piece: Buffer = b.subarray(i, i + step);
    if (state === 'head') {
      const rest = p.head(piece);
      if (!rest) continue;
      state = 'more';
      piece = rest;
    }
    state = p.body(piece, (c) => void out.push(Buffer.from(c)));
  }
  return { p, body: Buffer.concat(out), state };
}

test('the parser frames heads and bodies however the bytes are split', () => {
  const head = 'HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nContent-Range: bytes 5-9/10\r\nX-A: 1\r\nx-a: 2\r\n\r\n';
  for (const step of [1, 3, 1000]) {
    const r = parse(head + 'hello and bytes after the body', step);
    assert.equal(r.p.status, 206);
    assert.equal(r.p.headers['content-range'], 'bytes 5-9/10');
    assert.equal(r.p.headers['x-a'], '1, 2', 'repeated headers joined');
    assert.equal(r.body.toString(), 'hello');
    assert.equal(r.state, 'done');
  }
  // Interim 1xx heads are skipped; bare LF line ends are accepted.
  const r = parse('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\nContent-Length: 2\n\nok', 2);
  assert.equal(r.p.status, 200);
  assert.equal(r.body.toString(), 'ok');
  // No Content-Length and not chunked: the body runs to the close.
  const c = parse('HTTP/1.1 200 OK\r\n\r\nuntil close', 4);
  assert.equal(c.p.framing.kind, 'close');
  assert.equal(c.body.toString(), 'until close');
  assert.equal(c.state, 'more');
});

test('the parser decodes chunked bodies with extensions and trailers, byte by byte', () => {
  const msg = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: t\r\n\r\n';
  for (const step of [1, 2, 7, 1000]) {
    const r = parse(msg, step);
    assert.equal(r.body.toString(), 'hello world!', `step ${step}`);
    assert.equal(r.state, 'done');
  }
});

test('the parser refuses malformed and oversized input with errors that say what was wrong', () => {
  const cases: [string | Buffer, RegExp][] = [
    ['SSH-2.0-OpenSSH\r\n\r\n', /http:\/\/t\/x: malformed status line "SSH-2.0-OpenSSH"/],
    ['HTTP/1.1 2000 OK\r\n\r\n', /malformed status line/],
    ['HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n', /malformed response header line "Bad Header: x"/],
    ['HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n', /malformed response header line " folded"/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n', /malformed Content-Length "5, 6"/],
    ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /malformed Content-Length/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', /unsupported Transfer-Encoding "gzip, chunked"/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /malformed chunk size line/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX', /no CRLF after a chunk/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + '1'.repeat(2000), /chunk size line longer than 1024 bytes/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n' + 'X: y\r\n'.repeat(4000), /trailers longer than/],
    ['HTTP/1.1 200 OK\r\n' + 'X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(2000), new RegExp(`response head is more than ${MAX_HEAD_BYTES} bytes`)],
    ['HTTP/1.1 200 OK\r\n' + 'X: y\r\n'.repeat(300) + '\r\n', /more than 200 response headers/],
    ['HTTP/1.1 100 Continue\r\n\r\n'.repeat(50), /more than 8 interim \(1xx\) responses/],
  ];
  for (const [input, err] of cases) {
    for (const step of [1, 4096]) assert.throws(() => parse(input, step), err, `${String(input).slice(0, 40)} (step ${step})`);
  }
  // A head without its blank line never completes (and stays bounded).
  assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n').state, 'head');
});

/** A TCP server that answers each connection with `answer(socket, request)`. */
async function raw(t: TestContext, answer: (s: Socket, req: string, n: number) => void): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = [];
  const socks = new Set<Socket>();
  const srv = createServer((s) => {
    socks.add(s);
    s.on('error', () => {});
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n\r\n') && !requests.includes(buf)) {
        requests.push(buf);
        answer(s, buf, requests.length);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => (socks.forEach((s) => s.destroy()), srv.close(() => r()))));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, requests };
}

async function collect(res: StreamResponse): Promise<{ body: string; complete: boolean; error?: Error }> {
  const out: Buffer[] = [];
  const end = await res.pipe((c) => void out.push(Buffer.from(c)));
  return { body: Buffer.concat(out).toString(), ...end };
}

test('openStream: request line and headers, bodies through a tiny reused read buffer, redirects followed', async (t) => {
  const body = 'x'.repeat(10_000);
  const srv = await raw(t, (s, req) => {
    if (req.startsWith('GET /old ')) return void s.end('HTTP/1.1 302 Found\r\nLocation: /new?q=1\r\nContent-Length: 0\r\n\r\n');
    // Head and the whole body in one write: the body bytes arrive before anyone pipes.
    s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  });
  const res = await openStream(`${srv.url}/old`, { headers: { Range: 'bytes=0-' }, readBuffer: 7 });
  assert.equal(res.status, 200);
  assert.equal(res.url, `${srv.url}/new?q=1`);
  assert.match(srv.requests[1]!, /^GET \/new\?q=1 HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\n/);
  assert.match(srv.requests[1]!, /\r\nRange: bytes=0-\r\n/);
  assert.match(srv.requests[1]!, /\r\nConnection: close\r\n/);
  const r = await collect(res);
  assert.equal(r.body, body);
  assert.equal(r.complete, true);
  await assert.rejects(openStream(`${srv.url}/x`, { headers: { 'X-Evil': 'a\r\nInjected: 1' } }), /request header "X-Evil" is not a valid HTTP header/);
});

test('openStream: a cut body is incomplete, a chunked one completes, a sink can stop it', async (t) => {
  const srv = await raw(t, (s, req) => {
    if (req.startsWith('GET /cut ')) return void s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this');
    if (req.startsWith('GET /chunked ')) {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n');
      return void setTimeout(() => s.end('2\r\nde\r\n0\r\n\r\n'), 20);
    }
    if (req.startsWith('GET /badchunk ')) return void s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnope\r\n');
    s.write('HTTP/1.1 200 OK\r\n\r\n');
    const tick = setInterval(() => s.write('more'), 5);
    s.on('close', () => clearInterval(tick));
  });
  const cut = await collect(await openStream(`${srv.url}/cut`));
  assert.deepEqual([cut.body, cut.complete], ['only this', false]);
  const ch = await collect(await openStream(`${srv.url}/chunked`, { readBuffer: 5 }));
  assert.deepEqual([ch.body, ch.complete], ['abcde', true]);
  const bad = await collect(await openStream(`${srv.url}/badchunk`));
  assert.equal(bad.complete, false);
  assert.match(bad.error!.message, /malformed chunk size line/);
  const endless = await openStream(`${srv.url}/endless`);
  let got = 0;
  const end = await endless.pipe((c) => (got += c.length) < 20);
  assert.equal(end.complete, false);
  assert.ok(got >= 20);
});

test('openStream: a garbage answer, a close before the head and a stall are clear errors', async (t) => {
  const srv = await raw(t, (s, req) => {
    if (req.startsWith('GET /garbage ')) return void s.end('220 smtp.example ESMTP\r\n\r\n');
    if (req.startsWith('GET /close ')) return void s.end('HTTP/1.1 200 OK\r\nContent-');
    if (req.startsWith('GET /stall ')) return void s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    // /silent: never answers.
  });
  await assert.rejects(openStream(`${srv.url}/garbage`), /\/garbage: malformed status line "220 smtp\.example ESMTP"/);
  await assert.rejects(openStream(`${srv.url}/close`), /\/close: the connection closed before a complete response head/);
  await assert.rejects(openStream(`${srv.url}/silent`, { idleMs: 100 }), /\/silent: no answer for 0 s/);
  const stall = await collect(await openStream(`${srv.url}/stall`, { idleMs: 100 }));
  assert.equal(stall.body, 'abc');
  assert.equal(stall.complete, false);
  assert.match(stall.error!.message, /\/stall: the transfer stalled/);
});
