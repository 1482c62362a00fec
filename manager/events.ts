import { EventEmitter } from 'node:events';

/** Something that happened, for the console's event log and other sessions. */
export interface StormEvent {
  t: string;
  kind: string;
  object?: string;
  message: string;
  level?: 'info' | 'warn' | 'error';
  data?: Record<string, unknown>;
}

/** In-process fan-out of events, with a bounded ring of recent ones. */
export class EventBus {
  readonly #em = new EventEmitter();
  readonly #recent: StormEvent[] = [];
  readonly #max: number;

  constructor(max = 500) {
    this.#max = max;
    this.#em.setMaxListeners(0);
  }

  emit(e: Omit<StormEvent, 't'> & { t?: string }): StormEvent {
    const ev: StormEvent = { t: e.t ?? new Date().toISOString(), ...e } as StormEvent;
    this.#recent.push(ev);
    if (this.#recent.length > this.#max) this.#recent.shift();
    this.#em.emit('event', ev);
    return ev;
  }

  /** Subscribe; returns the unsubscribe function (sessions must call it on close). */
  subscribe(fn: (e: StormEvent) => void): () => void {
    this.#em.on('event', fn);
    return () => this.#em.off('event', fn);
  }

  recent(limit = 100): StormEvent[] {
    return this.#recent.slice(-limit);
  }

  listenerCount(): number {
    return this.#em.listenerCount('event');
  }
}
