import { invalid } from '../../lib/errors.ts';
import type { EventBus } from '../events.ts';
import type { DnsService } from '../netsvc/dns/service.ts';
import type { DnsRecord, HostEntry } from '../netsvc/dns/zone.ts';
import { optStr, str, type Registry } from './registry.ts';

function optInt(p: Record<string, unknown>, key: string, method: string): number | undefined {
  const v = p[key];
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw invalid(`${method}: "${key}" must be a whole number, got ${JSON.stringify(v)}`);
  return n;
}

/** dns.*: records (admin, appliances) and the per-instance hosts. */
export function registerDns(reg: Registry, deps: { dns: DnsService; bus: EventBus }): void {
  const { dns, bus } = deps;
  reg.add<Record<string, never>, { zones: string[]; records: DnsRecord[]; hosts: HostEntry[] }>({
    name: 'dns.record.list',
    mutates: false,
    summary: 'records served (admin and appliance records, and one A/PTR per instance)',
    handler: async () => ({ zones: dns.zones, records: await dns.listRecords(), hosts: await dns.listHosts() }),
  });
  reg.add<Record<string, unknown>, DnsRecord>({
    name: 'dns.record.add',
    mutates: true,
    summary: 'add a record (A, AAAA, MX, TXT, PTR)',
    handler: async (p, ctx) => {
      const m = 'dns.record.add';
      const r = await dns.addRecord({ name: str(p, 'name', m), type: str(p, 'type', m), value: str(p, 'value', m), priority: optInt(p, 'priority', m), ttl: optInt(p, 'ttl', m), owner: ctx.actor === 'console' || ctx.actor === 'cli' ? 'admin' : `admin:${ctx.actor}` });
      bus.emit({ kind: 'dns.record.added', object: r.name, message: `${r.type} ${r.name} → ${r.value}` });
      return r;
    },
  });
  reg.add<Record<string, unknown>, DnsRecord[]>({
    name: 'dns.record.remove',
    mutates: true,
    summary: 'remove records by name (and type, value)',
    handler: async (p) => {
      const m = 'dns.record.remove';
      const gone = await dns.removeRecord({ name: str(p, 'name', m), type: optStr(p, 'type', m), value: optStr(p, 'value', m) });
      for (const r of gone) bus.emit({ kind: 'dns.record.removed', object: r.name, message: `${r.type} ${r.name} → ${r.value} removed` });
      return gone;
    },
  });
  reg.add<Record<string, unknown>, HostEntry>({
    name: 'dns.host.set',
    mutates: true,
    summary: 'set an instance name → address (A and PTR)',
    handler: async (p) => dns.setHost(str(p, 'name', 'dns.host.set'), str(p, 'ip', 'dns.host.set')),
  });
  reg.add<Record<string, unknown>, void>({
    name: 'dns.host.remove',
    mutates: true,
    summary: "remove an instance's A and PTR",
    handler: async (p) => dns.removeHost(str(p, 'name', 'dns.host.remove')),
  });
  reg.add<Record<string, never>, unknown>({
    name: 'dns.status',
    mutates: false,
    summary: 'DNS server health',
    handler: async () => dns.status(),
  });
}
