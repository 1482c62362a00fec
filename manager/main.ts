import { mkdirSync } from 'node:fs';
import type { Logger } from '../lib/logger.ts';
import { controlSocketPath } from '../lib/paths.ts';
import { LocalApi, type StormApi } from './api.ts';
import type { ManagerConfig } from './config/config.ts';
import { ControlServer } from './control/server.ts';
import { EventBus } from './events.ts';
import { Registry, type CallContext } from './services/registry.ts';
import { registerSystem } from './services/system.ts';
import { registerChannels } from './services/channels.ts';
import { ChannelService } from './channels/catalog.ts';
import { catalogApplianceSource } from './channels/appliance-source.ts';
import { ImageService } from './images/service.ts';
import { registerInstances } from './services/instances.ts';
import { InstanceService, type HostDirectory } from './instances/service.ts';
import { notFound } from '../lib/errors.ts';
import { Store } from './store/store.ts';

/** A running manager: the one owner of the state directory. */
export interface Manager {
  readonly config: Readonly<ManagerConfig>;
  readonly registry: Registry;
  readonly bus: EventBus;
  readonly store: Store;
  readonly channels: ChannelService;
  readonly images: ImageService;
  /** An in-process API for a console or SSH session with its own context. */
  api(ctx: CallContext): StormApi;
  stop(): Promise<void>;
}

export interface ManagerDeps {
  config: Readonly<ManagerConfig>;
  log: Logger;
  /** PATH to look up host tools with (from the env snapshot). */
  path: string;
}

/** Start the manager: open the store, register services, serve the control socket. */
export async function startManager({ config, log, path }: ManagerDeps): Promise<Manager> {
  mkdirSync(config.state, { recursive: true, mode: 0o700 });
  const store = await Store.open(`${config.state}/db`);
  const bus = new EventBus();
  const registry = new Registry();
  registerSystem(registry, { config, bus, path, startedAt: new Date() });
  const channels = new ChannelService({ store, bus, log, refreshSeconds: config.channelRefreshSeconds });
  const images = new ImageService({ root: `${config.state}/images`, channels, bus, parallel: config.imageParallel, reserveBytes: config.imageReserveMiB * 1024 * 1024 });
  registerChannels(registry, { channels, images });
  // Until hosts are wired in, placement finds no host.
  const hosts: HostDirectory = { list: async () => [], agent: (n) => { throw notFound(`host "${n}" not found`); } };
  const instances = new InstanceService(store, hosts, catalogApplianceSource(channels, images), bus, log);
  registerInstances(registry, instances, log);

  const control = new ControlServer(controlSocketPath(config.state), registry, bus, log);
  try {
    await control.listen();
  } catch (e) {
    await store.close();
    throw e;
  }
  channels.start();
  bus.emit({ kind: 'manager.started', message: `manager started (state ${config.state})` });
  log.info('manager ready', { state: config.state, control: control.path });

  let stopped = false;
  return {
    config,
    registry,
    bus,
    store,
    channels,
    images,
    api: (ctx) => new LocalApi(registry, bus, ctx),
    async stop() {
      if (stopped) return;
      stopped = true;
      channels.stop();
      await control.close();
      await store.close();
      log.info('manager stopped');
    },
  };
}
