import { unavailable } from '../../lib/errors.ts';
import type { HostCapacity } from './host-agent.ts';

export interface Candidate {
  host: string;
  online: boolean;
  capacity: HostCapacity;
  /** Digests this host already holds. */
  layers: ReadonlySet<string>;
  /** vCPUs already given to instances placed there. */
  vcpusUsed: number;
}

/**
 * Pick a host: it must be online with room for the memory and vCPUs; among
 * those, prefer the one holding the most bytes of the needed layers (less to
 * fetch), then the most free memory. Pure, so it is tested exhaustively.
 */
export function place(cands: readonly Candidate[], need: { memoryMiB: number; vcpus: number; layers: { sha256: string; size: number }[] }): string {
  const fits = cands.filter((c) => c.online && c.capacity.freeMemoryMiB >= need.memoryMiB && c.capacity.vcpus * 4 - c.vcpusUsed >= need.vcpus);
  if (fits.length === 0) {
    const online = cands.filter((c) => c.online).length;
    throw unavailable(
      online === 0 ? 'no host is online' : `no online host has ${need.memoryMiB} MiB and ${need.vcpus} vCPUs free`,
      { hint: online === 0 ? 'add one with storm host add, or check storm host list' : 'stop or destroy instances, or add a host' },
    );
  }
  const held = (c: Candidate) => need.layers.reduce((a, l) => a + (c.layers.has(l.sha256) ? l.size : 0), 0);
  fits.sort((a, b) => held(b) - held(a) || b.capacity.freeMemoryMiB - a.capacity.freeMemoryMiB || a.host.localeCompare(b.host));
  return fits[0]!.host;
}
