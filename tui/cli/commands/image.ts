import type { GcResult, ImageRow } from '../../../manager/images/service.ts';
import { bytes, imageRows } from '../../render/channels.ts';
import type { CommandDef } from '../command.ts';

export const imageCommands: CommandDef[] = [
  {
    noun: 'image',
    verb: 'list',
    summary: 'images in the store, by digest, and which appliances use each',
    run: async (ctx) => ({ data: await (await ctx.api()).call<ImageRow[]>('image.list'), rows: imageRows }),
  },
  {
    noun: 'image',
    verb: 'gc',
    summary: 'remove stored images no appliance in the catalog (or instance) references, and stale partial downloads',
    options: { 'dry-run': { type: 'boolean', doc: 'only say what would be removed' } },
    run: async (ctx) => {
      const data = await (await ctx.api()).call<GcResult>('image.gc', { dryRun: ctx.opts['dry-run'] === true });
      const verb = data.dryRun ? 'would remove' : 'removed';
      const lines = [`${verb} ${data.removed.length} images and ${data.partialsRemoved} partial downloads (${bytes(data.freed)}); kept ${data.kept}`];
      for (const r of data.removed) lines.push(`  ${r.sha256}  ${bytes(r.size)}`);
      return { data, text: lines.join('\n') + '\n' };
    },
  },
];
