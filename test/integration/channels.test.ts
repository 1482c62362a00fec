import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startProcess } from '../helpers/child.ts';
import { makeTestChannel, sha256 } from '../helpers/channel-fixture.ts';
import { freePort } from '../helpers/ports.ts';
import { startManagerProcess, STORM_BIN } from '../helpers/storm.ts';
import { tempDir } from '../helpers/tmp.ts';

/** `storm ARGS` as a child process without blocking this process (the test's proxy must keep serving). */
function storm(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [STORM_BIN, ...args], { env, timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => execFile('curl', ['-sS', ...args], { encoding: 'utf8' }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr })));
}

/**
 * An HTTP proxy in front of the channel server that cuts the first response
 * for `cutPath` after `cutAt` body bytes, and counts body bytes per path.
 */
async function cuttingProxy(t: import('node:test').TestContext, upstream: number, cutPath: string, cutAt: number) {
  const served = new Map<string, number>();
  const ranges: (string | undefined)[] = [];
  let cut = false;
  const s = createServer((req, res) => {
    const path = new URL(req.url!, 'http://x').pathname;
    if (path === cutPath) ranges.push(req.headers.range);
    const up = request({ host: '127.0.0.1', port: upstream, path: req.url, method: req.method, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode!, ur.headers);
      const cutting = path === cutPath && !cut;
      if (cutting) cut = true;
      let sent = 0;
      ur.on('data', (c: Buffer) => {
        if (cutting && sent + c.length >= cutAt) {
          const part = c.subarray(0, cutAt - sent);
          sent += part.length;
          served.set(path, (served.get(path) ?? 0) + part.length);
          ur.destroy();
          res.write(part, () => res.socket?.destroy());
          return;
        }
        sent += c.length;
        served.set(path, (served.get(path) ?? 0) + c.length);
        res.write(c);
      });
      ur.on('end', () => res.end());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r()))));
  return { port: (s.address() as AddressInfo).port, served, ranges };
}

