import { LocalApi, type StormApi } from '../../manager/api.ts';
import { EventBus } from '../../manager/events.ts';
import { Registry, str, type CallContext } from '../../manager/services/registry.ts';
import { registerSystem } from '../../manager/services/system.ts';
import { logOperations } from '../../manager/services/operations.ts';
import { notFound } from '../../lib/errors.ts';
import { loadConfig } from '../../lib/config.ts';
import { managerSchema, type ManagerConfig } from '../../manager/config/config.ts';

/** Manager defaults with a libvirt that is never reached and a state directory nothing can create. */
export function fixtureConfig(state: string): Readonly<ManagerConfig> {
  return loadConfig(managerSchema, { env: { STORM_LIBVIRT_URI: 'qemu:///system?socket=/nonexistent', STORM_SSH_LISTEN: '127.0.0.1:1' }, flags: { state } });
}

type Obj = Record<string, unknown>;

/**
 * An in-process service layer with the method names the console expects
 * (tui/console/methods.ts), for tests and benchmarks of the console and the
 * SSH server before the real services land. `calls` records every call.
 */
export interface Fixture {
  reg: Registry;
  bus: EventBus;
  api: (ctx?: Partial<CallContext>) => StormApi;
  calls: { method: string; params: Obj; ctx: CallContext }[];
  instances: Obj[];
  /** What deployment.list answers (tests may add to it). */
  deployments: Obj[];
}

/**
 * `state` is only what system.doctor probes: by default a path nothing can create (under /dev/null), so tests leave no directory behind.
 * `deployments: false` leaves deployment.list out (a manager from before deployments).
 */
