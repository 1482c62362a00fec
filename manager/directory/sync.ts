/**
 * Keep the directory (LDAP host entries, host/ principals, keytabs) in step
 * with the instances, without holding up the manager's start.
 *
 * - Every instance event (created, network, destroyed) becomes a job for that
 *   instance's name; a name's jobs run strictly in the order they were queued.
 * - At start the sync compares the store's instances with the directory and
 *   queues the difference in chunks (bulk: one kadmin.local run per phase and
 *   one atomic store batch per chunk), a bounded number at a time, in the
 *   background. A chunk is queued behind every name it covers, and later
 *   events for those names queue behind it.
 * - A job decides what to do when it RUNS, from `#alive` (the instances'
 *   latest known state: the start-up list, overridden by every event seen
 *   since subscribing). So whatever order a create/destroy and the sync
 *   interleave in, the last job for a name sees the last event and leaves
 *   exactly the right entry (or none).
 * Progress and failures are health (status()) and events, never thrown.
 */
import { healthy, unhealthy, type Health } from '../../lib/health.ts';
import type { Directory } from './directory.ts';

type Bus = {
  subscribe(fn: (e: { kind: string; object?: string; data?: Record<string, unknown> }) => void): () => void;
  emit(e: { kind: string; message: string; level?: 'info' | 'warn' | 'error'; object?: string; data?: Record<string, unknown> }): unknown;
};

/** The part of the Directory the sync drives (the unit tests give a fake). */
export type SyncDirectory = Pick<Directory, 'addHost' | 'removeHost' | 'addHosts' | 'removeHosts' | 'listHosts'>;

export interface DirectorySyncDeps {
  bus: Bus;
  directory: SyncDirectory;
  instances: { list(): Promise<{ name: string }[]> };
  domain: string;
  /** Hosts per bulk chunk (one kadmin.local run per phase, one store batch). */
  chunk?: number;
  /** Jobs (chunks or single events) running at once. */
  concurrency?: number;
}

export interface SyncProgress {
  state: 'idle' | 'syncing' | 'done' | 'failed';
  /** Hosts the start-up sync had to add or drop, and how many are dealt with (done or failed). */
  total: number;
  done: number;
  failed: { instance: string; fqdn: string; error: string }[];
  startedAt?: string;
  finishedAt?: string;
}

const FAILED_SHOWN = 20;

export class DirectorySync {
  readonly name = 'directory-sync';
  readonly #d: DirectorySyncDeps;
  readonly #chunk: number;
  readonly #limit: number;
  /** Latest known existence of each instance (lower-case name). */
  readonly #alive = new Map<string, boolean>();
  /** Names an event was seen for since subscribing: the event beats the start-up list. */
  readonly #seen = new Set<string>();
  /** Per-name tail of the job queue. */
  readonly #tails = new Map<string, Promise<void>>();
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  /** Event jobs jump the queued chunks: a new instance need not wait for a 10,000-host sync. */
  readonly #urgent: (() => void)[] = [];
  #unsubscribe: (() => void) | undefined;
  #stopped = false;
  #bulk: Promise<void> = Promise.resolve();
  readonly #all = new Set<Promise<void>>();
  readonly progress: SyncProgress = { state: 'idle', total: 0, done: 0, failed: [] };

  constructor(d: DirectorySyncDeps) {
    this.#d = d;
    this.#chunk = Math.max(1, d.chunk ?? 250);
    this.#limit = Math.max(1, d.concurrency ?? 2);
  }

