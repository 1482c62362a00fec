import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { HostAgent, LayerRef } from '../../manager/instances/host-agent.ts';
import { StormError } from '../../lib/errors.ts';

/** A layer the implementation under test can fetch: the factory serves it. */
export interface AgentFixture {
  agent: HostAgent;
  layer: LayerRef;
  kernel: string;
  initrd: string;
  cleanup?: () => Promise<void>;
}

export const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * The HostAgent contract, run against every implementation (in memory, and the
 * stormd client over XML-RPC) so that none drifts from what the service expects.
 */
export function hostAgentConformance(label: string, make: () => Promise<AgentFixture>): void {
  test(`${label}: layers, instance layer and domain lifecycle`, async (t) => {
    const f = await make();
    t.after(() => f.cleanup?.());
    const a = f.agent;
    await a.ensureLayer(f.layer);
    await a.ensureLayer(f.layer); // idempotent
    assert.ok((await a.layers()).includes(f.layer.sha256));
    await a.createInstanceLayer('conf1', { hostname: 'conf1', domain: 'cloud.storm', files: { '/etc/hostname': 'conf1\n' }, sizeMiB: 64 });
    const name = `storm-conf-${Date.now().toString(36)}`;
    await a.define({ name, memoryMiB: 128, vcpus: 1, kernel: f.kernel, initrd: f.initrd, cmdline: 'console=ttyS0', layers: { [f.layer.role]: f.layer.sha256 }, instanceLayer: 'conf1', mac: '52:54:00:00:00:01' });
    assert.equal(await a.state(name), 'stopped');
    // A layer under a defined domain is never collected, even when nobody names it.
    assert.deepEqual(await a.removeUnreferencedLayers([]), { removed: [], freedBytes: 0 });
    await a.start(name);
    assert.equal(await a.state(name), 'running');
    assert.ok((await a.domains()).some((d) => d.name === name && d.state === 'running'));
    // Its console by offset: a read from where the last ended gives what came since (here: nothing yet, or the same end).
    const tail = await a.consoleRead(name, { bytes: 4096 });
    assert.ok(typeof tail.text === 'string' && tail.from >= 0 && tail.next >= tail.from, JSON.stringify(tail));
    const again = await a.consoleRead(name, { bytes: 4096, from: tail.next });
    assert.ok(again.from === tail.next && again.next >= again.from, JSON.stringify(again));
    await assert.rejects(a.consoleRead(name, { bytes: 0 }), (e: StormError) => e.code === 'invalid');
    await assert.rejects(a.undefine(name), (e: StormError) => e.code === 'conflict');
    await a.poweroff(name);
    assert.equal(await a.state(name), 'stopped');
    await a.undefine(name);
    await a.undefine(name); // absent is fine
    assert.equal(await a.state(name), 'absent');
    await a.removeInstanceLayer('conf1');
    await a.removeInstanceLayer('conf1');
    // Kernel and initrd are digests in the cache or paths on the host: only digests are named.
    const named = [f.layer.sha256, f.kernel, f.initrd].filter((d) => /^[0-9a-f]{64}$/.test(d));
    assert.deepEqual((await a.removeUnreferencedLayers(named)).removed, [], 'referenced layers stay');
    assert.ok((await a.removeUnreferencedLayers([])).removed.includes(f.layer.sha256));
    assert.ok(!(await a.layers()).includes(f.layer.sha256));
    await a.poweroff(name); // absent is fine: undo and reconciliation repeat it
  });

  test(`${label}: instance layer files are listed with their kinds, bounded`, async (t) => {
    const f = await make();
    t.after(() => f.cleanup?.());
    const a = f.agent;
    await a.createInstanceLayer('conffiles', { hostname: 'conffiles', domain: 'cloud.storm', files: { '/etc/app/site.conf': 'x=1\n', '/srv/www/index.html': '<p>hi</p>\n' }, sizeMiB: 64 });
    const all = await a.instanceLayerFiles('conffiles');
    assert.equal(all.truncated, false);
    assert.equal(all.total, all.entries.length);
    const kinds = new Map(all.entries.map((e) => [e.path, e.kind]));
    assert.equal(kinds.get('/etc/hostname'), 'file');
    assert.equal(kinds.get('/etc/app/site.conf'), 'file');
    assert.equal(kinds.get('/srv/www/index.html'), 'file');
    assert.equal(kinds.get('/etc/app'), 'dir');
    assert.equal(kinds.get('/srv'), 'dir');
    assert.deepEqual(all.entries.map((e) => e.path), [...all.entries.map((e) => e.path)].sort(), 'sorted by path');
    const two = await a.instanceLayerFiles('conffiles', 2);
    assert.equal(two.entries.length, 2);
    assert.equal(two.truncated, true);
    assert.equal(two.total, all.total);
    assert.deepEqual(two.entries, all.entries.slice(0, 2));
    await assert.rejects(a.instanceLayerFiles('conffiles', 0), (e: StormError) => e.code === 'invalid');
    await assert.rejects(a.instanceLayerFiles('no-such-layer'), (e: StormError) => e.code === 'not_found');
    await a.removeInstanceLayer('conffiles');
    await assert.rejects(a.instanceLayerFiles('conffiles'), (e: StormError) => e.code === 'not_found');
  });

  test(`${label}: snapshots of an instance layer: take, list, restore, delete, with codes`, async (t) => {
    const f = await make();
    t.after(() => f.cleanup?.());
    const a = f.agent;
    await a.createInstanceLayer('confsnap', { hostname: 'confsnap', domain: 'cloud.storm', files: {}, sizeMiB: 64 });
    assert.deepEqual(await a.snapshots('confsnap'), []);
    await a.snapshot('confsnap', 'before');
    await assert.rejects(a.snapshot('confsnap', 'before'), (e: StormError) => e.code === 'conflict');
    const list = await a.snapshots('confsnap');
    assert.deepEqual(list.map((s) => s.name), ['before']);
    assert.ok(!Number.isNaN(Date.parse(list[0]!.createdAt)));
    await a.restore('confsnap', 'before');
    await assert.rejects(a.restore('confsnap', 'nosuch'), (e: StormError) => e.code === 'not_found');
    await assert.rejects(a.deleteSnapshot('confsnap', 'nosuch'), (e: StormError) => e.code === 'not_found');
    await a.deleteSnapshot('confsnap', 'before');
    assert.deepEqual(await a.snapshots('confsnap'), []);
    await a.removeInstanceLayer('confsnap');
    await assert.rejects(a.snapshots('confsnap'), (e: StormError) => e.code === 'not_found');
  });

  test(`${label}: errors carry codes`, async (t) => {
    const f = await make();
    t.after(() => f.cleanup?.());
    await assert.rejects(f.agent.start('storm-does-not-exist'), (e: StormError) => e.code === 'not_found');
    await assert.rejects(f.agent.consoleRead('storm-does-not-exist', { bytes: 100 }), (e: StormError) => e.code === 'not_found');
    await assert.rejects(
      f.agent.define({ name: 'storm-nolayer', memoryMiB: 64, vcpus: 1, kernel: f.kernel, initrd: f.initrd, cmdline: '', layers: { substrate: sha('not cached') }, instanceLayer: 'none', mac: '52:54:00:00:00:02' }),
      (e: StormError) => e.code === 'not_found',
    );
  });
}
