import * as R from '../../render/resources.ts';
import { instanceDetail, instanceRowsWith } from '../../render/instances.ts';
import { hostRows } from '../../render/hosts.ts';
import { catalogRowSpec, catalogRows, channelRows, imageRows } from '../../render/channels.ts';
import type { CatalogEntry } from '../../../manager/channels/catalog.ts';
import { dnsListRows, dnsRecordRows, leaseRows } from '../../render/netsvc.ts';
import { groupDetail, groupRows, principalRows, userDetail, userRows } from '../../render/directory.ts';
import { deploymentListRows, deploymentUse, planRows, versionRows } from '../../render/deployments.ts';
import { formatTable, toCells } from '../../render/table.ts';
import { DEPLOYMENT_PREFIX, type DeploymentRecord } from '../../../manager/deployments/model.ts';
import type { InstanceRecord } from '../../../manager/instances/model.ts';
import { METHODS } from '../methods.ts';
import type { TableView } from './view.ts';

type Obj = Record<string, unknown>;

/** How much of the console log's end an instance's detail shows. */
const CONSOLE_BYTES = 2000;

/** The instances' addresses (MAC → bound lease) for the ADDRESS column: replaced at each load of the view. */
const instanceAddressMap = new Map<string, string>();

export const instancesView: TableView = {
  kind: 'table', id: 'instances', title: 'Instances', rows: instanceRowsWith(instanceAddressMap), method: METHODS.instances, text: (r) => instanceDetail(r),
  // A host's instances (the hosts view's drill-down): the service filters by its `host` param. One lease
  // list beside it gives every address; a DHCP service that does not answer leaves the column empty.
  load: async (api, p) => {
    const [rows, leases] = await Promise.all([api.call<InstanceRecord[]>(METHODS.instances, p), api.call<unknown[]>(METHODS.dhcpLeases, {}).catch(() => [])]);
    const bound = R.boundLeases(Array.isArray(leases) ? leases : []);
    instanceAddressMap.clear();
    for (const [mac, ip] of bound) instanceAddressMap.set(mac, ip);
    return rows;
  },
  // Layers with their versions, addresses, snapshots and the console log tail; what the manager does not offer is said, not fatal.
  detail: async (api, name, row) => {
    const inst = (row ?? {}) as Obj;
    const out: Record<string, unknown> = {};
    const ask = async <T,>(method: string, params: Record<string, unknown>): Promise<T | string> => {
      try {
        return await api.call<T>(method, params);
      } catch (e) {
        return `(${(e as Error).message})`;
      }
    };
    // An instance of a site deployment: its appliance's entry names the lower layers, the deployment's versions its deployment layer.
    const depName = typeof inst.appliance === 'string' && inst.appliance.startsWith(DEPLOYMENT_PREFIX) ? inst.appliance.slice(DEPLOYMENT_PREFIX.length) : undefined;
    const catalogEntry = async (): Promise<Obj | string | undefined> => {
      if (typeof inst.appliance !== 'string') return undefined;
      if (!depName) return ask<Obj>(METHODS.applianceShow, { ref: `${inst.appliance}@${String(inst.version ?? '')}`.replace(/@$/, '') });
      const d = await ask<DeploymentRecord>(METHODS.deploymentShow, { name: depName });
      if (typeof d !== 'object' || !d) return d;
      const e = await ask<Obj>(METHODS.applianceShow, { ref: `${d.appliance}@${d.applianceVersion}` });
      const own = Array.isArray(d.versions) ? d.versions.map((v) => ({ role: 'deployment', name: d.name, version: String(v.version), sha256: v.sha256 })) : [];
      const lower = typeof e === 'object' ? R.field(e, 'appliance.layers') : undefined;
      return { appliance: { layers: [...(Array.isArray(lower) ? lower : []), ...own] } };
    };
    const [entry, leases, dns, snapshots, tail] = await Promise.all([
      catalogEntry(),
      ask<unknown>(METHODS.dhcpLeases, {}),
      ask<unknown>(METHODS.dnsRecords, {}),
      ask<unknown>(METHODS.instanceSnapshots, { name }),
      ask<{ text?: unknown } | string>(METHODS.instanceConsole, { name, bytes: CONSOLE_BYTES }),
    ]);
    out.versions = R.layerVersions(inst.layers, typeof entry === 'object' ? entry : undefined);
    out.addresses = R.instanceAddresses(name, inst.mac, Array.isArray(leases) ? leases : [], dnsListRows(typeof dns === 'string' ? [] : dns));
    out.snapshots = snapshots;
    // The log as lines (the detail prints multi-line text as a block), not the call's {instance, host, text}.
    const text = typeof tail === 'object' && tail !== null && typeof tail.text === 'string' ? tail.text : undefined;
    // A full tail starts mid-line: from the first whole one.
    out.console = text === undefined ? tail : (text.length >= CONSOLE_BYTES ? text.slice(text.indexOf('\n') + 1) : text) || '(nothing on the console yet)';
    return out;
  },
};

