/**
 * Reconciliation on a timer: once the hosts' first polls are in (so "online"
 * means something), then every `everyMs`. Passes never overlap; a failing
 * pass is logged and retried at the next tick.
 */
import type { Logger } from '../../lib/logger.ts';
import type { EventBus } from '../events.ts';
import type { InstanceService, ReconcileReport } from './service.ts';

export interface Reconciler {
  /** Run a pass now (or wait for the one running). */
  now(): Promise<ReconcileReport | undefined>;
  stop(): Promise<void>;
}

export function startReconciler(o: { instances: InstanceService; ready: Promise<void>; everyMs: number; log: Logger; bus: EventBus }): Reconciler {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<ReconcileReport | undefined> | undefined;
  const pass = (): Promise<ReconcileReport | undefined> => {
    if (running) return running;
    running = o.instances
      .reconcile()
      .then((r) => {
        const n = r.finished.length + r.undone.length + r.corrected.length;
        if (n || r.deferred.length) o.log.info('reconciled', { finished: r.finished, undone: r.undone, corrected: r.corrected.length, orphans: r.orphans.length, deferred: r.deferred.length });
        if (n) o.bus.emit({ kind: 'reconcile.done', message: `reconciled: ${r.finished.length} finished, ${r.undone.length} undone, ${r.corrected.length} corrected`, data: { ...r } });
        return r;
      })
      .catch((e) => (o.log.warn('reconcile failed', { error: (e as Error).message }), undefined))
      .finally(() => {
        running = undefined;
        if (!stopped && o.everyMs > 0) {
          clearTimeout(timer);
          timer = setTimeout(() => void pass(), o.everyMs);
          timer.unref();
        }
      });
    return running;
  };
  void o.ready.then(() => (stopped ? undefined : pass()));
  return {
    now: pass,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
