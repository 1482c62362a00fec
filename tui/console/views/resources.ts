import * as R from '../../render/resources.ts';
import { instanceRows } from '../../render/instances.ts';
import { METHODS } from '../methods.ts';
import type { TableView } from './view.ts';

type Obj = Record<string, unknown>;

export const instancesView: TableView = {
  kind: 'table', id: 'instances', title: 'Instances', rows: instanceRows, method: METHODS.instances,
  // A host's instances: the service lists all, the view keeps that host's.
  load: async (api, p) => {
    const all = await api.call<{ host?: string }[]>(METHODS.instances);
    return typeof p.host === 'string' ? all.filter((i) => i.host === p.host) : all;
  },
  detail: async (api, name) => {
    const snaps = await api.call<unknown[]>(METHODS.instanceSnapshots, { name });
    return { snapshots: snaps };
  },
};
export const hostsView: TableView<Obj> = {
  kind: 'table', id: 'hosts', title: 'Hosts', rows: R.hostRows, method: METHODS.hosts,
  drill: { view: 'instances', params: (_r, name) => ({ host: name }) },
};
export const channelsView: TableView<Obj> = {
  kind: 'table', id: 'channels', title: 'Channels', rows: R.channelRows, method: METHODS.channels,
  drill: { view: 'appliances', params: (_r, name) => ({ channel: name }) },
};
export const appliancesView: TableView<Obj> = {
  kind: 'table', id: 'appliances', title: 'Appliances', rows: R.applianceRows, method: METHODS.appliances,
  drill: { view: 'layers', params: (_r, name) => ({ appliance: name }) },
};
export const layersView: TableView<Obj> = { kind: 'table', id: 'layers', title: 'Layers and cache', rows: R.layerRows, method: METHODS.layers };
export const dnsView: TableView<Obj> = { kind: 'table', id: 'dns', title: 'DNS records', rows: R.dnsRecordRows, method: METHODS.dnsRecords };
export const dhcpView: TableView<Obj> = { kind: 'table', id: 'dhcp', title: 'DHCP leases', rows: R.dhcpLeaseRows, method: METHODS.dhcpLeases };
export const usersView: TableView<Obj> = { kind: 'table', id: 'users', title: 'LDAP users', rows: R.userRows, method: METHODS.users };
export const groupsView: TableView<Obj> = { kind: 'table', id: 'groups', title: 'LDAP groups', rows: R.groupRows, method: METHODS.groups };
export const principalsView: TableView<Obj> = { kind: 'table', id: 'principals', title: 'Kerberos principals', rows: R.principalRows, method: METHODS.principals };
