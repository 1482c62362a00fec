// The manager killed with SIGKILL at every step of provisioning and of
// destroying, in turn (the points come from manager/instances/crash-points.ts,
// so a new step is covered as soon as it is listed), then restarted without
// the crash point: every operation ends finished or undone. No domain of ours
// without a record, one record or none, no open journal entry, no instance
// layer without an instance, no certificate left valid for a gone instance,
// no grant left for one.
// One stormd on qemu:///system serves every round; the guests are never
// waited for (a domain started is all provisioning promises).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../lib/exec.ts';
import { controlSocketPath } from '../../lib/paths.ts';
import { ControlClient } from '../../manager/control/client.ts';
import { CRASH_POINTS, type CrashOp } from '../../manager/instances/crash-points.ts';
import type { JournalEntry } from '../../manager/instances/journal.ts';
import type { InstanceRecord } from '../../manager/instances/model.ts';
import type { Running } from '../helpers/child.ts';
import { startManagerProcess, stormAsync as storm, stormOk as ok, managerEnv, serveChannel } from '../helpers/storm.ts';
import { enrolStormd } from '../helpers/stormd.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { FIXTURES as CHANNEL, buildFixtures } from '../helpers/qemu.ts';

const URI = 'qemu:///system';
/** The smallest fixture appliance: one traditional disk, kernel and initrd. */
const APPLIANCE = 'wiki-classic';

before(buildFixtures);

const virsh = (...args: string[]) => run('virsh', ['-c', URI, ...args]);

/** Domains named like STORM's that other tests on this libvirtd built (names are unique ids: asked once). */
const others = new Set<string>();
/** Domains of ours: named like STORM's and built on this test's stormd. */
async function ourDomains(hv: string): Promise<string[]> {
  const names = (await virsh('list', '--all', '--name')).stdout.split('\n').map((s) => s.trim()).filter((n) => n.startsWith('storm-') && !others.has(n));
  const ours: string[] = [];
  for (const n of names) {
    const xml = await virsh('dumpxml', n);
    if (xml.stdout.includes(`${hv}/`)) ours.push(n);
    else if (xml.code === 0) others.add(n);
  }
  return ours.sort();
}

/** One call over the manager's control socket (checks and cleanup; the CLI is exercised for create and destroy). */
async function call<R>(state: string, method: string, params: Record<string, unknown> = {}): Promise<R> {
  const api = await ControlClient.connect(controlSocketPath(state));
  try {
    return await api.call<R>(method, params);
  } finally {
    api.close();
  }
}

/** How the process ended (waits for it, bounded). */
async function ended(m: Running, seconds = 90): Promise<NodeJS.Signals | number | null> {
  const c = m.child;
  if (c.exitCode === null && c.signalCode === null) {
    let timer!: NodeJS.Timeout;
    await Promise.race([
      new Promise((r) => c.once('exit', r)),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`the manager did not die within ${seconds} s; output:\n${m.output()}`)), seconds * 1000))),
    ]).finally(() => clearTimeout(timer));
  }
  return c.signalCode ?? c.exitCode;
}

const TRANSITIONAL = new Set(['pending', 'provisioning', 'deleting']);

