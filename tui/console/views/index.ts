import { eventsView } from './events.ts';
import { healthView } from './health.ts';
import type { View } from './view.ts';

export const VIEWS: Record<string, View> = { health: healthView, events: eventsView };
export const FIRST_VIEW = 'health';
