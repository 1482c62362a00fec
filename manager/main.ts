import { mkdirSync } from 'node:fs';
import type { Logger } from '../lib/logger.ts';
import { controlSocketPath } from '../lib/paths.ts';
import { LocalApi, type StormApi } from './api.ts';
import { krbRealm, ldapBaseDn, type ManagerConfig } from './config/config.ts';
import { ControlServer } from './control/server.ts';
import { EventBus } from './events.ts';
import { Registry, type CallContext } from './services/registry.ts';
import { logOperations } from './services/operations.ts';
import { withLayerProgress } from './hosts/layer-progress.ts';
import { registerSystem } from './services/system.ts';
import { registerChannels, strandedInstances } from './services/channels.ts';
import { ChannelService } from './channels/catalog.ts';
import { catalogApplianceSource } from './channels/appliance-source.ts';
import { ImageService } from './images/service.ts';
import { registerInstances } from './services/instances.ts';
import { InstanceService, type ApplianceSource, type HostDirectory } from './instances/service.ts';
import { unavailable } from '../lib/errors.ts';
import { registerDirectory } from './services/directory.ts';
import { createDirectory, type DirectoryRuntime } from './directory/runtime.ts';
import { DirectorySync } from './directory/sync.ts';
import { Store } from './store/store.ts';
import { parseHostPort } from '../lib/config.ts';
import type { Health } from '../lib/health.ts';
import type { NetService } from './netsvc/service.ts';
import { DnsService } from './netsvc/dns/service.ts';
import { reverseZoneFor } from './netsvc/dns/zone.ts';
import { DhcpService, interfaceAddress } from './netsvc/dhcp/service.ts';
import { InstanceNetwork, followInstances } from './netsvc/instance-network.ts';
import { registerDns } from './services/dns.ts';
import { registerDhcp } from './services/dhcp.ts';
import { Pki } from './pki/pki.ts';
import { EnrollServer } from './hosts/enroll-server.ts';
import { Hosts } from './hosts/hosts.ts';
import { hostDirectory } from './hosts/host-directory.ts';
import { startReconciler } from './instances/reconciler.ts';
import { crashAt } from './instances/crash-points.ts';
import { registerHosts, registerPki } from './services/hosts.ts';
import { ApplianceApi } from './rpc/api.ts';
import { statusReports } from './rpc/methods.ts';
import { registerApi } from './services/api.ts';
import { LayerServer } from './deployments/layer-server.ts';
import { DeploymentService, deploymentAwareSource } from './deployments/service.ts';
import { deploymentRef } from './deployments/model.ts';
import { registerDeployments } from './services/deployments.ts';
import { changedPaths } from './images/layer-changes.ts';
import { ShadowFinder } from './instances/shadowed.ts';
import { domainName } from './instances/model.ts';

/** A running manager: the one owner of the state directory. */
export interface Manager {
  readonly config: Readonly<ManagerConfig>;
  readonly registry: Registry;
  readonly bus: EventBus;
  readonly store: Store;
  /** Instances call dns.setHost/removeHost as they come and go. */
  readonly dns: DnsService;
  readonly dhcp: DhcpService;
  /** Provisioning calls network.attach(name, mac) (reservation + A/PTR) and detach at destroy. */
  readonly network: InstanceNetwork;
  /** The CA: issue instance certificates, get the manager's TLS material. */
  readonly pki: Pki;
  readonly hosts: Hosts;
  /** The appliances' XML-RPC API: instance certificates (instanceCredentials), grants, setDirectory for LDAP/Kerberos. */
  readonly applianceApi: ApplianceApi;
  /** The enrolment URL stormd join uses; undefined when its port was taken. */
  readonly joinUrl: string | undefined;
  /** Users, groups, hosts: LDAP and Kerberos (other code enrols instances through it). */
  readonly directory: DirectoryRuntime;
  readonly channels: ChannelService;
  readonly images: ImageService;
  /** Deployments: appliance + the site's edits, one layer version per edit. */
  readonly deployments: DeploymentService;
  /** Base URL of the layer server hypervisors fetch deployment layers from (undefined when off). */
  readonly layerUrl: string | undefined;
  /** An in-process API for a console or SSH session with its own context. */
  api(ctx: CallContext): StormApi;
  stop(): Promise<void>;
}

