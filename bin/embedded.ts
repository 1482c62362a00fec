/**
 * The embedded default's parts after its guest network exists: the manager
 * configured for that network, the relay in its namespace, the local stormd
 * attaching guests to its bridge, and the example channel. `storm up` adds the
 * SSH server and the console; the guest-network e2e test uses exactly this.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import type { EnvSnapshot } from '../lib/env.ts';
import type { Logger } from '../lib/logger.ts';
import { freeLoopbackPort } from '../lib/net.ts';
import { managerConfig, type ManagerConfig } from '../manager/config/config.ts';
import { startManager, type Manager } from '../manager/main.ts';
import { startExampleChannel } from './example-channel.ts';
import { startRelay, type GuestNetwork } from './guest-network.ts';
import { startLocalStormd } from './local-stormd.ts';

export interface Embedded {
  m: Manager;
  /** Stop the relay, the local stormd, the manager and the channel (not the guest network). */
  stop: () => Promise<void>;
}

/** The name guests reach the manager by (the API certificate names it too). */
export const MANAGER_NAME = 'storm.local';

/**
 * The manager's config for the embedded default. With a guest network:
 * `storm.local` is the manager's guest address, DNS answers on a free
 * loopback port (the relay forwards guests' queries to it) unless
 * `dns-listen` was given, and the manager's certificate also names
 * `storm.local` and the guest address, so guests verify it by either.
 */
export async function embeddedConfig(env: EnvSnapshot, flags: Record<string, unknown>, net?: GuestNetwork): Promise<Readonly<ManagerConfig>> {
  if (!net) return managerConfig(env, flags);
  const addr = net.address.split('/')[0]!;
  const names = managerConfig(env, flags).managerNames;
  return managerConfig(env, {
    ...flags,
    'manager-address': addr,
    'manager-names': [...new Set([...names, MANAGER_NAME, addr])],
    ...(flags['dns-listen'] === undefined ? { 'dns-listen': `127.0.0.1:${await freeLoopbackPort()}` } : {}),
  });
}

/**
 * Start the parts. Only the manager is required; the relay, the local stormd
 * and the example channel failing is logged and shown as an event.
 */
export async function startEmbedded(o: { config: Readonly<ManagerConfig>; log: Logger; path: string; net?: GuestNetwork; skipped?: string }): Promise<Embedded> {
  const { config, log, net } = o;
  mkdirSync(config.state, { recursive: true, mode: 0o700 });
  // The local stormd keeps its layers under STATE/stormd: libvirt's QEMU user must traverse STATE (not list it).
  chmodSync(config.state, 0o711);
  const m = await startManager({ config, log, path: o.path });
  if (o.skipped) m.bus.emit({ kind: 'network.guest', level: 'warn', message: `guest network skipped: ${o.skipped}` });
  const relay = net
    ? await startRelay(m, net, log).catch((e: Error) => {
        log.error('guest network relay not started', { error: e.message });
        m.bus.emit({ kind: 'network.guest', level: 'error', message: `guest DHCP/DNS/API relay not started: ${e.message}` });
        return undefined;
      })
    : undefined;
  // The local hypervisor is part of the default; a failure is logged and shown as an event, not fatal.
  const local = await startLocalStormd(m, log, net?.bridge).catch((e: Error) => {
    log.error('local stormd not started', { error: e.message });
    m.bus.emit({ kind: 'host.local', level: 'error', message: `local stormd not started: ${e.message}` });
    return undefined;
  });
  // The example channel: served, subscribed and pulled in the background; a failure is shown, not fatal.
  const channel = await startExampleChannel(m, log).catch((e: Error) => {
    log.error('example channel not started', { error: e.message });
    m.bus.emit({ kind: 'channel.example', level: 'error', message: `example channel not started: ${e.message}` });
    return undefined;
  });
  return {
    m,
    stop: async () => {
      await relay?.stop();
      await local?.stop();
      await m.stop();
      await channel?.stop();
    },
  };
}