test('SIGKILL at every provisioning and destroy step: the restarted manager finishes or undoes each, leaving nothing behind', async (t) => {
  const root = tempDir(t, 'crash-e2e-');
  const state = join(root, 'manager');
  const hv = join(root, 'stormd');
  // Whatever happens, no domain of ours outlives the test.
  t.after(async () => {
    for (const d of await ourDomains(hv)) {
      await virsh('destroy', d);
      await virsh('undefine', d);
    }
  });
  const env = await managerEnv(state, { STORM_API_LISTEN: '127.0.0.1:0', STORM_HOST_POLL_SECONDS: '1', STORM_RECONCILE_SECONDS: '0' });
  const manager = (crashAt?: string) => startManagerProcess(t, state, [], crashAt ? { ...env, STORM_TEST_CRASH_AT: crashAt } : env);

  // The channel on loopback, a manager, one stormd enrolled and online.
  const { base } = await serveChannel(t, CHANNEL, env);
  let m = await manager();
  await enrolStormd(t, env, 'hv1', hv, URI);
  await ok(['channel', 'add', `${base}feed.xml`, '--name', 'fixtures'], env);
  await m.stop();

  /** The manager with `at` armed: run `action`, see it die by SIGKILL there; then restart it clean and wait for reconciliation. */
  const round = async (op: CrashOp, at: string, prepare: (env: NodeJS.ProcessEnv) => Promise<void>, action: string[]) => {
    await m.stop(); // a failed round may have left its manager up
    m = await manager(`${op}:${at}`);
    // Placement needs hv1 online: this manager's first poll of it.
    await until('hv1 online', () => call<{ name: string; state: string }[]>(state, 'host.list'), (hs) => hs.some((h) => h.name === 'hv1' && h.state === 'online'));
    await prepare(env);
    const cli = storm(action, env); // it may fail: its manager dies under it
    assert.equal(await ended(m), 'SIGKILL', `the manager died by SIGKILL; output:\n${m.output()}`);
    assert.match(m.output(), new RegExp(`test crash point reached.*"crashAt":"${op}:${at}"`));
    await cli;
    m = await manager();
    // Reconciliation runs once hv1 has been polled: then no entry is open and no record is mid-operation.
    const after = await until(
      'reconciled',
      async () => ({ ops: await call<JournalEntry[]>(state, 'instance.operations'), insts: await call<InstanceRecord[]>(state, 'instance.list') }),
      (v) => v.ops.length === 0 && !v.insts.some((i) => TRANSITIONAL.has(i.state)),
    );
    return after.insts;
  };

  /** Nothing of ours is left: no record, entry, domain, instance layer, or live instance certificate. */
  const assertClean = async () => {
    assert.deepEqual(await call(state, 'instance.list'), []);
    assert.deepEqual(await call(state, 'instance.operations'), [], 'no open journal entry');
    assert.deepEqual(await ourDomains(hv), [], 'no orphan domain');
    assert.deepEqual(existsSync(join(hv, 'instances')) ? readdirSync(join(hv, 'instances')) : [], [], 'no instance layer');
    const certs = await call<{ role: string; commonName: string; revokedAt?: string }[]>(state, 'pki.list');
    assert.deepEqual(certs.filter((c) => c.role === 'instance' && !c.revokedAt).map((c) => c.commonName), [], 'no live instance certificate');
    // The API forgets a gone instance's grants (at its next start when the destroyed event was lost).
    await until('no grant left', () => call<unknown[]>(state, 'grant.list'), (g) => g.length === 0, 30);
  };

  for (const at of CRASH_POINTS.provision) {
    await t.test(`provision:${at}`, async () => {
      const name = `p-${at}`;
      const insts = await round('provision', at, async () => {}, ['instance', 'create', name, '--appliance', APPLIANCE, '--no-wait', '-o', 'json']);
      const mine = insts.filter((i) => i.name === name);
      assert.equal(mine.length, 1, `one record for ${name}, not lost, not duplicated: ${JSON.stringify(insts)}`);
      assert.equal(insts.length, 1, 'no other record');
      const inst = mine[0]!;
      const dom = `storm-${inst.id}`;
      // Once every step is journaled the work is finished; before, it is undone.
      if (at === 'started' || at === 'running') {
        assert.equal(inst.state, 'running');
        assert.deepEqual(await ourDomains(hv), [dom]);
        assert.equal((await virsh('domstate', dom)).stdout.trim(), 'running');
        assert.ok(existsSync(join(hv, 'instances', inst.id, 'instance.qcow2')), 'its instance layer');
      } else {
        assert.equal(inst.state, 'failed');
        assert.match(inst.error ?? '', /interrupted/);
        assert.deepEqual(await ourDomains(hv), [], 'no orphan domain');
        assert.ok(!existsSync(join(hv, 'instances', inst.id)), 'no instance layer');
      }
      // The admin removes what is left; everything goes.
      await call(state, 'instance.destroy', { name });
      await assertClean();
      await m.stop();
    });
  }

  for (const at of CRASH_POINTS.destroy) {
    await t.test(`destroy:${at}`, async () => {
      const name = `d-${at}`;
      let id = '';
      const insts = await round('destroy', at, async () => {
        id = (await call<InstanceRecord>(state, 'instance.create', { name, appliance: APPLIANCE })).id;
        await until(`${name} running`, () => call<InstanceRecord>(state, 'instance.show', { name }), (i) => i.state === 'running', 90);
        await call(state, 'grant.add', { instance: name, appliance: 'wiki' }); // what the API must forget with it
      }, ['instance', 'destroy', name, '--yes']);
      assert.deepEqual(insts, [], 'the destroy was finished: no record');
      assert.ok(!(await ourDomains(hv)).includes(`storm-${id}`));
      await assertClean();
      await m.stop();
    });
  }
});
