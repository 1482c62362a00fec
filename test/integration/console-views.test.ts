/**
 * Every console view against the real manager's service layer (not the
 * fixture): the shapes the services really return render as rows, and no
 * view fails or says "not available" for a service the manager has.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../lib/paths.ts';
import { silentLogger } from '../../lib/logger.ts';
import { ChannelServer } from '../../manager/channels/server.ts';
import { publishChannel } from '../../manager/channels/publish.ts';
import { managerConfig } from '../../manager/config/config.ts';
import type { HostRecord } from '../../manager/hosts/hosts.ts';
import { startManager } from '../../manager/main.ts';
import { startLocalStormd } from '../../bin/local-stormd.ts';
import { createConsole } from '../../tui/console/app.ts';
import { VIEW_LIST } from '../../tui/console/views/index.ts';
import { until } from '../helpers/console-fixture.ts';
import { freeTcpUdpPort } from '../helpers/ports.ts';
import { fakeTerm, screenText } from '../helpers/term.ts';
import { tempDir } from '../helpers/tmp.ts';
import { buildFixtures } from '../helpers/qemu.ts';

before(buildFixtures);

/** A row each view must show, from what this test made through the real services. */
const EXPECT: Record<string, RegExp> = {
  dashboard: /local\s+online\s+cpu \d+%[\s\S]*[▁▂▃▄▅▆▇█]/,
  instances: /Instances 0\/0/,
  hosts: /local\s+127\.0\.0\.1:\d+\s+online\s+\d+\s+\d+%/,
  channels: /fixtures\s+ok\s+3\s+unsigned/,
  deployments: /NAME\s+APPLIANCE\s+VERSION\s+VERSIONS\s+INSTANCES[\s\S]*corp\s+wiki@1\.0\s+1\s+1\s+0\s/,
  appliances: /fixtures\s+wiki\s+1\.0\s+layered\s+[\d.]+ \S+\s+all\s+\d of \d/,
  layers: /[0-9a-f]{16}\s+\S+\s+.*wiki/,
  updates: /Layer updates 0\/0/,
  dns: /www\.storm\.internal\s+A\s+10\.77\.0\.80\s+admin/,
  dhcp: /DHCP leases 0\/0/,
  users: /alice\s+\d+\s+\d+\s+Alice Admin/,
  groups: /users\s+\d+/,
  principals: /alice@STORM\.INTERNAL\s+user/,
  events: /operation\s+alice\s+test: user\.add alice/,
  health: /libvirtd\s+healthy/,
};

test('every view renders what the real services return', async (t) => {
  const root = tempDir(t, 'storm-tb-views-');
  const state = join(root, 'm');
  // A copy of the example channel, published for a server of this test's own.
  const chan = join(root, 'channel');
  cpSync(join(PACKAGE_ROOT, 'fixtures', 'build'), chan, { recursive: true });
  const server = new ChannelServer({ root: chan });
  const at = await server.listen('127.0.0.1', 0);
  t.after(() => server.close());
  await publishChannel(chan, { baseUrl: at.url });

  const p = async () => `127.0.0.1:${await freeTcpUdpPort()}`;
  const config = managerConfig({ PATH: process.env.PATH, STORM_HOST_POLL_SECONDS: '1', STORM_CHANNEL_REFRESH: '0' }, {
    state, 'enroll-listen': '127.0.0.1:0', 'api-listen': '127.0.0.1:0', 'libvirt-uri': 'test:///default', 'ssh-listen': await p(),
    'ldap-listen': '', 'ldaps-listen': '', 'kdc-listen': await p(), 'kadmind-listen': await p(), 'kpasswd-listen': await p(),
  });
  const m = await startManager({ config, log: silentLogger, path: process.env.PATH ?? '' });
  t.after(() => m.stop());
  const local = await startLocalStormd(m, silentLogger);
  t.after(() => local.stop());
  const api = m.api({ actor: 'test', readOnly: false });
  await api.call('dns.record.add', { name: 'www', type: 'A', value: '10.77.0.80' });
  await api.call('user.add', { name: 'alice', cn: 'Alice Admin' });
  await api.call('channel.add', { url: `${at.url}feed.xml`, name: 'fixtures' });
  await api.call('appliance.pull', { ref: 'wiki' });
  await api.call('deployment.create', { name: 'corp', appliance: 'wiki' });
  // Two polls: a CPU series to draw.
  for (let i = 0; ((await api.call<HostRecord[]>('host.list'))[0]?.cpuHistory?.length ?? 0) < 2; i++) {
    assert.ok(i < 300, 'two polls of the local stormd');
    await new Promise((r) => setTimeout(r, 100));
  }

  const term = fakeTerm(140, 40);
  const c = createConsole({ api, input: term.input, output: term.output });
  t.after(() => c.destroy());
  const text = () => screenText(c.screen).join('\n');
  await c.settled();
  for (const v of VIEW_LIST) {
    term.type(`:${v.id}\r`);
    await until(() => c.state().view === v.id, `view ${v.id}`);
    await c.settled();
    assert.equal(c.state().notAvailable, undefined, `${v.id}: ${c.state().notAvailable}`);
    assert.equal(c.state().lastError, '', `${v.id}: ${c.state().lastError}`);
    assert.ok(EXPECT[v.id], `the test covers view ${v.id}`);
    assert.match(text(), EXPECT[v.id]!, `view ${v.id} shows:\n${text()}`);
  }
});
