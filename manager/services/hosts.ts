import type { HostAddResult, HostRecord, Hosts } from '../hosts/hosts.ts';
import { str, type Registry } from './registry.ts';

/** host.*: enrol, list, inspect and remove hypervisors. */
export function registerHosts(reg: Registry, hosts: Hosts): void {
  reg.add<Record<string, unknown>, HostAddResult>({
    name: 'host.add',
    mutates: true,
    summary: 'add a hypervisor and make its one-time join token',
    handler: (p) => hosts.add(str(p, 'name', 'host.add'), str(p, 'address', 'host.add')),
  });
  reg.add<Record<string, unknown>, HostRecord[]>({
    name: 'host.list',
    mutates: false,
    summary: 'hypervisors and their state',
    handler: () => hosts.list(),
  });
  reg.add<Record<string, unknown>, HostRecord>({
    name: 'host.show',
    mutates: false,
    summary: 'one hypervisor, polled now',
    handler: (p) => hosts.show(str(p, 'name', 'host.show')),
  });
  reg.add<Record<string, unknown>, { name: string; revoked?: string }>({
    name: 'host.remove',
    mutates: true,
    summary: 'forget a hypervisor and revoke its certificate',
    handler: (p) => hosts.remove(str(p, 'name', 'host.remove')),
  });
}
