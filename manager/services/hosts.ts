import type { HostAddResult, HostRecord, Hosts } from '../hosts/hosts.ts';
import type { IssuedCert, Pki } from '../pki/pki.ts';
import { conflict } from '../../lib/errors.ts';
import { countedNames } from '../../lib/format.ts';
import { str, type Registry } from './registry.ts';

/** host.*: enrol, list, inspect and remove hypervisors. */
export function registerHosts(reg: Registry, hosts: Hosts, instancesOn: (host: string) => Promise<string[]> = async () => []): void {
  reg.add<Record<string, unknown>, HostAddResult>({
    name: 'host.add',
    mutates: true,
    summary: 'add a hypervisor and make its one-time join token',
    handler: (p) => hosts.add(str(p, 'name', 'host.add'), str(p, 'address', 'host.add'), p.ttl === undefined ? undefined : Number(p.ttl)),
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
    handler: async (p) => {
      const name = str(p, 'name', 'host.remove');
      // Its certificate is revoked with it: what runs there could then only be forgotten, never cleaned.
      const left = p.force === true ? [] : await instancesOn(name);
      if (left.length) {
        throw conflict(`host "${name}" still has ${countedNames('instance', left)}`, {
          hint: 'migrate them (storm instance migrate NAME HOST) or destroy them first; --force removes the host anyway, and destroying them then only forgets them',
        });
      }
      return hosts.remove(name);
    },
  });
}

/** pki.*: the certificates this CA issued; revocation (the CRL reaches every stormd on its next call). */
export function registerPki(reg: Registry, pki: Pki): void {
  reg.add<Record<string, unknown>, IssuedCert[]>({
    name: 'pki.list',
    mutates: false,
    summary: 'certificates issued by the CA, with expiry and revocation',
    handler: async () => (await pki.list()).sort((a, b) => a.issuedAt.localeCompare(b.issuedAt)),
  });
  reg.add<Record<string, unknown>, IssuedCert>({
    name: 'pki.revoke',
    mutates: true,
    summary: 'revoke a certificate by serial (revoking the manager\'s own re-keys it)',
    handler: (p) => pki.revoke(str(p, 'serial', 'pki.revoke'), typeof p.reason === 'string' ? p.reason : 'revoked by admin'),
  });
}
