import { randomUUID } from 'node:crypto';
import type { Collection, Store } from '../store/store.ts';

/** An operation's intent, written before its first step and updated after each. */
export interface JournalEntry {
  opId: string;
  op: 'provision' | 'destroy' | 'migrate' | 'update';
  /** Op-specific facts reconciliation needs (e.g. migration target, previous layers). */
  data?: Record<string, unknown>;
  instance: string;
  host: string;
  /** Steps completed so far, in order. */
  done: string[];
  startedAt: string;
}

/**
 * The intent journal: if the manager dies mid-operation, the open entries say
 * exactly which steps happened, so reconciliation can finish or undo them.
 */
export class Journal {
  readonly #c: Collection<JournalEntry>;
  constructor(store: Store) {
    this.#c = store.collection<JournalEntry>('journal');
  }
  async begin(op: JournalEntry['op'], instance: string, host: string, data?: Record<string, unknown>): Promise<JournalEntry> {
    const e: JournalEntry = { opId: randomUUID(), op, instance, host, done: [], startedAt: new Date().toISOString(), ...(data ? { data } : {}) };
    await this.#c.put(e.opId, e);
    return e;
  }
  async step(e: JournalEntry, step: string): Promise<void> {
    e.done.push(step);
    await this.#c.put(e.opId, e);
  }
  async end(e: JournalEntry): Promise<void> {
    await this.#c.del(e.opId);
  }
  async open(): Promise<JournalEntry[]> {
    return this.#c.values();
  }
}
