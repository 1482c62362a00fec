/**
 * Shared by the directory-sync and instance-list benches and the sync's
 * integration test: a store of instances (with or without directory
 * entries), the manager's environment (its own ports, the real KDC and
 * LDAP), and waiting for the start-up sync to finish.
 */
import { createHash } from 'node:crypto';
import type { HostRecord } from '../../manager/hosts/hosts.ts';
import type { InstanceRecord } from '../../manager/instances/model.ts';
import { macFor } from '../../manager/instances/model.ts';
import { Store } from '../../manager/store/store.ts';
import type { Health } from '../../lib/health.ts';
import { freePort } from './ports.ts';
import { loopbackAddress, managerEnv, stormAsync } from './storm.ts';

export const DOMAIN = 'storm.internal';
const hex = (s: string, n: number) => createHash('sha256').update(s).digest('hex').slice(0, n);

/**
 * `count` instances (wiki and blog in turn, one in ten stopped) over `hosts`
 * enrolled hosts that never answer; with `directory`, each instance's
 * directory entry as provisioning makes it, else none (the start-up sync's work).
 */
export async function seedInstances(db: string, count: number, hosts: number, opts: { directory?: boolean } = {}): Promise<string[]> {
  const store = await Store.open(db);
  const names: string[] = [];
  try {
    const hc = store.collection<HostRecord>('hosts');
    const ic = store.collection<InstanceRecord>('instances');
    const dc = store.collection<{ fqdn: string; instance: string; addresses: string[]; createdAt: string }>('directory.hosts');
    const now = new Date().toISOString();
    let b = store.batch();
    for (let h = 0; h < hosts; h++) {
      // A loopback port nobody listens on: polls fail fast, as for a host that is down.
      const port = await freePort();
      b.put(hc, `hv${h}`, { name: `hv${h}`, address: `127.0.0.1:${port}`, state: 'offline', addedAt: now, enrolledAt: now, certSerial: hex(`host${h}`, 16), certNotAfter: new Date(Date.now() + 365 * 86400_000).toISOString() });
    }
    const apps = ['wiki', 'blog'];
    for (let i = 0; i < count; i++) {
      const id = hex(`inst${i}`, 12);
      const app = apps[i % 2]!;
      const name = `${app}-${i}`;
      names.push(name);
      b.put(ic, id, {
        id, name, appliance: app, version: '1.0', host: `hv${i % hosts}`, state: i % 10 ? 'running' : 'stopped',
        layers: { substrate: hex('substrate', 64), appliance: hex(`${app}-app`, 64), deployment: hex(`${app}-dep`, 64) },
        mac: macFor(id), memoryMiB: 128, vcpus: 1, params: { site: 'example.org' }, createdAt: now, updatedAt: now, certSerial: hex(`cert${i}`, 16),
      });
      if (opts.directory) b.put(dc, `${name}.${DOMAIN}`, { fqdn: `${name}.${DOMAIN}`, instance: name, addresses: [], createdAt: now });
      if (b.length >= 1000) {
        await b.write();
        b = store.batch();
      }
    }
    await b.write();
  } finally {
    await store.close();
  }
  return names;
}

/** The manager's environment (storm.ts managerEnv) with LDAP and Kerberos on, the default host poll, no API. */
export async function syncManagerEnv(state: string): Promise<NodeJS.ProcessEnv> {
  return managerEnv(state, { STORM_API_LISTEN: '', STORM_LDAP_LISTEN: await loopbackAddress(), STORM_HOST_POLL_SECONDS: '10', STORM_DNS_DOMAIN: DOMAIN });
}

export interface SyncFacts {
  state: string;
  done: number;
  total: number;
  failed: number;
  seconds: number;
}

/** The directory-sync health, read through the real CLI. */
export async function syncStatus(env: NodeJS.ProcessEnv): Promise<{ sync: SyncFacts; reason: string }> {
  const r = await stormAsync(['directory', 'status', '-o', 'json'], env);
  if (r.code !== 0) throw new Error(`storm directory status exited ${r.code}: ${r.stderr}`);
  const h = (JSON.parse(r.stdout) as Health[]).find((x) => x.component === 'directory-sync');
  if (!h) throw new Error('no directory-sync component in storm directory status');
  const f = (h.facts ?? {}) as Record<string, unknown>;
  const secs = typeof f.startedAt === 'string' && typeof f.finishedAt === 'string' ? (Date.parse(f.finishedAt) - Date.parse(f.startedAt)) / 1000 : NaN;
  return { sync: { state: String(f.state), done: Number(f.done), total: Number(f.total), failed: Number(f.failed), seconds: secs }, reason: h.reason };
}

/** Poll until the start-up sync is over (done or failed). */
export async function waitSynced(env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ sync: SyncFacts; reason: string }> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await syncStatus(env);
    if (s.sync.state === 'done' || s.sync.state === 'failed') return s;
    if (Date.now() > end) throw new Error(`directory sync not finished after ${timeoutMs / 1000} s: ${s.reason}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** One CLI call's wall time, and the sync's state right after it answered. */
export async function timedCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; stdout: string; syncState: string }> {
  const t0 = performance.now();
  const r = await stormAsync(args, env);
  const seconds = (performance.now() - t0) / 1000;
  if (r.code !== 0) throw new Error(`storm ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  const s = await syncStatus(env);
  return { seconds, stdout: r.stdout, syncState: `${s.sync.state} ${s.sync.done}/${s.sync.total}` };
}
