import { LocalApi, type StormApi } from '../../manager/api.ts';
import { EventBus } from '../../manager/events.ts';
import { Registry, str, type CallContext } from '../../manager/services/registry.ts';
import { registerSystem } from '../../manager/services/system.ts';
import { notFound } from '../../lib/errors.ts';

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
}

/** `state` is only what system.doctor probes: by default a path nothing can create (under /dev/null), so tests leave no directory behind. */
export function fixture(opts: { instances?: number; services?: boolean; state?: string } = {}): Fixture {
  const reg = new Registry();
  const bus = new EventBus();
  const calls: Fixture['calls'] = [];
  registerSystem(reg, {
    config: { state: opts.state ?? '/dev/null/storm-fixture-state', logLevel: 'info', libvirtUri: 'qemu:///system?socket=/nonexistent', sshListen: '127.0.0.1:1', kernel: '' },
    bus,
    path: '/usr/sbin:/usr/bin:/sbin:/bin',
    startedAt: new Date(),
  });
  const n = opts.instances ?? 3;
  const instances: Obj[] = Array.from({ length: n }, (_, i) => ({
    id: `i${String(i).padStart(6, '0')}`, name: `web-${i}`, state: i % 3 === 2 ? 'stopped' : 'running', appliance: 'nginx', version: '1.2', host: i % 2 ? 'hv2' : 'hv1',
    mac: `52:54:00:00:00:${(i % 256).toString(16).padStart(2, '0')}`, layers: {}, memoryMiB: 256, vcpus: 1, params: {}, createdAt: new Date(Date.now() - 3_600_000).toISOString(), updatedAt: new Date().toISOString(),
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
  if (opts.services !== false) {
    list('instance.list', () => instances);
    act('instance.start', (i) => (i.state = 'running'));
    act('instance.stop', (i) => (i.state = 'stopped'));
    act('instance.destroy', (i) => instances.splice(instances.indexOf(i), 1));
    act('instance.reboot', () => {});
    act('instance.poweroff', (i) => (i.state = 'stopped'));
    list('instance.snapshot.list', () => [{ name: 'before-upgrade', createdAt: '2026-11-26T08:00:00Z' }]);
    list('update.plan', () => instances.filter((i) => i.version !== '1.3').map((i) => ({ instance: i.name, host: i.host, from: i.version, to: '1.3', changes: [{ role: 'appliance', from: 'a', to: 'b' }] })));
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
    list('host.list', () => [
      { name: 'hv1', state: 'up', address: '127.0.0.1:7001', cpuPercent: 40, memUsed: 2, memTotal: 8, diskPercent: 70, instances: 2 },
      { name: 'hv2', state: 'up', address: '127.0.0.1:7002', cpuPercent: 60, memUsed: 6, memTotal: 8, diskPercent: 30, instances: 1 },
    ]);
    list('channel.list', () => [{ name: 'example', url: 'http://127.0.0.1:8080/feed.rss', appliances: 2, updated: '2026-11-26T08:00:00Z', state: 'ok' }]);
    list('appliance.list', () => [{ name: 'nginx', version: '1.2', versions: ['1.1', '1.2'], channel: 'example', layerCount: 3, cached: true, summary: 'web server' }]);
    list('layer.list', () => [{ name: 'debian-substrate', kind: 'substrate', version: '12', size: 52428800, cached: true, shared: 2, digest: 'sha256:abc' }]);
    list('dns.record.list', () => [{ name: 'web-0.storm.local', type: 'A', value: '10.77.0.10', ttl: 60 }]);
    list('dhcp.lease.list', () => [{ mac: '52:54:00:aa:bb:cc', address: '10.77.0.10', hostname: 'web-0', state: 'bound', expires: '2026-11-26T10:00:00Z' }]);
    list('user.list', () => [{ name: 'alice', uidNumber: 10001, groups: ['admins'], fullName: 'Alice Admin' }]);
    list('group.list', () => [{ name: 'admins', gidNumber: 10000, members: ['alice'] }]);
    list('principal.list', () => [{ name: 'alice@STORM.LOCAL', kind: 'user', expires: 'never', kvno: 1 }]);
  }
  return { reg, bus, calls, instances, api: (ctx = {}) => new LocalApi(reg, bus, { actor: ctx.actor ?? 'test', readOnly: ctx.readOnly ?? false }) };
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
