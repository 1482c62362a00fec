import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { tempDir } from '../../test/helpers/tmp.ts';
import { prng, sha256 } from '../../test/helpers/channel-fixture.ts';
import { Downloader, type DownloaderOptions } from './download.ts';
import { ImageStore } from './store.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

/** A test HTTP server on 127.0.0.1 whose every answer the test decides. */
async function server(t: TestContext, handler: Handler): Promise<{ url: string; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  const s = createServer((req, res) => {
    requests.push(req);
    handler(req, res, requests.length);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r()))));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, requests };
}

/** Serve `data` honestly (Range included), or cut the body after `cutAt` absolute bytes. */
function serve(data: Buffer, opts: { cutAt?: number; ignoreRange?: boolean } = {}) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m && !opts.ignoreRange ? Number(m[1]) : 0;
    const headers: Record<string, string | number> = { 'Content-Length': data.length - start, 'Content-Type': 'application/octet-stream' };
    if (start) headers['Content-Range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    res.writeHead(start ? 206 : 200, headers);
    if (opts.cutAt !== undefined && opts.cutAt < data.length && opts.cutAt >= start) {
      res.write(data.subarray(start, opts.cutAt), () => res.destroy());
    } else res.end(data.subarray(start));
  };
}

function setup(t: TestContext, opts: Partial<DownloaderOptions> = {}) {
  const store = new ImageStore(tempDir(t));
  const events: string[] = [];
  const d = new Downloader({ store, reserveBytes: 0, backoffMs: () => 0, onEvent: (e) => events.push(e.kind), ...opts });
  const stored = () => readdirSync(store.blobs);
  return { store, d, events, stored };
}

const DATA = prng(200_000, 42);
const SHA = sha256(DATA);

test('a download is hashed while streaming, stored once by digest, and concurrent requests share it', async (t) => {
  const srv = await server(t, serve(DATA));
  const { d, store, events, stored } = setup(t);
  const src = { sha256: SHA, size: DATA.length, urls: [`${srv.url}/a.img`], what: 'substrate' };
  const [a, b] = await Promise.all([d.ensure(src), d.ensure(src)]);
  assert.equal(srv.requests.length, 1, 'coalesced: one request for one digest');
  assert.equal(a, b);
  assert.equal(a.received, DATA.length);
  assert.deepEqual(readFileSync(store.path(SHA)), DATA);
  assert.deepEqual(stored(), [SHA]);
  assert.ok(events.includes('started') && events.includes('stored'));
  const again = await d.ensure(src);
  assert.equal(again.cached, true);
  assert.equal(srv.requests.length, 1);
});

test('a cut connection is resumed with Range, not restarted', async (t) => {
  let first = true;
  const srv = await server(t, (req, res) => {
    serve(DATA, first ? { cutAt: 120_000 } : {})(req, res);
    first = false;
  });
  const { d, store } = setup(t);
  const r = await d.ensure({ sha256: SHA, size: DATA.length, urls: [`${srv.url}/a.img`] });
  assert.equal(srv.requests.length, 2);
  assert.equal(srv.requests[1]!.headers.range, 'bytes=120000-');
  assert.equal(r.received, DATA.length, 'every byte crossed the wire once');
  assert.deepEqual(readFileSync(store.path(SHA)), DATA);
});

test('a server that ignores Range is restarted from byte 0, never appended', async (t) => {
  let first = true;
  const srv = await server(t, (req, res) => {
    serve(DATA, first ? { cutAt: 50_000 } : { ignoreRange: true })(req, res);
    first = false;
  });
  const { d, store, stored } = setup(t);
  const r = await d.ensure({ sha256: SHA, size: DATA.length, urls: [`${srv.url}/a.img`] });
  assert.equal(srv.requests[1]!.headers.range, 'bytes=50000-');
  assert.equal(r.received, 50_000 + DATA.length);
  assert.deepEqual(readFileSync(store.path(SHA)), DATA);
  assert.deepEqual(stored(), [SHA]);
});

