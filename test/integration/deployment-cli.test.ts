// Deployments end to end through the CLI, every part a process: the example
// channel served on loopback, a manager, a stormd enrolled with a token on
// libvirt's test driver (no guest boots: the domain calls are real libvirt,
// the layers, instance layers and files are real). A deployment of the wiki
// is created and edited (a new layer version, served by the manager's layer
// server and fetched by stormd by digest); `storm update plan --deployment`
// names the file the instance's own layer would hide (one the guest wrote,
// one it deleted: a whiteout), apply moves the instance to the new version
// keeping its instance layer, rollback returns it.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startManagerProcess, stormAsync as cli, stormJson as json, stormOk as ok, managerEnv, loopbackAddress, serveChannel } from '../helpers/storm.ts';
import { enrolStormd } from '../helpers/stormd.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { FIXTURES as CHANNEL, buildFixtures } from '../helpers/qemu.ts';

const URI = 'test:///default';

before(buildFixtures);

/** What the guest would have done to its own layer: delete /etc/wiki/site.conf (a whiteout over the deployment's). */
function guestDeletes(qcow2: string, dir: string, path: string): void {
  const raw = join(dir, 'il.raw');
  assert.equal(spawnSync('qemu-img', ['convert', '-U', '-q', '-f', 'qcow2', '-O', 'raw', qcow2, raw]).status, 0);
  const parent = path.slice(0, path.lastIndexOf('/'));
  const name = path.slice(path.lastIndexOf('/') + 1);
  const cmds = join(dir, 'cmds');
  writeFileSync(cmds, [`mkdir /root${parent.split('/').slice(0, 2).join('/')}`, `mkdir /root${parent}`, `cd /root${parent}`, `mknod ${name} c 0 0`, `sif /root${path} mode 020000`].join('\n') + '\n');
  const r = spawnSync('debugfs', ['-w', '-f', cmds, `${raw}?offset=${1024 * 1024}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(spawnSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, qcow2]).status, 0);
}

const digest = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

interface Dep { name: string; appliance: string; version: number; versions: { version: number; sha256: string; via: string; changed: { path: string; change: string }[]; changedCount: number }[] }
interface Inst { id: string; name: string; appliance: string; version: string; state: string; layers: Record<string, string> }
interface Plan { instance: string; from: string; to: string; changes: { role: string }[]; shadowed?: { path: string; kind: string; change: string; role: string }[]; shadowedError?: string }

test('storm deployment create/edit makes layer versions; update plan --deployment names shadowed files; apply and rollback keep the instance layer', async (t) => {
  const root = tempDir(t, 'storm-deploy-cli-');
  const state = join(root, 'manager');
  const hv = join(root, 'stormd');
  const env = await managerEnv(state, { STORM_API_LISTEN: await loopbackAddress(), STORM_LAYER_LISTEN: '127.0.0.1:0', STORM_HOST_POLL_SECONDS: '1' });
  const { base } = await serveChannel(t, CHANNEL, env);
  await startManagerProcess(t, state, [], env);
  await enrolStormd(t, env, 'hv1', hv, URI);
  await until('hv1 online', () => json<{ state: string }>(['host', 'show', 'hv1'], env), (h) => h.state === 'online');
  await ok(['channel', 'add', `${base}feed.xml`, '--name', 'fixtures'], env);

  // A deployment of the wiki: version 1 is the wiki's own deployment layer, rebuilt under this name.
  const d1 = await json<Dep>(['deployment', 'create', 'corp', '--appliance', 'wiki', '--note', 'as published'], env);
  assert.equal(d1.version, 1);
  assert.equal(d1.appliance, 'wiki');
  assert.equal(d1.versions[0]!.via, 'create');
  assert.equal(d1.versions[0]!.changedCount, 0, 'same tree as the published deployment layer');
  assert.match(await ok(['deployment', 'list'], env), /^NAME\s+APPLIANCE\s+VERSION[\s\S]*\ncorp\s+wiki@1\.0\s+1\s/);
  assert.equal((await cli(['deployment', 'create', 'corp', '--appliance', 'wiki'], env)).code, 4, 'a second create is a conflict');
  assert.equal((await cli(['deployment', 'create', 'classic', '--appliance', 'wiki-classic'], env)).code, 2, 'a traditional appliance has no layers to deploy onto');

  // An instance of it: stormd fetched the deployment layer from the manager's layer server, by digest.
  const inst = await json<Inst>(['instance', 'create', 'web1', '--deployment', 'corp', '--timeout', '60'], env);
  assert.equal(inst.state, 'running');
  assert.equal(inst.appliance, 'deployment:corp');
  assert.equal(inst.version, '1');
  // The list counts the instances using each deployment (VERSION, VERSIONS, INSTANCES).
  assert.match(await ok(['deployment', 'list'], env), /^NAME\s+APPLIANCE\s+VERSION\s+VERSIONS\s+INSTANCES[\s\S]*\ncorp\s+wiki@1\.0\s+1\s+1\s+1\s/);
  assert.deepEqual((await json<{ instances: string[] }[]>(['deployment', 'list'], env))[0]!.instances, ['web1']);
  assert.equal(inst.layers.deployment, d1.versions[0]!.sha256);
  assert.ok(readdirSync(join(hv, 'layers')).includes(d1.versions[0]!.sha256), "the deployment layer is in stormd's cache");

  // The guest deleted the site config (a whiteout in its own layer). Then the site edits the deployment.
  const qcow2 = join(hv, 'instances', inst.id, 'instance.qcow2');
  await ok(['instance', 'stop', 'web1'], env);
  guestDeletes(qcow2, root, '/etc/wiki/site.conf');
  const ilBefore = digest(qcow2);
  mkdirSync(join(root, 'tree', 'etc', 'wiki'), { recursive: true });
  writeFileSync(join(root, 'tree', 'etc', 'wiki', 'extra.conf'), 'cache=on\n');
  writeFileSync(join(root, 'site.conf'), 'title=Example Corp wiki (edited)\n');
  const noop = await cli(['deployment', 'edit', 'corp'], env);
  assert.equal(noop.code, 2, 'an edit without files is refused');
  const d2 = await json<Dep>(['deployment', 'edit', 'corp', '--set', `/etc/wiki/site.conf=@${join(root, 'site.conf')}`, '--set', '/etc/hostname=corp-default', '--set', '/etc/motd=Welcome', '--from', join(root, 'tree'), '--delete', '/etc/storm/deployment', '--note', 'site config'], env);
  assert.equal(d2.version, 2);
  assert.equal(d2.versions.length, 2, 'version 1 is kept');
  assert.notEqual(d2.versions[1]!.sha256, d2.versions[0]!.sha256);
  assert.deepEqual(d2.versions[1]!.changed, [
    { path: '/etc/hostname', change: 'added' },
    { path: '/etc/motd', change: 'added' },
    { path: '/etc/storm/deployment', change: 'deleted' },
    { path: '/etc/wiki/extra.conf', change: 'added' },
    { path: '/etc/wiki/site.conf', change: 'modified' },
  ]);
  assert.match(await ok(['deployment', 'show', 'corp'], env), /\n2\*\s+files\s+5\s[\s\S]*site config[\s\S]*\n1\s+create\s+0\s/);

  // The plan: web1 goes 1 → 2; its own /etc/hostname and its whiteout over site.conf would hide the update.
  const plan = await json<Plan[]>(['update', 'plan', '--deployment', 'corp'], env);
  assert.equal(plan.length, 1);
  assert.equal(plan[0]!.instance, 'web1');
  assert.deepEqual([plan[0]!.from, plan[0]!.to], ['1', '2']);
  assert.deepEqual(plan[0]!.changes.map((c) => c.role), ['deployment']);
  assert.equal(plan[0]!.shadowedError, undefined);
  assert.deepEqual(plan[0]!.shadowed, [
    { path: '/etc/hostname', kind: 'file', change: 'added', role: 'deployment' },
    { path: '/etc/wiki/site.conf', kind: 'whiteout', change: 'modified', role: 'deployment' },
  ]);
  const table = await ok(['update', 'plan', '--deployment', 'corp'], env);
  assert.match(table, /^INSTANCE\s+APPLIANCE\s+HOST\s+FROM\s+TO\s+LAYERS\s+SHADOWED\s*\nweb1\s+deployment:corp\s+hv1\s+1\s+2\s+deployment\s+2\s*\n$/);
  // No target: every pending update, this one among them.
  assert.deepEqual((await json<Plan[]>(['update', 'plan'], env)).map((p) => p.instance), ['web1']);
  assert.match(await ok(['update', 'plan', '--deployment', 'corp', '-o', 'wide'], env), /\/etc\/hostname\(file\) \/etc\/wiki\/site\.conf\(whiteout\)/);

  // Apply: web1 is on version 2 with the same instance layer; rollback puts it back on 1.
  const rep = await json<{ updated: string[]; failed: unknown[] }>(['update', 'apply', '--deployment', 'corp'], env);
  assert.deepEqual(rep.updated, ['web1']);
  assert.deepEqual(rep.failed, []);
  const moved = await json<Inst>(['instance', 'show', 'web1'], env);
  assert.equal(moved.version, '2');
  assert.equal(moved.layers.deployment, d2.versions[1]!.sha256);
  assert.equal(moved.layers.substrate, inst.layers.substrate);
  assert.equal(digest(qcow2), ilBefore, 'the instance layer is untouched');
  assert.deepEqual(await json<Plan[]>(['update', 'plan', '--deployment', 'corp'], env), []);
  const back = await json<Inst>(['update', 'rollback', 'web1'], env);
  assert.equal(back.version, '1');
  assert.equal(back.layers.deployment, d1.versions[0]!.sha256);

  // Version 2 was a mistake: version 3 is version 1's layer again; the plan moves web1 (on 1) nowhere new.
  const reverted = await cli(['deployment', 'revert', 'corp', '1'], env);
  assert.equal(reverted.code, 0, reverted.stderr);
  assert.match(reverted.stderr, /^corp: version 3 is version 1's layer again \(\d+ path\(s\) changed\); storm update apply --deployment corp$/m);
  assert.match(reverted.stdout, /^3\*\s+revert\s+\d+\s+\S+ \S+\s+[0-9a-f]{12}\s+\S+\s+version 1 again$/m);
  const d3 = await json<{ version: number; versions: { sha256: string }[] }>(['deployment', 'show', 'corp'], env);
  assert.equal(d3.versions[2]!.sha256, d1.versions[0]!.sha256);
  assert.deepEqual((await json<Plan[]>(['update', 'plan', '--deployment', 'corp'], env)).map((p) => [p.instance, p.from, p.to, p.changes.length]), [['web1', '1', '3', 0]]);
  assert.match(await ok(['update', 'plan', '--deployment', 'corp'], env), /^web1\s+deployment:corp\s+hv1\s+1\s+3\s+\(same\)\s/m);
  const again = await cli(['deployment', 'revert', 'corp', '1'], env);
  assert.equal(again.code, 2, again.stderr);
  assert.match(again.stderr, /already has version 1's layer/);

  // Removal is refused while an instance uses it.
  const busy = await cli(['deployment', 'remove', 'corp', '--yes'], env);
  assert.equal(busy.code, 4, busy.stderr);
  assert.match(busy.stderr, /used by 1 instance\(s\): web1/);
  await ok(['instance', 'destroy', 'web1', '--yes'], env);
  await ok(['deployment', 'remove', 'corp', '--yes'], env);
  assert.deepEqual(await json<unknown[]>(['deployment', 'list'], env), []);
});
