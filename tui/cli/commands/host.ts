import type { HostAddResult, HostRecord } from '../../../manager/hosts/hosts.ts';
import type { IssuedCert } from '../../../manager/pki/pki.ts';
import { certRows, hostDetail, hostRows } from '../../render/hosts.ts';
import { bytes } from '../../../lib/format.ts';
import type { CommandDef } from '../command.ts';

export const hostCommands: CommandDef[] = [
  {
    noun: 'host',
    verb: 'add',
    summary: 'add a hypervisor; prints a one-time join token (and the stormd join command) with its expiry',
    args: ['NAME', 'ADDRESS'],
    options: { ttl: { type: 'string', doc: 'token lifetime in seconds (default: joinTokenTtl, 3600)' } },
    run: async (ctx) => {
      const [name, address] = ctx.args as [string, string];
      const ttl = ctx.opts.ttl === undefined ? undefined : Number(ctx.opts.ttl);
      const data = await (await ctx.api()).call<HostAddResult>('host.add', { name, address, ...(ttl !== undefined ? { ttl } : {}) });
      const text = [
        `host ${data.host.name} added (${data.host.address}), waiting for it to join.`,
        `join token (one use, expires ${data.expiresAt}):`,
        `  ${data.token}`,
        data.joinCommand ? `on the hypervisor run:\n  ${data.joinCommand} --state /var/lib/stormd` : 'the enrolment endpoint is not serving (see storm event list); fix enrollListen and restart the manager',
        `then start it there: stormd start --listen ${data.host.address}`,
        '',
      ].join('\n');
      return { data, text, rows: { name: (r: HostAddResult) => r.token, columns: [] } };
    },
  },
  {
    noun: 'host',
    verb: 'list',
    summary: 'hypervisors with their state (pending, online, offline, untrusted) and capacity',
    run: async (ctx) => ({ data: await (await ctx.api()).call<HostRecord[]>('host.list'), rows: hostRows }),
  },
  {
    noun: 'host',
    verb: 'show',
    summary: 'one hypervisor, polled now: health, libvirt, KVM or TCG, certificate',
    args: ['NAME'],
    run: async (ctx) => {
      const api = await ctx.api();
      const data = await api.call<HostRecord>('host.show', { name: ctx.args[0] });
      // How many instances it holds; a list that fails leaves the line out.
      const on = await api.call<unknown[]>('instance.list', { host: data.name }).catch(() => undefined);
      return { data, rows: hostRows, text: hostDetail(data, Date.now(), Array.isArray(on) ? on.length : undefined) };
    },
  },
  {
    noun: 'host',
    verb: 'remove',
    summary: 'forget a hypervisor and revoke its certificate (refused while instances are on it, unless --force)',
    args: ['NAME'],
    options: { force: { type: 'boolean', doc: 'remove it even with instances on it (they can then only be destroyed, which forgets them)' } },
    dangerous: true,
    run: async (ctx) => {
      const data = await (await ctx.api()).call<{ name: string; revoked?: string }>('host.remove', { name: ctx.args[0], ...(ctx.opts.force ? { force: true } : {}) });
      return { data, text: `host ${data.name} removed${data.revoked ? `; certificate ${data.revoked} revoked` : ''}\n`, rows: { name: (r: { name: string }) => r.name, columns: [] } };
    },
  },
  {
    noun: 'host',
    verb: 'gc',
    summary: "remove layers no instance on the host uses from its cache (what its domains use always stays)",
    args: ['NAME'],
    run: async (ctx) => {
      const data = await (await ctx.api()).call<{ host: string; removed: string[]; freedBytes: number }>('host.gc', { name: ctx.args[0] });
      const text = [`${data.host}: removed ${data.removed.length} layers (${bytes(data.freedBytes)})`, ...data.removed.map((d) => `  ${d}`), ''].join('\n');
      return { data, text, rows: { name: (r: { host: string }) => r.host, columns: [] } };
    },
  },
];

export const pkiCommands: CommandDef[] = [
  {
    noun: 'pki',
    verb: 'list',
    summary: 'certificates the CA issued (role, name, expiry, revocation)',
    run: async (ctx) => ({ data: await (await ctx.api()).call<IssuedCert[]>('pki.list'), rows: certRows }),
  },
  {
    noun: 'pki',
    verb: 'revoke',
    summary: 'revoke a certificate by serial; every stormd gets the new CRL on its next call',
    args: ['SERIAL'],
    options: { reason: { type: 'string', doc: 'why (kept with the record)' } },
    dangerous: true,
    run: async (ctx) => ({
      data: await (await ctx.api()).call<IssuedCert>('pki.revoke', { serial: ctx.args[0], ...(typeof ctx.opts.reason === 'string' ? { reason: ctx.opts.reason } : {}) }),
      rows: certRows,
    }),
  },
];