test('hostile servers: each gets a clear error and the store stays unchanged', async (t) => {
  const cases: { name: string; handler: Handler; error: RegExp; partialGone?: boolean }[] = [
    {
      name: 'digest mismatch',
      handler: serve(prng(DATA.length, 7)),
      error: new RegExp(`x: digest mismatch: expected sha256 ${SHA}, got ${sha256(prng(DATA.length, 7))}`),
      partialGone: true,
    },
    {
      name: 'truncated body, every time',
      handler: serve(DATA, { cutAt: 80_000 }),
      error: /x: download failed after \d+ attempts with 78\.1 KiB of 195\.3 KiB: .*truncated/,
    },
    {
      name: 'Content-Length lie (too short)',
      handler: (_q, res) => (res.writeHead(200, { 'Content-Length': 10 }), res.end(DATA.subarray(0, 10))),
      error: /Content-Length 10 does not match the declared size 200000/,
    },
    {
      name: 'more bytes than declared (no Content-Length)',
      handler: (_q, res) => (res.writeHead(200), res.end(Buffer.concat([DATA, DATA]))),
      error: /the server sent more than the declared 200000 bytes/,
    },
    {
      name: 'Content-Range from the wrong offset',
      handler: (req, res, n) => (n === 1 ? serve(DATA, { cutAt: 1000 })(req, res) : (res.writeHead(206, { 'Content-Range': `bytes 0-${DATA.length - 1}/${DATA.length}`, 'Content-Length': DATA.length }), res.end(DATA))),
      error: /asked for bytes from 1000, the server answered Content-Range "bytes 0-199999\/200000"/,
    },
    {
      name: 'redirect loop',
      handler: (req, res) => (res.writeHead(302, { Location: req.url === '/a' ? '/b' : '/a' }), res.end()),
      error: /redirect loop \(http:\/\/127\.0\.0\.1:\d+\/b → http:\/\/127\.0\.0\.1:\d+\/a\)/,
    },
    {
      name: 'redirect to a non-HTTP scheme',
      handler: (_q, res) => (res.writeHead(302, { Location: 'file:///etc/passwd' }), res.end()),
      error: /redirect to the file scheme refused; only http and https are allowed/,
    },
    { name: 'not found', handler: (_q, res) => (res.writeHead(404), res.end()), error: /HTTP 404/ },
  ];
  for (const c of cases) {
    await t.test(c.name, async (tt) => {
      const srv = await server(tt, c.handler);
      const { d, store, stored, events } = setup(tt);
      await assert.rejects(d.ensure({ sha256: SHA, size: DATA.length, urls: [`${srv.url}/a`], what: 'x' }), c.error);
      assert.deepEqual(stored(), [], 'nothing entered the store');
      assert.ok(events.includes('failed'));
      if (c.partialGone) assert.deepEqual(await store.listPartials(), []);
    });
  }
});

test('mirrors: downloads spread over them and fail over when one is down', async (t) => {
  const other = prng(1000, 9);
  const byPath = (req: IncomingMessage, res: ServerResponse) => serve(req.url === '/other' ? other : DATA)(req, res);
  const a = await server(t, byPath);
  const b = await server(t, byPath);
  const dead = await server(t, (_q, res) => (res.writeHead(503), res.end()));
  const { d, store } = setup(t);
  // Two downloads with the same mirror list start on different mirrors.
  await Promise.all([
    d.ensure({ sha256: SHA, size: DATA.length, urls: [`${a.url}/data`, `${b.url}/data`] }),
    d.ensure({ sha256: sha256(other), size: other.length, urls: [`${a.url}/other`, `${b.url}/other`] }),
  ]);
  assert.equal(a.requests.length, 1, 'mirror a served one download');
  assert.equal(b.requests.length, 1, 'mirror b served the other');
  // A failing mirror is skipped: the download fails over and completes.
  const f = setup(t);
  await f.d.ensure({ sha256: SHA, size: DATA.length, urls: [`${dead.url}/data`, `${a.url}/data`] });
  assert.ok(dead.requests.length >= 1);
  assert.deepEqual(readFileSync(f.store.path(SHA)), DATA);
  assert.deepEqual(readFileSync(store.path(SHA)), DATA);
});

