import { busy } from './errors.ts';

/**
 * One operation at a time per object. A second action on a locked object fails
 * at once with a clear `busy` error naming what holds it, instead of queueing.
 */
export class OperationLocks {
  readonly #held = new Map<string, { action: string; since: number }>();

  /** Run `fn` holding the lock for `key`; throws `busy` if another action holds it. */
  async run<T>(key: string, action: string, fn: () => Promise<T>): Promise<T> {
    const cur = this.#held.get(key);
    if (cur) {
      throw busy(`${key} is busy: ${cur.action} in progress since ${new Date(cur.since).toISOString()}`, {
        hint: 'wait for it to finish, then retry',
        details: { key, action: cur.action },
      });
    }
    this.#held.set(key, { action, since: Date.now() });
    try {
      return await fn();
    } finally {
      this.#held.delete(key);
    }
  }

  holder(key: string): string | undefined {
    return this.#held.get(key)?.action;
  }
}
