import { StormError, invalid } from '../../../lib/errors.ts';
import type { DnsRow } from '../../render/netsvc.ts';
import { dnsListRows, dnsRecordRows } from '../../render/netsvc.ts';
import type { CommandContext, CommandDef } from '../command.ts';
import { statusCommand } from './status.ts';

interface RecordList {
  zones: string[];
  records: DnsRow[];
  hosts: { name: string; ip: string }[];
}

/** `storm dns record add|list|remove`: the records STORM's DNS serves. */
export const dnsCommands: CommandDef[] = [
  {
    noun: 'dns',
    verb: 'record',
    summary: 'DNS records: record list | record add NAME TYPE VALUE | record remove NAME [TYPE] [VALUE]',
    args: ['ACTION', '[ARGS...]'],
    options: {
      priority: { type: 'string', doc: 'MX preference (default 10)' },
      ttl: { type: 'string', doc: 'TTL in seconds (default: the server TTL)' },
    },
    run: async (ctx) => {
      const [action, ...rest] = ctx.args;
      const api = await ctx.api();
      if (action === 'list' || action === 'ls') {
        return { data: dnsListRows(await api.call<RecordList>('dns.record.list')), rows: dnsRecordRows };
      }
      if (action === 'add') {
        const [name, type, value] = rest;
        if (!name || !type || value === undefined) throw usage('storm dns record add NAME TYPE VALUE [--priority N] [--ttl S]');
        const data = await api.call<DnsRow>('dns.record.add', { name, type, value, ...(ctx.opts.priority !== undefined ? { priority: ctx.opts.priority } : {}), ...(ctx.opts.ttl !== undefined ? { ttl: ctx.opts.ttl } : {}) });
        return { data, rows: dnsRecordRows };
      }
      if (action === 'remove' || action === 'rm') {
        const [name, type, value] = rest;
        if (!name) throw usage('storm dns record remove NAME [TYPE] [VALUE]');
        confirm(ctx);
        const data = await api.call<DnsRow[]>('dns.record.remove', { name, ...(type ? { type } : {}), ...(value ? { value } : {}) });
        return { data, rows: dnsRecordRows };
      }
      throw usage('storm dns record list|add|remove ...', action);
    },
  },
  statusCommand('dns', 'is the DNS server answering, where, for which zones'),
];

function usage(u: string, got?: string): Error {
  return invalid(got === undefined ? `missing arguments` : `unknown action "${got}"`, { hint: `usage: ${u}` });
}

/** Removing is destructive: like `dangerous` commands, it needs --yes when stdin is not a terminal. */
function confirm(ctx: CommandContext): void {
  if (!ctx.opts.yes && !ctx.io.stdinIsTty) throw new StormError('needs_confirmation', `storm dns record ${ctx.args.join(' ')} removes data and stdin is not a terminal`, { hint: 'add --yes to confirm' });
}