/** Pending layer updates: the plan for every appliance and deployment that has instances (the CLI's `storm update plan`). */
export const updatesView: TableView<Obj> = {
  kind: 'table', id: 'updates', title: 'Layer updates', rows: planRows as never, method: METHODS.updatePlan,
};
export const hostsView: TableView<Obj> = {
  kind: 'table', id: 'hosts', title: 'Hosts', rows: hostRows as never, method: METHODS.hosts,
  drill: { view: 'instances', params: (_r, name) => ({ host: name }) },
};
export const channelsView: TableView<Obj> = {
  kind: 'table', id: 'channels', title: 'Channels', rows: channelRows as never, method: METHODS.channels,
  drill: { view: 'appliances', params: (_r, name) => ({ channel: name }) },
};
export const appliancesView: TableView<Obj> = {
  kind: 'table', id: 'appliances', title: 'Appliances', rows: catalogRowSpec as never, method: METHODS.appliances,
  // Which files are in the image store, and which are shared with other appliances.
  load: async (api, p) => {
    const entries = await api.call<CatalogEntry[]>(METHODS.appliances, typeof p.channel === 'string' ? { channel: p.channel } : {});
    const images = await api.call<{ sha256: string }[]>(METHODS.layers).catch(() => []);
    return catalogRows(Array.isArray(entries) ? entries : [], Array.isArray(images) ? images : []) as unknown as Obj[];
  },
  // An appliance's files in the image store (which are cached, which shared with others).
  drill: { view: 'layers', params: (r) => ({ appliance: (r as { id?: unknown }).id }) },
};
/** The site's deployments, read-only (edits are CLI work): the same rows as `storm deployment list`. */
export const deploymentsView: TableView = {
  kind: 'table', id: 'deployments', title: 'Deployments', rows: deploymentListRows, method: METHODS.deployments,
  load: async (api) => {
    const [deps, insts] = await Promise.all([api.call<DeploymentRecord[]>(METHODS.deployments), api.call<InstanceRecord[]>(METHODS.instances)]);
    return deploymentUse(Array.isArray(deps) ? deps : [], Array.isArray(insts) ? insts : []);
  },
  // Its versions as `storm deployment show` lists them (newest first, * the one new instances get).
  detail: async (_api, _name, d: DeploymentRecord) => ({ versions: formatTable(toCells(versionRows(d.version), [...d.versions].reverse(), false)) }),
};
export const layersView: TableView<Obj> = {
  kind: 'table', id: 'layers', title: 'Layers and cache', rows: imageRows as never, method: METHODS.layers,
  summary: (rows) => R.cacheSummary(rows),
  load: async (api, p) => {
    const all = await api.call<Obj[]>(METHODS.layers);
    const app = typeof p.appliance === 'string' ? p.appliance : undefined;
    return app ? all.filter((i) => Array.isArray(i.usedBy) && i.usedBy.some((u) => String(u).includes(app))) : all;
  },
};
export const dnsView: TableView<Obj> = {
  kind: 'table', id: 'dns', title: 'DNS records', rows: dnsRecordRows as never, method: METHODS.dnsRecords,
  // The service answers {zones, records, hosts}: instance hosts and stored records, as the CLI lists them.
  load: async (api) => dnsListRows(await api.call(METHODS.dnsRecords)) as unknown as Obj[],
};
export const dhcpView: TableView<Obj> = { kind: 'table', id: 'dhcp', title: 'DHCP leases', rows: leaseRows as never, method: METHODS.dhcpLeases };
export const usersView: TableView<Obj> = { kind: 'table', id: 'users', title: 'LDAP users', rows: userRows as never, method: METHODS.users, text: (u) => userDetail(u as never) };
export const groupsView: TableView<Obj> = { kind: 'table', id: 'groups', title: 'LDAP groups', rows: groupRows as never, method: METHODS.groups, text: (g) => groupDetail(g as never) };
export const principalsView: TableView<Obj> = { kind: 'table', id: 'principals', title: 'Kerberos principals', rows: principalRows as never, method: METHODS.principals };
