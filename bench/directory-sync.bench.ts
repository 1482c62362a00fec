// Manager start on a store with 10,000 instances across 100 hosts and NO
// directory entries (an upgrade, a restored store): the control socket must
// not wait for the directory. A real manager process with its real MIT realm
// (kadmin.local) and LDAP server; reports the time to "manager ready", the
// time `storm instance list` took while the sync ran, and the time until the
// directory sync finished (every host entry, host/ principal and keytab).
import { join } from 'node:path';
import { startProcess } from '../test/helpers/child.ts';
import { STORM_BIN } from '../test/helpers/storm.ts';
import { benchDir, rmDir } from './fleet.ts';
import { result, type BenchResult } from './result.ts';
import { syncManagerEnv, seedInstances, waitSynced, timedCli } from '../test/helpers/directory-sync.ts';

const HOSTS = 100;
const INSTANCES = 10_000;

export default async function (): Promise<BenchResult[]> {
  const dir = benchDir('storm-dirsync-bench-');
  try {
    const state = join(dir, 'manager');
    await seedInstances(join(state, 'db'), INSTANCES, HOSTS);
    const env = await syncManagerEnv(state);
    const t0 = performance.now();
    const manager = await startProcess(undefined, process.execPath, [STORM_BIN, 'manager', 'start', '--state', state], { ready: /storm manager ready/, env, timeoutMs: 600_000 });
    const ready = (performance.now() - t0) / 1000;
    try {
      const list = await timedCli(['instance', 'list', '-o', 'json'], env);
      const n = (JSON.parse(list.stdout) as unknown[]).length;
      if (n !== INSTANCES) throw new Error(`instance list returned ${n} instances, expected ${INSTANCES}`);
      const during = await waitSynced(env, 1800_000);
      const synced = (performance.now() - t0) / 1000;
      if (during.sync.state !== 'done') throw new Error(`directory sync ${during.sync.state}: ${during.reason}`);
      return [
        result({ name: `manager start on ${INSTANCES} instances without directory entries, to control socket ready`, value: ready, unit: 's', peer: 'bar', peerValue: null, bar: 'reported', pass: () => true }),
        result({ name: `storm instance list -o json while the directory sync runs (sync ${list.syncState} when it answered)`, value: list.seconds, unit: 's', peer: 'bar', peerValue: null, bar: 'reported', pass: () => true }),
        result({ name: `manager start to directory sync complete (${INSTANCES} host entries, principals, keytabs; sync itself ${during.sync.seconds.toFixed(1)} s)`, value: synced, unit: 's', peer: 'bar', peerValue: null, bar: 'reported', pass: () => true }),
      ];
    } finally {
      await manager.stop();
    }
  } finally {
    rmDir(dir);
  }
}
