// Editing a deployment by hand, for real (one guest boot): `storm deployment
// edit corp --maintenance` boots the wiki under libvirtd with storm.maintenance,
// so the deployment layer is the guest's writable upper layer (a qcow2
// overlay on stormd's cached copy). What the guest writes (here a script given
// with storm.test=, standing in for the maintainer at the console) becomes
// version 2 at `--finish`: read back over mutual TLS, repaired, rebuilt. The
// maintenance instance is destroyed; the cached version 1 is untouched.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startManagerProcess, stormAsync as cli, stormJson as json, stormOk as ok, managerEnv, loopbackAddress, serveChannel } from '../helpers/storm.ts';
import { enrolStormd } from '../helpers/stormd.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { FIXTURES as CHANNEL, buildFixtures } from '../helpers/qemu.ts';

const URI = 'qemu:///system';

before(buildFixtures);

const virsh = (...args: string[]) => spawnSync('virsh', ['-c', URI, ...args], { encoding: 'utf8' });

interface Dep { version: number; maintenance?: { instance: string; from: number }; versions: { version: number; sha256: string; via: string; changed: { path: string; change: string }[] }[] }

// What the maintainer does in the guest: edit the site config, add a motd, delete a file of the deployment.
const SCRIPT = ['echo title=Maintained by hand > /etc/wiki/site.conf', 'echo maintained > /etc/motd', 'rm -f /etc/storm/deployment', 'sync'].join('\n') + '\n';

test('storm deployment edit --maintenance boots the deployment layer writable; --finish keeps what the guest wrote as version 2', async (t) => {
  const root = tempDir(t, 'storm-deploy-maint-');
  const state = join(root, 'manager');
  const hv = join(root, 'stormd');
  const ours: string[] = [];
  t.after(() => {
    for (const d of ours) {
      virsh('destroy', d);
      virsh('undefine', d);
    }
  });
  const env = await managerEnv(state, { STORM_API_LISTEN: await loopbackAddress(), STORM_LAYER_LISTEN: '127.0.0.1:0' });
  const { base } = await serveChannel(t, CHANNEL, env);
  await startManagerProcess(t, state, [], env);
  await enrolStormd(t, env, 'hv1', hv, URI);
  await until('hv1 online', () => json<{ state: string }>(['host', 'show', 'hv1'], env), (h) => h.state === 'online', 60);
  await ok(['channel', 'add', `${base}feed.xml`, '--name', 'fixtures'], env);

  const d1 = await json<Dep>(['deployment', 'create', 'corp', '--appliance', 'wiki', '--set', `/usr/local/bin/maint.sh=${SCRIPT}`], env);
  const v1 = d1.versions[0]!.sha256;

  // The maintenance boot: the guest runs the script in the union whose upper layer is the deployment layer, then powers off.
  const started = cli(['deployment', 'edit', 'corp', '--maintenance', '--append', 'storm.test=/usr/local/bin/maint.sh', '-o', 'json'], env);
  const inst = await until('the maintenance instance exists', async () => (await json<{ id: string; name: string }[]>(['instance', 'list'], env)).find((i) => i.name === 'corp-maint'), (i) => Boolean(i), 60);
  ours.push(`storm-${inst!.id}`);
  const r = await started;
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as Dep).maintenance?.instance, 'corp-maint');
  assert.equal((await json<{ appliance: string }>(['instance', 'show', 'corp-maint'], env)).appliance, 'maintenance:corp');
  const consoleText = await until('the guest ran the maintainer\'s script', async () => (await cli(['instance', 'console', 'corp-maint'], env)).stdout, (s) => /STORM-GUEST: test exit \d+/.test(s) || /STORM-INIT: error/.test(s));
  const lines = consoleText.split(/\r?\n/).filter((l) => /STORM-/.test(l)).join('\n');
  assert.match(lines, /STORM-INIT: maintenance: deployment layer \/dev\/\w+ is the writable upper layer/);
  assert.match(lines, /STORM-GUEST: test exit 0/);
  await until('the guest powered off', async () => virsh('domstate', `storm-${inst!.id}`).stdout.trim(), (s) => s === 'shut off', 60);

  const d2 = await json<Dep>(['deployment', 'edit', 'corp', '--finish', '--note', 'by hand'], env);
  assert.equal(d2.maintenance, undefined);
  assert.equal(d2.version, 2);
  const v2 = d2.versions[1]!;
  assert.equal(v2.via, 'maintenance');
  const changed = Object.fromEntries(v2.changed.map((c) => [c.path, c.change]));
  assert.equal(changed['/etc/wiki/site.conf'], 'modified', JSON.stringify(v2.changed));
  assert.equal(changed['/etc/motd'], 'added');
  assert.ok(['removed', 'deleted'].includes(changed['/etc/storm/deployment']!), JSON.stringify(v2.changed));
  assert.ok(!Object.keys(changed).some((p) => p.startsWith('/.layers')), 'the initrd mount points are not content');
  t.diagnostic(`maintenance changes: ${JSON.stringify(v2.changed)}`);

  // The new version's file, read out of the manager's store; the maintenance instance is gone; stormd's cached v1 unchanged.
  const img = join(state, 'images', 'sha256', v2.sha256);
  const out = spawnSync('debugfs', ['-R', 'cat /root/etc/wiki/site.conf', img], { encoding: 'utf8' }).stdout;
  assert.equal(out, 'title=Maintained by hand\n');
  assert.deepEqual((await json<{ name: string }[]>(['instance', 'list'], env)).map((i) => i.name), []);
  assert.ok(!virsh('list', '--all', '--name').stdout.includes(`storm-${inst!.id}`));
  assert.equal(createHash('sha256').update(readFileSync(join(hv, 'layers', v1))).digest('hex'), v1, "stormd's cached version 1 was never written");
  assert.ok(!readdirSync(join(hv, 'instances')).includes(inst!.id), 'no maintenance overlay left on the host');
});
