import type { ChannelRecord, ChannelService, CatalogEntry } from '../channels/catalog.ts';
import type { GcResult, ImageRow, ImageService, PullResult } from '../images/service.ts';
import { conflict } from '../../lib/errors.ts';
import { countedNames } from '../../lib/format.ts';
import { DEPLOYMENT_PREFIX, type DeploymentRecord } from '../deployments/model.ts';
import type { InstanceRecord } from '../instances/model.ts';
import { optStr, str, type Registry } from './registry.ts';

/** A channel as callers see it: the trusted key's PEM stays inside the manager. */
export type ChannelView = Omit<ChannelRecord, 'trust'> & { trusted?: string };

const view = (c: ChannelRecord): ChannelView => {
  const { trust, ...rest } = c;
  return trust ? { ...rest, trusted: trust.fingerprint } : rest;
};

/**
 * The instances whose appliance (or whose deployment's appliance) only `channel` serves:
 * unsubscribing would leave them running with no catalog entry to migrate, provision or update from.
 */
export function strandedInstances(channel: string, catalog: readonly Pick<CatalogEntry, 'channel' | 'id' | 'version'>[], deployments: readonly Pick<DeploymentRecord, 'name' | 'appliance' | 'applianceVersion'>[], instances: readonly Pick<InstanceRecord, 'name' | 'appliance' | 'version'>[]): string[] {
  const ref = (id: string, v: string) => `${id}@${v}`;
  const only = new Set(catalog.filter((e) => e.channel === channel).map((e) => ref(e.id, e.version)));
  for (const e of catalog) if (e.channel !== channel) only.delete(ref(e.id, e.version));
  const dep = new Map(deployments.map((d) => [d.name, ref(d.appliance, d.applianceVersion)]));
  const base = (i: Pick<InstanceRecord, 'appliance' | 'version'>) => (i.appliance.startsWith(DEPLOYMENT_PREFIX) ? dep.get(i.appliance.slice(DEPLOYMENT_PREFIX.length)) : ref(i.appliance, i.version));
  return instances.filter((i) => only.has(base(i) ?? '')).map((i) => i.name);
}

/** channel.*, appliance.*, image.*: subscriptions, the catalog, and the image store. */
export function registerChannels(reg: Registry, deps: { channels: ChannelService; images: ImageService; stranded?: (channel: string) => Promise<string[]> }): void {
  const { channels, images } = deps;
  reg.add<{ url: string; name?: string; trust?: string }, ChannelView>({
    name: 'channel.add',
    mutates: true,
    summary: 'subscribe to a channel (its first refresh must succeed)',
    handler: async (p) => {
      const args: { url: string; name?: string; trust?: string } = { url: str(p, 'url', 'channel.add') };
      const name = optStr(p, 'name', 'channel.add');
      const trust = optStr(p, 'trust', 'channel.add');
      if (name) args.name = name;
      if (trust) args.trust = trust;
      return view(await channels.add(args));
    },
  });
  reg.add<Record<string, never>, ChannelView[]>({
    name: 'channel.list',
    mutates: false,
    summary: 'subscribed channels, with the last refresh and its error',
    handler: async () => (await channels.list()).map(view),
  });
  reg.add<{ name?: string }, ChannelView[]>({
    name: 'channel.refresh',
    mutates: true,
    summary: 'refresh one channel (errors are returned) or all (errors are recorded)',
    handler: async (p) => {
      const name = optStr(p, 'name', 'channel.refresh');
      if (name) return [view(await channels.refresh(name))];
      return (await channels.refreshAll()).map(view);
    },
  });
  reg.add<{ name: string; force?: boolean }, { name: string; removed: number }>({
    name: 'channel.remove',
    mutates: true,
    summary: 'unsubscribe from a channel and drop its catalog',
    handler: async (p) => {
      const name = str(p, 'name', 'channel.remove');
      // Without its catalog entry an instance still runs, but cannot be migrated, provisioned again or updated.
      const left = p.force === true || !deps.stranded ? [] : await deps.stranded(name);
      if (left.length) {
        throw conflict(`channel "${name}" is the only source of the appliance of ${countedNames('instance', left)}`, {
          hint: 'destroy them or move them to an appliance another channel serves (storm update apply) first; --force unsubscribes anyway, and they keep running but can no longer be migrated, provisioned again or updated',
        });
      }
      return channels.remove(name);
    },
  });
  reg.add<{ channel?: string }, CatalogEntry[]>({
    name: 'appliance.list',
    mutates: false,
    summary: 'the catalog: every appliance version of every channel',
    handler: (p) => channels.appliances(optStr(p, 'channel', 'appliance.list')),
  });
  reg.add<{ ref: string; channel?: string }, CatalogEntry & { stored: boolean[] }>({
    name: 'appliance.show',
    mutates: false,
    summary: 'one appliance version (the newest when no @VERSION)',
    handler: async (p) => {
      const e = await channels.find(str(p, 'ref', 'appliance.show'), optStr(p, 'channel', 'appliance.show'));
      return { ...e, stored: await Promise.all(e.blobs.map((b) => images.store.has(b.sha256))) };
    },
  });
  reg.add<{ ref: string; channel?: string; wait?: boolean }, PullResult | { appliance: string; started: true }>({
    name: 'appliance.pull',
    mutates: true,
    summary: "download an appliance's layers into the image store",
    handler: async (p) => {
      const entry = await channels.find(str(p, 'ref', 'appliance.pull'), optStr(p, 'channel', 'appliance.pull'));
      if (p.wait === false) {
        void images.pullEntry(entry).catch(() => {});
        return { appliance: `${entry.channel}/${entry.id}@${entry.version}`, started: true };
      }
      return images.pullEntry(entry);
    },
  });
  reg.add<Record<string, never>, ImageRow[]>({
    name: 'image.list',
    mutates: false,
    summary: 'stored images by digest, and what uses each',
    handler: () => images.list(),
  });
  reg.add<{ dryRun?: boolean }, GcResult>({
    name: 'image.gc',
    mutates: true,
    summary: 'remove stored images nothing references',
    handler: (p) => images.gc({ dryRun: p.dryRun === true }),
  });
}
