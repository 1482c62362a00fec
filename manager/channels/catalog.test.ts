import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { silentLogger } from '../../lib/logger.ts';
import { tempDir } from '../../test/helpers/tmp.ts';
import { makeTestChannel, sha256 } from '../../test/helpers/channel-fixture.ts';
import { EventBus } from '../events.ts';
import { Store } from '../store/store.ts';
import { ChannelService } from './catalog.ts';
import { publishChannel } from './publish.ts';
import { ChannelServer } from './server.ts';
import { generatePublisherKey } from './sign.ts';

const KEY = generatePublisherKey(2048);
const OTHER = generatePublisherKey(2048);

async function setup(t: TestContext, opts: { sign?: boolean } = {}) {
  // The channel lives in a sub-folder of what the server serves, so there is an outside to escape to.
  const root = tempDir(t);
  const dir = join(root, 'stable');
  makeTestChannel(dir);
  await publishChannel(dir, { baseUrl: 'http://channel.test/', ...(opts.sign === false ? {} : { privateKeyPem: KEY.privatePem }) });
  const srv = new ChannelServer({ root });
  const { url: rootUrl } = await srv.listen('127.0.0.1', 0);
  const url = rootUrl + 'stable/';
  t.after(() => srv.close());
  const store = await Store.open(join(tempDir(t), 'db'));
  t.after(() => store.close());
  const bus = new EventBus();
  const channels = new ChannelService({ store, bus, log: silentLogger, refreshSeconds: 0 });
  // Everything the catalog holds, minus the bookkeeping a failed refresh is meant to update.
  const snapshot = async () =>
    JSON.stringify({
      channels: (await channels.list()).map(({ lastAttempt: _a, lastError: _e, ...c }) => c),
      catalog: await channels.appliances(),
    });
  return { dir, url, feed: url + 'feed.xml', srv, store, bus, channels, snapshot };
}

/** Rewrite one published appliance XML and patch the feed so its digest still matches. */
function tamperAppliance(dir: string, file: string, edit: (xml: string) => string, resign = true): void {
  const path = join(dir, 'appliances', file);
  const before = readFileSync(path);
  const after = Buffer.from(edit(before.toString()));
  writeFileSync(path, after);
  const feedPath = join(dir, 'feed.xml');
  const feed = readFileSync(feedPath, 'utf8').replace(`sha256="${sha256(before)}" size="${before.length}"`, `sha256="${sha256(after)}" size="${after.length}"`);
  writeFileSync(feedPath, feed);
  if (resign) writeFileSync(feedPath + '.sig', (awaitSign(Buffer.from(feed))));
}

import { signFeed } from './sign.ts';
const awaitSign = (b: Buffer) => signFeed(b, KEY.privatePem);

/** Replace the feed with `text`, signed by the trusted key (a compromised publisher). */
function writeSignedFeed(dir: string, text: string): void {
  writeFileSync(join(dir, 'feed.xml'), text);
  writeFileSync(join(dir, 'feed.xml.sig'), awaitSign(Buffer.from(text)));
}

test('subscribe to a signed channel: the catalog holds every appliance with resolved URLs', async (t) => {
  const { channels, feed, url } = await setup(t);
  const rec = await channels.add({ url: feed, name: 'test', trust: KEY.publicPem });
  assert.equal(rec.verified, true);
  assert.equal(rec.appliances, 3);
  const apps = await channels.appliances();
  assert.deepEqual(apps.map((a) => `${a.id}@${a.version}:${a.kind}`), ['legacy@0.9:traditional', 'mail@2.1:layered', 'web@1.0:layered']);
  const web = await channels.find('web');
  assert.equal(web.blobs[0]!.urls[0], url + 'layers/jeos-1.0.img');
  assert.equal(web.appliance.services.dns?.name, 'www');
  assert.equal((await channels.find('test/mail@2.1')).appliance.volume?.mount, '/var/mail');
  await assert.rejects(channels.find('nope'), /appliance "nope" not found in the catalog/);
  await assert.rejects(channels.add({ url: feed }), /is already subscribed as "test"/);
});

