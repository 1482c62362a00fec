import { eventsView } from './events.ts';
import { healthView } from './health.ts';
import * as V from './resources.ts';
import type { View } from './view.ts';

const dashboard: View = { kind: 'dashboard', id: 'dashboard', title: 'Dashboard' };

/** Every view, in tab order. */
export const VIEW_LIST: View[] = [
  dashboard, V.instancesView, V.hostsView, V.channelsView, V.appliancesView, V.deploymentsView, V.layersView, V.updatesView,
  V.dnsView, V.dhcpView, V.usersView, V.groupsView, V.principalsView, eventsView, healthView,
];
export const VIEWS: Record<string, View> = Object.fromEntries(VIEW_LIST.map((v) => [v.id, v]));
export const FIRST_VIEW = 'dashboard';
