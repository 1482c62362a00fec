import { StormError, invalid } from '../../../lib/errors.ts';
import { leaseRows, poolRows, reservationRows, type LeaseRow, type PoolRow, type ReservationRow } from '../../render/netsvc.ts';
import type { CommandContext, CommandDef } from '../command.ts';
import { statusCommand } from './status.ts';

const usage = (u: string, got?: string) => invalid(got === undefined ? 'missing arguments' : `unknown action "${got}"`, { hint: `usage: ${u}` });

/** `storm dhcp lease|pool|reservation ...`: the instances' DHCP server. */
export const dhcpCommands: CommandDef[] = [
  {
    noun: 'dhcp',
    verb: 'lease',
    summary: 'DHCP leases: lease list | lease release IP',
    args: ['ACTION', '[IP]'],
    run: async (ctx) => {
      const [action, ip] = ctx.args;
      if (action === 'release') {
        if (!ip) throw usage('storm dhcp lease release IP');
        if (!ctx.opts.yes && !ctx.io.stdinIsTty) throw new StormError('needs_confirmation', `storm dhcp lease release ${ip} ends a lease and stdin is not a terminal`, { hint: 'add --yes to confirm' });
        return { data: await (await ctx.api()).call<LeaseRow>('dhcp.lease.release', { ip }), rows: leaseRows };
      }
      if (action !== 'list' && action !== 'ls') throw usage('storm dhcp lease list | lease release IP', action);
      return { data: await (await ctx.api()).call<LeaseRow[]>('dhcp.lease.list'), rows: leaseRows };
    },
  },
  {
    noun: 'dhcp',
    verb: 'pool',
    summary: 'the dynamic pool and options: pool show | pool set [--start A] [--end B] [--router R] [--dns A,B] [--lease-time S]',
    args: ['ACTION'],
    options: {
      start: { type: 'string', doc: 'first address of the dynamic pool' },
      end: { type: 'string', doc: 'last address of the dynamic pool' },
      router: { type: 'string', doc: 'router option ("" = this server)' },
      dns: { type: 'string', doc: 'DNS servers, comma-separated ("" = this server)' },
      'lease-time': { type: 'string', doc: 'lease time in seconds' },
    },
    run: async (ctx) => {
      const api = await ctx.api();
      if (ctx.args[0] === 'show') return { data: await api.call<PoolRow>('dhcp.pool.show'), rows: poolRows };
      if (ctx.args[0] === 'set') {
        const o = ctx.opts;
        const p: Record<string, unknown> = {};
        for (const k of ['start', 'end', 'router', 'dns'] as const) if (typeof o[k] === 'string') p[k] = o[k];
        if (typeof o['lease-time'] === 'string') p.leaseTime = o['lease-time'];
        await api.call('dhcp.pool.set', p);
        return { data: await api.call<PoolRow>('dhcp.pool.show'), rows: poolRows };
      }
      throw usage('storm dhcp pool show|set ...', ctx.args[0]);
    },
  },
  {
    noun: 'dhcp',
    verb: 'reservation',
    summary: 'fixed addresses by MAC: reservation list | reservation add MAC IP [--hostname H] | reservation remove MAC',
    args: ['ACTION', '[ARGS...]'],
    options: { hostname: { type: 'string', doc: 'host name option for this client' } },
    run: async (ctx) => {
      const [action, a, b] = ctx.args;
      const api = await ctx.api();
      if (action === 'list' || action === 'ls') return { data: await api.call<ReservationRow[]>('dhcp.reservation.list'), rows: reservationRows };
      if (action === 'add') {
        if (!a || !b) throw usage('storm dhcp reservation add MAC IP [--hostname H]');
        const data = await api.call<ReservationRow>('dhcp.reservation.add', { mac: a, ip: b, ...(typeof ctx.opts.hostname === 'string' ? { hostname: ctx.opts.hostname } : {}) });
        return { data, rows: reservationRows };
      }
      if (action === 'remove' || action === 'rm') {
        if (!a) throw usage('storm dhcp reservation remove MAC');
        confirm(ctx);
        return { data: await api.call<ReservationRow>('dhcp.reservation.remove', { mac: a }), rows: reservationRows };
      }
      throw usage('storm dhcp reservation list|add|remove ...', action);
    },
  },
  statusCommand('dhcp', 'is the DHCP server serving, on which interface'),
];

/** Removing is destructive: like `dangerous` commands, it needs --yes when stdin is not a terminal. */
function confirm(ctx: CommandContext): void {
  if (!ctx.opts.yes && !ctx.io.stdinIsTty) throw new StormError('needs_confirmation', `storm dhcp reservation ${ctx.args.join(' ')} removes data and stdin is not a terminal`, { hint: 'add --yes to confirm' });
}