test('a channel that goes down keeps its last good catalog and shows the error', async (t) => {
  const { channels, feed, srv, snapshot, bus } = await setup(t);
  await channels.add({ url: feed, name: 'test', trust: KEY.publicPem });
  const before = await snapshot();
  await srv.close();
  await assert.rejects(channels.refresh('test'), (e: Error & { code?: string }) => e.code === 'unreachable' && /ECONNREFUSED/.test(e.message));
  assert.equal(await snapshot(), before);
  const [c] = await channels.list();
  assert.match(c!.lastError!.message, /ECONNREFUSED/);
  assert.equal(c!.appliances, 3);
  assert.ok(bus.recent().some((e) => e.kind === 'channel.refresh_failed' && e.level === 'error'));
  // refreshAll records failures without throwing.
  const all = await channels.refreshAll();
  assert.ok(all[0]!.lastError);
});

test('hostile channels: each refresh fails with a clear error and the catalog is unchanged', async (t) => {
  // addOnly: a refresh reuses appliance XMLs whose digest the feed did not change, so only a first fetch sees them.
  const cases: { name: string; addOnly?: boolean; tamper: (dir: string) => void; error: RegExp; code: string }[] = [
    {
      name: 'feed signed by another key',
      tamper: (dir) => writeFileSync(join(dir, 'feed.xml.sig'), signFeed(readFileSync(join(dir, 'feed.xml')), OTHER.privatePem)),
      error: /feed\.xml: the feed's signature does not verify against the trusted key [0-9a-f]{16}/,
      code: 'unauthorized',
    },
    {
      name: 'feed changed after signing',
      tamper: (dir) => writeFileSync(join(dir, 'feed.xml'), readFileSync(join(dir, 'feed.xml'), 'utf8').replace('Web server', 'Evil server')),
      error: /signature does not verify/,
      code: 'unauthorized',
    },
    {
      name: 'signature missing',
      tamper: (dir) => writeFileSync(join(dir, 'feed.xml.sig'), ''),
      error: /signature does not verify|signature is not base64/,
      code: 'unauthorized',
    },
    {
      name: 'malformed feed',
      tamper: (dir) => writeSignedFeed(dir, '<rss version="2.0"><channel>'),
      error: /feed\.xml: malformed XML at line 1/,
      code: 'invalid',
    },
    {
      name: 'oversized feed',
      tamper: (dir) => writeSignedFeed(dir, '<rss>' + ' '.repeat(2 * 1024 * 1024) + '</rss>'),
      error: /feed\.xml: document is 2097163 bytes, more than the limit of 1048576/,
      code: 'invalid',
    },
    {
      name: 'billion laughs',
      tamper: (dir) => writeSignedFeed(dir, '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><rss version="2.0"><channel><title>&b;</title></channel></rss>'),
      error: /feed\.xml: a DOCTYPE or ENTITY declaration is not allowed/,
      code: 'invalid',
    },
    {
      name: 'external entity in an appliance XML',
      tamper: (dir) => tamperAppliance(dir, 'web-1.0.xml', (x) => x.replace('<?xml version="1.0" encoding="UTF-8"?>', '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>').replace('<title>Web server', '<title>&x;')),
      error: /web-1\.0\.xml: a DOCTYPE or ENTITY declaration is not allowed/,
      code: 'invalid',
    },
    {
      name: 'appliance XML does not match its digest in the feed',
      tamper: (dir) => writeFileSync(join(dir, 'appliances', 'web-1.0.xml'), readFileSync(join(dir, 'appliances', 'web-1.0.xml'), 'utf8').replace('memory-mib="256"', 'memory-mib="999"')),
      error: /web-1\.0\.xml: digest mismatch: the feed announced sha256 [0-9a-f]{64}/,
      code: 'invalid',
      addOnly: true,
    },
    {
      name: 'layer href escaping the channel',
      tamper: (dir) => tamperAppliance(dir, 'web-1.0.xml', (x) => x.replace('href="layers/web-1.0.img"', 'href="../../etc/passwd"')),
      error: /web-1\.0\.xml: appliance web 1\.0: href "\.\.\/\.\.\/etc\/passwd" escapes the channel/,
      code: 'invalid',
    },
    {
      name: 'layer href to another host',
      tamper: (dir) => tamperAppliance(dir, 'web-1.0.xml', (x) => x.replace('href="layers/web-1.0.img"', 'href="http://evil.example/web.img"')),
      error: /href "http:\/\/evil\.example\/web\.img" escapes the channel/,
      code: 'invalid',
    },
    {
      name: 'layer href with a non-HTTP scheme',
      tamper: (dir) => tamperAppliance(dir, 'web-1.0.xml', (x) => x.replace('href="layers/web-1.0.img"', 'href="file:///etc/shadow"')),
      error: /href "file:\/\/\/etc\/shadow" uses a non-HTTP scheme; only http and https are allowed/,
      code: 'invalid',
    },
    {
      name: 'mirror with a non-HTTP scheme',
      tamper: (dir) => tamperAppliance(dir, 'web-1.0.xml', (x) => x.replace('href="layers/web-1.0.img"/>', 'href="layers/web-1.0.img"><mirror href="ftp://mirror.example/web.img"/></layer>')),
      error: /web-1\.0\.xml: appliance web 1\.0: <mirror>: "ftp:\/\/mirror\.example\/web\.img" uses the ftp scheme; only http and https are allowed/,
      code: 'invalid',
    },
    {
      name: 'feed item pointing outside the channel',
      tamper: (dir) => {
        const f = readFileSync(join(dir, 'feed.xml'), 'utf8').replace('href="appliances/web-1.0.xml"', 'href="%2e%2e/%2e%2e/web.xml"');
        writeFileSync(join(dir, 'feed.xml'), f);
        writeFileSync(join(dir, 'feed.xml.sig'), awaitSign(Buffer.from(f)));
      },
      error: /item web@1\.0: <storm:appliance>: href "%2e%2e\/%2e%2e\/web\.xml" escapes the channel/,
      code: 'invalid',
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async (tt) => {
      const { channels, feed, dir, snapshot } = await setup(tt);
      // On first subscription nothing at all is kept.
      const empty = await snapshot();
      const saved = { feed: readFileSync(join(dir, 'feed.xml')), sig: readFileSync(join(dir, 'feed.xml.sig')), web: readFileSync(join(dir, 'appliances', 'web-1.0.xml')) };
      c.tamper(dir);
      await assert.rejects(channels.add({ url: feed, name: 'test', trust: KEY.publicPem }), (e: Error & { code?: string }) => {
        assert.match(e.message, c.error);
        assert.equal(e.code, c.code);
        return true;
      });
      assert.equal(await snapshot(), empty);
      if (c.addOnly) return;
      // On refresh of a good subscription the last good catalog stays.
      writeFileSync(join(dir, 'feed.xml'), saved.feed);
      writeFileSync(join(dir, 'feed.xml.sig'), saved.sig);
      writeFileSync(join(dir, 'appliances', 'web-1.0.xml'), saved.web);
      await channels.add({ url: feed, name: 'test', trust: KEY.publicPem });
      const good = await snapshot();
      c.tamper(dir);
      await assert.rejects(channels.refresh('test'), c.error);
      assert.equal(await snapshot(), good);
      assert.match((await channels.get('test')).lastError!.message, c.error);
    });
  }
});

