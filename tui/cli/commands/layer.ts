import { buildLayer, isLayerRole, LAYER_ROLES } from '../../../manager/images/layer-build.ts';
import { diffLayer } from '../../../manager/images/layer-diff.ts';
import { invalid } from '../../../lib/errors.ts';
import { layerBuildRows, layerChangeRows } from '../../render/layers.ts';
import type { CommandDef } from '../command.ts';

/** `storm layer ...`: make and inspect layer images on this machine (no manager needed). */
export const layerCommands: CommandDef[] = [
  {
    noun: 'layer',
    verb: 'build',
    summary: 'make a layer image (ext4 labelled storm-ROLE) from a directory; deletions become whiteouts',
    args: ['DIR'],
    hostOnly: true,
    options: {
      role: { type: 'string', doc: `${LAYER_ROLES.join(' | ')} (required)` },
      name: { type: 'string', doc: 'layer name (required)' },
      version: { type: 'string', doc: 'layer version (required)' },
      out: { type: 'string', doc: 'output file (default NAME-VERSION-ROLE.img)' },
      free: { type: 'string', doc: 'free space to leave in MiB (default 1; deployment 16; instance 64)' },
    },
    run: async (ctx) => {
      const { role, name, version, out, free } = ctx.opts as Record<string, string | undefined>;
      if (!isLayerRole(role)) throw invalid(role ? `unknown role "${role}"` : '--role is required', { hint: `one of ${LAYER_ROLES.join(', ')}` });
      if (!name) throw invalid('--name is required');
      if (!version) throw invalid('--version is required');
      const freeMiB = free === undefined ? undefined : Number(free);
      if (freeMiB !== undefined && !(Number.isInteger(freeMiB) && freeMiB >= 0)) throw invalid(`--free must be a whole number of MiB, got "${free}"`);
      ctx.progress(`building ${role} layer ${name} ${version} from ${ctx.args[0]}`);
      const data = await buildLayer({ dir: ctx.args[0]!, role, name, version, ...(out ? { out } : {}), ...(freeMiB !== undefined ? { freeMiB } : {}) });
      return { data, rows: layerBuildRows };
    },
  },
  {
    noun: 'layer',
    verb: 'diff',
    summary: 'what an instance layer changed: added, modified, deleted, and which lower files it shadows',
    args: ['LAYER'],
    hostOnly: true,
    options: {
      lower: { type: 'string', multiple: true, doc: 'a lower layer image, topmost first (repeat: deployment, appliance, substrate)' },
    },
    run: async (ctx) => {
      const lowers = (ctx.opts.lower as string[] | undefined) ?? [];
      const d = await diffLayer(ctx.args[0]!, lowers);
      const s = d.summary;
      ctx.progress(`${d.layer.file}: ${s.added} added, ${s.modified} modified, ${s.deleted} deleted, ${s.replaced} replaced; ${s.shadowing} shadow a lower layer`);
      return { data: d.changes, rows: layerChangeRows };
    },
  },
];
