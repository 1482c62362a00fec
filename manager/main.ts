import { mkdirSync } from 'node:fs';
import type { Logger } from '../lib/logger.ts';
import { controlSocketPath } from '../lib/paths.ts';
import { LocalApi, type StormApi } from './api.ts';
import type { ManagerConfig } from './config/config.ts';
import { ControlServer } from './control/server.ts';
import { EventBus } from './events.ts';
import { Registry, type CallContext } from './services/registry.ts';
import { registerSystem } from './services/system.ts';
import { Store } from './store/store.ts';
import { parseHostPort } from '../lib/config.ts';
import { Pki } from './pki/pki.ts';
import { EnrollServer } from './hosts/enroll-server.ts';
import { Hosts } from './hosts/hosts.ts';
import { registerHosts, registerPki } from './services/hosts.ts';

/** A running manager: the one owner of the state directory. */
export interface Manager {
  readonly config: Readonly<ManagerConfig>;
  readonly registry: Registry;
  readonly bus: EventBus;
  readonly store: Store;
  /** The CA: issue instance certificates, get the manager's TLS material. */
  readonly pki: Pki;
  readonly hosts: Hosts;
  /** The enrolment URL stormd join uses; undefined when its port was taken. */
  readonly joinUrl: string | undefined;
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

  let pki: Pki;
  try {
    pki = await Pki.open({ dir: `${config.state}/pki`, store, log: log.child({ svc: 'pki' }), managerNames: config.managerNames });
  } catch (e) {
    await store.close();
    throw e;
  }
  let joinUrl: string | undefined;
  const hosts = new Hosts({ store, pki, bus, log: log.child({ svc: 'hosts' }), tokenTtlSeconds: config.joinTokenTtl, pollSeconds: config.hostPollSeconds, joinUrl: () => joinUrl });
  registerHosts(registry, hosts);
  registerPki(registry, pki);
  // The enrolment endpoint is optional: a taken port is reported, not fatal (the rest of the manager still works).
  let enroll: EnrollServer | undefined;
  const el = parseHostPort(config.enrollListen)!;
  try {
    enroll = await EnrollServer.start({ host: el.host, port: el.port, tls: () => pki.managerTls(), log: log.child({ svc: 'enroll' }), enroll: (t, c) => hosts.enroll(t, c) });
    const h = el.host === '0.0.0.0' || el.host === '::' ? config.managerNames[0] ?? 'localhost' : el.host;
    joinUrl = `https://${h.includes(':') ? `[${h}]` : h}:${enroll.port}`;
    pki.onChange(() => enroll?.reload());
  } catch (e) {
    log.warn('enrolment endpoint not serving', { listen: config.enrollListen, error: (e as Error).message });
    bus.emit({ kind: 'manager.enroll', level: 'warn', message: `enrolment endpoint ${config.enrollListen} not serving: ${(e as Error).message}` });
  }
  // Renew the manager's certificate and the CRL before they expire.
  const maintain = setInterval(() => void pki.maintain().catch((e) => log.error('pki maintenance failed', { error: (e as Error).message })), 6 * 3600_000);
  maintain.unref();

  const control = new ControlServer(controlSocketPath(config.state), registry, bus, log);
  try {
    await control.listen();
  } catch (e) {
    clearInterval(maintain);
    await enroll?.close();
    await store.close();
    throw e;
  }
  await hosts.start();
  bus.emit({ kind: 'manager.started', message: `manager started (state ${config.state})` });
  log.info('manager ready', { state: config.state, control: control.path });

  let stopped = false;
  return {
    config,
    registry,
    bus,
    store,
    pki,
    hosts,
    joinUrl,
    api: (ctx) => new LocalApi(registry, bus, ctx),
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(maintain);
      hosts.stop();
      await enroll?.close();
      await control.close();
      await store.close();
      log.info('manager stopped');
    },
  };
}