test('an unsigned channel is refused when a key is trusted for it', async (t) => {
  const { channels, feed, snapshot } = await setup(t, { sign: false });
  const before = await snapshot();
  await assert.rejects(channels.add({ url: feed, trust: KEY.publicPem }), /the channel is not signed \(no feed\.xml\.sig\) but key [0-9a-f]{16} is trusted for it/);
  assert.equal(await snapshot(), before);
  await assert.rejects(channels.add({ url: feed, trust: 'not a key' }), /--trust key for .* is not a PEM RSA public key/);
  const rec = await channels.add({ url: feed });
  assert.equal(rec.verified, false);
});

test('a feed behind a redirect loop is refused', async (t) => {
  const s = createServer((req, res) => (res.writeHead(301, { Location: req.url === '/a/feed.xml' ? '/b/feed.xml' : '/a/feed.xml' }), res.end()));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r()))));
  const { channels, snapshot } = await setup(t);
  const before = await snapshot();
  await assert.rejects(channels.add({ url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/a/feed.xml` }), /redirect loop/);
  await assert.rejects(channels.add({ url: 'ftp://127.0.0.1/feed.xml' }), /channel URL: "ftp:\/\/127\.0\.0\.1\/feed\.xml" uses the ftp scheme/);
  assert.equal(await snapshot(), before);
});
