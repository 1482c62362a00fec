/**
 * The instance service's view of the catalog: an appliance reference
 * resolved to the layers (by digest, with the URL a hypervisor fetches from)
 * and resources provisioning needs.
 */
import { invalid } from '../../lib/errors.ts';
import type { ImageService } from '../images/service.ts';
import type { LayerRef } from '../instances/host-agent.ts';
import type { ApplianceSource } from '../instances/service.ts';
import type { ApplianceSpec } from '../instances/model.ts';
import type { CatalogEntry, ChannelService } from './catalog.ts';

/** Map a catalog entry to what provisioning needs. Kernel and initrd are paths in the manager's image store (`storm appliance pull` puts them there). */
export function toApplianceSpec(e: CatalogEntry, images: ImageService): ApplianceSpec {
  const url = (sha256: string) => e.blobs.find((b) => b.sha256 === sha256)?.urls[0] ?? '';
  const a = e.appliance;
  const layers: LayerRef[] = a.disk
    ? [{ role: 'disk', sha256: a.disk.sha256, size: a.disk.size, url: url(a.disk.sha256) }]
    : a.layers.map((l) => ({ role: l.role, sha256: l.sha256, size: l.size, url: url(l.sha256) }));
  if (!layers.every((l) => l.url)) throw invalid(`${e.channel}/${e.id}@${e.version}: a layer has no URL in the catalog`);
  const spec: ApplianceSpec = {
    id: e.id,
    version: e.version,
    layers,
    kernel: a.boot.kernel ? images.store.path(a.boot.kernel.sha256) : '',
    initrd: a.boot.initrd ? images.store.path(a.boot.initrd.sha256) : '',
    memoryMiB: a.memoryMiB,
    vcpus: a.vcpus,
  };
  if (a.boot.cmdline) spec.cmdline = a.boot.cmdline;
  return spec;
}

/** ApplianceSource over the channel catalog: `ID`, `ID@VERSION` or `CHANNEL/ID@VERSION`. */
export function catalogApplianceSource(channels: ChannelService, images: ImageService): ApplianceSource {
  return { resolve: async (ref) => toApplianceSpec(await channels.find(ref), images) };
}
