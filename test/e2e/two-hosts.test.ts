// Two hypervisors on one machine, every part a process: two stormd (two state
// dirs and ports, one libvirtd qemu:///system, each with its own domain
// prefix), one manager, the example channel plus the next version of the wiki
// (on substrate 1.1) served on loopback, and the CLI. Real boots (QEMU TCG):
// provision both fixture appliances, stop and start, snapshot and restore an
// instance layer, migrate (only the instance layer travels; the target fetches
// only what it lacks), roll substrate 1.1 out with a canary and roll it back,
// destroy everything and collect the layers: nothing is left in libvirt or in
// either state directory.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT, controlSocketPath } from '../../lib/paths.ts';
import { ControlClient } from '../../manager/control/client.ts';
import { STORM_BIN, startManagerProcess, managerEnv, serveChannel } from '../helpers/storm.ts';
import { enrolStormd } from '../helpers/stormd.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { buildFixtures } from '../helpers/qemu.ts';

const FIX = join(PACKAGE_ROOT, 'fixtures', 'build');
const URI = 'qemu:///system';

before(buildFixtures);

interface Layer { role: string; name: string; version: string; path: string; sha256: string; size: number }
interface Inst { id: string; name: string; host: string; state: string; version: string; mac: string; certSerial?: string; layers: Record<string, string> }
interface Migration { instance: string; from: string; to: string; instanceLayerBytes: number; layerBytes: number; bytesMoved: number }

const virsh = (...args: string[]) => spawnSync('virsh', ['-c', URI, ...args], { encoding: 'utf8' });
const allDomains = () => virsh('list', '--all', '--name').stdout.split('\n').map((s) => s.trim()).filter(Boolean);
const sha256File = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const isDigest = (f: string) => /^[0-9a-f]{64}$/.test(f);

/** The CLI as a process, without blocking this one; stdout parsed as JSON. */
function storm<T>(args: string[], env: NodeJS.ProcessEnv, json = true): Promise<T> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [STORM_BIN, ...args, ...(json ? ['-o', 'json'] : [])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d));
    c.stderr.on('data', (d: Buffer) => (err += d));
    c.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`storm ${args.join(' ')} exited ${code}:\n${err}`));
      try {
        resolve((json ? JSON.parse(out) : out) as T);
      } catch (e) {
        reject(new Error(`storm ${args.join(' ')}: not JSON: ${out}\n${(e as Error).message}`));
      }
    });
  });
}

/** Every file under a directory (recursively), relative names. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) e.isDirectory() ? walk(join(d, e.name)) : out.push(join(d, e.name).slice(dir.length + 1));
  };
  walk(dir);
  return out.sort();
}

/** Layer cache files with the identity of each (inode, mtime): a re-download would change it. */
function cacheFiles(state: string): Map<string, string> {
  const dir = join(state, 'layers');
  return new Map(readdirSync(dir).filter(isDigest).map((f) => {
    const st = statSync(join(dir, f));
    return [f, `${st.ino}:${st.mtimeMs}:${st.size}`];
  }));
}

/** A channel folder: the example channel's wiki, wiki-classic and blog, plus wiki 1.0.1 (substrate 1.1), files hard-linked. */
function makeChannel(dir: string): void {
  mkdirSync(join(dir, 'appliances'), { recursive: true });
  mkdirSync(join(dir, 'boot'), { recursive: true });
  const place = (src: string, dst: string) => {
    try {
      linkSync(src, dst);
    } catch {
      copyFileSync(src, dst);
    }
  };
  for (const f of readdirSync(FIX)) if (f.endsWith('.img')) place(join(FIX, f), join(dir, f));
  for (const f of readdirSync(join(FIX, 'boot'))) place(join(FIX, 'boot', f), join(dir, 'boot', f));
  copyFileSync(join(FIX, 'channel.json'), join(dir, 'channel.json'));
  for (const f of ['wiki.json', 'wiki-classic.json', 'blog.json']) copyFileSync(join(FIX, 'appliances', f), join(dir, 'appliances', f));
  copyFileSync(join(FIX, 'updates', 'wiki-1.0.1.json'), join(dir, 'appliances', 'wiki-1.0.1.json'));
}