test('free disk is checked before a download starts', async (t) => {
  const srv = await server(t, serve(DATA));
  const { d, stored } = setup(t, { reserveBytes: Number.MAX_SAFE_INTEGER / 2 });
  await assert.rejects(d.ensure({ sha256: SHA, size: DATA.length, urls: [`${srv.url}/a`], what: 'big' }), /not enough free disk for big: it needs 195\.3 KiB more/);
  assert.equal(srv.requests.length, 0, 'no byte was requested');
  assert.deepEqual(stored(), []);
});

test('parallelism is bounded', async (t) => {
  let active = 0;
  let peak = 0;
  const blobs = [1, 2, 3, 4, 5].map((i) => prng(10_000, i));
  const srv = await server(t, (req, res) => {
    active++;
    peak = Math.max(peak, active);
    const i = Number(req.url!.slice(1));
    setImmediate(() => {
      res.end(blobs[i]);
      active--;
    });
  });
  const { d, stored } = setup(t, { parallel: 2 });
  await Promise.all(blobs.map((b, i) => d.ensure({ sha256: sha256(b), size: b.length, urls: [`${srv.url}/${i}`] })));
  assert.equal(stored().length, 5);
  assert.ok(peak <= 2, `at most 2 at once, saw ${peak}`);
});

test('large files hash in a worker: a cut, a restart and a mismatch all come out right', async (t) => {
  const big = prng(17 << 20, 11);
  let n = 0;
  const srv = await server(t, (req, res) => {
    n++;
    if (req.url === '/bad') return serve(prng(big.length, 12))(req, res);
    if (req.url === '/cut') return serve(big, { cutAt: 6 << 20 })(req, res);
    if (req.url === '/good') return serve(big)(req, res);
    serve(big, n === 1 ? { cutAt: 5 << 20 } : n === 2 ? { cutAt: 9 << 20 } : { ignoreRange: true })(req, res);
  });
  const { d, store, stored } = setup(t);
  const r = await d.ensure({ sha256: sha256(big), size: big.length, urls: [`${srv.url}/big`] });
  assert.equal(r.received, (9 << 20) + big.length, 'resumed at 5 MiB, cut at 9 MiB, then restarted whole');
  assert.deepEqual(readFileSync(store.path(sha256(big))), big);
  await assert.rejects(d.ensure({ sha256: sha256(prng(1, 1)), size: big.length, urls: [`${srv.url}/bad`], what: 'bad' }), /bad: digest mismatch/);
  assert.deepEqual(stored(), [sha256(big)]);
  // A download that gave up keeps its partial file; the next attempt hashes it and resumes.
  const other = setup(t);
  await assert.rejects(other.d.ensure({ sha256: sha256(big), size: big.length, urls: [`${srv.url}/cut`] }), /download failed after/);
  assert.deepEqual(await other.store.listPartials(), [{ sha256: sha256(big), bytes: 6 << 20 }]);
  const again = await other.d.ensure({ sha256: sha256(big), size: big.length, urls: [`${srv.url}/good`] });
  assert.equal(again.resumedFrom, 6 << 20);
  assert.equal(again.received, big.length - (6 << 20));
  assert.deepEqual(readFileSync(other.store.path(sha256(big))), big);
});

test('a layer bigger than the hash ring: read into ring slots, cut mid-ring and resumed; a chunked body goes through the copying path', async (t) => {
  const big = prng(70 << 20, 13);
  const cutAt = (33 << 20) + 12_345;
  let n = 0;
  const srv = await server(t, (req, res) => {
    n++;
    if (req.url === '/chunked') {
      // No Content-Length: Node sends it chunked, in pieces of odd sizes.
      res.writeHead(200);
      for (let off = 0; off < big.length; off += 3_000_001) res.write(big.subarray(off, off + 3_000_001));
      return res.end();
    }
    serve(big, n === 1 ? { cutAt } : {})(req, res);
  });
  const { d, store } = setup(t);
  const r = await d.ensure({ sha256: sha256(big), size: big.length, urls: [`${srv.url}/big`] });
  assert.equal(r.received, big.length, 'resumed with Range after the cut');
  assert.deepEqual(readFileSync(store.path(sha256(big))), big);
  const other = setup(t);
  await other.d.ensure({ sha256: sha256(big), size: big.length, urls: [`${srv.url}/chunked`] });
  assert.deepEqual(readFileSync(other.store.path(sha256(big))), big);
});