export interface ManagerDeps {
  config: Readonly<ManagerConfig>;
  log: Logger;
  /** PATH to look up host tools with (from the env snapshot). */
  path: string;
  /** Hosts and appliances for instances, until the hosts and channel services are wired in (tests inject memory ones). */
  instanceBackends?: { hosts: HostDirectory; appliances: ApplianceSource };
}

/** Start the manager: open the store, register services, serve the control socket. */
export async function startManager({ config, log, path, instanceBackends }: ManagerDeps): Promise<Manager> {
  mkdirSync(config.state, { recursive: true, mode: 0o700 });
  const store = await Store.open(`${config.state}/db`);
  const bus = new EventBus();
  const registry = new Registry();
  // Who changed what, in the events log; every console session refreshes on it.
  logOperations(registry, bus);
  registerSystem(registry, { config, bus, path, startedAt: new Date() });
  const channels = new ChannelService({ store, bus, log, refreshSeconds: config.channelRefreshSeconds });
  const images = new ImageService({ root: `${config.state}/images`, channels, bus, parallel: config.imageParallel, reserveBytes: config.imageReserveMiB * 1024 * 1024 });
  // Images entered but not yet flushed when the manager last stopped are verified again before anything uses them.
  const recovered = await images.store.recover();
  if (recovered.kept.length || recovered.removed.length) log.warn('image store recovered after an unclean stop', { verified: recovered.kept.length, removed: recovered.removed });
  const stranded = async (ch: string) => strandedInstances(ch, await channels.appliances(), (await deployments?.list()) ?? [], await instances.list());
  registerChannels(registry, { channels, images, stranded });
  // Hypervisors come from the hosts service (started below, after the CA); tests may inject memory hosts and appliances.
  let hostDir: HostDirectory = instanceBackends?.hosts ?? { list: async () => [], agent: (n) => { throw unavailable(`host "${n}" is not reachable yet: the manager is starting`); } };
  // Deployment layers the manager builds: served from its image store by digest over mutual TLS, once the CA is open (below).
  let layerServer: LayerServer | undefined;
  let layerBase: string | undefined;
  let deployments: DeploymentService | undefined;
  const catalog: ApplianceSource = instanceBackends?.appliances ?? catalogApplianceSource(channels);
  const appliances: ApplianceSource = deploymentAwareSource(catalog, () => deployments);
  /** A layer image in the manager's store (fetched from its URL first when missing): the shadowed-files report reads them. */
  const storedImage = async (ref: { sha256: string; size?: number; url?: string }, what = 'layer'): Promise<string> => {
    if (!(await images.store.has(ref.sha256))) {
      if (!ref.url || ref.size === undefined) throw unavailable(`layer ${ref.sha256.slice(0, 12)} is not in the manager's image store and has no URL to fetch it from`, { hint: 'storm appliance pull the version it belongs to' });
      await images.ensure({ sha256: ref.sha256, size: ref.size, urls: [ref.url], what });
    }
    return images.store.path(ref.sha256);
  };
  // The API (which holds instance certificates) starts after the CA; provisioning reaches it through this late binding.
  let applianceApi: ApplianceApi | undefined;
  // The instances' network services: off unless configured (dnsListen, dhcpInterface).
  const dhcpAddress = config.dhcpInterface ? interfaceAddress(config.dhcpInterface) : undefined;
  const managerAddress = config.managerAddress || dhcpAddress || '127.0.0.1';
  // Each instance's layer carries its own API certificate (the appliance API's credentials), revoked when it is destroyed.
  let caForInstances: Pki | undefined;
  const identity = {
    issue: async (inst: { id: string; name: string }) => {
      if (!applianceApi || !caForInstances) throw unavailable('the CA is not open yet: the manager is starting');
      const c = await applianceApi.creds.ensure(inst);
      return { key: c.key, cert: c.cert, ca: caForInstances.caCertPem, serial: c.serial };
    },
    // By instance id too: what the API issued for it even if provisioning died before saving the serial
    // (the API forgets the key itself on instance.destroyed, or at its next start if that event was lost).
    revoke: async ({ id, serial, name, createdAt }: { id: string; serial?: string; name?: string; createdAt?: string }) => {
      const rec = (await applianceApi?.creds.list())?.find((c) => c.id === id);
      // And what the CA issued under its name since it was created: a manager killed between the CA's
      // issue and the API's record of it leaves a live serial nothing else names. Names are unique
      // among instances, so no other instance holds one of these.
      const unrecorded = name && createdAt && caForInstances ? (await caForInstances.list()).filter((c) => c.role === 'instance' && c.commonName === name && c.issuedAt >= createdAt && !c.revokedAt).map((c) => c.serial) : [];
      for (const s of new Set([serial, rec?.serial, rec?.previousSerial, ...unrecorded])) {
        if (s && caForInstances && !caForInstances.isRevoked(s)) await caForInstances.revoke(s, 'instance destroyed');
      }
    },
  };
  // Layer fetches show as progress events (a gauge per file in every console).
  const instances = new InstanceService(store, { list: () => hostDir.list(), agent: (n) => withLayerProgress(hostDir.agent(n), bus) }, appliances, bus, log, {
    domain: config.dnsDomain,
    ...(config.testCrashAt ? { checkpoint: crashAt(config.testCrashAt, log) } : {}),
    managerAddress,
    identity,
    // The API URL the instance calls (written after identity's files, so /etc/storm/manager names the API).
    instanceFiles: async (): Promise<Record<string, string>> => (applianceApi ? { '/etc/storm/manager': `${applianceApi.url}\n` } : {}),
    shadows: new ShadowFinder({ image: (ref) => storedImage(ref), changed: changedPaths }),
    // What instances say of themselves over the API: an update's canary must report ready again.
    reports: { last: (id) => statusReports(store).get(id) },
  });
  registerInstances(registry, instances, log);
  deployments = new DeploymentService({
    store, appliances: catalog, images: images.store, bus,
    ensureImage: async (ref) => void (await storedImage(ref, ref.what)),
    layerUrl: (sha) => (layerBase ? `${layerBase}${sha}` : undefined),
    users: async (name) => (await instances.list()).filter((i) => i.appliance === deploymentRef(name)).map((i) => i.name),
    // Maintenance instances are ordinary instances (journaled, reconciled) of a `maintenance:NAME@N` reference.
    maintenance: {
      start: async (req) => {
        const inst = await instances.create(req);
        const done = await instances.provision(inst.id);
        return { name: done.name, host: done.host };
      },
      stop: async (name) => {
        const inst = await instances.get(name);
        const agent = hostDir.agent(inst.host);
        if ((await agent.state(domainName(inst.id))) !== 'running') return; // the maintainer powered it off
        if (inst.state === 'running') await instances.stop(name);
        else await agent.shutdown(domainName(inst.id));
      },
      read: async (name, offset, length) => {
        const inst = await instances.get(name);
        return hostDir.agent(inst.host).readMaintenanceLayer(inst.id, offset, length);
      },
      destroy: async (name) => {
        const inst = await instances.get(name).catch(() => undefined);
        if (inst) await instances.destroy(inst.id);
      },
    },
  });
  images.addHolder(() => deployments!.digests());
  await deployments.sweep().catch((e) => log.warn('could not sweep deployment build files', { error: (e as Error).message }));
  registerDeployments(registry, deployments);

  const reverse = reverseZoneFor(config.dhcpSubnet);
  const dns = new DnsService({
    store,
    log: log.child({ svc: 'dns' }),
    domain: config.dnsDomain,
    managerAddress,
    reverseZones: reverse ? [reverse] : [],
    ttl: config.dnsTtl,
    listen: config.dnsListen ? parseHostPort(config.dnsListen) : undefined,
    upstream: config.dnsUpstream ? parseHostPort(config.dnsUpstream) : undefined,
  });
  const [poolStart, poolEnd] = config.dhcpPool.split('-') as [string, string];
  const dhcp = new DhcpService({
    store,
    log: log.child({ svc: 'dhcp' }),
    interface: config.dhcpInterface,
    listen: parseHostPort(config.dhcpListen)!,
    subnet: config.dhcpSubnet,
    domain: config.dnsDomain,
    defaults: { start: poolStart, end: poolEnd, router: config.dhcpRouter, dns: [], leaseTime: config.dhcpLeaseTime },
    exclude: [managerAddress],
    onEvent: (kind, message, data) => bus.emit({ kind, message, data, ...(typeof data.mac === 'string' ? { object: data.mac } : {}) }),
  });
  const network = new InstanceNetwork({ dns, dhcp, domain: config.dnsDomain });
  // Every instance gets a DHCP reservation for its MAC and NAME.<domain> A/PTR while it exists.
  const following = followInstances({ bus, instances, network, reservations: () => dhcp.reservations() });
  // The directory (LDAP + Kerberos): users and groups from storm user|group, a host entry,
  // host/ principal and keytab for every instance while it exists.
  let directory: DirectoryRuntime;
  try {
    directory = await createDirectory({ config, store, bus, log, path });
  } catch (e) {
    following.unsubscribe();
    await layerServer?.close();
    await store.close();
    throw e;
  }
  // Instances' host entries and principals follow their events; the start-up sync (instances created or
  // destroyed while the manager was down, or a restored store) runs in the background, bounded and batched.
  const enrolling = new DirectorySync({ bus, directory: directory.directory, instances, domain: config.dnsDomain });
  const netServices: NetService[] = [dns, dhcp, ...directory.services];
  for (const svc of netServices) {
    try {
      await svc.start();
    } catch (e) {
      // A service that cannot start is reported (status, doctor), not fatal: the admin can still fix it from the console.
      log.error(`${svc.name} did not start`, { error: (e as Error).message });
      bus.emit({ kind: `${svc.name}.failed`, level: 'error', message: (e as Error).message });
    }
  }
  registerDns(registry, { dns, bus });
  registerDhcp(registry, { dhcp, bus });
  registerDirectory(registry, directory.directory, [...directory.services, enrolling]);
  // Not awaited: the control socket must not wait for thousands of principals (status shows "syncing N/M").
  await enrolling.start();
  netServices.push(enrolling);
  registry.add<Record<string, never>, Health[]>({
    name: 'netsvc.status',
    mutates: false,
    summary: 'health of the network services (dns, dhcp, ldap, kerberos, api)',
    handler: async () => netServices.map((s) => s.status()),
  });

  let pki: Pki;
  try {
    pki = await Pki.open({ dir: `${config.state}/pki`, store, log: log.child({ svc: 'pki' }), managerNames: config.managerNames });
  } catch (e) {
    following.unsubscribe();
    for (const svc of netServices) await svc.stop();
    await layerServer?.close();
    await store.close();
    throw e;
  }
  caForInstances = pki;
  if (config.layerListen) {
    const ll = parseHostPort(config.layerListen)!;
    try {
      const started = await LayerServer.start({
        host: ll.host, port: ll.port, tls: () => pki.managerTls(), check: (pem) => pki.check(pem, 'stormd'),
        path: (sha) => images.store.path(sha), log: log.child({ svc: 'layers' }),
      });
      layerServer = started.server;
      pki.onChange(() => layerServer?.reload());
      const host = ll.host === '0.0.0.0' || ll.host === '::' ? (config.managerAddress || '127.0.0.1') : ll.host;
      layerBase = config.layerUrl ? config.layerUrl.replace(/\/?$/, '/') : `https://${host.includes(':') ? `[${host}]` : host}:${started.port}/`;
    } catch (e) {
      log.error('layer server did not start', { listen: config.layerListen, error: (e as Error).message });
      bus.emit({ kind: 'layers.failed', level: 'error', message: `layer server ${config.layerListen} not serving: ${(e as Error).message}; instances of deployments cannot be provisioned` });
    }
  }
  // LDAP StartTLS and LDAPS present the manager's certificate, renewed with it.
  const ldapTls = () => {
    const t = pki.managerTls();
    return { key: t.key, cert: t.cert, ca: t.ca };
  };
  await directory.ldap.setTls(ldapTls());
  pki.onChange(() => void directory.ldap.setTls(ldapTls()));
  let joinUrl: string | undefined;
  const hosts = new Hosts({ store, pki, bus, log: log.child({ svc: 'hosts' }), tokenTtlSeconds: config.joinTokenTtl, pollSeconds: config.hostPollSeconds, joinUrl: () => joinUrl });
  if (!instanceBackends) hostDir = hostDirectory(hosts);
  registerHosts(registry, hosts, async (h) => (await instances.list()).filter((i) => i.host === h).map((i) => i.name));
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
  // The appliances' API: certificates follow the instances even when the port cannot be had (reported, not fatal).
  const api = await ApplianceApi.open({
    store, bus, log: log.child({ svc: 'api' }), pki, instances, dns, domain: config.dnsDomain, managerAddress, createLimit: config.apiCreateLimit,
    listen: config.apiListen ? parseHostPort(config.apiListen) : undefined, apiUrl: config.apiUrl,
    dnsListen: config.dnsListen ? parseHostPort(config.dnsListen) : undefined,
  });
  applianceApi = api;
  api.follow();
  // config.get tells instances where the directory is (as guests reach the manager); keytab.get hands out their own host keytab.
  const realm = krbRealm(config);
  const portOf = (hp: string) => parseHostPort(hp)?.port;
  const at = (port: number | undefined) => `${managerAddress.includes(':') ? `[${managerAddress}]` : managerAddress}:${port}`;
  api.setDirectory(
    () => ({
      ...(config.ldapListen || config.ldapsListen
        ? { ldap: { uri: config.ldapListen ? `ldap://${at(portOf(config.ldapListen))}` : `ldaps://${at(portOf(config.ldapsListen))}`, baseDn: ldapBaseDn(config) } }
        : {}),
      ...(directory.kerberos.kdcPid !== undefined ? { kerberos: { realm, kdc: at(portOf(config.kdcListen)), adminServer: at(portOf(config.kadmindListen)) } } : {}),
    }),
    { hostKeytab: async (i) => ({ principal: `host/${i.fqdn}@${realm}`, keytab: directory.directory.keytabFor({ instance: i.name }, i.fqdn) }) },
  );
  netServices.push(api);
  try {
    await api.start();
  } catch (e) {
    log.error('api did not start', { listen: config.apiListen, error: (e as Error).message });
    bus.emit({ kind: 'api.failed', level: 'error', message: `appliance API ${config.apiListen} not serving: ${(e as Error).message}` });
  }
  registerApi(registry, { api, bus, store, instances });
  // Renew the manager's certificate and the CRL before they expire.
  const maintain = setInterval(() => void pki.maintain().catch((e) => log.error('pki maintenance failed', { error: (e as Error).message })), 6 * 3600_000);
  maintain.unref();

  const control = new ControlServer(controlSocketPath(config.state), registry, bus, log);
  try {
    await control.listen();
  } catch (e) {
    clearInterval(maintain);
    await enroll?.close();
    following.unsubscribe();
    for (const svc of netServices) await svc.stop();
    await layerServer?.close();
    await store.close();
    throw e;
  }
  await hosts.start();
  // Interrupted operations are finished or undone once the hosts' states are known, then periodically.
  const reconciler = startReconciler({ instances, ready: hosts.firstPolls(), everyMs: config.reconcileSeconds * 1000, log: log.child({ svc: 'reconcile' }), bus });
  channels.start();
  bus.emit({ kind: 'manager.started', message: `manager started (state ${config.state})` });
  log.info('manager ready', { state: config.state, control: control.path });

  let stopped = false;
  return {
    config,
    registry,
    bus,
    store,
    dns,
    dhcp,
    network,
    pki,
    hosts,
    applianceApi: api,
    joinUrl,
    directory,
    channels,
    images,
    deployments,
    layerUrl: layerBase,
    api: (ctx) => new LocalApi(registry, bus, ctx),
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(maintain);
      await reconciler.stop();
      hosts.stop();
      await enroll?.close();
      channels.stop();
      await layerServer?.close();
      await control.close();
      following.unsubscribe();
      await following.idle();
      // The directory sync stops first (reverse order): queued jobs are skipped, the running chunk lands.
      for (const svc of [...netServices].reverse()) await svc.stop();
      await images.store.flushed();
      await store.close();
      log.info('manager stopped');
    },
  };
}