test('two stormd, one manager: provision, stop/start, snapshot/restore, migrate only the instance layer, canary rollout of substrate 1.1 and rollback, destroy leaves nothing', async (t) => {
  const root = tempDir(t, 'mig-two-hosts-');
  // Where the time goes (a diagnostic, not an assertion).
  const t0 = Date.now();
  const phases: string[] = [];
  const phase = (what: string) => phases.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  t.after(() => t.diagnostic(`phases: ${phases.join(', ')}`));
  const state = join(root, 'manager');
  const hv = { hv1: join(root, 'hv1'), hv2: join(root, 'hv2') };
  // Each stormd names its domains with its own prefix: one libvirtd, two hosts that do not see each other's.
  const tag = `mig${randomBytes(3).toString('hex')}`;
  const prefix = { hv1: `${tag}-1-`, hv2: `${tag}-2-` };
  const ours = () => allDomains().filter((d) => d.startsWith(tag));
  t.after(() => {
    for (const d of ours()) {
      virsh('destroy', d);
      virsh('undefine', d);
    }
  });
  const manifest = JSON.parse(readFileSync(join(FIX, 'manifest.json'), 'utf8')) as { layers: Layer[]; updates: { substrate: Layer } };
  const layer = (name: string) => manifest.layers.find((l) => l.name === name)!;
  const sub1 = layer('busybox-substrate');
  const sub2 = manifest.updates.substrate;
  const env = await managerEnv(state, { STORM_HOST_POLL_SECONDS: '1' });

  // The channel, the manager, two enrolled hypervisors.
  const chan = join(root, 'channel');
  makeChannel(chan);
  const { base, published } = await serveChannel(t, chan, env);
  assert.match(published, /published 4 appliance versions/);
  await startManagerProcess(t, state, [], env);
  // Polls go over the control socket from here (a CLI process per poll costs a loaded machine more than the boots).
  const api = await ControlClient.connect(controlSocketPath(state));
  t.after(() => api.close());
  await Promise.all([
    ...(['hv1', 'hv2'] as const).map(async (h) => {
      await enrolStormd(t, env, h, hv[h], URI, ['--domain-prefix', prefix[h]]);
      await until(`${h} online`, () => api.call<{ state: string }>('host.show', { name: h }), (x) => x.state === 'online');
    }),
    storm(['channel', 'add', `${base}feed.xml`, '--name', 'fixtures'], env, false),
  ]);
  // After hooks run in the order they were added: every process is stopped by now; remove the directory
  // again, last, so that nothing a late CRL push or poll wrote stays behind.
  t.after(() => rmSync(root, { recursive: true, force: true }));

  phase('setup');
  // Provision the fixture appliances for real, in parallel: the layered wiki (wiki-a, -b, -c on hv1), the blog
  // with its data volume (blog1 on hv1) and the traditional one-disk wiki-classic (classic1 on hv2, which so
  // holds the kernel and initrd but no wiki layer).
  const want: [string, string, 'hv1' | 'hv2'][] = [['classic1', 'wiki-classic@1.0', 'hv2'], ['wiki-a', 'wiki@1.0', 'hv1'], ['blog1', 'blog@1.0', 'hv1'], ['wiki-b', 'wiki@1.0', 'hv1'], ['wiki-c', 'wiki@1.0', 'hv1']];
  const created = await Promise.all(want.map(([n, app, h]) => storm<Inst>(['instance', 'create', n, '--appliance', app, '--host', h, '--timeout', '170'], env)));
  for (const [i, c] of created.entries()) {
    assert.equal(c.state, 'running', `${c.name} is running`);
    assert.equal(c.host, want[i]![2]);
    assert.ok(allDomains().includes(`${prefix[want[i]![2]]}storm-${c.id}`), `libvirt has ${c.name}'s domain under ${want[i]![2]}'s prefix`);
  }
  const id = Object.fromEntries(created.map((c) => [c.name, c])) as Record<string, Inst>;
  // wiki-b and wiki-c need no guest for what follows: power them off now (rollouts redefine stopped ones).
  await Promise.all(['wiki-b', 'wiki-c'].map((n) => storm(['instance', 'poweroff', n], env)));
  const consoleOf = (n: string) => api.call<{ text: string }>('instance.console', { name: n }).then((c) => c.text);
  const up = (n: string) => until(`${n} is up`, () => consoleOf(n), (s) => /STORM-GUEST: ready/.test(s), 150);
  const [classicBoot, wikiBoot, blogBoot] = await Promise.all([up('classic1'), up('wiki-a'), up('blog1')]);
  assert.match(classicBoot, /STORM-GUEST: service 50-wiki started/);
  assert.match(blogBoot, /STORM-INIT: data volume posts \/dev\/\S+ at \/var\/lib\/blog\/posts/);
  assert.match(blogBoot, /STORM-GUEST: substrate 1\.0 up .* hostname blog1/);
  assert.match(blogBoot, /STORM-GUEST: service 50-blog started/);
  // Its data volume does not travel (yet): migrating it is refused, and nothing moves.
  await assert.rejects(storm(['instance', 'migrate', 'blog1', 'hv2'], env), /data volumes \(posts\): they cannot be migrated yet/);
  await storm(['instance', 'poweroff', 'blog1'], env);
  assert.match(wikiBoot, /STORM-GUEST: substrate 1\.0 up .* hostname wiki-a/);
  assert.match(wikiBoot, /STORM-GUEST: service 50-wiki started/);
  assert.doesNotMatch(classicBoot + wikiBoot + blogBoot, /STORM-INIT: error/);

  phase('provisioned and booted');
  // Stop (ACPI: the guest powers itself off) and snapshot the instance layer; it is restored at the end,
  // after a migration, a start on the other host, an update and a rollback have all written to it.
  const dom = (h: 'hv1' | 'hv2', n: string) => `${prefix[h]}storm-${id[n]!.id}`;
  const layerFile = (h: 'hv1' | 'hv2', n: string) => join(hv[h], 'instances', id[n]!.id, 'instance.qcow2');
  assert.equal((await storm<Inst>(['instance', 'stop', 'wiki-a'], env)).state, 'stopped');
  assert.equal(virsh('domstate', dom('hv1', 'wiki-a')).stdout.trim(), 'shut off');
  await storm(['snapshot', 'take', 'wiki-a', 'before'], env, false);
  assert.deepEqual((await storm<{ name: string }[]>(['snapshot', 'list', 'wiki-a'], env)).map((s) => s.name), ['before']);
  const atSnapshot = join(root, 'wiki-a-before.raw');
  assert.equal(spawnSync('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', layerFile('hv1', 'wiki-a'), atSnapshot]).status, 0);
  const sameAsSnapshot = (h: 'hv1' | 'hv2') => spawnSync('qemu-img', ['compare', '-U', '-q', '-f', 'qcow2', '-F', 'raw', layerFile(h, 'wiki-a'), atSnapshot]).status;
  assert.equal(sameAsSnapshot('hv1'), 0);

  phase('stop/snapshot');
  // Migrate wiki-b hv1 → hv2 (stopped): hv2 has the kernel and initrd (classic1's) but no wiki layer,
  // and fetches exactly the three it lacks.
  const bBefore = { bytes: statSync(layerFile('hv1', 'wiki-b')).size, cache: cacheFiles(hv.hv2) };
  const lacked = [sub1, layer('wiki'), layer('wiki-example-corp')];
  const lackedBytes = lacked.reduce((n, l) => n + l.size, 0);
  const mB = await storm<Migration>(['instance', 'migrate', 'wiki-b', 'hv2'], env);
  assert.deepEqual(mB, { instance: 'wiki-b', from: 'hv1', to: 'hv2', instanceLayerBytes: bBefore.bytes, layerBytes: lackedBytes, bytesMoved: bBefore.bytes + lackedBytes });
  const bAfter = cacheFiles(hv.hv2);
  assert.deepEqual([...bAfter.keys()].filter((k) => !bBefore.cache.has(k)).sort(), lacked.map((l) => l.sha256).sort(), 'exactly the layers it lacked');
  for (const [k, v] of bBefore.cache) assert.equal(bAfter.get(k), v, `${k} (kernel, initrd, classic disk) was not fetched again`);
  t.diagnostic(`migration of wiki-b to a host without its layers: ${mB.bytesMoved} bytes = instance layer ${mB.instanceLayerBytes} + the 3 layers it lacked ${mB.layerBytes}`);

  // Migrate wiki-a hv1 → hv2 (stopped): hv2 now holds every layer it uses, so only the instance layer travels.
  const before = { bytes: statSync(layerFile('hv1', 'wiki-a')).size, sha: sha256File(layerFile('hv1', 'wiki-a')), cache: cacheFiles(hv.hv2) };
  const mA = await storm<Migration>(['instance', 'migrate', 'wiki-a', 'hv2'], env);
  assert.deepEqual(mA, { instance: 'wiki-a', from: 'hv1', to: 'hv2', instanceLayerBytes: before.bytes, layerBytes: 0, bytesMoved: before.bytes });
  assert.deepEqual(cacheFiles(hv.hv2), before.cache, 'hv2 fetched no layer: same files, same inodes, untouched');
  assert.equal(sha256File(layerFile('hv2', 'wiki-a')), before.sha, 'the same instance layer, byte for byte (its snapshot inside)');
  assert.ok(!existsSync(join(hv.hv1, 'instances', id['wiki-a']!.id)), 'nothing of wiki-a left on hv1');
  assert.ok(!allDomains().includes(dom('hv1', 'wiki-a')) && allDomains().includes(dom('hv2', 'wiki-a')));
  assert.deepEqual(filesUnder(join(hv.hv2, 'imports')), [], 'the imports landed in place');
  const moved = await storm<Inst>(['instance', 'show', 'wiki-a'], env);
  assert.deepEqual([moved.host, moved.state, moved.mac, moved.certSerial], ['hv2', 'stopped', id['wiki-a']!.mac, id['wiki-a']!.certSerial], 'same identity, MAC and certificate');
  assert.deepEqual((await storm<{ name: string }[]>(['snapshot', 'list', 'wiki-a'], env)).map((s) => s.name), ['before'], 'its snapshot moved with it');
  const full = lackedBytes + before.bytes;
  t.diagnostic(`migration of wiki-a: moved ${mA.bytesMoved} bytes = its instance layer (${mA.instanceLayerBytes}); its full disk set ${full} bytes; ratio ${(mA.bytesMoved / full).toFixed(4)}`);

  phase('migrations');
  // Start: wiki-a boots on hv2 under its own name.
  assert.equal((await storm<Inst>(['instance', 'start', 'wiki-a'], env)).state, 'running');
  assert.match(await up('wiki-a'), /STORM-GUEST: substrate 1\.0 up .* hostname wiki-a/);

  phase('wiki-a up on hv2');
  // Roll substrate 1.1 out (wiki 1.0.1): the plan names the three wikis; wiki-a (running) is the canary.
  const plan = await storm<{ instance: string; changes: { role: string; from: string; to: string }[] }[]>(['update', 'plan', 'wiki@1.0.1'], env);
  assert.deepEqual(plan.map((x) => x.instance), ['wiki-a', 'wiki-b', 'wiki-c']);
  for (const x of plan) assert.deepEqual(x.changes, [{ role: 'substrate', from: sub1.sha256, to: sub2.sha256 }]);
  const rollout = await storm<{ canary: string; updated: string[]; failed: unknown[] }>(['update', 'apply', 'wiki@1.0.1'], env);
  assert.equal(rollout.canary, 'wiki-a');
  assert.deepEqual([...rollout.updated].sort(), ['wiki-a', 'wiki-b', 'wiki-c']);
  assert.deepEqual(rollout.failed, []);
  const wikis = await Promise.all(['wiki-a', 'wiki-b', 'wiki-c'].map((n) => storm<Inst>(['instance', 'show', n], env)));
  for (const w of wikis) {
    assert.equal(w.version, '1.0.1');
    assert.equal(w.layers.substrate, sub2.sha256);
    const h = w.host as 'hv1' | 'hv2';
    assert.match(virsh('dumpxml', dom(h, w.name)).stdout, new RegExp(`${hv[h]}/layers/${sub2.sha256}`), `${w.name} boots from substrate 1.1`);
    assert.ok(existsSync(layerFile(h, w.name)), `${w.name} kept its instance layer`);
  }
  assert.deepEqual(wikis.map((w) => w.state), ['running', 'stopped', 'stopped']);
  assert.match(await until('the canary runs substrate 1.1', () => consoleOf('wiki-a'), (s) => /STORM-GUEST: substrate 1\.1 up/.test(s), 150), /hostname wiki-a/);

  phase('rollout');
  // Roll back: each instance on its previous layers again, its own layer kept.
  const back = await Promise.all(['wiki-a', 'wiki-b', 'wiki-c'].map((n) => storm<Inst>(['update', 'rollback', n], env)));
  for (const w of back) {
    assert.equal(w.version, '1.0');
    assert.equal(w.layers.substrate, sub1.sha256);
    assert.match(virsh('dumpxml', dom(w.host as 'hv1' | 'hv2', w.name)).stdout, new RegExp(`/layers/${sub1.sha256}`));
  }
  // Up (acpid too: the stop below is the ACPI power button) on substrate 1.0 again.
  assert.match(await up('wiki-a'), /STORM-GUEST: substrate 1\.0 up .* hostname wiki-a/);

  // Stop again; the boots wrote to its layer (ext4 mounts, the guest's own writes): not the snapshot any
  // more. Restore on hv2 the snapshot taken on hv1: byte for byte what it was.
  assert.equal((await storm<Inst>(['instance', 'stop', 'wiki-a'], env)).state, 'stopped');
  assert.equal(sameAsSnapshot('hv2'), 1, 'the instance layer changed since the snapshot');
  await storm(['snapshot', 'restore', 'wiki-a', 'before', '--yes'], env, false);
  assert.equal(sameAsSnapshot('hv2'), 0, 'restored: the instance layer is byte for byte what it was at the snapshot');

  phase('rollback, stop, restore');
  // Destroy everything, collect the layers: no domain, no layer, no instance file on either host.
  await Promise.all(['classic1', 'blog1', 'wiki-a', 'wiki-b', 'wiki-c'].map((n) => storm(['instance', 'destroy', n, '--yes'], env, false)));
  assert.deepEqual(await storm<unknown[]>(['instance', 'list'], env), []);
  for (const h of ['hv1', 'hv2'] as const) {
    const gc = await storm<{ removed: string[] }>(['host', 'gc', h], env);
    assert.ok(gc.removed.length > 0, `${h} collected its layers`);
    for (const d of ['layers', 'instances', 'imports']) assert.deepEqual(filesUnder(join(hv[h], d)), [], `${h}/${d} is empty`);
  }
  assert.deepEqual(ours(), [], `no domain named ${tag}* is left`);
  phase('destroyed and collected');
});
