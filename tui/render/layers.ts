import type { LayerBuildResult } from '../../manager/images/layer-build.ts';
import type { LayerChange } from '../../manager/images/layer-diff.ts';
import type { RowSpec } from './table.ts';

/** A built layer image: `storm layer build`. */
export const layerBuildRows: RowSpec<LayerBuildResult> = {
  name: (l) => l.path,
  columns: [
    { header: 'LABEL', get: (l) => l.label },
    { header: 'NAME', get: (l) => l.name },
    { header: 'VERSION', get: (l) => l.version },
    { header: 'SIZE', get: (l) => String(l.size) },
    { header: 'SHA256', get: (l) => l.sha256 },
    { header: 'WHITEOUTS', get: (l) => String(l.whiteouts.length), wide: true },
    { header: 'PATH', get: (l) => l.path },
  ],
};

/** One change of an instance layer: `storm layer diff`. */
export const layerChangeRows: RowSpec<LayerChange> = {
  name: (c) => c.path,
  columns: [
    { header: 'CHANGE', get: (c) => c.change },
    { header: 'TYPE', get: (c) => c.type },
    { header: 'SHADOWS', get: (c) => c.shadows ?? '-' },
    { header: 'PATH', get: (c) => c.path },
  ],
};
