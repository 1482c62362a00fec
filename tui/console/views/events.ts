import type { StormEvent } from '../../../manager/events.ts';
import { eventRows } from '../../render/events.ts';
import { METHODS } from '../methods.ts';
import type { TableView } from './view.ts';

export const eventsView: TableView<StormEvent> = {
  kind: 'table',
  id: 'events',
  title: 'Events',
  rows: eventRows,
  method: METHODS.events,
  // Newest first; a drill-down from an object shows only its events.
  load: async (api, p) => {
    const all = (await api.call<StormEvent[]>(METHODS.events, { limit: 500 })).reverse();
    return typeof p.object === 'string' ? all.filter((e) => e.object === p.object) : all;
  },
};
