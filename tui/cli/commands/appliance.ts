import type { CatalogEntry } from '../../../manager/channels/catalog.ts';
import type { StormEvent } from '../../../manager/events.ts';
import type { PullResult } from '../../../manager/images/service.ts';
import { applianceRows, bytes } from '../../render/channels.ts';
import type { CommandDef } from '../command.ts';

type Shown = CatalogEntry & { stored: boolean[] };

/** The text `storm appliance show` prints: the appliance, then its files. */
export function showText(e: Shown): string {
  const a = e.appliance;
  const lines = [
    `${e.channel}/${e.id}@${e.version}: ${e.title}`,
    ...(e.description ? [`  ${e.description}`] : []),
    `  kind ${e.kind}, memory ${a.memoryMiB} MiB, ${a.vcpus} vCPU${a.vcpus > 1 ? 's' : ''}${a.volume ? `, data volume ${a.volume.sizeMiB} MiB at ${a.volume.mount}` : ''}`,
    `  published ${e.pubDate}, from ${e.xmlUrl}`,
  ];
  const s = a.services;
  const svc = [s.dns && `dns name ${s.dns.name}`, s.mx && `mx priority ${s.mx.priority}`, s.ldap && 'ldap', s.kerberos && `kerberos ${s.kerberos.principal}/`].filter(Boolean);
  lines.push(`  services: ${svc.length ? svc.join(', ') : 'none'}`);
  if (a.parameters.length) {
    lines.push('  parameters:');
    for (const p of a.parameters) lines.push(`    ${p.name} (${p.type}${p.choices ? `: ${p.choices.join('|')}` : ''})${p.required ? ' required' : ''}${p.default !== undefined ? ` default ${JSON.stringify(p.default)}` : ''}${p.description ? `  ${p.description}` : ''}`);
  }
  lines.push('  files:');
  const w = Math.max(0, ...e.blobs.map((b) => b.what.length));
  for (const [i, b] of e.blobs.entries()) lines.push(`    ${b.what.padEnd(w)}  ${b.sha256.slice(0, 16)}  ${bytes(b.size).padStart(10)}  ${e.stored[i] ? 'stored' : 'not stored'}`);
  return lines.join('\n') + '\n';
}

export const applianceCommands: CommandDef[] = [
  {
    noun: 'appliance',
    verb: 'list',
    summary: 'the catalog: every appliance version of every subscribed channel',
    options: { channel: { type: 'string', doc: 'only this channel' } },
    run: async (ctx) => {
      const data = await (await ctx.api()).call<CatalogEntry[]>('appliance.list', typeof ctx.opts.channel === 'string' ? { channel: ctx.opts.channel } : {});
      return { data, rows: applianceRows };
    },
  },
  {
    noun: 'appliance',
    verb: 'show',
    summary: 'one appliance: ID, ID@VERSION or CHANNEL/ID@VERSION (newest version when none is given)',
    args: ['REF'],
    options: { channel: { type: 'string', doc: 'look only in this channel' } },
    run: async (ctx) => {
      const data = await (await ctx.api()).call<Shown>('appliance.show', { ref: ctx.args[0], ...(typeof ctx.opts.channel === 'string' ? { channel: ctx.opts.channel } : {}) });
      return { data, rows: applianceRows, text: showText(data) };
    },
  },
  {
    noun: 'appliance',
    verb: 'pull',
    summary: "download an appliance's layers (or disk) and boot files into the image store, verified by digest",
    args: ['REF'],
    options: { channel: { type: 'string', doc: 'look only in this channel' } },
    run: async (ctx) => {
      const api = await ctx.api();
      let off: (() => void) | undefined;
      if (ctx.wait) {
        // Only this appliance's files: another admin's pull must not show up here.
        const shown = await api.call<Shown>('appliance.show', { ref: ctx.args[0], ...(typeof ctx.opts.channel === 'string' ? { channel: ctx.opts.channel } : {}) });
        const mine = new Set(shown.blobs.map((b) => b.sha256));
        off = api.subscribe((e: StormEvent) => {
          if (/^image\.(download|progress|retry|stored|failed)$/.test(e.kind) && mine.has(String(e.data?.sha256))) ctx.progress(e.message);
        });
      }
      try {
        const data = await api.call<PullResult | { appliance: string; started: true }>('appliance.pull', { ref: ctx.args[0], wait: ctx.wait, ...(typeof ctx.opts.channel === 'string' ? { channel: ctx.opts.channel } : {}) });
        if ('started' in data) return { data, text: `pulling ${data.appliance} in the background (watch: storm event list)\n` };
        const got = data.files.reduce((n, f) => n + f.received, 0);
        const lines = [`${data.appliance}: ${data.files.length} files stored, ${bytes(got)} downloaded`];
        const w = Math.max(0, ...data.files.map((f) => f.what.length));
        for (const f of data.files) lines.push(`  ${f.what.padEnd(w)}  ${f.sha256.slice(0, 16)}  ${f.cached ? 'already stored' : f.resumedFrom ? `resumed at ${bytes(f.resumedFrom)}` : 'downloaded'}`);
        return { data, text: lines.join('\n') + '\n' };
      } finally {
        off?.();
      }
    },
  },
];