test('publish, serve, subscribe, pull: a shared substrate is stored once and a cut download resumes', async (t) => {
  const root = tempDir(t);
  const dir = join(root, 'stable');
  const SUBSTRATE = 3_000_000;
  const ch = makeTestChannel(dir, { substrateSize: SUBSTRATE });
  const state = tempDir(t);
  const env = { ...process.env, STORM_STATE: state, STORM_SSH_LISTEN: `127.0.0.1:${await freePort()}`, STORM_CHANNEL_REFRESH: '0' };

  // Publisher side: key, feed and appliance XMLs, served by our server.
  const kg = await storm(['channel', 'keygen', join(root, 'publisher')], env);
  assert.equal(kg.code, 0, kg.stderr);
  assert.equal(statSync(join(root, 'publisher.key')).mode & 0o777, 0o600);
  const port = await freePort();
  const pub = await storm(['channel', 'publish', dir, '--base-url', `http://127.0.0.1:${port}/stable/`, '--key', join(root, 'publisher.key')], env);
  assert.equal(pub.code, 0, pub.stderr);
  assert.match(pub.stdout, /published 3 appliance versions to .*feed\.xml \(signed\)/);
  await startProcess(t, process.execPath, [STORM_BIN, 'channel', 'serve', root, '--listen', `127.0.0.1:${port}`], { ready: /storm channel server ready/, env });

  // curl gets correct 206s (and 416, HEAD) from our server.
  const layerUrl = `http://127.0.0.1:${port}/stable/layers/jeos-1.0.img`;
  const out = join(root, 'part.bin');
  const r206 = await curl(['-D', '-', '-r', '100-1099', '-o', out, layerUrl]);
  assert.match(r206.stdout, /^HTTP\/1\.1 206 Partial Content/);
  assert.match(r206.stdout, /Content-Range: bytes 100-1099\/3000000/i);
  assert.match(r206.stdout, /Content-Length: 1000/i);
  assert.deepEqual(readFileSync(out), ch.files['layers/jeos-1.0.img']!.subarray(100, 1100));
  const rTail = await curl(['-D', '-', '-r', '-500', '-o', out, layerUrl]);
  assert.match(rTail.stdout, /Content-Range: bytes 2999500-2999999\/3000000/i);
  assert.deepEqual(readFileSync(out), ch.files['layers/jeos-1.0.img']!.subarray(2_999_500));
  const r416 = await curl(['-D', '-', '-o', '/dev/null', '-r', '3000000-', layerUrl]);
  assert.match(r416.stdout, /^HTTP\/1\.1 416/);
  assert.match(r416.stdout, /Content-Range: bytes \*\/3000000/i);
  const head = await curl(['-I', `http://127.0.0.1:${port}/stable/feed.xml`]);
  assert.match(head.stdout, /Content-Type: application\/rss\+xml/i);
  assert.match(head.stdout, /ETag: "/i);
  const curlResume = await curl(['-D', '-', '-C', '2999000', '-o', out, layerUrl]);
  assert.match(curlResume.stdout, /^HTTP\/1\.1 206/);

  // Manager side: a real manager process, driven through the CLI; the channel is reached through a proxy that cuts the substrate once.
  await startManagerProcess(t, state, [], env);
  const proxy = await cuttingProxy(t, port, '/stable/layers/jeos-1.0.img', 1_200_000);
  const feedUrl = `http://127.0.0.1:${proxy.port}/stable/feed.xml`;
  const add = await storm(['channel', 'add', feedUrl, '--name', 'test', '--trust', join(root, 'publisher.pub'), '-o', 'json'], env);
  assert.equal(add.code, 0, add.stderr);
  assert.equal(JSON.parse(add.stdout).verified, true);
  const list = await storm(['channel', 'list'], env);
  assert.match(list.stdout, /^NAME\s+STATUS\s+APPLIANCES\s+TRUST/);
  assert.match(list.stdout, /test\s+ok\s+3\s+signed [0-9a-f]{16}/);
  const apps = JSON.parse((await storm(['appliance', 'list', '-o', 'json'], env)).stdout) as { id: string; kind: string }[];
  assert.deepEqual(apps.map((a) => `${a.id}:${a.kind}`), ['legacy:traditional', 'mail:layered', 'web:layered']);
  const show = await storm(['appliance', 'show', 'web'], env);
  assert.match(show.stdout, /test\/web@1\.0: Web server/);
  assert.match(show.stdout, /services: dns name www, ldap, kerberos host\//);
  assert.match(show.stdout, /substrate jeos 1\.0\s+[0-9a-f]{16}\s+2\.9 MiB\s+not stored/);

  const web = await storm(['appliance', 'pull', 'web'], env);
  assert.equal(web.code, 0, web.stderr);
  assert.match(web.stderr, /retrying from 1\.1 MiB/, 'the cut was seen and resumed');
  assert.match(web.stderr, /stored/);
  assert.deepEqual(proxy.ranges, [undefined, 'bytes=1200000-'], 'the second request resumed with Range');
  assert.equal(proxy.served.get('/stable/layers/jeos-1.0.img'), SUBSTRATE, 'resumed, not restarted: every substrate byte crossed the wire once');

  const mail = await storm(['appliance', 'pull', 'test/mail@2.1', '-o', 'json'], env);
  assert.equal(mail.code, 0, mail.stderr);
  const mailFiles = JSON.parse(mail.stdout).files as { what: string; cached: boolean }[];
  assert.equal(mailFiles.find((f) => f.what.startsWith('substrate'))!.cached, true, 'the shared substrate was already stored');
  assert.equal(proxy.served.get('/stable/layers/jeos-1.0.img'), SUBSTRATE, 'and not fetched again');
  const legacy = await storm(['appliance', 'pull', 'legacy'], env);
  assert.equal(legacy.code, 0, legacy.stderr);

  // The store: each unique file once, by digest, byte for byte.
  const unique = new Map(Object.values(ch.files).map((b) => [sha256(b), b]));
  const blobs = readdirSync(join(state, 'images', 'sha256')).sort();
  assert.deepEqual(blobs, [...unique.keys()].sort());
  for (const [d, b] of unique) assert.deepEqual(readFileSync(join(state, 'images', 'sha256', d)), b);
  const images = JSON.parse((await storm(['image', 'list', '-o', 'json'], env)).stdout) as { sha256: string; usedBy: string[] }[];
  const substrate = images.find((i) => i.sha256 === sha256(ch.files['layers/jeos-1.0.img']!))!;
  assert.deepEqual(substrate.usedBy.sort(), ['test/mail@2.1 substrate', 'test/web@1.0 substrate']);
  assert.match((await storm(['image', 'list'], env)).stdout, /^SHA256\s+SIZE\s+USED BY/);

  // Nothing unreferenced yet; after removing the channel, gc frees everything.
  assert.match((await storm(['image', 'gc'], env)).stdout, /removed 0 images/);
  const rm = await storm(['channel', 'remove', 'test'], env);
  assert.equal(rm.code, 8, 'destructive: needs --yes without a terminal');
  assert.equal((await storm(['channel', 'remove', 'test', '--yes'], env)).code, 0);
  const dry = await storm(['image', 'gc', '--dry-run'], env);
  assert.match(dry.stdout, new RegExp(`would remove ${unique.size} images`));
  assert.equal(readdirSync(join(state, 'images', 'sha256')).length, unique.size);
  assert.match((await storm(['image', 'gc'], env)).stdout, new RegExp(`removed ${unique.size} images`));
  assert.deepEqual(readdirSync(join(state, 'images', 'sha256')), []);
});

test('channel CLI errors are clear and change nothing', async (t) => {
  const root = tempDir(t);
  makeTestChannel(root);
  const state = tempDir(t);
  const env = { ...process.env, STORM_STATE: state, STORM_SSH_LISTEN: `127.0.0.1:${await freePort()}`, STORM_CHANNEL_REFRESH: '0' };
  const noBase = await storm(['channel', 'publish', root], env);
  assert.equal(noBase.code, 2);
  assert.match(noBase.stderr, /needs --base-url URL/);
  const badKey = await storm(['channel', 'publish', root, '--base-url', 'http://x/', '--key', join(root, 'nope.key')], env);
  assert.equal(badKey.code, 2);
  assert.match(badKey.stderr, /--key .*nope\.key: cannot read it \(ENOENT\)/);
  const badListen = await storm(['channel', 'serve', root, '--listen', 'nowhere'], env);
  assert.match(badListen.stderr, /--listen nowhere: expected HOST:PORT/);
  await startManagerProcess(t, state, [], env);
  const down = await storm(['channel', 'add', `http://127.0.0.1:${await freePort()}/feed.xml`], env);
  assert.equal(down.code, 7);
  assert.match(down.stderr, /ECONNREFUSED/);
  assert.doesNotMatch(down.stderr, /\n\s+at /);
  assert.equal((await storm(['channel', 'list', '-o', 'json'], env)).stdout.trim(), '[]');
  const missing = await storm(['appliance', 'pull', 'nothing'], env);
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /appliance "nothing" not found in the catalog/);
});
