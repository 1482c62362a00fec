import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestChannel, sha256 } from '../../test/helpers/channel-fixture.ts';
import { tempDir } from '../../test/helpers/tmp.ts';
import { parseAppliance, parseFeed } from './format.ts';
import { publishChannel } from './publish.ts';
import { generatePublisherKey, verifyFeed } from './sign.ts';

test('publish writes digests and sizes, signs the feed, and keeps the date of unchanged items', async (t) => {
  const dir = tempDir(t);
  const ch = makeTestChannel(dir, { mirrors: ['http://mirror.example/stable/'] });
  const key = generatePublisherKey(2048);
  const r = await publishChannel(dir, { baseUrl: 'http://channel.example/stable', privateKeyPem: key.privatePem, now: new Date('2026-01-01T00:00:00Z') });
  assert.equal(r.files.length, 6, 'the shared substrate is listed (and hashed) once');
  const feed = readFileSync(join(dir, 'feed.xml'));
  verifyFeed(feed, readFileSync(join(dir, 'feed.xml.sig')), key.publicPem, 'feed.xml');
  const f = parseFeed(feed);
  assert.equal(f.items.find((i) => i.id === 'web')!.link, 'http://channel.example/stable/appliances/web-1.0.xml');
  const webXml = readFileSync(join(dir, 'appliances', 'web-1.0.xml'));
  assert.equal(f.items.find((i) => i.id === 'web')!.sha256, sha256(webXml));
  const web = parseAppliance(webXml);
  assert.equal(web.layers[0]!.sha256, sha256(ch.files['layers/jeos-1.0.img']!));
  assert.equal(web.layers[0]!.size, 300_000);
  assert.deepEqual(web.layers[0]!.mirrors, ['http://mirror.example/stable/layers/jeos-1.0.img']);
  // Republishing later: unchanged appliances keep their first date.
  await publishChannel(dir, { baseUrl: 'http://channel.example/stable/', now: new Date('2026-06-01T00:00:00Z') });
  assert.ok(parseFeed(readFileSync(join(dir, 'feed.xml'))).items.every((i) => i.pubDate === '2026-01-01T00:00:00.000Z'));
});

test('bad descriptors are refused with the file and the key named', async (t) => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['unknown key', { id: 'x', version: '1', title: 'X', disk: { file: 'disks/legacy-0.9.qcow2' }, colour: 'red' }, /appliances\/bad\.json: unknown key "colour"/],
    ['file outside', { id: 'x', version: '1', title: 'X', disk: { file: '../../etc/passwd' } }, /appliances\/bad\.json: disk: "file" \.\.\/\.\.\/etc\/passwd is outside the channel folder/],
    ['missing file', { id: 'x', version: '1', title: 'X', disk: { file: 'disks/nope.img' } }, /appliances\/bad\.json: disk: "file" disks\/nope\.img: no such file/],
    ['bad id', { id: 'Bad Id', version: '1', title: 'X', disk: { file: 'disks/legacy-0.9.qcow2' } }, /appliances\/bad\.json: "id" must be lower-case letters/],
    ['both', { id: 'x', version: '1', title: 'X', disk: { file: 'disks/legacy-0.9.qcow2' }, layers: [] }, /give either "layers" or "disk", not both/],
    ['bad default', { id: 'x', version: '1', title: 'X', disk: { file: 'disks/legacy-0.9.qcow2' }, parameters: [{ name: 'n', type: 'int', default: 'many' }] }, /parameters\[0\]: "default" "many": expected an integer/],
    ['no boot for layers', { id: 'x', version: '1', title: 'X', layers: [{ role: 'substrate', name: 'jeos', version: '1', file: 'layers/jeos-1.0.img' }, { role: 'appliance', name: 'x', version: '1', file: 'layers/web-1.0.img' }] }, /x-1\.xml: <appliance\/boot>: expected a <kernel> and an <initrd>/],
    ['mirror scheme', { id: 'x', version: '1', title: 'X', disk: { file: 'disks/legacy-0.9.qcow2', mirrors: ['ftp://m/'] } }, /"mirrors" must be a list of absolute http\(s\) URLs/],
  ];
  for (const [name, desc, re] of cases) {
    await t.test(name, async (tt) => {
      const dir = tempDir(tt);
      makeTestChannel(dir);
      writeFileSync(join(dir, 'appliances', 'bad.json'), JSON.stringify(desc));
      await assert.rejects(publishChannel(dir, { baseUrl: 'http://x/' }), re);
      assert.throws(() => readFileSync(join(dir, 'feed.xml')), /ENOENT/, 'no feed was written');
      assert.deepEqual(readdirSync(join(dir, 'appliances')).filter((f) => f.endsWith('.xml')), [], 'nor any appliance XML');
    });
  }
  await assert.rejects(publishChannel(tempDir(t), { baseUrl: 'http://x/' }), /appliances: no such folder/);
  await assert.rejects(publishChannel(tempDir(t), { baseUrl: 'ftp://x/' }), /--base-url ftp:\/\/x\/: expected an http or https URL/);
});
