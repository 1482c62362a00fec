/**
 * The instance service's view of the catalog: an appliance reference
 * resolved to the layers (by digest, with the URL a hypervisor fetches from)
 * and resources provisioning needs.
 */
import { invalid } from '../../lib/errors.ts';
import type { DiskLayerRef, DiskRole } from '../instances/host-agent.ts';
import type { ApplianceSource } from '../instances/service.ts';
import type { ApplianceSpec } from '../instances/model.ts';
import type { CatalogEntry, ChannelService } from './catalog.ts';

/**
 * Map a catalog entry to what provisioning needs. Layers, kernel and initrd
 * are all refs by digest with the channel URL a hypervisor fetches them from
 * (into its own cache); nothing is read from the manager's disk.
 */
export function toApplianceSpec(e: CatalogEntry): ApplianceSpec {
  const url = (sha256: string) => e.blobs.find((b) => b.sha256 === sha256)?.urls[0] ?? '';
  const a = e.appliance;
  const layers: DiskLayerRef[] = a.disk
    ? [{ role: 'disk', sha256: a.disk.sha256, size: a.disk.size, url: url(a.disk.sha256) }]
    : a.layers.map((l) => ({ role: l.role, sha256: l.sha256, size: l.size, url: url(l.sha256) }));
  const formats: Partial<Record<DiskRole, 'raw' | 'qcow2'>> = a.disk ? { disk: a.disk.format } : Object.fromEntries(a.layers.map((l) => [l.role, l.format]));
  const spec: ApplianceSpec = { id: e.id, version: e.version, layers, formats, memoryMiB: a.memoryMiB, vcpus: a.vcpus, parameters: a.parameters };
  if (a.boot.kernel) spec.kernel = { role: 'kernel', sha256: a.boot.kernel.sha256, size: a.boot.kernel.size, url: url(a.boot.kernel.sha256) };
  if (a.boot.initrd) spec.initrd = { role: 'initrd', sha256: a.boot.initrd.sha256, size: a.boot.initrd.size, url: url(a.boot.initrd.sha256) };
  if (![...layers, spec.kernel, spec.initrd].every((l) => !l || l.url)) throw invalid(`${e.channel}/${e.id}@${e.version}: a file has no URL in the catalog`);
  if (a.boot.cmdline) spec.cmdline = a.boot.cmdline;
  // A volume without a name cannot be labelled for the guest to find: none is made.
  if (a.volume?.name) spec.volumes = [{ name: a.volume.name, sizeMiB: a.volume.sizeMiB }];
  return spec;
}

/** ApplianceSource over the channel catalog: `ID`, `ID@VERSION` or `CHANNEL/ID@VERSION`. */
export function catalogApplianceSource(channels: ChannelService): ApplianceSource {
  return { resolve: async (ref) => toApplianceSpec(await channels.find(ref)) };
}
