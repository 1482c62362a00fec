import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAppliance, parseFeed, serializeAppliance, serializeFeed, type Appliance, type Feed } from './format.ts';
import { MAX_APPLIANCE_BYTES, MAX_FEED_BYTES } from './xml.ts';

const H = (c: string) => c.repeat(64);

const app: Appliance = {
  id: 'web',
  version: '1.2.0',
  title: 'Web & mail <test>',
  description: 'a "quoted" description',
  layers: [
    { role: 'substrate', name: 'jeos', version: '1.0', format: 'raw', sha256: H('a'), size: 100, href: 'layers/jeos.img', mirrors: ['http://m1.example/jeos.img', 'https://m2.example/jeos.img'] },
    { role: 'appliance', name: 'web', version: '1.2.0', format: 'qcow2', sha256: H('b'), size: 200, href: 'layers/web.img', mirrors: [] },
  ],
  boot: { kernel: { sha256: H('c'), size: 3, href: 'boot/k', mirrors: [] }, initrd: { sha256: H('d'), size: 4, href: 'boot/i', mirrors: [] }, cmdline: 'console=ttyS0' },
  memoryMiB: 512,
  vcpus: 2,
  parameters: [
    { name: 'title', type: 'string', default: 'Hello & welcome', required: false, description: 'page title' },
    { name: 'mode', type: 'enum', default: 'b', required: true, choices: ['a', 'b'], description: '' },
  ],
  services: { dns: { name: 'www' }, mx: { priority: 5 }, ldap: true, kerberos: { principal: 'host' } },
  volume: { sizeMiB: 1024, mount: '/srv/data' },
};

const feed: Feed = {
  title: 'Example',
  description: 'd',
  link: 'http://example/',
  lastBuildDate: '2026-01-01T00:00:00.000Z',
  items: [{ id: 'web', version: '1.2.0', title: 'Web 1.2.0', description: 'x', pubDate: '2026-01-01T00:00:00.000Z', link: 'http://example/appliances/web-1.2.0.xml', href: 'appliances/web-1.2.0.xml', sha256: H('e'), size: 1234 }],
};

test('appliance XML and feed round-trip through serializer and parser', () => {
  assert.deepEqual(parseAppliance(serializeAppliance(app), 'web.xml'), app);
  assert.deepEqual(parseFeed(serializeFeed(feed), 'feed.xml'), feed);
  const trad: Appliance = { ...app, layers: [], boot: {}, disk: { format: 'qcow2', sha256: H('f'), size: 9, href: 'disks/x.qcow2', mirrors: [] } };
  assert.deepEqual(parseAppliance(serializeAppliance(trad), 'trad.xml'), trad);
});

test('validation errors name the file, the element and what was expected', () => {
  const x = serializeAppliance(app);
  assert.throws(() => parseAppliance(x.replace('memory-mib="512"', 'memory-mib="lots"'), 'web.xml'), /web\.xml: <appliance\/resources>: expected attribute memory-mib to be a non-negative integer, got "lots"$/);
  assert.throws(() => parseAppliance(x.replace(`sha256="${H('b')}"`, 'sha256="xyz"'), 'web.xml'), /web\.xml: <appliance\/layers\/layer\[2\]>: expected attribute sha256 to be 64 lower-case hex digits, got "xyz"/);
  assert.throws(() => parseAppliance(x.replace('role="substrate"', 'role="floor"'), 'web.xml'), /web\.xml: <appliance\/layers\/layer\[1\]>: expected attribute role to be one of substrate, appliance, deployment/);
  assert.throws(() => parseAppliance(x.replace(/<title>.*<\/title>/, ''), 'web.xml'), /web\.xml: <appliance\/title>: expected a non-empty text element, it is missing/);
  assert.throws(() => parseAppliance(x.replace(/<layer role="substrate"[^>]*>[\s\S]*?<\/layer>/, ''), 'web.xml'), /<appliance\/layers>: expected a layer with role="substrate"/);
  assert.throws(() => parseAppliance(x.replace('type="string"', 'type="colour"'), 'web.xml'), /parameter\[1\]>: expected attribute type to be one of string, int/);
  assert.throws(() => parseAppliance(x.replace('default="b"', 'default="z"'), 'web.xml'), /parameter\[2\]>: expected attribute default to be one of the choices \(a, b\), got "z"/);
  const f = serializeFeed(feed);
  assert.throws(() => parseFeed(f.replace('web@1.2.0', 'not a guid'), 'http://c/feed.xml'), /http:\/\/c\/feed\.xml: <rss\/channel\/item\[1\]\/guid>: expected id@version/);
  assert.throws(() => parseFeed(f.replace('urn:storm:channel:1', 'urn:other'), 'feed.xml'), /feed\.xml: <rss>: expected an xmlns:storm="urn:storm:channel:1" declaration/);
  assert.throws(() => parseFeed(f.replace(/<pubDate>.*<\/pubDate>/, '<pubDate>yesterday</pubDate>'), 'feed.xml'), /<rss\/channel\/item\[1\]\/pubDate>: expected an RFC 822 date, got "yesterday"/);
});

test('malformed, oversized and entity-laden documents are refused before use', () => {
  assert.throws(() => parseFeed('<rss version="2.0"><channel><title>x</title>', 'feed.xml'), /feed\.xml: malformed XML at line 1/);
  assert.throws(() => parseFeed('', 'feed.xml'), /feed\.xml: empty document/);
  assert.throws(() => parseFeed('not xml at all', 'feed.xml'), /feed\.xml: malformed XML/);
  const huge = '<rss version="2.0">' + ' '.repeat(MAX_FEED_BYTES) + '</rss>';
  assert.throws(() => parseFeed(huge, 'feed.xml'), new RegExp(`feed\\.xml: document is ${huge.length} bytes, more than the limit of ${MAX_FEED_BYTES}`));
  assert.throws(() => parseAppliance('<appliance>' + 'x'.repeat(MAX_APPLIANCE_BYTES) + '</appliance>', 'a.xml'), /a\.xml: document is \d+ bytes, more than the limit/);
  const laughs = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><rss version="2.0"><channel><title>&lol3;</title></channel></rss>`;
  assert.throws(() => parseFeed(laughs, 'feed.xml'), /feed\.xml: a DOCTYPE or ENTITY declaration is not allowed/);
  const xxe = `<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><appliance>&xxe;</appliance>`;
  assert.throws(() => parseAppliance(xxe, 'a.xml'), /a\.xml: a DOCTYPE or ENTITY declaration is not allowed/);
  // An undeclared entity reference is not expanded into anything: it stays literal text.
  assert.equal(parseAppliance(serializeAppliance(app).replace('<title>Web &amp;', '<title>&xxe; Web &amp;'), 'a.xml').title, '&xxe; Web & mail <test>');
});
