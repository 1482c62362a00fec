import { invalid } from '../../lib/errors.ts';
import type { EventBus } from '../events.ts';
import type { DhcpService, Lease, PoolSettings, Reservation } from '../netsvc/dhcp/service.ts';
import { optStr, str, type Registry } from './registry.ts';

/** dhcp.*: leases (read), the pool and its options, reservations by MAC. */
export function registerDhcp(reg: Registry, deps: { dhcp: DhcpService; bus: EventBus }): void {
  const { dhcp, bus } = deps;
  reg.add<Record<string, never>, (Lease & { active: boolean })[]>({
    name: 'dhcp.lease.list',
    mutates: false,
    summary: 'leases (bound, released, declined)',
    handler: () => dhcp.leases(),
  });
  reg.add<Record<string, unknown>, Lease>({
    name: 'dhcp.lease.release',
    mutates: true,
    summary: 'end a bound lease: its address goes back to the pool',
    handler: async (p) => {
      // The console's tables pass the row's name (the address) as `name`.
      const ip = optStr(p, 'ip', 'dhcp.lease.release') ?? str(p, 'name', 'dhcp.lease.release');
      const l = await dhcp.releaseLease(ip);
      bus.emit({ kind: 'dhcp.lease.released', object: l.mac || l.ip, message: `lease of ${l.ip}${l.mac ? ` (${l.mac})` : ''} released by the admin` });
      return l;
    },
  });
  reg.add<Record<string, never>, ReturnType<DhcpService['settings']>>({
    name: 'dhcp.pool.show',
    mutates: false,
    summary: 'the dynamic pool and the options clients get',
    handler: async () => dhcp.settings(),
  });
  reg.add<Record<string, unknown>, PoolSettings>({
    name: 'dhcp.pool.set',
    mutates: true,
    summary: 'change the pool range, router, DNS servers or lease time',
    handler: async (p) => {
      const m = 'dhcp.pool.set';
      const patch: Partial<PoolSettings> = {};
      const start = optStr(p, 'start', m);
      const end = optStr(p, 'end', m);
      const router = optStr(p, 'router', m);
      if (start !== undefined) patch.start = start;
      if (end !== undefined) patch.end = end;
      if (router !== undefined) patch.router = router;
      if (p.dns !== undefined) {
        if (typeof p.dns === 'string') patch.dns = p.dns.split(',').map((s) => s.trim()).filter(Boolean);
        else if (Array.isArray(p.dns) && p.dns.every((x) => typeof x === 'string')) patch.dns = p.dns as string[];
        else throw invalid(`${m}: "dns" must be a comma-separated list of addresses`);
      }
      if (p.leaseTime !== undefined) {
        const n = typeof p.leaseTime === 'number' ? p.leaseTime : Number(p.leaseTime);
        if (!Number.isSafeInteger(n)) throw invalid(`${m}: "leaseTime" must be a whole number of seconds`);
        patch.leaseTime = n;
      }
      if (Object.keys(patch).length === 0) throw invalid(`${m}: nothing to change`, { hint: 'pass --start, --end, --router, --dns or --lease-time' });
      const s = await dhcp.setSettings(patch);
      bus.emit({ kind: 'dhcp.pool.changed', message: `DHCP pool ${s.start}-${s.end}, lease ${s.leaseTime}s` });
      return s;
    },
  });
  reg.add<Record<string, never>, Reservation[]>({
    name: 'dhcp.reservation.list',
    mutates: false,
    summary: 'fixed addresses by MAC',
    handler: () => dhcp.reservations(),
  });
  reg.add<Record<string, unknown>, Reservation>({
    name: 'dhcp.reservation.add',
    mutates: true,
    summary: 'reserve an address for a MAC',
    handler: async (p) => {
      const m = 'dhcp.reservation.add';
      const hostname = optStr(p, 'hostname', m);
      const r = await dhcp.addReservation({ mac: str(p, 'mac', m), ip: str(p, 'ip', m), ...(hostname ? { hostname } : {}) });
      bus.emit({ kind: 'dhcp.reservation.added', object: r.mac, message: `${r.mac} → ${r.ip}` });
      return r;
    },
  });
  reg.add<Record<string, unknown>, Reservation>({
    name: 'dhcp.reservation.remove',
    mutates: true,
    summary: 'remove a MAC reservation',
    handler: async (p) => {
      const r = await dhcp.removeReservation(str(p, 'mac', 'dhcp.reservation.remove'));
      bus.emit({ kind: 'dhcp.reservation.removed', object: r.mac, message: `${r.mac} → ${r.ip} removed` });
      return r;
    },
  });
  reg.add<Record<string, never>, unknown>({
    name: 'dhcp.status',
    mutates: false,
    summary: 'DHCP server health',
    handler: async () => dhcp.status(),
  });
}