  #fqdn(name: string): string {
    return `${name}.${this.#d.domain}`;
  }

  /** Subscribe to instance events now; the bulk sync runs in the background (see `idle`). */
  async start(): Promise<void> {
    this.#unsubscribe = this.#d.bus.subscribe((e) => {
      const name = e.object?.startsWith('instance/') ? e.object.slice('instance/'.length).toLowerCase() : undefined;
      if (!name || (e.kind !== 'instance.created' && e.kind !== 'instance.destroyed' && e.kind !== 'instance.network')) return;
      const alive = e.kind !== 'instance.destroyed';
      this.#alive.set(name, alive);
      this.#seen.add(name);
      const ip = e.kind === 'instance.network' && typeof e.data?.ip === 'string' ? e.data.ip : undefined;
      this.#enqueue([name], true, async () => {
        // Decide now, not when queued: a later event may have changed the answer.
        const fqdn = this.#fqdn(name);
        try {
          if (this.#alive.get(name)) await this.#d.directory.addHost({ fqdn, instance: name, ...(ip ? { addresses: [ip] } : {}) });
          else await this.#d.directory.removeHost(fqdn);
        } catch (err) {
          this.#d.bus.emit({ kind: 'instance.directory.failed', level: 'error', object: `instance/${name}`, message: `directory entry for ${name}: ${(err as Error).message}` });
        }
      });
    });
    this.#bulk = this.#startupSync().catch((err) => {
      this.progress.state = 'failed';
      this.progress.finishedAt = new Date().toISOString();
      this.#d.bus.emit({ kind: 'directory.sync.failed', level: 'error', message: `directory sync failed: ${(err as Error).message}` });
    });
  }

  /** Run `fn` after every queued job of `names`, within the concurrency bound. */
  #enqueue(names: string[], urgent: boolean, fn: () => Promise<void>): Promise<void> {
    const before = names.map((n) => this.#tails.get(n)).filter((p): p is Promise<void> => p !== undefined);
    const job = Promise.all(before)
      .then(() => this.#acquire(urgent))
      .then(async () => {
        try {
          if (!this.#stopped) await fn();
        } finally {
          this.#release();
        }
      });
    const tail = job.catch(() => undefined);
    for (const n of names) this.#tails.set(n, tail);
    this.#all.add(tail);
    void tail.then(() => {
      this.#all.delete(tail);
      for (const n of names) if (this.#tails.get(n) === tail) this.#tails.delete(n);
    });
    return tail;
  }

  async #acquire(urgent: boolean): Promise<void> {
    if (this.#running < this.#limit) {
      this.#running++;
      return;
    }
    await new Promise<void>((r) => (urgent ? this.#urgent : this.#waiting).push(r));
  }

  #release(): void {
    const next = this.#urgent.shift() ?? this.#waiting.shift();
    if (next) next();
    else this.#running--;
  }

  async #startupSync(): Promise<void> {
    const list = await this.#d.instances.list();
    for (const i of list) {
      const n = i.name.toLowerCase();
      if (!this.#seen.has(n)) this.#alive.set(n, true);
    }
    const hosts = this.#d.directory.listHosts();
    const entered = new Set(hosts.filter((h) => h.instance !== undefined).map((h) => h.instance!));
    const toAdd = [...this.#alive].filter(([n, a]) => a && !entered.has(n)).map(([n]) => n);
    const toDrop = hosts.filter((h) => h.instance !== undefined && !this.#alive.get(h.instance)).map((h) => ({ name: h.instance!, fqdn: h.fqdn }));
    const p = this.progress;
    p.total = toAdd.length + toDrop.length;
    p.startedAt = new Date().toISOString();
    if (!p.total) {
      p.state = 'done';
      p.finishedAt = p.startedAt;
      return;
    }
    p.state = 'syncing';
    this.#d.bus.emit({ kind: 'directory.sync.started', message: `directory sync: ${toAdd.length} instance(s) to enrol, ${toDrop.length} host entr(ies) to drop`, data: { add: toAdd.length, drop: toDrop.length } });
    let lastReport = 0;
    const report = () => {
      const now = Date.now();
      if (now - lastReport < 2000 && p.done < p.total) return;
      lastReport = now;
      this.#d.bus.emit({ kind: 'directory.sync.progress', message: `directory sync ${p.done}/${p.total}${p.failed.length ? `, ${p.failed.length} failed` : ''}`, data: { done: p.done, total: p.total, failed: p.failed.length } });
    };
    const fail = (instance: string, fqdn: string, error: string) => {
      p.failed.push({ instance, fqdn, error });
      this.#d.bus.emit({ kind: 'instance.directory.failed', level: 'error', object: `instance/${instance}`, message: `directory entry for ${instance}: ${error}` });
    };
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < toAdd.length; i += this.#chunk) {
      const names = toAdd.slice(i, i + this.#chunk);
      jobs.push(
        this.#enqueue(names, false, async () => {
          // Only names still alive and still without an entry (events may have run first).
          const now = new Set(this.#d.directory.listHosts().filter((h) => h.instance !== undefined).map((h) => h.instance!));
          const todo = names.filter((n) => this.#alive.get(n) && !now.has(n));
          try {
            const r = await this.#d.directory.addHosts(todo.map((n) => ({ fqdn: this.#fqdn(n), instance: n })));
            const byFqdn = new Map(todo.map((n) => [this.#fqdn(n), n]));
            for (const f of r.failed) fail(byFqdn.get(f.fqdn) ?? f.fqdn, f.fqdn, f.error);
          } catch (err) {
            for (const n of todo) fail(n, this.#fqdn(n), (err as Error).message);
          }
          p.done += names.length;
          report();
        }),
      );
    }
    for (let i = 0; i < toDrop.length; i += this.#chunk) {
      const part = toDrop.slice(i, i + this.#chunk);
      jobs.push(
        this.#enqueue(part.map((x) => x.name), false, async () => {
          const todo = part.filter((x) => !this.#alive.get(x.name));
          try {
            const r = await this.#d.directory.removeHosts(todo.map((x) => x.fqdn));
            for (const f of r.failed) fail(todo.find((x) => x.fqdn === f.fqdn)?.name ?? f.fqdn, f.fqdn, f.error);
          } catch (err) {
            for (const x of todo) fail(x.name, x.fqdn, (err as Error).message);
          }
          p.done += part.length;
          report();
        }),
      );
    }
    await Promise.all(jobs);
    p.finishedAt = new Date().toISOString();
    p.state = p.failed.length ? 'failed' : 'done';
    const secs = ((Date.parse(p.finishedAt) - Date.parse(p.startedAt)) / 1000).toFixed(1);
    if (p.failed.length) this.#d.bus.emit({ kind: 'directory.sync.failed', level: 'error', message: `directory sync finished in ${secs} s: ${p.failed.length} of ${p.total} failed`, data: { total: p.total, failed: p.failed.length } });
    else this.#d.bus.emit({ kind: 'directory.sync.done', message: `directory sync done: ${p.total} host(s) in ${secs} s`, data: { total: p.total, seconds: Number(secs) } });
  }

  /** Resolves when the start-up sync and every job queued so far are finished. */
  async idle(): Promise<void> {
    await this.#bulk;
    while (this.#all.size) await Promise.all([...this.#all]);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    // Queued jobs skip their work once stopped; the one running finishes (its writes are atomic).
    await this.idle();
  }

  async reload(): Promise<void> {}

  /** "syncing N/M", then healthy; failures listed with the fix. */
  status(): Health {
    const p = this.progress;
    const facts = { state: p.state, done: p.done, total: p.total, failed: p.failed.length, ...(p.startedAt ? { startedAt: p.startedAt } : {}), ...(p.finishedAt ? { finishedAt: p.finishedAt } : {}) };
    if (p.state === 'syncing') return healthy(this.name, `syncing ${p.done}/${p.total} instance host entries and principals${p.failed.length ? ` (${p.failed.length} failed so far)` : ''}`, facts);
    if (p.state === 'failed') {
      const shown = p.failed.slice(0, FAILED_SHOWN).map((f) => `${f.instance}: ${f.error}`).join('; ');
      const more = p.failed.length > FAILED_SHOWN ? `; and ${p.failed.length - FAILED_SHOWN} more` : '';
      return unhealthy(
        this.name,
        p.failed.length ? `${p.failed.length} of ${p.total} instance host entries not synced: ${shown}${more}` : 'the directory sync could not run (see the events)',
        'fix the cause (storm doctor: kerberos, disk space under STATE/krb5), then restart the manager: the sync retries every missing entry',
        { ...facts, failures: p.failed.slice(0, 100) },
      );
    }
    if (p.state === 'idle') return healthy(this.name, 'not started yet', facts);
    return healthy(this.name, p.total ? `in step: ${p.total} host entries synced at start` : 'in step', facts);
  }
}
