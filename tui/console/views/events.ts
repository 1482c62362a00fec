import type { StormEvent } from '../../../manager/events.ts';
import { eventRows } from '../../render/events.ts';
import type { View } from './view.ts';

export const eventsView: View<StormEvent> = {
  id: 'events',
  title: 'Events',
  rows: eventRows,
  load: async (api) => (await api.call<StormEvent[]>('events.recent', { limit: 200 })).reverse(),
};
