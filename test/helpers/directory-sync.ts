/**
 * Shared by the directory-sync bench and its integration test: a store of
 * instances WITHOUT directory entries, the manager's environment (its own
 * ports, the real KDC and LDAP), and waiting for the start-up sync to finish.
 */
import { createHash } from 'node:crypto';
import type { HostRecord } from '../../manager/hosts/hosts.ts';
import type { InstanceRecord } from '../../manager/instances/model.ts';
import { macFor } from '../../manager/instances/model.ts';
import { Store } from '../../manager/store/store.ts';
import type { Health } from '../../lib/health.ts';
import { run } from '../../lib/exec.ts';
import { freePort, freeTcpUdpPort } from './ports.ts';
import { STORM_BIN } from './storm.ts';

export const DOMAIN = 'storm.internal';
const hex = (s: string, n: number) => createHash('sha256').update(s).digest('hex').slice(0, n);

/** `count` instances over `hosts` enrolled (never answering) hosts; no directory.hosts records. */
export async function seedInstances(db: string, count: number, hosts: number): Promise<string[]> {
  const store = await Store.open(db);
  const names: string[] = [];
  try {
    const hc = store.collection<HostRecord>('hosts');
    const ic = store.collection<InstanceRecord>('instances');
    const now = new Date().toISOString();
    let b = store.batch();
    for (let h = 0; h < hosts; h++) {
      const port = await freePort();
      b.put(hc, `hv${h}`, { name: `hv${h}`, address: `127.0.0.1:${port}`, state: 'offline', addedAt: now, enrolledAt: now, certSerial: hex(`host${h}`, 16), certNotAfter: new Date(Date.now() + 365 * 86400_000).toISOString() });
    }
    for (let i = 0; i < count; i++) {
      const id = hex(`inst${i}`, 12);
      const name = `vm-${i}`;
      names.push(name);
      b.put(ic, id, {
        id, name, appliance: 'wiki', version: '1.0', host: `hv${i % hosts}`, state: 'running',
        layers: { substrate: hex('substrate', 64), appliance: hex('wiki-app', 64) },
        mac: macFor(id), memoryMiB: 128, vcpus: 1, params: {}, createdAt: now, updatedAt: now, certSerial: hex(`cert${i}`, 16),
      });
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

/** The manager's environment: every listener on a free loopback port, LDAP and Kerberos on. */
export async function managerEnv(state: string): Promise<NodeJS.ProcessEnv> {
  const p = async () => `127.0.0.1:${await freeTcpUdpPort()}`;
  return {
    ...process.env, STORM_STATE: state, STORM_SSH_LISTEN: await p(), STORM_ENROLL_LISTEN: await p(), STORM_API_LISTEN: '',
    STORM_LDAP_LISTEN: await p(), STORM_LDAPS_LISTEN: '', STORM_KDC_LISTEN: await p(), STORM_KADMIND_LISTEN: await p(), STORM_KPASSWD_LISTEN: await p(),
    STORM_CHANNEL_REFRESH: '0', STORM_DNS_DOMAIN: DOMAIN,
  };
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
  const r = await run(process.execPath, [STORM_BIN, 'directory', 'status', '-o', 'json'], { env, input: '', timeoutMs: 120_000 });
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
  const r = await run(process.execPath, [STORM_BIN, ...args], { env, input: '', timeoutMs: 300_000 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.code !== 0) throw new Error(`storm ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  const s = await syncStatus(env);
  return { seconds, stdout: r.stdout, syncState: `${s.sync.state} ${s.sync.done}/${s.sync.total}` };
}
