import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { silentLogger } from '../../lib/logger.ts';
import { makeTestChannel, sha256 } from '../../test/helpers/channel-fixture.ts';
import { tempDir } from '../../test/helpers/tmp.ts';
import { EventBus } from '../events.ts';
import { Store } from '../store/store.ts';
import { catalogApplianceSource } from './appliance-source.ts';
import { ChannelService } from './catalog.ts';
import { publishChannel } from './publish.ts';
import { ChannelServer } from './server.ts';

test('the catalog resolves appliances for provisioning: layers by digest with URLs, resources, boot files', async (t) => {
  const dir = tempDir(t);
  const ch = makeTestChannel(dir);
  await publishChannel(dir, { baseUrl: 'http://x/' });
  const srv = new ChannelServer({ root: dir });
  const { url } = await srv.listen('127.0.0.1', 0);
  t.after(() => srv.close());
  const store = await Store.open(join(tempDir(t), 'db'));
  t.after(() => store.close());
  const bus = new EventBus();
  const channels = new ChannelService({ store, bus, log: silentLogger, refreshSeconds: 0 });
  await channels.add({ url: url + 'feed.xml', name: 'lab' });
  const src = catalogApplianceSource(channels);
  const web = await src.resolve('web');
  assert.deepEqual(web.layers.map((l) => [l.role, l.sha256, l.size, l.url]), [
    ['substrate', sha256(ch.files['layers/jeos-1.0.img']!), 300_000, url + 'layers/jeos-1.0.img'],
    ['appliance', sha256(ch.files['layers/web-1.0.img']!), 70_000, url + 'layers/web-1.0.img'],
  ]);
  assert.deepEqual(web.kernel, { role: 'kernel', sha256: sha256(ch.files['boot/vmlinuz']!), size: ch.files['boot/vmlinuz']!.length, url: url + 'boot/vmlinuz' });
  assert.equal(web.initrd?.url, url + 'boot/initrd.img');
  assert.deepEqual(web.formats, { substrate: 'raw', appliance: 'raw' });
  assert.equal(web.cmdline, 'console=ttyS0');
  assert.equal((await src.resolve('lab/mail@2.1')).memoryMiB, 512);
  const legacy = await src.resolve('legacy@0.9');
  assert.deepEqual(legacy.layers.map((l) => l.role), ['disk']);
  assert.equal(legacy.kernel, undefined);
  await assert.rejects(src.resolve('ghost'), /appliance "ghost" not found in the catalog/);
});