export function fixture(opts: { instances?: number; services?: boolean; state?: string; deployments?: boolean } = {}): Fixture {
  const reg = new Registry();
  const bus = new EventBus();
  const calls: Fixture['calls'] = [];
  // As the manager does: every state change is an event, so every session refreshes.
  logOperations(reg, bus);
  registerSystem(reg, {
    config: fixtureConfig(opts.state ?? '/dev/null/storm-fixture-state'),
    bus,
    path: '/usr/sbin:/usr/bin:/sbin:/bin',
    startedAt: new Date(),
  });
  const n = opts.instances ?? 3;
  const instances: Obj[] = Array.from({ length: n }, (_, i) => ({
    id: `i${String(i).padStart(6, '0')}`, name: `web-${i}`, state: i % 3 === 2 ? 'stopped' : 'running', appliance: 'nginx', version: '1.2', host: i % 2 ? 'hv2' : 'hv1',
    mac: `52:54:00:00:00:${(i % 256).toString(16).padStart(2, '0')}`, layers: { substrate: 'aa'.repeat(32), appliance: 'bb'.repeat(32) }, memoryMiB: 256, vcpus: 1, params: {}, createdAt: new Date(Date.now() - 3_600_000).toISOString(), updatedAt: new Date().toISOString(),
  }));
  const list = (name: string, rows: () => Obj[]) =>
    reg.add<Obj, Obj[]>({ name, mutates: false, summary: `fixture ${name}`, handler: async (p, ctx) => (calls.push({ method: name, params: p, ctx }), rows()) });
  const act = (name: string, fn: (inst: Obj) => void) =>
    reg.add<Obj, Obj>({
      name, mutates: true, summary: `fixture ${name}`,
      handler: async (p, ctx) => {
        calls.push({ method: name, params: p, ctx });
        const id = str(p, 'name', name);
        const inst = instances.find((x) => x.name === id);
        if (!inst) throw notFound(`no instance "${id}"`, { hint: 'storm instance list shows them' });
        fn(inst);
        bus.emit({ kind: name, object: id, message: `${name} ${id}` });
        return inst;
      },
    });
  // The site's deployments: corp (three versions) and staging of nginx, ops of mail.
  const ver = (version: number, via: string) => ({ version, sha256: String(version).repeat(64), size: 4 * 2 ** 20, createdAt: '2026-11-26T08:00:00Z', via, changed: [], changedCount: version - 1, ...(version > 1 ? { note: `edit ${version}` } : {}) });
  const deployments: Obj[] = [
    { name: 'corp', appliance: 'nginx', applianceVersion: '1.2', base: 'cc'.repeat(32), version: 3, versions: [ver(1, 'create'), ver(2, 'files'), ver(3, 'files')], createdAt: '2026-11-26T08:00:00Z', updatedAt: '2026-11-26T09:00:00Z' },
    { name: 'ops', appliance: 'mail', applianceVersion: '2.1', version: 1, versions: [ver(1, 'create')], createdAt: '2026-11-26T08:00:00Z', updatedAt: '2026-11-26T08:00:00Z' },
    { name: 'staging', appliance: 'nginx', applianceVersion: '1.2', base: 'cc'.repeat(32), version: 1, versions: [ver(1, 'create')], createdAt: '2026-11-26T08:00:00Z', updatedAt: '2026-11-26T08:00:00Z' },
  ];
  if (opts.services !== false) {
    // As the service does: a drill-down's `host` keeps that host's.
    reg.add<Obj, Obj[]>({ name: 'instance.list', mutates: false, summary: 'fixture instance.list', handler: async (p, ctx) => (calls.push({ method: 'instance.list', params: p, ctx }), instances.filter((i) => typeof p.host !== 'string' || i.host === p.host)) });
    if (opts.deployments !== false) {
      list('deployment.list', () => deployments);
      reg.add<Obj, Obj>({
        name: 'deployment.show', mutates: false, summary: 'fixture deployment.show',
        handler: async (p) => deployments.find((d) => d.name === p.name) ?? Promise.reject(notFound(`deployment "${String(p.name)}" not found`)),
      });
    }
    reg.add<Obj, Obj>({
      name: 'instance.create', mutates: true, summary: 'fixture instance.create',
      handler: async (p, ctx) => {
        calls.push({ method: 'instance.create', params: p, ctx });
        // As the service records it: an instance of a deployment says `deployment:NAME` and the deployment's version.
        const dep = deployments.find((d) => d.name === p.deployment);
        if (p.deployment !== undefined && !dep) throw notFound(`deployment "${String(p.deployment)}" not found`);
        const layers = { substrate: 'aa'.repeat(32), appliance: 'bb'.repeat(32), deployment: dep ? String(dep.version).repeat(64) : 'cc'.repeat(32) };
        const inst = { ...instances[0], id: `i${instances.length}`, name: p.name, appliance: dep ? `deployment:${dep.name}` : 'nginx', version: dep ? String(dep.version) : '1.2', host: p.host ?? 'hv1', state: 'running', params: p.params, layers };
        instances.push(inst);
        bus.emit({ kind: 'instance.created', object: `instance/${String(p.name)}`, message: `${String(p.name)} created` });
        return inst;
      },
    });
    act('instance.start', (i) => (i.state = 'running'));
    act('instance.stop', (i) => (i.state = 'stopped'));
    act('instance.destroy', (i) => instances.splice(instances.indexOf(i), 1));
    act('instance.reboot', () => {});
    act('instance.poweroff', (i) => (i.state = 'stopped'));
    list('instance.snapshot.list', () => [{ name: 'before-upgrade', createdAt: '2026-11-26T08:00:00Z' }]);
    act('instance.snapshot.take', () => {});
    act('instance.snapshot.restore', () => {});
    act('instance.migrate', () => {});
    reg.add({ name: 'instance.console', mutates: false, summary: 'fixture instance.console', handler: async (p) => ({ instance: String(p.name), host: 'hv1', text: `[    0.000000] Linux version 6.1\r\n\x1b[0mSTORM-INIT: layers mounted\nSTORM-GUEST: ${String(p.name)} ready\n` }) });
    reg.add({
      name: 'appliance.show', mutates: false, summary: 'fixture appliance.show',
      handler: async (p, ctx) => {
        calls.push({ method: 'appliance.show', params: p, ctx });
        if (!String(p.ref).startsWith('nginx')) throw notFound(`appliance "${String(p.ref)}" not found in the catalog`);
        return {
          channel: 'example', id: 'nginx', version: /@(.+)$/.exec(String(p.ref))?.[1] ?? '1.2',
          appliance: {
            layers: [{ role: 'substrate', name: 'jeos', version: '1.0', sha256: 'aa'.repeat(32) }, { role: 'appliance', name: 'nginx', version: '1.2', sha256: 'bb'.repeat(32) }, { role: 'deployment', name: 'nginx-example', version: '1.0', sha256: 'cc'.repeat(32) }],
            parameters: [{ name: 'title', type: 'string', default: 'Hello', required: false }, { name: 'tls', type: 'enum', choices: ['off', 'on'], default: 'off', required: false }, { name: 'admin', type: 'email', required: true }, { name: 'token', type: 'secret', required: false }],
          },
        };
      },
    });
    list('update.plan', () => instances.filter((i) => i.version !== '1.3').map((i) => ({ instance: i.name, appliance: i.appliance, host: i.host, from: i.version, to: '1.3', changes: [{ role: 'appliance', from: 'a', to: 'b' }] })));
    reg.add<Obj, Obj>({
      name: 'update.apply', mutates: true, summary: 'fixture update.apply',
      handler: async (p, ctx) => {
        calls.push({ method: 'update.apply', params: p, ctx });
        for (const i of instances) if (i.appliance === p.appliance) i.version = '1.3';
        bus.emit({ kind: 'update.applied', message: `${p.appliance}@1.3` });
        return { appliance: p.appliance, updated: instances.map((i) => i.name), failed: [] };
      },
    });
    act('update.rollback', (i) => (i.version = '1.2'));
    const info = (memFree: number, diskFree: number) => ({ name: 'x', version: '0.1.0', hostname: 'x', cpus: 4, cpuModel: 'qemu', memoryBytes: 8 * 2 ** 30, freeMemoryBytes: memFree * 2 ** 30, diskFreeBytes: diskFree * 2 ** 30, diskTotalBytes: 100 * 2 ** 30, libvirtUri: 'qemu:///system', libvirtVersion: '9.0.0', accel: 'tcg', crlNumber: 1 });
    list('host.list', () => [
      // hv1's stormd reports CPU usage (the manager keeps a series); hv2's is older and reports none.
      { name: 'hv1', address: '127.0.0.1:7001', state: 'online', addedAt: '2026-11-26T08:00:00Z', info: { ...info(6, 30), cpuPercent: 40 }, cpuHistory: [0, 5, 100, 50, 40] },
      { name: 'hv2', address: '127.0.0.1:7002', state: 'online', addedAt: '2026-11-26T08:00:00Z', info: info(2, 70) },
    ]);
    list('channel.list', () => [{ name: 'example', url: 'http://127.0.0.1:8080/feed.rss', title: 'Example', appliances: 2, lastSuccess: new Date().toISOString() }]);
    // Two appliances on one substrate (ab…, the one file in the image store), each with a layer of its own.
    list('appliance.list', () => [
      { channel: 'example', id: 'nginx', version: '1.2', kind: 'appliance', title: 'web server', blobs: [{ sha256: 'ab'.repeat(32), size: 52428800 }, { sha256: 'cd'.repeat(32), size: 1048576 }], appliance: { memoryMiB: 256, vcpus: 1 }, pubDate: '2026-11-26T08:00:00Z' },
      { channel: 'example', id: 'mail', version: '2.1', kind: 'appliance', title: 'mail server', blobs: [{ sha256: 'ab'.repeat(32), size: 52428800 }, { sha256: 'ef'.repeat(32), size: 1048576 }], appliance: { memoryMiB: 256, vcpus: 1 }, pubDate: '2026-11-26T08:00:00Z' },
    ]);
    list('image.list', () => [{ sha256: 'ab'.repeat(32), size: 52428800, usedBy: ['example/nginx@1.2'], storedAt: '2026-11-26T08:00:00Z' }]);
    list('dns.record.list', () => [{ name: 'web-0.storm.internal', type: 'A', value: '10.77.0.10', ttl: 60, owner: 'instance' }]);
    const lease = { ip: '10.77.0.10', mac: '52:54:00:00:00:00', hostname: 'web-0', expires: Date.now() + 3_600_000, state: 'bound', active: true };
    list('dhcp.lease.list', () => [lease]);
    reg.add<Obj, Obj>({
      name: 'dhcp.lease.release', mutates: true, summary: 'fixture dhcp.lease.release',
      handler: async (p, ctx) => (calls.push({ method: 'dhcp.lease.release', params: p, ctx }), Object.assign(lease, { state: 'released', active: false })),
    });
    list('user.list', () => [{ name: 'alice', uidNumber: 10001, gidNumber: 10000, cn: 'Alice Admin', locked: false, hasPassword: true, groups: ['admins'], home: '/home/alice', shell: '/bin/sh', dn: 'uid=alice' }]);
    list('group.list', () => [{ name: 'admins', gidNumber: 10000, members: ['alice'], dn: 'cn=admins' }]);
    list('principal.list', () => [{ name: 'alice@STORM.INTERNAL', kind: 'user' }]);
  }
  return { reg, bus, calls, instances, deployments, api: (ctx = {}) => new LocalApi(reg, bus, { actor: ctx.actor ?? 'test', readOnly: ctx.readOnly ?? false }) };
}

/** Wait until `f()` is truthy (no timing assertion: the bound only stops a hung test). */
export async function until<T>(f: () => T, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
