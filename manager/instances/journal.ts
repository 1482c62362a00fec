import { randomUUID } from 'node:crypto';
import type { Batch, Collection, Store } from '../store/store.ts';

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
 *
 * An entry is *running* while an operation of this process owns it (from
 * begin to end or release); reconciliation repairs only entries nobody runs,
 * i.e. those left by a process that died or an operation that gave up.
 * `begin` and `end` take the record change that goes with them (`also`) into
 * the same atomic batch, so no crash can separate the two.
 */
export class Journal {
  readonly #store: Store;
  readonly #c: Collection<JournalEntry>;
  readonly #running = new Set<string>();
  constructor(store: Store) {
    this.#store = store;
    this.#c = store.collection<JournalEntry>('journal');
  }
  async begin(op: JournalEntry['op'], instance: string, host: string, data?: Record<string, unknown>, also?: (b: Batch) => void): Promise<JournalEntry> {
    const e: JournalEntry = { opId: randomUUID(), op, instance, host, done: [], startedAt: new Date().toISOString(), ...(data ? { data } : {}) };
    const b = this.#store.batch().put(this.#c, e.opId, e);
    also?.(b);
    this.#running.add(e.opId);
    await b.write();
    return e;
  }
  async step(e: JournalEntry, step: string): Promise<void> {
    e.done.push(step);
    await this.#c.put(e.opId, e);
  }
  async end(e: JournalEntry, also?: (b: Batch) => void): Promise<void> {
    const b = this.#store.batch().del(this.#c, e.opId);
    also?.(b);
    await b.write();
    this.#running.delete(e.opId);
  }
  /** Take over an entry (provisioning adopts the one create wrote). */
  adopt(e: JournalEntry): void {
    this.#running.add(e.opId);
  }
  /** Give up an entry without ending it: the next reconciliation pass repairs it. */
  release(e: JournalEntry): void {
    this.#running.delete(e.opId);
  }
  /** True while an operation of this process owns the entry. */
  running(e: JournalEntry): boolean {
    return this.#running.has(e.opId);
  }
  /** The entry as stored now (undefined once ended). */
  get(opId: string): Promise<JournalEntry | undefined> {
    return this.#c.get(opId);
  }
  async open(): Promise<JournalEntry[]> {
    return this.#c.values();
  }
}
